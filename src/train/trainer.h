// The fine-tuning loop: a recipe in, checkpoints and metrics out. Resumes automatically from the
// newest complete checkpoint in the output directory.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "train/recipe.h"

namespace zoft {

struct TrainSummary {
  int64_t steps = 0;            // optimiser steps completed in total
  int64_t resumed_from = -1;    // checkpoint step, or -1
  double accuracy_before = -1;  // eval accuracy before training (-1: not measured)
  double accuracy_after = -1;
  std::map<std::string, double> eval_before, eval_after;  // every eval metric (empty: none)
  double final_train_loss = 0;
  double seconds = 0;
  int64_t skipped_steps = 0;  // non-finite losses skipped (nan_policy: skip)
  std::string final_checkpoint;
  int rank = 0;          // this process's rank: only rank 0 reports the summary
  bool stopped = false;  // TrainHooks::stop_requested ended the run early (checkpoint saved)
};

// What an embedding program (the Python package) hooks into a run; both may be empty.
struct TrainHooks {
  // Sees every row written to metrics.jsonl (train and eval metrics), on rank 0.
  std::function<void(int64_t step, const std::map<std::string, double>& metrics)> on_log;
  // Asked after every step: true stops the run there, with a checkpoint of that step saved.
  std::function<bool()> stop_requested;
};

TrainSummary train(const Recipe& recipe, const TrainHooks& hooks = {});

class Decoder;

// Places a loaded model (zoft eval's offload and GPU tier); what it returns is kept alive while
// the model is used.
using PlaceModel = std::function<std::shared_ptr<void>(Decoder& model)>;

// Accuracy of a model directory on a task's eval data (zoft eval --task), with the PEFT LoRA
// adapter of `adapter_dir` applied when it is not empty, and placed by `place` when given.
double evaluate_task_accuracy(const std::string& model_path, const std::string& task,
                              const std::string& data_path, int64_t max_examples,
                              int64_t max_seq_length, int64_t batch_size, const std::string& dtype,
                              const std::string& adapter_dir = "", const PlaceModel& place = {});

}  // namespace zoft
