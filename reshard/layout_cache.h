// LayoutCache: compiled layouts by text, so that a request's rules are compiled once and never
// under a lock that other requests wait on.
//
// A key is a layout's text plus the rules put in front of it (what Layout::Build takes). On a
// miss the layout is compiled without holding the cache's lock (two threads missing the same key
// may both compile it; one result is kept). The cache keeps at most `capacity` layouts, least
// recently used out first; each is bounded by the request limits (common/shard_request.h).
#ifndef SHARDCAST_RESHARD_LAYOUT_CACHE_H_
#define SHARDCAST_RESHARD_LAYOUT_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "reshard/layout.h"

namespace shardcast {

class LayoutCache {
 public:
  static constexpr size_t kDefaultCapacity = 64;
  explicit LayoutCache(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The compiled Layout::Build(text, source, rules); errors are those of Build (not cached).
  absl::StatusOr<std::shared_ptr<const Layout>> Get(absl::string_view text, absl::string_view source,
                                                    const std::vector<std::string>& rules);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const Layout>>;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_LAYOUT_CACHE_H_
