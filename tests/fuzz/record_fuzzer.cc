// libFuzzer target for the torch.save record parser (checkpoint/torch_record.cc: ZIP central
// directory, zip64 records, local headers, data.pkl through the restricted unpickler, byteorder)
// and for the region copy (checkpoint/region_copy.cc) fed with what the parser accepted.
//
// Each input is treated as one record (the bytes at an (offset, length) of a `.distcp` file):
//  1. ReadZipDirectory() + ZipEntryDataOffset() on every entry; an entry whose data the parser
//     accepts must be readable inside the record.
//  2. ParseTensorRecord(). When it succeeds, the payload [data_offset, +data_length) is copied
//     into its own exactly-sized heap buffer (so ASan sees any read past it), and:
//       - SpanOfRegion() of the whole view must lie inside the payload; if the parser accepted a
//         view reaching outside its payload, the target aborts ("INVARIANT VIOLATION").
//       - CopyRegion() copies the whole tensor out (or, for large tensors, a bounded head and
//         tail region), reading from an exact copy of just the region's span, as the reader
//         does; plus one sub-region chosen from a hash of the input into a full-size buffer.
//       - Every copied element is compared with a naive strided reference (small regions).
//
// A custom mutator makes the search structure-aware: half of the mutations edit the raw bytes
// (ZIP framing), the other half take the archive apart, mutate one entry (mostly data.pkl, so
// shapes, strides, offsets and dtypes change) and lay the ZIP out again with correct offsets, so
// that the mutated pickle actually reaches the tensor checks and the region copy.
// Sanitizers (ASan + UBSan, built by run_fuzzers.sh) catch memory errors, leaks and UB.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "checkpoint/region_copy.h"
#include "checkpoint/torch_record.h"
#include "common/box.h"
#include "common/dtype.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using shardcast::Box;
using shardcast::Shape;

constexpr int64_t kMaxCopyBytes = 4 << 20;     // bound on one destination buffer
constexpr int64_t kMaxCheckElems = 1 << 16;    // bound on the element-by-element reference check

[[noreturn]] void Violation(const char* what, const std::string& detail) {
  std::fprintf(stderr, "INVARIANT VIOLATION (record_fuzzer): %s: %s\n", what, detail.c_str());
  std::abort();
}

std::string Describe(const shardcast::TensorRecord& r) {
  return absl::StrCat("dtype ", shardcast::DTypeName(r.dtype), " shape ", shardcast::ShapeToString(r.shape),
                      " strides ", shardcast::ShapeToString(r.strides), " storage_offset ", r.storage_offset,
                      " payload [", r.data_offset, ", +", r.data_length, ")", r.big_endian ? " big-endian" : "");
}

uint64_t SplitMix(uint64_t* s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Copies `region` of the record's view into a buffer holding `dst_box` and checks the result.
void CopyAndCheck(const shardcast::TensorRecord& rec, const std::vector<char>& payload, const Box& region,
                  const Box& dst_box) {
  const Box chunk_box = shardcast::FullBox(rec.shape);
  const shardcast::StridedChunk chunk{&chunk_box, &rec.strides, rec.storage_offset};
  const int64_t item = static_cast<int64_t>(shardcast::ItemSize(rec.dtype));

  const shardcast::ElementSpan span = shardcast::SpanOfRegion(chunk, region);
  int64_t end_byte;
  if (span.first < 0 || span.last < span.first || __builtin_add_overflow(span.last, 1, &end_byte) ||
      __builtin_mul_overflow(end_byte, item, &end_byte) || static_cast<uint64_t>(end_byte) > payload.size()) {
    Violation("parser accepted a view that reaches outside its payload",
              absl::StrCat(Describe(rec), "; region ", shardcast::BoxToString(region), " spans storage elements [",
                           span.first, ", ", span.last, "]"));
  }
  // The reader fetches only the span: give CopyRegion exactly those bytes.
  const size_t span_bytes = static_cast<size_t>(end_byte - span.first * item);
  std::unique_ptr<char[]> src(new char[span_bytes]);
  std::memcpy(src.get(), payload.data() + span.first * item, span_bytes);

  const int64_t dst_elems = *shardcast::NumElements(dst_box.sizes);
  const size_t dst_bytes = static_cast<size_t>(dst_elems * item);
  std::unique_ptr<char[]> dst(new char[dst_bytes]);
  std::memset(dst.get(), 0xA5, dst_bytes);
  shardcast::CopyRegion(chunk, src.get(), span.first, region, dst.get(), dst_box, static_cast<size_t>(item),
                        rec.big_endian);

  // Reference: walk the region's elements in C order.
  const int64_t region_elems = *shardcast::NumElements(region.sizes);
  if (region_elems > kMaxCheckElems) return;
  const Shape dst_strides = shardcast::ContiguousStrides(dst_box.sizes);
  const size_t rank = region.rank();
  std::vector<int64_t> idx(rank, 0);
  for (int64_t n = 0; n < region_elems; ++n) {
    int64_t s = rec.storage_offset, o = 0;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t g = region.offsets[d] + idx[d];
      s += g * rec.strides[d];
      o += (g - dst_box.offsets[d]) * dst_strides[d];
    }
    const char* want = payload.data() + s * item;
    const char* got = dst.get() + o * item;
    for (int64_t b = 0; b < item; ++b) {
      const char w = rec.big_endian ? want[item - 1 - b] : want[b];
      if (got[b] != w) {
        Violation("CopyRegion result differs from the strided reference",
                  absl::StrCat(Describe(rec), "; region ", shardcast::BoxToString(region), " dst ",
                               shardcast::BoxToString(dst_box), " element #", n));
      }
    }
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < region.sizes[d]) break;
      idx[d] = 0;
    }
  }
  if (dst_box == region && shardcast::DenseOffset(dst_box, region, static_cast<size_t>(item)) != 0) {
    Violation("DenseOffset of the whole box is not 0", shardcast::BoxToString(region));
  }
}

