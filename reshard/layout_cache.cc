#include "reshard/layout_cache.h"

#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

// Text and rules, separated by NUL (which neither a layout line nor a rule can usefully hold).
std::string Key(absl::string_view text, const std::vector<std::string>& rules) {
  std::string key(text);
  for (const std::string& r : rules) absl::StrAppend(&key, absl::string_view("\0", 1), r);
  return key;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Layout>> LayoutCache::Get(absl::string_view text, absl::string_view source,
                                                               const std::vector<std::string>& rules) {
  std::string key = Key(text, rules);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (it->first == key) {
        lru_.splice(lru_.begin(), lru_, it);
        ++hits_;
        return lru_.front().second;
      }
    }
    ++misses_;
  }
  // Compiled outside the lock: a heavy layout delays only its own request.
  absl::StatusOr<Layout> built = Layout::Build(text, source, rules);
  if (!built.ok()) return built.status();
  auto layout = std::make_shared<const Layout>(std::move(*built));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if (it->first == key) return it->second;  // another thread compiled it meanwhile
  }
  lru_.emplace_front(std::move(key), layout);
  while (lru_.size() > capacity_) lru_.pop_back();
  return std::shared_ptr<const Layout>(layout);
}

size_t LayoutCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

uint64_t LayoutCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

uint64_t LayoutCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace shardcast
