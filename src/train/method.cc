#include "train/method.h"

#include "core/error.h"
#include "train/first_order_method.h"
#include "train/mezo_method.h"

namespace zoft {

const char* training_method_names() {
  return "mezo-sgd, mezo-momentum, adamw, sgd";
}

std::unique_ptr<TrainingMethod> make_training_method(const Recipe& recipe, Decoder& model,
                                                     dist::Communicator& comm, LoraTraining* lora) {
  const std::string& m = recipe.optim.method;
  if (m == "mezo-sgd" || m == "mezo-momentum")
    return std::make_unique<MezoMethod>(recipe, model, comm, lora);
  if (m == "adamw" || m == "sgd")
    return std::make_unique<FirstOrderMethod>(recipe, model, comm, lora);
  fail("{}: optim.method '{}' is not a training method: use one of {}", recipe.source, m,
       training_method_names());
}

}  // namespace zoft
