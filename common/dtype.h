// Element types of checkpoint tensors, named as PyTorch prints them (without `torch.`).
//
// bfloat16, float8 and friends have no C++ type here: shardcast moves their bytes untouched.
#ifndef SHARDCAST_COMMON_DTYPE_H_
#define SHARDCAST_COMMON_DTYPE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardcast {

enum class DType {
  kFloat64,
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat8E4M3FN,
  kFloat8E5M2,
  kFloat8E4M3FNUZ,
  kFloat8E5M2FNUZ,
  kFloat8E8M0FNU,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kBool,
  kComplex32,
  kComplex64,
  kComplex128,
};

// Bytes per element.
size_t ItemSize(DType dtype);

// PyTorch's name, e.g. "bfloat16", "float8_e4m3fn".
absl::string_view DTypeName(DType dtype);

// Inverse of DTypeName. Also accepts the short aliases "bf16", "fp16", "fp32", "fp64".
// NotFound for anything else.
absl::StatusOr<DType> DTypeFromName(absl::string_view name);

// The casts shardcast performs (the executors, reshard/): equal dtypes, or between float32,
// bfloat16 and float16.
bool CanCast(DType from, DType to);

// The dtype a shard of `stored` is produced in when `requested` is asked for: `requested` for
// floating-point tensors it can be cast to, `stored` otherwise (integers are never cast).
DType OutputDType(DType stored, std::optional<DType> requested);

// A requested cast: "" -> nullopt; "bf16"/"bfloat16", "fp16", "fp32" (and PyTorch names);
// InvalidArgument for anything else.
absl::StatusOr<std::optional<DType>> ParseCastDType(const std::string& name);

// Maps a legacy typed storage class (e.g. "BFloat16Storage") to its dtype. NotFound otherwise.
absl::StatusOr<DType> DTypeFromStorageClass(absl::string_view storage_class);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_DTYPE_H_
