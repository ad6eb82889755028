#include "train/recipe.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/gpu_tier.h"
#include "runtime/plan.h"

namespace zoft {

namespace {

// One recipe field: how to read it from a YAML scalar and how to print it back.
struct Field {
  std::function<void(const YAML::Node&, const std::string& where)> read;
  std::function<std::string()> print;
};

std::string scalar_text(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar()) fail("{}: must be a single value, not a list or a mapping", where);
  return node.Scalar();
}

// A YAML double-quoted scalar that loads back to exactly `s`.
std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

Field string_field(std::string& target) {
  return {
      [&target](const YAML::Node& n, const std::string& where) { target = scalar_text(n, where); },
      [&target] { return yaml_quoted(target); }};
}

Field int_field(int64_t& target) {
  return {[&target](const YAML::Node& n, const std::string& where) {
            std::string text = scalar_text(n, where);
            size_t used = 0;
            try {
              target = std::stoll(text, &used);
            } catch (const std::exception&) {
              used = 0;
            }
            if (used == 0 || used != text.size())
              fail("{}: must be an integer, got '{}'", where, text);
          },
          [&target] { return std::to_string(target); }};
}

Field float_field(double& target) {
  return {[&target](const YAML::Node& n, const std::string& where) {
            std::string text = scalar_text(n, where);
            size_t used = 0;
            try {
              target = std::stod(text, &used);
            } catch (const std::exception&) {
              used = 0;
            }
            if (used == 0 || used != text.size())
              fail("{}: must be a number, got '{}'", where, text);
          },
          [&target] {
            std::ostringstream s;
            s.precision(17);
            s << target;
            return s.str();
          }};
}

Field bool_field(bool& target) {
  return {[&target](const YAML::Node& n, const std::string& where) {
            std::string text = scalar_text(n, where);
            if (text == "true" || text == "True" || text == "yes" || text == "1")
              target = true;
            else if (text == "false" || text == "False" || text == "no" || text == "0")
              target = false;
            else
              fail("{}: must be true or false, got '{}'", where, text);
          },
          [&target] { return std::string(target ? "true" : "false"); }};
}

// A list of names: a YAML sequence, or one scalar of comma-separated names (command line).
Field string_list_field(std::vector<std::string>& target) {
  return {[&target](const YAML::Node& n, const std::string& where) {
            target.clear();
            if (n.IsSequence()) {
              for (const YAML::Node& item : n) target.push_back(scalar_text(item, where));
              return;
            }
            std::string text = scalar_text(n, where);
            size_t begin = 0;
            while (begin <= text.size()) {
              size_t end = std::min(text.find(',', begin), text.size());
              std::string name = text.substr(begin, end - begin);
              name.erase(0, name.find_first_not_of(' '));
              name.erase(name.find_last_not_of(' ') + 1);
              if (!name.empty()) target.push_back(name);
              begin = end + 1;
            }
          },
          [&target] {
            std::string out = "[";
            for (size_t i = 0; i < target.size(); ++i)
              out += (i ? ", " : "") + yaml_quoted(target[i]);
            return out + "]";
          }};
}

// Every recipe key, by dotted path; the order is the order recipe_to_yaml prints.
std::vector<std::pair<std::string, Field>> schema(Recipe& r) {
  return {
      {"model.path", string_field(r.model.path)},
      {"model.dtype", string_field(r.model.dtype)},
      {"model.random_init", bool_field(r.model.random_init)},
      {"data.train", string_field(r.data.train)},
      {"data.eval", string_field(r.data.eval)},
      {"data.format", string_field(r.data.format)},
      {"data.text_field", string_field(r.data.text_field)},
      {"data.prompt_field", string_field(r.data.prompt_field)},
      {"data.completion_field", string_field(r.data.completion_field)},
      {"data.max_seq_length", int_field(r.data.max_seq_length)},
      {"data.train_samples", int_field(r.data.train_samples)},
      {"data.eval_samples", int_field(r.data.eval_samples)},
      {"data.truncate", bool_field(r.data.truncate)},
      {"task.name", string_field(r.task.name)},
      {"task.file", string_field(r.task.file)},
      {"task.train_as_classification", bool_field(r.task.train_as_classification)},
      {"task.k_shot", int_field(r.task.k_shot)},
      {"optim.method", string_field(r.optim.method)},
      {"optim.lr", float_field(r.optim.lr)},
      {"optim.eps", float_field(r.optim.eps)},
      {"optim.samples", int_field(r.optim.samples)},
      {"optim.weight_decay", float_field(r.optim.weight_decay)},
      {"optim.schedule", string_field(r.optim.schedule)},
      {"optim.warmup_steps", int_field(r.optim.warmup_steps)},
      {"optim.adam_beta1", float_field(r.optim.adam_beta1)},
      {"optim.adam_beta2", float_field(r.optim.adam_beta2)},
      {"optim.adam_epsilon", float_field(r.optim.adam_epsilon)},
      {"optim.momentum", float_field(r.optim.momentum)},
      {"optim.momentum_window", int_field(r.optim.momentum_window)},
      {"optim.max_grad_norm", float_field(r.optim.max_grad_norm)},
      {"peft.method", string_field(r.peft.method)},
      {"peft.r", int_field(r.peft.r)},
      {"peft.alpha", float_field(r.peft.alpha)},
      {"peft.dropout", float_field(r.peft.dropout)},
      {"peft.rslora", bool_field(r.peft.rslora)},
      {"peft.target_modules", string_list_field(r.peft.target_modules)},
      {"peft.bias", string_field(r.peft.bias)},
      {"trainer.steps", int_field(r.trainer.steps)},
      {"trainer.batch_size", int_field(r.trainer.batch_size)},
      {"trainer.eval_interval", int_field(r.trainer.eval_interval)},
      {"trainer.validation_fraction", float_field(r.trainer.validation_fraction)},
      {"trainer.load_best_at_end", bool_field(r.trainer.load_best_at_end)},
      {"trainer.divergence_factor", float_field(r.trainer.divergence_factor)},
      {"trainer.early_stopping_patience", int_field(r.trainer.early_stopping_patience)},
      {"trainer.save_interval", int_field(r.trainer.save_interval)},
      {"trainer.save_total_limit", int_field(r.trainer.save_total_limit)},
      {"trainer.seed", int_field(r.trainer.seed)},
      {"trainer.output_dir", string_field(r.trainer.output_dir)},
      {"trainer.nan_policy", string_field(r.trainer.nan_policy)},
      {"trainer.eval_before", bool_field(r.trainer.eval_before)},
      {"trainer.schedule", string_field(r.trainer.schedule)},
      {"trainer.gradient_accumulation_steps", int_field(r.trainer.gradient_accumulation_steps)},
      {"trainer.gradient_checkpointing", bool_field(r.trainer.gradient_checkpointing)},
      {"trainer.allow_changed_recipe", bool_field(r.trainer.allow_changed_recipe)},
      {"trainer.single_token_fast_path", bool_field(r.trainer.single_token_fast_path)},
      {"placement.device", string_field(r.placement.device)},
      {"placement.threads", int_field(r.placement.threads)},
      {"placement.max_memory", string_field(r.placement.max_memory)},
      {"placement.offload_dir", string_field(r.placement.offload_dir)},
      {"placement.prefetch", int_field(r.placement.prefetch)},
      {"dist.backend", string_field(r.dist.backend)},
      {"logging.log_interval", int_field(r.logging.log_interval)},
      {"logging.jsonl", bool_field(r.logging.jsonl)},
      {"logging.tensorboard", bool_field(r.logging.tensorboard)},
  };
}

void check_one_of(const std::string& where, const std::string& value,
                  std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  fail("{}: '{}' is not one of {}", where, value, list);
}

void validate(const Recipe& r) {
  const std::string& f = r.source;
  if (r.model.path.empty()) fail("{}: model.path is required", f);
  check_one_of(f + ": model.dtype", r.model.dtype, {"f32", "bf16"});
  if (r.model.random_init && !r.placement.max_memory.empty() &&
      (!runtime::is_gpu_tier_device(r.placement.device) ||
       runtime::parse_max_memory(r.placement.max_memory).cpu))  // the GPU tier streams RAM
    fail(
        "{}: model.random_init has no checkpoint to stream layers from disk: drop "
        "placement.max_memory cpu=",
        f);
  check_one_of(f + ": optim.method", r.optim.method,
               {"mezo-sgd", "mezo-momentum", "fzoo", "adamw", "sgd"});
  check_one_of(f + ": data.format", r.data.format, {"text", "prompt_completion"});
  if (!r.peft.method.empty() && r.peft.method != "lora")
    fail("{}: peft.method '{}' is not supported: lora (or none, to train every weight)", f,
         r.peft.method);
  if (r.peft.method == "lora") {
    if (r.peft.r <= 0) fail("{}: peft.r (the LoRA rank) must be positive, got {}", f, r.peft.r);
    if (!(r.peft.alpha > 0)) fail("{}: peft.alpha must be positive, got {}", f, r.peft.alpha);
    if (!(r.peft.dropout >= 0 && r.peft.dropout < 1))
      fail("{}: peft.dropout must be in [0, 1), got {}", f, r.peft.dropout);
    if (r.peft.target_modules.empty())
      fail("{}: peft.target_modules is empty: name the modules to adapt (e.g. [q_proj, v_proj])",
           f);
    check_one_of(f + ": peft.bias", r.peft.bias, {"none"});
  }
  check_one_of(f + ": optim.schedule", r.optim.schedule, {"constant", "linear", "cosine"});
  check_one_of(f + ": trainer.nan_policy", r.trainer.nan_policy, {"skip", "stop"});
  check_one_of(f + ": trainer.schedule", r.trainer.schedule, {"zo2", "plain"});
  // sim: a testing aid, the GPU tier on a simulated device (runtime/gpu_tier.h).
  check_one_of(f + ": placement.device", r.placement.device, {"cpu", "cuda", "sim"});
  if (r.placement.device == "sim" &&
      (r.placement.max_memory.empty() || !runtime::parse_max_memory(r.placement.max_memory).gpu))
    fail("{}: placement.device sim (a testing aid) needs placement.max_memory gpu=...", f);
  check_one_of(f + ": dist.backend", r.dist.backend, {"none", "mpi"});
  if (r.data.train.empty()) fail("{}: data.train is required", f);
  if (!r.task.name.empty() && !r.task.file.empty())
    fail("{}: task.name '{}' and task.file '{}' both given: keep one", f, r.task.name, r.task.file);
  auto positive = [&](const char* key, double v) {
    if (!(v > 0)) fail("{}: {} must be positive, got {}", f, key, v);
  };
  positive("optim.lr", r.optim.lr);
  positive("optim.eps", r.optim.eps);
  positive("optim.samples", double(r.optim.samples));
  positive("trainer.steps", double(r.trainer.steps));
  positive("trainer.batch_size", double(r.trainer.batch_size));
  positive("data.max_seq_length", double(r.data.max_seq_length));
  if (r.optim.weight_decay < 0) fail("{}: optim.weight_decay must be >= 0", f);
  if (!(r.optim.max_grad_norm >= 0))
    fail("{}: optim.max_grad_norm must be >= 0 (0 = no clipping), got {}", f,
         r.optim.max_grad_norm);
  if (!(r.optim.adam_beta1 >= 0 && r.optim.adam_beta1 < 1 && r.optim.adam_beta2 >= 0 &&
        r.optim.adam_beta2 < 1))
    fail("{}: optim.adam_beta1 and optim.adam_beta2 must be in [0, 1)", f);
  positive("optim.adam_epsilon", r.optim.adam_epsilon);
  if (!(r.optim.momentum >= 0)) fail("{}: optim.momentum must be >= 0", f);
  if (r.optim.method == "mezo-momentum" && !(r.optim.momentum > 0 && r.optim.momentum < 1))
    fail("{}: optim.method mezo-momentum needs optim.momentum in (0, 1) (e.g. 0.8), got {}", f,
         r.optim.momentum);
  if (r.optim.method == "fzoo" && r.optim.samples < 2)
    fail(
        "{}: optim.method fzoo needs optim.samples >= 2 (its step is normalised by the spread "
        "of the perturbed losses), got {}",
        f, r.optim.samples);
  if (r.optim.momentum_window < 1 || r.optim.momentum_window > 1024)
    fail("{}: optim.momentum_window must be in [1, 1024], got {}", f, r.optim.momentum_window);
  positive("trainer.gradient_accumulation_steps", double(r.trainer.gradient_accumulation_steps));
  auto not_negative = [&](const char* key, int64_t v) {
    if (v < 0) fail("{}: {} must be >= 0, got {}", f, key, v);
  };
  not_negative("placement.prefetch", r.placement.prefetch);
  not_negative("logging.log_interval", r.logging.log_interval);
  not_negative("task.k_shot", r.task.k_shot);
  not_negative("data.train_samples", r.data.train_samples);
  not_negative("data.eval_samples", r.data.eval_samples);
  not_negative("optim.warmup_steps", r.optim.warmup_steps);
  check_thread_count(r.placement.threads, f + ": placement.threads");
  if (!r.placement.max_memory.empty())  // early and clear, not after loading the model
    runtime::parse_max_memory(r.placement.max_memory);
  if (r.trainer.eval_interval < 0 || r.trainer.save_interval < 0 || r.trainer.save_total_limit < 0)
    fail("{}: trainer intervals and save_total_limit must be >= 0", f);
  not_negative("trainer.early_stopping_patience", r.trainer.early_stopping_patience);
  if (!(r.trainer.validation_fraction >= 0 && r.trainer.validation_fraction < 1))
    fail("{}: trainer.validation_fraction must be in [0, 1), got {}", f,
         r.trainer.validation_fraction);
  if (r.trainer.validation_fraction > 0 && r.task.name.empty() && r.task.file.empty())
    fail(
        "{}: trainer.validation_fraction splits task examples; without a task give data.eval "
        "instead",
        f);
  if (!(r.trainer.divergence_factor == 0 || r.trainer.divergence_factor > 1))
    fail("{}: trainer.divergence_factor must be 0 (off) or > 1, got {}", f,
         r.trainer.divergence_factor);
}

}  // namespace