void ExerciseRecord(const shardcast::TensorRecord& rec, absl::string_view bytes) {
  if (rec.shape.size() != rec.strides.size()) Violation("shape and strides differ in rank", Describe(rec));
  if (rec.data_offset > bytes.size() || rec.data_length > bytes.size() - rec.data_offset) {
    Violation("payload lies outside the record", Describe(rec));
  }
  if (rec.storage_offset < 0) Violation("negative storage_offset", Describe(rec));
  for (int64_t st : rec.strides) {
    if (st < 0) Violation("negative stride", Describe(rec));
  }
  (void)rec.IsContiguous();
  absl::StatusOr<int64_t> numel = shardcast::NumElements(rec.shape);
  if (!numel.ok()) Violation("accepted a shape with an invalid element count", Describe(rec));
  if (*numel == 0) return;  // nothing to copy (the parser does not bound such a view)

  // The payload, in a buffer of exactly its size.
  const std::vector<char> payload(bytes.begin() + rec.data_offset, bytes.begin() + rec.data_offset + rec.data_length);
  const int64_t item = static_cast<int64_t>(shardcast::ItemSize(rec.dtype));
  const Box full = shardcast::FullBox(rec.shape);
  const size_t rank = rec.shape.size();

  // The whole view must lie inside the payload, whatever its size.
  {
    const Box chunk_box = full;
    const shardcast::StridedChunk chunk{&chunk_box, &rec.strides, rec.storage_offset};
    const shardcast::ElementSpan span = shardcast::SpanOfRegion(chunk, full);
    int64_t end_byte;
    if (span.first < 0 || span.last < span.first || __builtin_add_overflow(span.last, 1, &end_byte) ||
        __builtin_mul_overflow(end_byte, item, &end_byte) || static_cast<uint64_t>(end_byte) > payload.size()) {
      Violation("parser accepted a view that reaches outside its payload",
                absl::StrCat(Describe(rec), "; view spans storage elements [", span.first, ", ", span.last, "]"));
    }
  }

  int64_t full_bytes;
  const bool small = !__builtin_mul_overflow(*numel, item, &full_bytes) && full_bytes <= kMaxCopyBytes;
  if (small) {
    CopyAndCheck(rec, payload, full, full);
    // One sub-region, picked from a hash of the input, copied into a full-size buffer.
    uint64_t seed = 0xcbf29ce484222325ull;  // FNV-1a of the input
    for (char c : bytes) seed = (seed ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    Box sub = full;
    for (size_t d = 0; d < rank; ++d) {
      sub.offsets[d] = static_cast<int64_t>(SplitMix(&seed) % static_cast<uint64_t>(rec.shape[d]));
      sub.sizes[d] = 1 + static_cast<int64_t>(SplitMix(&seed) % static_cast<uint64_t>(rec.shape[d] - sub.offsets[d]));
    }
    CopyAndCheck(rec, payload, sub, full);
    const int64_t at = static_cast<int64_t>(shardcast::DenseOffset(full, sub, static_cast<size_t>(item)));
    if (at < 0 || at >= full_bytes) Violation("DenseOffset outside the buffer", shardcast::BoxToString(sub));
    (void)shardcast::IsContiguousIn(full, sub);
    return;
  }
  // Large (possibly stride-0 broadcast) views: copy a bounded head and tail region.
  const int64_t limit = kMaxCopyBytes / item;
  Box head = full;
  for (size_t d = 0; d < rank; ++d) {
    int64_t rest = 1;
    bool over = false;
    for (size_t e = d + 1; e < rank; ++e) over |= __builtin_mul_overflow(rest, rec.shape[e], &rest) || rest > limit;
    if (!over && rest <= limit) {
      head.sizes[d] = std::min(rec.shape[d], limit / rest);
      break;
    }
    head.sizes[d] = 1;
  }
  Box tail = head;
  for (size_t d = 0; d < rank; ++d) tail.offsets[d] = rec.shape[d] - tail.sizes[d];
  CopyAndCheck(rec, payload, head, head);
  CopyAndCheck(rec, payload, tail, tail);
}

// ---- structure-aware mutation ----------------------------------------------------------------

void PutU16(std::string* s, uint64_t v) { for (int i = 0; i < 2; ++i) s->push_back(static_cast<char>(v >> (8 * i))); }
void PutU32(std::string* s, uint64_t v) { for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i))); }
void PutU64(std::string* s, uint64_t v) { for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i))); }

