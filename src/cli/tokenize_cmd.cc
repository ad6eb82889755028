// zoft tokenize --tokenizer PATH [--decode] [--no-special] [TEXT]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "io/json_file.h"
#include "text/tokenizer.h"

namespace zoft::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  bool has_text = false;
  bool decode = false;
  bool no_special = false;
};

std::string read_stdin() {
  std::ostringstream out;
  out << std::cin.rdbuf();
  return std::move(out).str();
}

// "[1, 2, 3]" -> ids; anything else is a one-line error saying what was expected.
std::vector<int32_t> parse_ids(const std::string& text) {
  nlohmann::json ids;
  try {
    ids = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("--decode expects a JSON array of token ids such as [1, 2, 3]: {}", json_error_text(e));
  }
  ZOFT_CHECK(ids.is_array(), "--decode expects a JSON array of token ids such as [1, 2, 3]");
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    ZOFT_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                   id.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
               "--decode: {} is not a token id (a non-negative integer)", id.dump());
    out.push_back(id.get<int32_t>());
  }
  return out;
}

void write_ids(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void run_tokenize(const TokenizeOptions& opt) {
  text::Tokenizer tok = text::Tokenizer::from_file(opt.tokenizer);
  std::string input = opt.has_text ? opt.text : read_stdin();
  if (!opt.decode) {
    write_ids(tok.encode(input, !opt.no_special));
    return;
  }
  std::string decoded = tok.decode(parse_ids(input), opt.no_special);
  // The exact text for pipes; a newline only for a person reading a terminal.
  std::fwrite(decoded.data(), 1, decoded.size(), stdout);
  if (isatty(fileno(stdout))) std::fputc('\n', stdout);
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto opt = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "token ids of TEXT as a JSON array (or, with --decode, the text of ids)");
  cmd->add_option("--tokenizer", opt->tokenizer,
                  "tokenizer.json[.xz], or a model directory with tokenizer.json or "
                  "vocab.json + merges.txt")
      ->required();
  cmd->add_flag("--decode", opt->decode, "TEXT is a JSON array of ids; print their text");
  cmd->add_flag("--no-special", opt->no_special,
                "do not add BOS/EOS (with --decode: leave out special tokens)");
  CLI::Option* text = cmd->add_option("text", opt->text, "the text (default: read stdin)");
  cmd->callback([opt, text] {
    opt->has_text = text->count() > 0;
    run_tokenize(*opt);
  });
}

}  // namespace zoft::cli
