// ServedIndex: what rank 0 tells clients about the checkpoint it serves without reading it, and
// the bytes entries it reads for them. Plain C++ (no gRPC): the tensors and bytes entries that
// the service's --prefix selects, in `.metadata` order, handed out in bounded pages; and
// ReadBytes, which reads named bytes entries (DCP's non-tensor values, e.g. Megatron's
// `_extra_state`) through a reader function, never a path from the request. The gRPC adapter is
// server/shardcast_service.
//
//   ServedIndex index(reader.metadata(), "model.", [&](const BytesEntry& e) { return reader.ReadBytesEntry(e); });
//   SC_ASSIGN_OR_RETURN(IndexPage page, index.Page(0, 0));
//   SC_ASSIGN_OR_RETURN(BytesReply reply, index.ReadBytes({"model.step"}));
#ifndef SHARDCAST_SERVER_SERVED_INDEX_H_
#define SHARDCAST_SERVER_SERVED_INDEX_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/metadata.h"

namespace shardcast {

// The limits of GetIndex and ReadBytes (README "Index and bytes entries"; the proto says the same).
struct IndexLimits {
  uint32_t default_page_entries = 4096;   // a page's entries when the request names none
  uint32_t max_page_entries = 16384;      // more is refused
  uint64_t max_page_bytes = 1ull << 20;   // keys + shapes per page (estimated; at least one entry)
  size_t max_bytes_keys = 4096;           // keys per ReadBytes request
  size_t max_key_length = 64 << 10;       // a requested key longer than this is refused
  uint64_t max_reply_bytes = 32ull << 20; // data per ReadBytes reply; the rest is `remaining`
};

// One page of the index: the entries at positions [start, next) of tensors-then-bytes-entries.
struct IndexPage {
  std::vector<const TensorEntry*> tensors;
  std::vector<const BytesEntry*> bytes;
  uint64_t next = 0;   // position of the next page; 0 when this page is the last
  uint64_t total = 0;  // entries in the whole index
};

struct BytesReply {
  std::vector<std::pair<std::string, std::string>> values;  // (key, payload), in request order
  std::vector<std::string> remaining;                       // keys left for a later request
};

class ServedIndex {
 public:
  // How a bytes entry's payload is read (CheckpointReader::ReadBytesEntry in the service).
  using BytesReader = std::function<absl::StatusOr<std::string>(const BytesEntry&)>;

  // Selects every tensor and bytes entry of `metadata` whose key starts with `prefix`.
  // `metadata` must outlive the index.
  ServedIndex(const CheckpointMetadata& metadata, std::string prefix, BytesReader read, IndexLimits limits = {});

  const std::string& prefix() const { return prefix_; }
  size_t size() const { return tensors_.size() + bytes_.size(); }
  const std::vector<const TensorEntry*>& tensors() const { return tensors_; }
  const std::vector<const BytesEntry*>& bytes_entries() const { return bytes_; }

  // The page starting at position `start` with at most `max_entries` entries (0: the default).
  // InvalidArgument for max_entries over the cap or a start past the end (start == size() of an
  // empty index is an empty last page).
  absl::StatusOr<IndexPage> Page(uint64_t start, uint32_t max_entries) const;

  // Reads the named bytes entries, in request order, until the reply's data would pass
  // max_reply_bytes (the first entry is always read); the rest are `remaining`. Refused before
  // anything is read, every problem listed in one message: more keys than max_bytes_keys, an
  // over-long or repeated key (InvalidArgument), keys that name no selected bytes entry
  // (NotFound, naming them and saying whether they are tensors or outside --prefix). An entry
  // larger than max_reply_bytes by itself: ResourceExhausted. One request reads at a time.
  absl::StatusOr<BytesReply> ReadBytes(const std::vector<std::string>& keys);

 private:
  // Every problem with `keys` (empty when none); `found` receives the entries in request order.
  std::vector<std::string> CheckKeys(const std::vector<std::string>& keys, std::vector<const BytesEntry*>* found,
                                     bool* not_found) const;
  std::string WhyNotServed(const std::string& key) const;

  const CheckpointMetadata& metadata_;
  std::string prefix_;
  BytesReader read_;
  IndexLimits limits_;
  std::vector<const TensorEntry*> tensors_;
  std::vector<const BytesEntry*> bytes_;
  std::mutex read_mu_;  // one ReadBytes at a time: bounds the memory replies hold
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SERVED_INDEX_H_
