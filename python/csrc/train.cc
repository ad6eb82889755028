// zoft._core.train: the trainer (train/trainer.h) on a recipe file with dotted overrides, with
// the GIL released; the hooks take it back to call on_log and to look for Ctrl-C.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "cli/common.h"
#include "core/error.h"
#include "train/trainer.h"

namespace py = pybind11;

namespace zoft::python {

namespace {

py::dict summary_dict(const TrainSummary& s) {
  py::dict d;
  d["steps"] = s.steps;
  d["resumed_from"] = s.resumed_from;
  d["accuracy_before"] = s.accuracy_before;
  d["accuracy_after"] = s.accuracy_after;
  d["eval_before"] = s.eval_before;
  d["eval_after"] = s.eval_after;
  d["final_train_loss"] = s.final_train_loss;
  d["skipped_steps"] = s.skipped_steps;
  d["seconds"] = s.seconds;
  d["checkpoint"] = s.final_checkpoint;
  d["stopped"] = s.stopped;
  return d;
}

py::dict run_train(const std::string& recipe_path,
                   const std::vector<std::pair<std::string, std::string>>& overrides,
                   const py::object& on_log) {
  Recipe recipe = load_recipe(recipe_path, overrides);
  // Ctrl-C: Python's SIGINT handler runs when the trainer asks (KeyboardInterrupt by default),
  // or in on_log's Python code; the run then stops after the step it is in, with a checkpoint,
  // and returns with stopped = True.
  bool interrupted = false;
  TrainHooks hooks;
  if (!on_log.is_none())
    hooks.on_log = [&](int64_t step, const std::map<std::string, double>& metrics) {
      py::gil_scoped_acquire gil;
      try {
        on_log(step, metrics);
      } catch (py::error_already_set& e) {
        if (!e.matches(PyExc_KeyboardInterrupt)) throw;
        interrupted = true;
      }
    };
  hooks.stop_requested = [&] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();
      interrupted = true;
    }
    return interrupted;
  };
  TrainSummary s;
  {
    py::gil_scoped_release nogil;
    s = train(recipe, hooks);
  }
  if (s.rank != 0) return py::dict();
  const int64_t run = s.steps - std::max<int64_t>(s.resumed_from, 0);
  if (run > 0 && s.skipped_steps == run)  // as `zoft train` (cli/train_cmd.cc)
    fail(
        "all {} steps were skipped (non-finite loss): nothing was trained; try a smaller "
        "optim.lr or optim.eps",
        run);
  return summary_dict(s);
}

}  // namespace

void bind_train(py::module_& m) {
  m.def("train", &run_train, py::arg("recipe_path"), py::arg("overrides"), py::arg("on_log"));
  m.def(
      "evaluate_task",
      [](const std::string& model_path, const std::string& task, const std::string& data,
         int64_t max_examples, int64_t max_seq_length, int64_t batch_size, const std::string& dtype,
         const std::string& device, const std::string& max_memory, const std::string& offload_dir,
         int64_t prefetch) {
        // As `zoft eval --task` with the Model's placement (checked by Model.load; the thread
        // count it set stays): the same streaming and messages.
        cli::PlacementOptions p;
        p.dtype = dtype;
        p.device = device;
        p.max_memory = max_memory;
        p.offload_dir = offload_dir;
        p.prefetch = prefetch;
        py::gil_scoped_release nogil;
        PlaceModel place = cli::task_placement(model_path, p, nullptr);
        return evaluate_task_accuracy(model_path, task, data, max_examples, max_seq_length,
                                      batch_size, dtype, "", place);
      },
      py::arg("model_path"), py::arg("task"), py::arg("data"), py::arg("max_examples"),
      py::arg("max_seq_length"), py::arg("batch_size"), py::arg("dtype"), py::arg("device"),
      py::arg("max_memory"), py::arg("offload_dir"), py::arg("prefetch"));
}

}  // namespace zoft::python
