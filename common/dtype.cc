#include "common/dtype.h"

#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

struct DTypeInfo {
  DType dtype;
  absl::string_view name;
  size_t item_size;
  absl::string_view storage_class;  // empty: saved with UntypedStorage (_rebuild_tensor_v3)
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kFloat64, "float64", 8, "DoubleStorage"},
    {DType::kFloat32, "float32", 4, "FloatStorage"},
    {DType::kFloat16, "float16", 2, "HalfStorage"},
    {DType::kBFloat16, "bfloat16", 2, "BFloat16Storage"},
    {DType::kFloat8E4M3FN, "float8_e4m3fn", 1, ""},
    {DType::kFloat8E5M2, "float8_e5m2", 1, ""},
    {DType::kFloat8E4M3FNUZ, "float8_e4m3fnuz", 1, ""},
    {DType::kFloat8E5M2FNUZ, "float8_e5m2fnuz", 1, ""},
    {DType::kFloat8E8M0FNU, "float8_e8m0fnu", 1, ""},
    {DType::kInt8, "int8", 1, "CharStorage"},
    {DType::kInt16, "int16", 2, "ShortStorage"},
    {DType::kInt32, "int32", 4, "IntStorage"},
    {DType::kInt64, "int64", 8, "LongStorage"},
    {DType::kUInt8, "uint8", 1, "ByteStorage"},
    {DType::kUInt16, "uint16", 2, ""},
    {DType::kUInt32, "uint32", 4, ""},
    {DType::kUInt64, "uint64", 8, ""},
    {DType::kBool, "bool", 1, "BoolStorage"},
    {DType::kComplex32, "complex32", 4, ""},
    {DType::kComplex64, "complex64", 8, "ComplexFloatStorage"},
    {DType::kComplex128, "complex128", 16, "ComplexDoubleStorage"},
};

const DTypeInfo& Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[0];  // unreachable: every enumerator is listed
}

}  // namespace

size_t ItemSize(DType dtype) { return Info(dtype).item_size; }

absl::string_view DTypeName(DType dtype) { return Info(dtype).name; }

absl::StatusOr<DType> DTypeFromName(absl::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.name == name) return info.dtype;
  }
  if (name == "bf16") return DType::kBFloat16;
  if (name == "fp16" || name == "half") return DType::kFloat16;
  if (name == "fp32" || name == "float") return DType::kFloat32;
  if (name == "fp64" || name == "double") return DType::kFloat64;
  return absl::NotFoundError(absl::StrCat("unsupported dtype '", name, "'"));
}

absl::StatusOr<DType> DTypeFromStorageClass(absl::string_view storage_class) {
  for (const DTypeInfo& info : kDTypes) {
    if (!info.storage_class.empty() && info.storage_class == storage_class) return info.dtype;
  }
  return absl::NotFoundError(absl::StrCat("unsupported storage class '", storage_class, "'"));
}

namespace {
bool IsCastFloat(DType d) { return d == DType::kFloat32 || d == DType::kBFloat16 || d == DType::kFloat16; }
}  // namespace

bool CanCast(DType from, DType to) { return from == to || (IsCastFloat(from) && IsCastFloat(to)); }

DType OutputDType(DType stored, std::optional<DType> requested) {
  return requested && CanCast(stored, *requested) ? *requested : stored;
}

absl::StatusOr<std::optional<DType>> ParseCastDType(const std::string& name) {
  if (name.empty()) return std::optional<DType>();
  absl::StatusOr<DType> d = DTypeFromName(name);
  if (!d.ok() || !IsCastFloat(*d)) {
    return absl::InvalidArgumentError(absl::StrCat("dtype '", name, "': use bf16, fp16 or fp32"));
  }
  return std::optional<DType>(*d);
}

}  // namespace shardcast