Recipe load_recipe(const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& overrides) {
  Recipe r;
  r.source = path;
  auto fields = schema(r);
  std::map<std::string, Field*> by_key;
  for (auto& [key, field] : fields) by_key[key] = &field;

  if (std::filesystem::is_directory(path))
    fail("{}: is a directory, expected a recipe YAML file (see recipes/)", path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail("{}: cannot open the recipe", path);
  } catch (const YAML::Exception& e) {
    fail("{}: line {}: invalid YAML: {}", path, e.mark.line + 1, e.msg);
  }
  if (!root.IsNull() && !root.IsMap()) fail("{}: a recipe is a mapping of sections", path);
  // yaml-cpp keeps both entries of a repeated key and the last read would win silently.
  std::set<std::string> seen;
  auto first_time = [&](const std::string& key, const YAML::Node& at) {
    if (!seen.insert(key).second)
      fail("{}: line {}: '{}' is given twice: keep one", path, at.Mark().line + 1, key);
  };
  for (const auto& section : root) {
    if (!section.first.IsScalar())
      fail("{}: line {}: a section name must be a plain word", path, section.first.Mark().line + 1);
    std::string name = section.first.Scalar();
    first_time(name, section.first);
    if (!section.second.IsMap())
      fail("{}: line {}: section '{}' must be a mapping of keys", path,
           section.second.Mark().line + 1, name);
    for (const auto& item : section.second) {
      if (!item.first.IsScalar())
        fail("{}: line {}: a key in section '{}' must be a plain word", path,
             item.first.Mark().line + 1, name);
      std::string key = name + "." + item.first.Scalar();
      first_time(key, item.first);
      auto it = by_key.find(key);
      if (it == by_key.end())
        fail("{}: line {}: unknown key '{}'", path, item.first.Mark().line + 1, key);
      it->second->read(item.second,
                       fmt::format("{}: line {}: {}", path, item.second.Mark().line + 1, key));
    }
  }
  for (const auto& [key, value] : overrides) {
    auto it = by_key.find(key);
    if (it == by_key.end()) fail("override --{}: unknown recipe key", key);
    it->second->read(YAML::Node(value), "override --" + key);
  }
  validate(r);
  return r;
}

std::vector<std::pair<std::string, std::string>> parse_overrides(
    const std::vector<std::string>& words) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w.rfind("--", 0) != 0)
      fail("unexpected argument '{}': overrides look like --section.key value", w);
    std::string key = w.substr(2), value;
    size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= words.size()) fail("override --{} has no value", key);
      value = words[++i];
    }
    if (key.find('.') == std::string::npos) fail("override --{}: expected --section.key", key);
    out.emplace_back(key, value);
  }
  return out;
}

std::string recipe_to_yaml(const Recipe& recipe) {
  Recipe copy = recipe;
  std::string out, section;
  for (auto& [key, field] : schema(copy)) {
    std::string s = key.substr(0, key.find('.'));
    if (s != section) {
      out += s + ":\n";
      section = s;
    }
    out += "  " + key.substr(key.find('.') + 1) + ": " + field.print() + "\n";
  }
  return out;
}

}  // namespace zoft
