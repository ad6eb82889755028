#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "text/tokenizer.h"
#include "train/fault.h"

namespace zoft {

namespace fs = std::filesystem;

namespace {

const char* kPrefix = "checkpoint-";

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Step number of a "checkpoint-<n>" directory name, or -1.
int64_t step_of(const fs::path& dir) {
  std::string name = dir.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return -1;
  std::string digits = name.substr(std::strlen(kPrefix));
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::stoll(digits);
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(output_dir, ec)) {
    int64_t step = step_of(entry.path());
    if (step >= 0 && fs::exists(entry.path() / "trainer_state.json"))
      out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string save_checkpoint(const std::string& output_dir, int64_t step,
                            const CheckpointContents& contents) {
  fs::path final_dir = fs::path(output_dir) / (kPrefix + std::to_string(step));
  fs::path tmp = fs::path(output_dir) /
                 (".tmp-" + final_dir.filename().string() + "-" + std::to_string(getpid()));
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) fail("{}: cannot create the output directory: {}", output_dir, ec.message());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("{}: cannot create {}: {}", output_dir, tmp.string(), ec.message());

  std::vector<NamedTensor> tensors;
  for (const ParameterRef& p : *contents.parameters) tensors.push_back({p.name, p.tensor});
  if (contents.write_weights)  // offload: same bytes, streamed from the offload file
    contents.write_weights((tmp / contents.weights_file).string(), tensors, {{"format", "pt"}});
  else
    write_safetensors((tmp / contents.weights_file).string(), tensors, {{"format", "pt"}});
  fault_point("save", step);
  write_file_atomic((tmp / contents.config_file).string(), contents.config_json);
  for (const auto& [name, bytes] : contents.extra_files)
    write_file_atomic((tmp / name).string(), bytes);
  if (contents.write_extra) contents.write_extra(tmp.string());  // e.g. optimizer state
  write_file_atomic((tmp / "recipe.yaml").string(), contents.recipe_yaml);
  // trainer_state.json last: its presence marks a complete checkpoint.
  write_json_file((tmp / "trainer_state.json").string(), contents.trainer_state);
  fsync_path(tmp);

  // Replace an existing checkpoint of the same step (a re-run) only once the new one is whole.
  fs::path old = fs::path(output_dir) / (".old-" + final_dir.filename().string());
  fs::remove_all(old, ec);
  if (fs::exists(final_dir)) fs::rename(final_dir, old, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) fail("{}: cannot move the checkpoint into place: {}", final_dir.string(), ec.message());
  fsync_path(output_dir);
  fs::remove_all(old, ec);
  return final_dir.string();
}

std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
  auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

void prune_checkpoints(const std::string& output_dir, int64_t keep, const std::string& protect) {
  if (keep <= 0) return;
  auto all = complete_checkpoints(output_dir);
  int64_t excess = int64_t(all.size()) - keep;
  std::error_code ec;
  for (const auto& [step, path] : all) {
    if (excess <= 0) break;
    if (!protect.empty() && fs::equivalent(path, protect, ec)) continue;
    fs::remove_all(path, ec);
    --excess;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open for reading", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string checkpoint_config(const std::string& model_dir, DType dtype) {
  nlohmann::json config = read_json_file(model_dir + "/config.json");
  std::string name = dtype == DType::BF16 ? "bfloat16" : "float32";
  config["dtype"] = name;
  config["torch_dtype"] = name;
  return config.dump(2) + "\n";
}

void recover_checkpoints(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return;
  for (const auto& entry : fs::directory_iterator(output_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(".old-", 0) == 0) {
      fs::path original = entry.path().parent_path() / name.substr(5);
      if (!fs::exists(original))
        fs::rename(entry.path(), original, ec);
      else
        fs::remove_all(entry.path(), ec);
    } else if (name.rfind(".tmp-", 0) == 0) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

std::vector<std::pair<std::string, std::string>> read_tokenizer_files(const std::string& dir) {
  std::vector<std::string> names = text::tokenizer_file_names();
  names.insert(names.end(), {"generation_config.json", "special_tokens_map.json"});
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& name : names)
    if (fs::is_regular_file(fs::path(dir) / name))
      files.emplace_back(name, read_file((fs::path(dir) / name).string()));
  return files;
}

}  // namespace zoft
