#include "common/safetensors.h"

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/text_escape.h"

namespace shardcast {

absl::StatusOr<std::string> SafetensorsDType(DType d) {
  switch (d) {
    case DType::kFloat64: return std::string("F64");
    case DType::kFloat32: return std::string("F32");
    case DType::kFloat16: return std::string("F16");
    case DType::kBFloat16: return std::string("BF16");
    case DType::kFloat8E4M3FN: return std::string("F8_E4M3");
    case DType::kFloat8E5M2: return std::string("F8_E5M2");
    case DType::kInt8: return std::string("I8");
    case DType::kInt16: return std::string("I16");
    case DType::kInt32: return std::string("I32");
    case DType::kInt64: return std::string("I64");
    case DType::kUInt8: return std::string("U8");
    case DType::kUInt16: return std::string("U16");
    case DType::kUInt32: return std::string("U32");
    case DType::kUInt64: return std::string("U64");
    case DType::kBool: return std::string("BOOL");
    default:
      return absl::UnimplementedError(absl::StrCat("safetensors has no dtype for ", DTypeName(d)));
  }
}

absl::StatusOr<DType> DTypeFromSafetensors(absl::string_view name) {
  static constexpr struct {
    const char* name;
    DType dtype;
  } kNames[] = {
      {"F64", DType::kFloat64},         {"F32", DType::kFloat32},         {"F16", DType::kFloat16},
      {"BF16", DType::kBFloat16},       {"F8_E4M3", DType::kFloat8E4M3FN}, {"F8_E5M2", DType::kFloat8E5M2},
      {"F8_E8M0", DType::kFloat8E8M0FNU}, {"I8", DType::kInt8},           {"I16", DType::kInt16},
      {"I32", DType::kInt32},           {"I64", DType::kInt64},           {"U8", DType::kUInt8},
      {"U16", DType::kUInt16},          {"U32", DType::kUInt32},          {"U64", DType::kUInt64},
      {"BOOL", DType::kBool},
  };
  for (const auto& n : kNames) {
    if (name == n.name) return n.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported safetensors dtype '", EscapeForTerminal(name.substr(0, 40)),
      "'; known: F64 F32 F16 BF16 F8_E4M3 F8_E5M2 F8_E8M0 I8 I16 I32 I64 U8 U16 U32 U64 BOOL"));
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, const std::vector<Entry>& entries, const std::map<std::string, std::string>& metadata) {
  Json header = Json::Object();
  if (!metadata.empty()) {
    Json m = Json::Object();
    for (const auto& [k, v] : metadata) m.Set(k, v);
    header.Set("__metadata__", std::move(m));
  }
  uint64_t off = 0;
  for (const Entry& e : entries) {
    absl::StatusOr<std::string> dt = SafetensorsDType(e.dtype);
    if (!dt.ok()) return absl::Status(dt.status().code(), absl::StrCat(e.name, ": ", dt.status().message()));
    if (header.Find(e.name)) return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", e.name, "'"));
    uint64_t n = ItemSize(e.dtype);
    for (int64_t s : e.shape) n *= static_cast<uint64_t>(s);
    Json t = Json::Object();
    t.Set("dtype", *dt);
    t.Set("shape", Json::ArrayOf(e.shape));
    Json offs = Json::Array();
    offs.Append(Json(off));
    offs.Append(Json(off + n));
    t.Set("data_offsets", std::move(offs));
    header.Set(e.name, std::move(t));
    off += n;
  }
  std::string text = header.Dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter);
  w->path_ = path;
  w->tmp_ = path + ".tmp";
  w->expected_ = off;
  w->f_ = std::fopen(w->tmp_.c_str(), "wb");
  if (w->f_ == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot write ", w->tmp_));
  uint64_t len = text.size();
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(len >> (8 * i));
  if (std::fwrite(le, 1, 8, w->f_) != 8 || std::fwrite(text.data(), 1, text.size(), w->f_) != text.size()) {
    return absl::DataLossError(absl::StrCat("write failed: ", w->tmp_));
  }
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (f_ != nullptr) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

absl::Status SafetensorsWriter::Append(const void* data, size_t n) {
  if (written_ + n > expected_) return absl::InternalError("more tensor bytes than declared");
  if (std::fwrite(data, 1, n, f_) != n) return absl::DataLossError(absl::StrCat("write failed: ", tmp_));
  written_ += n;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (written_ != expected_) {
    return absl::InternalError(absl::StrCat("wrote ", written_, " of ", expected_, " declared bytes"));
  }
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    return absl::DataLossError(absl::StrCat("cannot finish ", path_));
  }
  return absl::OkStatus();
}

}  // namespace shardcast
