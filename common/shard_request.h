// ShardRequestSpec: what a client asks shardcastd for (one TP rank's shards under a layout), as
// plain data shared by the client library and the server cores, and the request limits with the
// one function that enforces them (the server on every request, the client before sending).
//
// NOTE [Request limits]
// Every number and string of a request comes from a client the service does not trust. The
// limits below (README.md, "Request limits") bound what one request can make a rank parse,
// compile or plan; rule parameters are range-checked by reshard/layout (ParseRule) and the
// planner's arithmetic is overflow-checked, so no value within these limits can overflow.
#ifndef SHARDCAST_COMMON_SHARD_REQUEST_H_
#define SHARDCAST_COMMON_SHARD_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shardcast {

// One box of a box request: elements [offsets, offsets + sizes) of a stored tensor, received
// under `name`. Offsets and sizes are global (the stored tensor's coordinates, its rank), so any
// box of any tensor can be asked for whatever chunk grid it was saved with.
struct BoxSpec {
  std::string name;                     // the destination's name, unique within the request
  std::string key;                      // the checkpoint key
  std::vector<int64_t> offsets;
  std::vector<int64_t> sizes;
  std::string dtype;                    // a cast for this box ("" = the request's dtype)

  bool operator==(const BoxSpec& o) const {
    return name == o.name && key == o.key && offsets == o.offsets && sizes == o.sizes && dtype == o.dtype;
  }
};

// A request is either a layout request (one TP rank's shards under a layout: tp_size ... unstack)
// or a box request (`boxes` non-empty: exactly these boxes; tp_size / tp_rank stay 1 / 0 and
// layout, layout_text, rules, prefix, renames and unstack stay empty). `dtype` applies to both.
struct ShardRequestSpec {
  int64_t tp_size = 1;                  // 1..kMaxTpSize
  int64_t tp_rank = 0;                  // 0..tp_size-1
  std::string layout;                   // a preset name; "" = the server's --layout
  std::string layout_text;              // or a layout's text (what a layout file holds)
  std::vector<std::string> rules;       // "PATTERN=RULE", in front of the layout
  std::string prefix;                   // "" = the server's --prefix
  std::vector<std::string> renames;     // "OLD=NEW"
  bool unstack = false;
  std::string dtype;                    // "", bf16, fp16, fp32
  std::vector<BoxSpec> boxes;           // a box request

  bool is_box_request() const { return !boxes.empty(); }
};

// The request limits (README.md, "Request limits").
inline constexpr int64_t kMaxTpSize = 65536;
inline constexpr size_t kMaxRequestBytes = 128 * 1024;      // all strings of a request together
inline constexpr size_t kMaxLayoutTextBytes = 64 * 1024;    // layout_text, and any layout file
inline constexpr size_t kMaxLayoutNameBytes = 64;           // layout (a preset name)
inline constexpr size_t kMaxLayoutEntries = 1024;           // PATTERN RULE lines of one layout
inline constexpr size_t kMaxRules = 64;                     // rules of one request
inline constexpr size_t kMaxRenames = 64;                   // renames of one request
inline constexpr size_t kMaxPatternBytes = 1024;            // one rule's or layout line's pattern
inline constexpr size_t kMaxRuleBytes = kMaxPatternBytes + 64;  // one "PATTERN=RULE"
inline constexpr size_t kMaxRenameBytes = 1024;             // one "OLD=NEW"
inline constexpr size_t kMaxPrefixBytes = 1024;             // prefix
inline constexpr size_t kMaxDTypeBytes = 16;                // dtype
inline constexpr int64_t kPatternMaxMemBytes = 256 << 10;   // RE2::Options::max_mem of one pattern
inline constexpr int64_t kMaxLayoutProgramSize = 64 * 1024; // RE2 instructions of all patterns of a layout
inline constexpr size_t kMaxBoxes = 16384;                  // boxes of one box request
inline constexpr size_t kMaxBoxStringBytes = 1024;          // one box's name, and its key
inline constexpr size_t kMaxBoxRank = 64;                   // dims of one box
inline constexpr size_t kMaxBoxRequestBytes = 3 << 20;      // a box request's size as counted below (gRPC: 4 MiB a message)
inline constexpr size_t kBoxWireBytesPerDim = 20;           // ... counting each dim of a box (offset + size varints)
inline constexpr size_t kBoxWireBytes = 16;                 // ... and each box's own framing
inline constexpr size_t kMaxBoxCopyOps = size_t{1} << 22;   // box x stored-chunk intersections of one request

// InvalidArgument naming the first field over its limit (with the value or size and the limit),
// or a tp_size / tp_rank out of range. Checks sizes and numbers only: the layout's rules are
// checked where they are parsed (reshard/layout). For a box request: layout fields that must be
// empty, and every box's shape of data (names non-empty and unique, offsets and sizes of equal
// rank <= kMaxBoxRank, non-negative, their sum within int64); whether a box fits its tensor is
// the planner's (PlanBoxes), which lists every such problem at once.
absl::Status ValidateShardRequest(const ShardRequestSpec& spec);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_SHARD_REQUEST_H_
