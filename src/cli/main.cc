// The zoft program: subcommands registered from commands.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"zoft: fine-tune and run Hugging Face LLMs on hardware too small for them"};
  app.require_subcommand(1);
  zoft::cli::add_inspect_command(app);
  zoft::cli::add_tokenize_command(app);
  zoft::cli::add_generate_command(app);
  zoft::cli::add_eval_command(app);
  zoft::cli::add_train_command(app);
  zoft::cli::add_convert_command(app);
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
