// Training recipes: YAML files with sections model / data / task / optim / peft / trainer /
// placement / dist / logging, every field overridable from the command line by its dotted path
// (`--optim.lr 1e-6`). Unknown keys and wrongly typed values are errors naming the file and key.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace zoft {

struct Recipe {
  struct Model {
    std::string path;           // HF directory or .gguf
    std::string dtype = "f32";  // compute and storage dtype of the trained weights (bf16:
                                // stochastically rounded updates)
    bool random_init = false;   // no checkpoint: weights drawn from config.json (path: a
                                // directory holding config.json + tokenizer) with trainer.seed
  } model;
  struct Data {
    std::string train, eval;  // files (jsonl / csv / txt, optionally .xz)
    // Without a task: "text" = a causal-LM corpus (text_field of JSONL / CSV records, or TXT
    // lines) cut into blocks; "prompt_completion" = supervised fine-tuning records, the loss on
    // the completion only.
    std::string format = "text";
    std::string text_field = "text";
    std::string prompt_field = "prompt", completion_field = "completion";
    int64_t max_seq_length = 256;
    int64_t train_samples = 0;  // 0 = all
    int64_t eval_samples = 0;   // 0 = all
    bool truncate = true;       // false: a too-long example is an error
  } data;
  struct Task {
    std::string name;  // built-in task (sst2, rte, ..., fine_foods) or empty
    std::string file;  // YAML task definition (recipes/tasks/*.yaml)
    bool train_as_classification = true;
    int64_t k_shot = 0;  // 0 = use data.train_samples
  } task;
  struct Optim {
    std::string method = "mezo-sgd";
    double lr = 1e-6;
    double eps = 1e-3;
    int64_t samples = 1;  // perturbations per step (n): 2n forwards (MeZO), n + 1 (fzoo)
    double weight_decay = 0.0;
    std::string schedule = "constant";
    int64_t warmup_steps = 0;
    // First-order methods (adamw, sgd); names and defaults as HF TrainingArguments.
    double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
    double momentum = 0.0;        // sgd, mezo-momentum (beta)
    int64_t momentum_window = 8;  // mezo-momentum: steps whose directions make up an update
    double max_grad_norm = 1.0;   // clip the global gradient norm; 0 = no clipping
  } optim;
  // Parameter-efficient fine-tuning (train/lora_training.h): with method lora the training
  // method trains LoRA adapters on the frozen base; names and defaults as HF PEFT's LoraConfig.
  struct Peft {
    std::string method;  // "" = every weight is trained; "lora"
    int64_t r = 8;
    double alpha = 8;
    double dropout = 0.0;
    bool rslora = false;  // scale alpha / sqrt(r) instead of alpha / r
    // Module names as the architecture's HF model names them (src/model/arch_*.cc): q_proj,
    // v_proj, c_attn, fc1, ...; or all-linear. A comma-separated list on the command line.
    std::vector<std::string> target_modules = {"q_proj", "v_proj"};
    std::string bias = "none";
  } peft;
  struct Trainer {
    int64_t steps = 100;
    int64_t batch_size = 16;
    int64_t eval_interval = 0;  // 0 = only at the end
    // Task data: hold out this fraction of data.train (a fixed pick, the same for every seed)
    // as the validation set, which then chooses the best model and is what eval_interval
    // evaluates; data.eval is scored before and after (the held-out test). 0: data.eval is
    // the validation set (HF's eval_dataset).
    double validation_fraction = 0.0;
    // End with the best model by the validation metric: step 0 (saved as checkpoint-0), every
    // evaluation, the last step. Its checkpoint is the run's result and data.eval is scored on it.
    bool load_best_at_end = true;
    // Stop when the mean training loss of a 10-step window exceeds this times that of steps
    // 1-10 (0 = never), or after this many evaluations without a better validation metric
    // (0 = never; HF's early_stopping_patience).
    double divergence_factor = 2.0;
    int64_t early_stopping_patience = 0;
    int64_t save_interval = 0;  // 0 = only at the end
    int64_t save_total_limit = 2;
    int64_t seed = 42;
    std::string output_dir = "runs/zoft";
    std::string nan_policy = "skip";  // skip | stop
    bool eval_before = true;
    std::string schedule = "zo2";  // zo2 (block by block) | plain (perturb all, forward)
    // First-order methods: each rank's rows of a batch in this many micro-batches (memory),
    // and activation checkpointing per decoder block (memory: one block's activations).
    int64_t gradient_accumulation_steps = 1;
    bool gradient_checkpointing = false;
    // Resume even though a training-relevant key differs from the checkpoint's recipe.yaml
    // (train/recipe_changes.h says which keys are).
    bool allow_changed_recipe = false;
    // Classification with one-token candidates: score every candidate from one forward of the
    // context (train/single_token.h); the same loss up to float rounding, fewer rows per step.
    bool single_token_fast_path = true;
  } trainer;
  struct Placement {
    std::string device = "cpu";
    int64_t threads = 0;
    // Offload (runtime/, docs/offload.md): "cpu=20GiB[,gpu=8GiB]"; empty = all resident.
    std::string max_memory;
    std::string offload_dir;  // the offload file's directory when layers stream from disk
    int64_t prefetch = 2;     // blocks read ahead while one computes
  } placement;
  struct Dist {
    std::string backend = "none";
  } dist;
  struct Logging {
    int64_t log_interval = 10;
    bool jsonl = true;
    bool tensorboard = true;
  } logging;

  std::string source;  // the recipe file, for messages
};

// Loads a recipe and applies overrides (pairs of dotted key, value text), then validates.
Recipe load_recipe(const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& overrides = {});

// Parses `--a.b value` pairs from argv-style words; throws on a flag without a value.
std::vector<std::pair<std::string, std::string>> parse_overrides(
    const std::vector<std::string>& words);

// The recipe as YAML text (saved beside checkpoints, compared on resume).
std::string recipe_to_yaml(const Recipe& recipe);

}  // namespace zoft
