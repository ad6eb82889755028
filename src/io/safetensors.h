// safetensors files (mmap-ed read, atomic write) and HF checkpoint directories.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data section.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} with
// offsets relative to the data section; "__metadata__" maps strings to strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/mapped_file.h"

namespace zoft {

struct SafetensorsInfo {
  std::string name;
  std::string dtype_name;    // "F32", "BF16", "I64", ... as in the file
  bool has_dtype = false;    // true for F32 / F16 / BF16, the dtypes a Tensor can hold
  DType dtype = DType::F32;  // valid iff has_dtype
  std::vector<int64_t> shape;
  size_t offset = 0;  // absolute offset in the file
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Maps the file and validates the whole header (see safetensors.cc for the list of checks);
  // throws Error naming the file and the tensor at fault.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsInfo>& tensors() const { return tensors_; }  // in file order
  const SafetensorsInfo* find(const std::string& name) const;               // null if absent
  // Zero-copy view into the mmap. The data is read-only (const cast away: callers never write)
  // and stays valid while this object or a copy of it lives. Throws if the tensor is absent,
  // its dtype is not F32/F16/BF16, it has more than kMaxDims dimensions, or it is misaligned.
  Tensor view(const std::string& name) const;
  Tensor view(const SafetensorsInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsInfo> tensors_;
  std::map<std::string, size_t> by_name_;  // index into tensors_
  std::map<std::string, std::string> metadata_;
};

// A checkpoint: a directory with model.safetensors, or model.safetensors.index.json + shards
// (or a single *.safetensors when that is all there is), or the path of a *.safetensors file or
// of an *.index.json file.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  // Throws "<path>: tensor 'x' not found in checkpoint".
  const SafetensorsInfo& info(const std::string& name) const;
  Tensor view(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  uint64_t total_bytes() const;            // sum of the tensors' nbytes

 private:
  struct Location {
    size_t file;   // index into files_
    size_t index;  // index into files_[file].tensors()
  };
  std::string path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Location> where_;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Writes atomically (see AtomicFileWriter) with an 8-byte-aligned header padded with spaces.
// Data is laid out in the given order, except that tensors of wider dtypes are stably moved
// before narrower ones so that every tensor starts aligned to its element size (as HF's own
// writer does); with a single dtype the order is exactly the given one.
// Tensors must be contiguous and names unique and non-empty.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace zoft
