// libFuzzer target for the files of a Hugging Face model directory: the input is read as
// model.safetensors (it must open or throw zoft::Error, and every view of an opened file must lie
// inside the file), as a sharded checkpoint's model.safetensors.index.json (its shards resolve to
// this same file), and as config.json (a model config must be validated or throw zoft::Error).
//
// Built with -DZOFT_FUZZ=ON and run by scripts/fuzz.sh; by hand:
//   ZOFT_FUZZ_TARGETS=fuzz_safetensors ./scripts/fuzz.sh 60
//   build/fuzz/fuzz_safetensors -max_total_time=60 DIR    # or on a corpus directory of your own
#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"
#include "model/arch.h"
#include "model/json_config.h"

namespace {

// Touches the first and last byte of a view so that ASan sees one outside the mapping.
void touch(const zoft::Tensor& t, size_t nbytes) {
  volatile uint8_t sink = 0;
  if (nbytes) {
    sink = sink + static_cast<const uint8_t*>(t.data)[0];
    sink = sink + static_cast<const uint8_t*>(t.data)[nbytes - 1];
  }
}

void read_file(const std::string& path, size_t size) {
  zoft::SafetensorsFile st = zoft::SafetensorsFile::open(path);
  for (const zoft::SafetensorsInfo& info : st.tensors()) {
    if (info.offset > size || info.nbytes > size - info.offset)
      zoft_fuzz::bug("a tensor's bytes lie outside the file");
    if (st.find(info.name) != &info) zoft_fuzz::bug("find() does not return the tensor");
    try {
      zoft::Tensor t = st.view(info);
      if (t.nbytes() != info.nbytes) zoft_fuzz::bug("view's nbytes differs from the header's");
      touch(t, info.nbytes);
    } catch (const zoft::Error&) {
    }
  }
}

void read_index(const std::string& path) {
  zoft::Checkpoint ck = zoft::Checkpoint::open(path);
  for (const std::string& name : ck.names()) {
    const zoft::SafetensorsInfo& info = ck.info(name);
    try {
      touch(ck.view(name), info.nbytes);
    } catch (const zoft::Error&) {
    }
  }
  (void)ck.total_bytes();
}

void read_config(const std::string& path) {
  zoft::LoadedConfig loaded = zoft::read_model_config_json(zoft::JsonConfig::load(path));
  const zoft::ModelConfig& c = loaded.config;
  if (!loaded.arch) zoft_fuzz::bug("a config without an architecture table");
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 ||
      c.num_kv_heads <= 0 || c.head_dim <= 0 || c.intermediate_size <= 0 ||
      c.num_heads % c.num_kv_heads != 0)
    zoft_fuzz::bug("read_model_config_json() accepted implausible sizes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    read_file(zoft_fuzz::write_input(data, size, "model.safetensors"), size);
  } catch (const zoft::Error&) {
  }
  try {
    read_index(zoft_fuzz::write_input(data, size, "model.safetensors.index.json"));
  } catch (const zoft::Error&) {
  }
  try {
    read_config(zoft_fuzz::write_input(data, size, "config.json"));
  } catch (const zoft::Error&) {
  }
  return 0;
}