// A STORED ZIP of `files`, optionally closed with zip64 end records as torch.save writes them.
std::string BuildZip(const std::vector<std::pair<std::string, std::string>>& files, bool zip64) {
  std::string out, cd;
  for (const auto& [name, data] : files) {
    const uint64_t lho = out.size();
    PutU32(&out, 0x04034b50); PutU16(&out, 20); PutU16(&out, 0); PutU16(&out, 0); PutU32(&out, 0);
    PutU32(&out, 0); PutU32(&out, data.size()); PutU32(&out, data.size()); PutU16(&out, name.size()); PutU16(&out, 0);
    out += name;
    out += data;
    PutU32(&cd, 0x02014b50); PutU16(&cd, 0x031e); PutU16(&cd, 20); PutU16(&cd, 0); PutU16(&cd, 0); PutU32(&cd, 0);
    PutU32(&cd, 0); PutU32(&cd, data.size()); PutU32(&cd, data.size()); PutU16(&cd, name.size()); PutU16(&cd, 0);
    PutU16(&cd, 0); PutU16(&cd, 0); PutU16(&cd, 0); PutU32(&cd, 0); PutU32(&cd, lho);
    cd += name;
  }
  const uint64_t cd_off = out.size();
  out += cd;
  if (zip64) {
    const uint64_t z64 = out.size();
    PutU32(&out, 0x06064b50); PutU64(&out, 44); PutU16(&out, 0x031e); PutU16(&out, 45); PutU32(&out, 0);
    PutU32(&out, 0); PutU64(&out, files.size()); PutU64(&out, files.size()); PutU64(&out, cd.size());
    PutU64(&out, cd_off);
    PutU32(&out, 0x07064b50); PutU32(&out, 0); PutU64(&out, z64); PutU32(&out, 1);
  }
  PutU32(&out, 0x06054b50); PutU16(&out, 0); PutU16(&out, 0); PutU16(&out, files.size()); PutU16(&out, files.size());
  PutU32(&out, cd.size()); PutU32(&out, cd_off); PutU16(&out, 0);
  return out;
}

// Takes the record apart, mutates one entry with libFuzzer's mutators and rebuilds the ZIP.
// Returns 0 when the input is not a ZIP this reader can take apart (or the result is too big).
size_t MutateEntry(uint8_t* data, size_t size, size_t max_size, std::minstd_rand& rng) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const shardcast::StringRecordSource source(bytes);
  absl::StatusOr<std::vector<shardcast::ZipEntry>> entries = shardcast::ReadZipDirectory(source, "mutator");
  if (!entries.ok() || entries->empty()) return 0;
  std::vector<std::pair<std::string, std::string>> files;
  size_t pkl = 0;
  for (const shardcast::ZipEntry& e : *entries) {
    absl::StatusOr<uint64_t> at = shardcast::ZipEntryDataOffset(source, e, "mutator");
    if (!at.ok()) return 0;
    if (absl::EndsWith(e.name, "data.pkl")) pkl = files.size();
    files.emplace_back(e.name, std::string(bytes.substr(*at, e.size)));
  }
  const size_t pick = rng() % 4 != 0 ? pkl : rng() % files.size();
  std::string& b = files[pick].second;
  const size_t old_len = b.size();
  b.resize(old_len + 64 + old_len / 4);
  const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(b.data()), old_len, b.size());
  b.resize(n);
  const std::string out = BuildZip(files, rng() % 4 != 0);
  if (out.size() > max_size) return 0;
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  if (rng() % 2 == 0) {
    const size_t n = MutateEntry(data, size, max_size, rng);
    if (n != 0) return n;
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  const shardcast::StringRecordSource source(bytes);

  absl::StatusOr<std::vector<shardcast::ZipEntry>> entries = shardcast::ReadZipDirectory(source, "fuzz");
  if (entries.ok()) {
    for (const shardcast::ZipEntry& e : *entries) {
      if (e.local_header_offset >= e.directory_offset || e.directory_offset > size) {
        Violation("ReadZipDirectory accepted an entry outside the archive", e.name);
      }
      absl::StatusOr<uint64_t> at = shardcast::ZipEntryDataOffset(source, e, "fuzz");
      if (!at.ok()) continue;
      if (*at > e.directory_offset || e.size > e.directory_offset - *at) {
        Violation("ZipEntryDataOffset accepted data running into the central directory", e.name);
      }
      std::string buf(std::min<uint64_t>(e.size, 1 << 20), '\0');
      if (!source.Read(*at, buf.size(), buf.data()).ok()) Violation("accepted entry data is unreadable", e.name);
    }
  }

  absl::StatusOr<shardcast::TensorRecord> rec = shardcast::ParseTensorRecord(source, "fuzz");
  if (rec.ok()) {
    ExerciseRecord(*rec, bytes);
  } else if (rec.status().message().empty()) {
    Violation("ParseTensorRecord", "error without a message");
  }
  return 0;
}
