#include "train/method.h"

#include "core/error.h"
#include "train/first_order_method.h"
#include "train/mezo_method.h"

namespace zoft {

const char* training_method_names() {
  return "mezo-sgd, mezo-momentum, fzoo, adamw, sgd";
}

bool is_forward_only(const std::string& method) {
  return method == "mezo-sgd" || method == "mezo-momentum" || method == "fzoo";
}

int zo_forwards_per_step(const Recipe& r) {
  const zo::Estimator e = r.optim.method == "fzoo" ? zo::Estimator::Fzoo : zo::Estimator::TwoSided;
  return zo::MezoSgd::forwards_per_step(e, int(r.optim.samples));
}

std::unique_ptr<TrainingMethod> make_training_method(const Recipe& recipe, Decoder& model,
                                                     dist::Communicator& comm, LoraTraining* lora) {
  const std::string& m = recipe.optim.method;
  if (is_forward_only(m)) return std::make_unique<MezoMethod>(recipe, model, comm, lora);
  if (m == "adamw" || m == "sgd")
    return std::make_unique<FirstOrderMethod>(recipe, model, comm, lora);
  fail("{}: optim.method '{}' is not a training method: use one of {}", recipe.source, m,
       training_method_names());
}

}  // namespace zoft
