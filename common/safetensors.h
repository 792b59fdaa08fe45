// Writing safetensors files (and naming their dtypes both ways) (https://github.com/huggingface/safetensors format): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__"},
// then the tensors' bytes back to back.
#ifndef SHARDCAST_COMMON_SAFETENSORS_H_
#define SHARDCAST_COMMON_SAFETENSORS_H_

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/box.h"
#include "common/dtype.h"

namespace shardcast {

// "BF16", "F32", ...; Unimplemented for dtypes safetensors cannot name.
absl::StatusOr<std::string> SafetensorsDType(DType dtype);

// The inverse, for reading: "F32" -> kFloat32, "F8_E8M0" -> kFloat8E8M0FNU, ... InvalidArgument
// naming the dtype and the known ones for anything else (e.g. the sub-byte F4 / F6_*).
absl::StatusOr<DType> DTypeFromSafetensors(absl::string_view name);

// Streams a safetensors file: declare every tensor, then Append their bytes in the same order.
// Writes to PATH.tmp and renames on Finish, so a failed run leaves no partial file.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
  };
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(const std::string& path, const std::vector<Entry>& entries,
                                                                    const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  absl::Status Append(const void* data, size_t n);
  absl::Status Finish();

 private:
  SafetensorsWriter() = default;
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t expected_ = 0, written_ = 0;
};

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_SAFETENSORS_H_
