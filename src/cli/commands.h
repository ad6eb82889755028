// Each subcommand lives in its own file and registers itself on the CLI11 app.
// Callbacks throw zoft::Error on bad input; main() prints it on one line and exits 1.
#pragma once

namespace CLI {
class App;
}

namespace zoft::cli {

void add_inspect_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_merge_command(CLI::App& app);

}  // namespace zoft::cli
