// The zoft program: subcommands registered from commands.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

// CLI11 answers a mistyped command with "A subcommand is required"; name it and list the real
// ones instead. True when argv[1] is an option or a known command.
static bool known_command(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return true;
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == argv[1]) return true;
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  std::fprintf(stderr, "zoft: error: unknown command '%s': the commands are %s (zoft --help)\n",
               argv[1], names.c_str());
  return false;
}

int main(int argc, char** argv) {
  CLI::App app{"zoft: fine-tune and run Hugging Face LLMs on hardware too small for them"};
  app.require_subcommand(1);
  zoft::cli::add_inspect_command(app);
  zoft::cli::add_tokenize_command(app);
  zoft::cli::add_generate_command(app);
  zoft::cli::add_eval_command(app);
  zoft::cli::add_train_command(app);
  zoft::cli::add_convert_command(app);
  zoft::cli::add_merge_command(app);
  if (!known_command(app, argc, argv)) return 1;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const zoft::Error& e) {
    std::fprintf(stderr, "zoft: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "zoft: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zoft: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
