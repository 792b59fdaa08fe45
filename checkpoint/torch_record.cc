#include "checkpoint/torch_record.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/pickle.h"
#include "common/status_macros.h"

namespace shardcast {
namespace {

using Kind = PickleValue::Kind;

constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint64_t kMaxCentralDirectory = 64ull << 20;
constexpr uint64_t kMaxDataPkl = 64ull << 20;

uint16_t U16(const char* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
uint32_t U32(const char* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t U64(const char* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

absl::Status Corrupt(const std::string& src, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(src, ": torch.save record: ", what));
}

absl::StatusOr<std::string> ReadRange(const RecordSource& r, uint64_t off, uint64_t n, const std::string& src,
                                      absl::string_view what) {
  if (off > r.size() || n > r.size() - off) {
    return Corrupt(src, absl::StrCat(what, " [", off, ", +", n, ") lies past the record's end (", r.size(), " bytes)"));
  }
  std::string buf(n, '\0');
  SC_RETURN_IF_ERROR(r.Read(off, n, buf.data()));
  return buf;
}

// Serves reads that fall in the record's first bytes from one buffer: data.pkl, byteorder and the
// payload's local header sit there, so parsing a record costs two reads (head and tail).
class HeadCachedSource : public RecordSource {
 public:
  HeadCachedSource(const RecordSource& base, uint64_t head_bytes) : base_(base) {
    head_.resize(std::min<uint64_t>(head_bytes, base.size()));
    status_ = base.Read(0, head_.size(), head_.data());
  }
  const absl::Status& status() const { return status_; }
  uint64_t size() const override { return base_.size(); }
  absl::Status Read(uint64_t offset, uint64_t n, char* out) const override {
    if (offset <= head_.size() && n <= head_.size() - offset) {
      std::memcpy(out, head_.data() + offset, n);
      return absl::OkStatus();
    }
    return base_.Read(offset, n, out);
  }

 private:
  const RecordSource& base_;
  std::string head_;
  absl::Status status_;
};

}  // namespace

absl::Status StringRecordSource::Read(uint64_t offset, uint64_t n, char* out) const {
  if (offset > bytes_.size() || n > bytes_.size() - offset) {
    return absl::OutOfRangeError(absl::StrCat("read [", offset, ", +", n, ") past the end of ", bytes_.size(), " bytes"));
  }
  std::memcpy(out, bytes_.data() + offset, n);
  return absl::OkStatus();
}

namespace {

// The archive's last bytes, holding the end-of-central-directory record at `eocd`.
struct ArchiveTail {
  std::string bytes;
  uint64_t start = 0;  // where `bytes` begin in the record
  int64_t eocd = -1;   // offset in `bytes`
};

absl::StatusOr<ArchiveTail> ReadArchiveTail(const RecordSource& r, const std::string& src) {
  const uint64_t size = r.size();
  if (size < 22) return Corrupt(src, absl::StrCat("only ", size, " bytes: too short for a ZIP archive (truncated?)"));
  // torch.save writes no archive comment, so the EOCD is the last 22 bytes; a comment costs a
  // second, larger read of the tail.
  ArchiveTail t;
  uint64_t tail_len = std::min<uint64_t>(size, 8192);
  SC_ASSIGN_OR_RETURN(t.bytes, ReadRange(r, size - tail_len, tail_len, src, "archive tail"));
  if (U32(t.bytes.data() + tail_len - 22) == kEocdSig && U16(t.bytes.data() + tail_len - 2) == 0) {
    t.eocd = static_cast<int64_t>(tail_len) - 22;
  } else {
    tail_len = std::min<uint64_t>(size, 22 + 65535 + 20 + 56);
    SC_ASSIGN_OR_RETURN(t.bytes, ReadRange(r, size - tail_len, tail_len, src, "archive tail"));
    for (int64_t p = static_cast<int64_t>(tail_len) - 22; p >= 0; --p) {
      if (U32(t.bytes.data() + p) == kEocdSig && U16(t.bytes.data() + p + 20) == tail_len - p - 22) {
        t.eocd = p;
        break;
      }
    }
  }
  t.start = size - tail_len;
  if (t.eocd < 0) return Corrupt(src, "no end-of-central-directory signature (not a ZIP, or truncated)");
  return t;
}

// A range from the tail buffer when it lies inside it, else read.
absl::StatusOr<std::string> ReadNearEnd(const RecordSource& r, const ArchiveTail& tail, uint64_t off, uint64_t n,
                                        const std::string& src, absl::string_view what) {
  const uint64_t size = r.size();
  if (off >= tail.start && off <= size && n <= size - off) return tail.bytes.substr(off - tail.start, n);
  return ReadRange(r, off, n, src, what);
}

struct CentralDirectory {
  uint64_t entries;
  uint64_t size;
  uint64_t offset;
};

// Where the central directory lies (EOCD, or the zip64 EOCD it points to), checked to lie
// before the record that names it and to be plausibly sized.
absl::StatusOr<CentralDirectory> LocateCentralDirectory(const RecordSource& r, const ArchiveTail& tail,
                                                        const std::string& src) {
  const char* e = tail.bytes.data() + tail.eocd;
  CentralDirectory cd{U16(e + 10), U32(e + 12), U32(e + 16)};
  uint64_t cd_end_limit = tail.start + static_cast<uint64_t>(tail.eocd);
  if (tail.eocd >= 20 && U32(e - 20) == kZip64LocatorSig) {
    uint64_t z64_off = U64(e - 20 + 8);
    SC_ASSIGN_OR_RETURN(std::string z, ReadNearEnd(r, tail, z64_off, 56, src, "zip64 end-of-central-directory"));
    if (U32(z.data()) != kZip64EocdSig) return Corrupt(src, "bad zip64 end-of-central-directory signature");
    cd = CentralDirectory{U64(z.data() + 32), U64(z.data() + 40), U64(z.data() + 48)};
    cd_end_limit = z64_off;
  }
  if (cd.offset > cd_end_limit || cd.size > cd_end_limit - cd.offset) {
    return Corrupt(src, absl::StrCat("central directory [", cd.offset, ", +", cd.size, ") lies outside the archive"));
  }
  if (cd.size > kMaxCentralDirectory) return Corrupt(src, "central directory is implausibly large");
  if (cd.entries > cd.size / 46) {
    return Corrupt(src, absl::StrCat(cd.entries, " entries cannot fit a ", cd.size, "-byte directory"));
  }
  return cd;
}

// The zip64 extra field (id 1): the fields that are 0xFFFFFFFF follow in order usize, csize, lho.
absl::Status ApplyZip64Extra(const char* x, uint64_t extra_len, const ZipEntry& ent, uint64_t* usize, uint64_t* csize,
                             uint64_t* lho, const std::string& src) {
  for (uint64_t q = 0; q + 4 <= extra_len;) {
    uint16_t id = U16(x + q), len = U16(x + q + 2);
    if (q + 4 + len > extra_len) return Corrupt(src, absl::StrCat("entry '", ent.name, "': bad extra field"));
    if (id == 0x0001) {
      uint64_t k = q + 4, end = q + 4 + len;
      auto next = [&](uint64_t* v) -> bool {
        if (k + 8 > end) return false;
        *v = U64(x + k);
        k += 8;
        return true;
      };
      if (*usize == 0xFFFFFFFFu && !next(usize)) return Corrupt(src, "short zip64 extra");
      if (*csize == 0xFFFFFFFFu && !next(csize)) return Corrupt(src, "short zip64 extra");
      if (*lho == 0xFFFFFFFFu && !next(lho)) return Corrupt(src, "short zip64 extra");
    }
    q += 4 + len;
  }
  return absl::OkStatus();
}

// Entry #i of the central directory at cd_bytes[*p]; advances *p past it.
absl::StatusOr<ZipEntry> ParseCentralEntry(absl::string_view cd_bytes, const CentralDirectory& cd, uint64_t i,
                                           uint64_t* p, const std::string& src) {
  if (cd.size - *p < 46 || U32(cd_bytes.data() + *p) != kCentralSig) {
    return Corrupt(src, absl::StrCat("bad central directory entry #", i));
  }
  const char* h = cd_bytes.data() + *p;
  uint16_t method = U16(h + 10);
  uint32_t crc = U32(h + 16);
  uint64_t csize = U32(h + 20);
  uint64_t usize = U32(h + 24);
  uint64_t name_len = U16(h + 28), extra_len = U16(h + 30), comment_len = U16(h + 32);
  uint64_t lho = U32(h + 42);
  if (cd.size - *p - 46 < name_len + extra_len + comment_len) return Corrupt(src, "central directory entry overruns");
  ZipEntry ent;
  ent.name.assign(h + 46, name_len);
  SC_RETURN_IF_ERROR(ApplyZip64Extra(h + 46 + name_len, extra_len, ent, &usize, &csize, &lho, src));
  if (method != 0) {
    return absl::UnimplementedError(absl::StrCat(src, ": torch.save record entry '", ent.name,
                                                 "' is compressed (method ", method, "); torch.save stores entries"));
  }
  if (csize != usize) return Corrupt(src, absl::StrCat("entry '", ent.name, "': stored size mismatch"));
  if (lho >= cd.offset) return Corrupt(src, absl::StrCat("entry '", ent.name, "' starts inside the central directory"));
  ent.local_header_offset = lho;
  ent.size = usize;
  ent.crc32 = crc;
  ent.directory_offset = cd.offset;
  *p += 46 + name_len + extra_len + comment_len;
  return ent;
}

}  // namespace

absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(const RecordSource& r, const std::string& src) {
  SC_ASSIGN_OR_RETURN(const ArchiveTail tail, ReadArchiveTail(r, src));
  SC_ASSIGN_OR_RETURN(const CentralDirectory cd, LocateCentralDirectory(r, tail, src));
  SC_ASSIGN_OR_RETURN(const std::string cd_bytes, ReadNearEnd(r, tail, cd.offset, cd.size, src, "central directory"));
  std::vector<ZipEntry> out;
  uint64_t p = 0;
  for (uint64_t i = 0; i < cd.entries; ++i) {
    SC_ASSIGN_OR_RETURN(ZipEntry ent, ParseCentralEntry(cd_bytes, cd, i, &p, src));
    out.push_back(std::move(ent));
  }
  return out;
}

absl::StatusOr<uint64_t> ZipEntryDataOffset(const RecordSource& r, const ZipEntry& ent, const std::string& src) {
  SC_ASSIGN_OR_RETURN(std::string lh, ReadRange(r, ent.local_header_offset, 30, src,
                                                absl::StrCat("local header of '", ent.name, "'")));
  if (U32(lh.data()) != kLocalSig) return Corrupt(src, absl::StrCat("bad local header signature for '", ent.name, "'"));
  const uint64_t data = ent.local_header_offset + 30 + U16(lh.data() + 26) + U16(lh.data() + 28);
  if (data > ent.directory_offset || ent.size > ent.directory_offset - data) {
    return Corrupt(src, absl::StrCat("entry '", ent.name, "' data [", data, ", +", ent.size,
                                     ") runs into the central directory (truncated or corrupt record)"));
  }
  return data;
}

bool TensorRecord::IsContiguous() const {
  int64_t expect = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

const absl::flat_hash_set<std::string>& TensorRecordAllowedGlobals() {
  static const auto* kAllowed = [] {
    auto* s = new absl::flat_hash_set<std::string>{
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3", "torch.storage.UntypedStorage",
        "collections.OrderedDict",         "torch._utils._rebuild_parameter"};
    for (const char* c : {"DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                          "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage", "ComplexFloatStorage",
                          "ComplexDoubleStorage"}) {
      s->insert(absl::StrCat("torch.", c));
    }
    for (const char* d : {"float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "uint8",
                          "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64", "bool", "float8_e4m3fn",
                          "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"}) {
      s->insert(absl::StrCat("torch.", d));
    }
    return s;
  }();
  return *kAllowed;
}

namespace {

absl::StatusOr<Shape> IntTuple(const PickleValue* v, const std::string& src, absl::string_view what) {
  if (v == nullptr || v->kind != Kind::kTuple) return Corrupt(src, absl::StrCat(what, " should be a tuple of ints"));
  Shape out;
  for (const PickleValue* e : v->items) {
    if (e->kind != Kind::kInt) return Corrupt(src, absl::StrCat(what, " should be a tuple of ints"));
    out.push_back(e->i);
  }
  return out;
}

// The entries of one record and the folder prefix they share ("archive/" before "data.pkl").
struct RecordEntries {
  std::vector<ZipEntry> entries;
  std::string prefix;

  const ZipEntry* Find(const std::string& name) const {
    for (const ZipEntry& e : entries) {
      if (e.name == prefix + name) return &e;
    }
    return nullptr;
  }
};

// Finds data.pkl, reads it (bounded) and runs it through the restricted unpickler.
absl::StatusOr<std::unique_ptr<PickleDocument>> UnpickleDataPkl(const RecordSource& r, RecordEntries* rec_entries,
                                                                const std::string& src) {
  const ZipEntry* pkl = nullptr;
  for (const ZipEntry& e : rec_entries->entries) {
    if (e.name == "data.pkl" || absl::EndsWith(e.name, "/data.pkl")) {
      pkl = &e;
      break;
    }
  }
  if (pkl == nullptr) return Corrupt(src, "no data.pkl entry");
  rec_entries->prefix = pkl->name.substr(0, pkl->name.size() - 8);
  if (pkl->size > kMaxDataPkl) return Corrupt(src, "data.pkl is implausibly large for a tensor record");
  SC_ASSIGN_OR_RETURN(uint64_t pkl_offset, ZipEntryDataOffset(r, *pkl, src));
  SC_ASSIGN_OR_RETURN(std::string pkl_bytes, ReadRange(r, pkl_offset, pkl->size, src, "data.pkl"));
  UnpickleOptions opts;
  opts.allowed_globals = &TensorRecordAllowedGlobals();
  opts.allow_persistent_id = true;
  opts.source = absl::StrCat(src, " data.pkl");
  return Unpickle(pkl_bytes, opts);
}

// The `_rebuild_tensor_v2/_v3(...)` call of data.pkl (unwrapping nn.Parameter).
struct RebuildCall {
  const std::vector<PickleValue*>* args;
  bool v3;
};

absl::StatusOr<RebuildCall> FindRebuildCall(const PickleValue* root, const std::string& src) {
  // nn.Parameter wraps the tensor: _rebuild_parameter(tensor, requires_grad, hooks).
  if (root->kind == Kind::kCall && root->CalleeName() == "torch._utils._rebuild_parameter" &&
      !root->args->items.empty()) {
    root = root->args->items[0];
  }
  const std::string callee = root->CalleeName();
  const bool v3 = callee == "torch._utils._rebuild_tensor_v3";
  if (root->kind != Kind::kCall || (callee != "torch._utils._rebuild_tensor_v2" && !v3)) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": record holds ", PickleDebugString(root),
                                                   ", not a tensor (_rebuild_tensor_v2/_v3)"));
  }
  if (root->args->items.size() < (v3 ? 7u : 6u)) return Corrupt(src, absl::StrCat(callee, " has too few arguments"));
  return RebuildCall{&root->args->items, v3};
}

// The storage the call names: its key in the archive ("data/<key>") and size in bytes; sets
// rec->dtype (v3: the dtype argument; v2: the storage class).
struct StorageRef {
  std::string key;
  uint64_t bytes = 0;
};

absl::StatusOr<StorageRef> ParseStorage(const RebuildCall& call, const std::string& src, TensorRecord* rec) {
  // Persistent id: ('storage', storage_type, key, location, numel).
  const PickleValue* pid = (*call.args)[0];
  if (pid->kind != Kind::kPersistentId || pid->items[0]->kind != Kind::kTuple || pid->items[0]->items.size() != 5) {
    return Corrupt(src, "storage argument is not a ('storage', type, key, location, numel) persistent id");
  }
  const auto& pt = pid->items[0]->items;
  if (pt[0]->kind != Kind::kString || pt[0]->str != "storage" || pt[1]->kind != Kind::kGlobal ||
      pt[2]->kind != Kind::kString || pt[4]->kind != Kind::kInt || pt[4]->i < 0) {
    return Corrupt(src, absl::StrCat("malformed storage persistent id ", PickleDebugString(pid)));
  }
  StorageRef storage{pt[2]->str, 0};
  if (call.v3) {
    const PickleValue* dt = (*call.args)[6];
    if (dt->kind != Kind::kGlobal || dt->str != "torch") return Corrupt(src, "_rebuild_tensor_v3 dtype is not a torch dtype");
    absl::StatusOr<DType> d = DTypeFromName(dt->name);
    if (!d.ok()) return absl::UnimplementedError(absl::StrCat(src, ": unsupported dtype torch.", dt->name));
    rec->dtype = *d;
    storage.bytes = static_cast<uint64_t>(pt[4]->i);  // UntypedStorage: numel counts bytes
  } else {
    absl::StatusOr<DType> d = DTypeFromStorageClass(pt[1]->name);
    if (!d.ok()) return absl::UnimplementedError(absl::StrCat(src, ": unsupported storage type ", pt[1]->name));
    rec->dtype = *d;
    if (__builtin_mul_overflow(static_cast<uint64_t>(pt[4]->i), ItemSize(rec->dtype), &storage.bytes)) {
      return Corrupt(src, "storage size overflows");
    }
  }
  return storage;
}

// The view: storage offset, size and stride (no conj/neg metadata), into `rec`.
absl::Status ParseView(const RebuildCall& call, const std::string& src, TensorRecord* rec) {
  const auto& args = *call.args;
  const size_t meta_arg = call.v3 ? 7 : 6;
  if (args.size() > meta_arg && args[meta_arg]->kind == Kind::kDict && !args[meta_arg]->entries.empty()) {
    return absl::UnimplementedError(absl::StrCat(src, ": tensor has conj/neg metadata ",
                                                 PickleDebugString(args[meta_arg]), ", which shardcast does not apply"));
  }
  if (args[1]->kind != Kind::kInt || args[1]->i < 0) return Corrupt(src, "storage_offset is not a non-negative int");
  rec->storage_offset = args[1]->i;
  SC_ASSIGN_OR_RETURN(rec->shape, IntTuple(args[2], src, "size"));
  SC_ASSIGN_OR_RETURN(rec->strides, IntTuple(args[3], src, "stride"));
  if (rec->shape.size() != rec->strides.size()) return Corrupt(src, "size and stride differ in rank");
  // A size-1 dim's stride never moves the address: give it the contiguous value, so that no
  // arbitrary (e.g. 2^63-1) stride from the file reaches the copy loops' arithmetic.
  int64_t expect = 1;
  for (size_t d = rec->shape.size(); d-- > 0;) {
    if (rec->shape[d] == 1) rec->strides[d] = expect;
    if (rec->shape[d] > 0 && __builtin_mul_overflow(expect, rec->shape[d], &expect)) return Corrupt(src, "size overflows");
  }
  return absl::OkStatus();
}

// The highest element the view touches must lie inside the storage.
absl::Status CheckViewInStorage(const TensorRecord& rec, uint64_t storage_bytes, const std::string& src) {
  SC_ASSIGN_OR_RETURN(int64_t numel, NumElements(rec.shape));
  if (numel == 0) return absl::OkStatus();
  int64_t last = rec.storage_offset;
  for (size_t d = 0; d < rec.shape.size(); ++d) {
    int64_t step;
    if (rec.strides[d] < 0 || __builtin_mul_overflow(rec.shape[d] - 1, rec.strides[d], &step) ||
        __builtin_add_overflow(last, step, &last)) {
      return Corrupt(src, "size/stride overflow");
    }
  }
  const uint64_t item = ItemSize(rec.dtype);
  if (static_cast<uint64_t>(last) >= storage_bytes / item) {
    return Corrupt(src, absl::StrCat("view (offset ", rec.storage_offset, ", size ", ShapeToString(rec.shape),
                                     ", stride ", ShapeToString(rec.strides), ") reaches element ", last,
                                     " but the storage holds ", storage_bytes / item));
  }
  return absl::OkStatus();
}

// Where the payload lies (data/<key>, whose size must be what data.pkl declares) and its CRC-32.
absl::Status LocatePayload(const RecordSource& r, const RecordEntries& entries, const StorageRef& storage,
                           const std::string& src, TensorRecord* rec) {
  const std::string data_name = "data/" + storage.key;
  const ZipEntry* data = entries.Find(data_name);
  if (data == nullptr) return Corrupt(src, absl::StrCat("no '", entries.prefix, data_name, "' entry for the storage"));
  if (data->size != storage.bytes) {
    return Corrupt(src, absl::StrCat("storage '", data_name, "' holds ", data->size, " bytes but data.pkl declares ",
                                     storage.bytes));
  }
  SC_ASSIGN_OR_RETURN(rec->data_offset, ZipEntryDataOffset(r, *data, src));
  rec->data_length = data->size;
  rec->data_crc32 = data->crc32;
  return absl::OkStatus();
}

// The optional `byteorder` entry ("little" or "big").
absl::Status ReadByteOrder(const RecordSource& r, const RecordEntries& entries, const std::string& src,
                           TensorRecord* rec) {
  const ZipEntry* bo = entries.Find("byteorder");
  if (bo == nullptr) return absl::OkStatus();
  if (bo->size > 16) return Corrupt(src, absl::StrCat("byteorder entry of ", bo->size, " bytes"));
  SC_ASSIGN_OR_RETURN(uint64_t bo_offset, ZipEntryDataOffset(r, *bo, src));
  SC_ASSIGN_OR_RETURN(std::string order, ReadRange(r, bo_offset, bo->size, src, "byteorder"));
  if (order == "big") {
    rec->big_endian = true;
  } else if (order != "little") {
    return Corrupt(src, absl::StrCat("unknown byteorder '", order, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TensorRecord> ParseTensorRecord(const RecordSource& base, const std::string& src) {
  HeadCachedSource r(base, 4096);
  SC_RETURN_IF_ERROR(r.status());
  RecordEntries entries;
  SC_ASSIGN_OR_RETURN(entries.entries, ReadZipDirectory(r, src));
  SC_ASSIGN_OR_RETURN(std::unique_ptr<PickleDocument> doc, UnpickleDataPkl(r, &entries, src));
  SC_ASSIGN_OR_RETURN(const RebuildCall call, FindRebuildCall(doc->root(), src));
  TensorRecord rec;
  SC_ASSIGN_OR_RETURN(const StorageRef storage, ParseStorage(call, src, &rec));
  SC_RETURN_IF_ERROR(ParseView(call, src, &rec));
  SC_RETURN_IF_ERROR(LocatePayload(r, entries, storage, src, &rec));
  SC_RETURN_IF_ERROR(CheckViewInStorage(rec, storage.bytes, src));
  SC_RETURN_IF_ERROR(ReadByteOrder(r, entries, src, &rec));
  return rec;
}

}  // namespace shardcast
