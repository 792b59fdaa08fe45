// ServedIndex: the selection, the pages and the bytes-entry reads (see served_index.h).
#include "server/served_index.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/match.h"

namespace shardcast {
namespace {

constexpr size_t kMaxListed = 20;       // problems named in one message; the rest are counted
constexpr size_t kMaxQuotedKey = 200;   // characters of a key quoted in a message

std::string Quote(const std::string& key) {
  if (key.size() <= kMaxQuotedKey) return absl::StrCat("'", key, "'");
  return absl::StrCat("'", key.substr(0, kMaxQuotedKey), "...' (", key.size(), " bytes)");
}

// "a; b; c; and 4 more".
std::string JoinListed(const std::vector<std::string>& items) {
  std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kMaxListed));
  std::string out = absl::StrJoin(shown, "; ");
  if (items.size() > kMaxListed) absl::StrAppend(&out, "; and ", items.size() - kMaxListed, " more");
  return out;
}

// What one entry adds to a page's size: its key, its shape and a little framing.
uint64_t EntryBytes(const std::string& key, size_t rank) { return key.size() + 10 * rank + 32; }

}  // namespace

ServedIndex::ServedIndex(const CheckpointMetadata& metadata, std::string prefix, BytesReader read, IndexLimits limits)
    : metadata_(metadata), prefix_(std::move(prefix)), read_(std::move(read)), limits_(limits) {
  for (const TensorEntry& t : metadata_.tensors) {
    if (absl::StartsWith(t.key, prefix_)) tensors_.push_back(&t);
  }
  for (const BytesEntry& b : metadata_.bytes_entries) {
    if (absl::StartsWith(b.key, prefix_)) bytes_.push_back(&b);
  }
}

absl::StatusOr<IndexPage> ServedIndex::Page(uint64_t start, uint32_t max_entries) const {
  if (max_entries > limits_.max_page_entries) {
    return absl::InvalidArgumentError(absl::StrCat("an index page holds at most ", limits_.max_page_entries,
                                                   " entries (asked for ", max_entries, "); ask for fewer"));
  }
  if (start > size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("index position ", start, " is past the end (", size(), " entries); start again from 0"));
  }
  const uint64_t most = max_entries == 0 ? limits_.default_page_entries : max_entries;
  IndexPage page;
  page.total = size();
  uint64_t pos = start, bytes = 0;
  for (; pos < size() && pos - start < most; ++pos) {
    const bool tensor = pos < tensors_.size();
    const uint64_t add = tensor ? EntryBytes(tensors_[pos]->key, tensors_[pos]->shape.size())
                                : EntryBytes(bytes_[pos - tensors_.size()]->key, 0);
    if (pos > start && bytes + add > limits_.max_page_bytes) break;
    bytes += add;
    if (tensor) {
      page.tensors.push_back(tensors_[pos]);
    } else {
      page.bytes.push_back(bytes_[pos - tensors_.size()]);
    }
  }
  page.next = pos < size() ? pos : 0;
  return page;
}

std::string ServedIndex::WhyNotServed(const std::string& key) const {
  if (metadata_.FindTensor(key) != nullptr) {
    return absl::StrCat(Quote(key), " is a tensor, not a bytes entry (ask for it as a box or a shard)");
  }
  if (metadata_.FindBytes(key) != nullptr) {
    return absl::StrCat(Quote(key), " is outside the service's --prefix '", prefix_, "'");
  }
  return absl::StrCat(Quote(key), " is not in the checkpoint");
}

std::vector<std::string> ServedIndex::CheckKeys(const std::vector<std::string>& keys,
                                                std::vector<const BytesEntry*>* found, bool* not_found) const {
  std::vector<std::string> problems;
  *not_found = false;
  if (keys.size() > limits_.max_bytes_keys) {
    problems.push_back(absl::StrCat(keys.size(), " keys in one request; at most ", limits_.max_bytes_keys,
                                    " are allowed: split the request"));
    return problems;
  }
  std::set<std::string> seen;
  for (const std::string& key : keys) {
    if (key.size() > limits_.max_key_length) {
      problems.push_back(absl::StrCat("a key of ", key.size(), " bytes (at most ", limits_.max_key_length, ")"));
      continue;
    }
    if (!seen.insert(key).second) {
      problems.push_back(absl::StrCat(Quote(key), " is asked for twice"));
      continue;
    }
    const BytesEntry* e = metadata_.FindBytes(key);
    if (e == nullptr || !absl::StartsWith(key, prefix_)) {
      problems.push_back(WhyNotServed(key));
      *not_found = true;
      continue;
    }
    found->push_back(e);
  }
  return problems;
}

absl::StatusOr<BytesReply> ServedIndex::ReadBytes(const std::vector<std::string>& keys) {
  std::vector<const BytesEntry*> entries;
  bool not_found = false;
  const std::vector<std::string> problems = CheckKeys(keys, &entries, &not_found);
  if (!problems.empty()) {
    const std::string message = absl::StrCat("bytes entries not served (", problems.size(), " problem",
                                             problems.size() == 1 ? "" : "s", "): ", JoinListed(problems),
                                             ". `shardcast index --server ADDR` lists what is served");
    return not_found ? absl::NotFoundError(message) : absl::InvalidArgumentError(message);
  }
  std::lock_guard<std::mutex> lock(read_mu_);
  BytesReply reply;
  uint64_t total = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    // An entry stored without a transform is exactly its stored length: known before reading.
    const bool known = entries[i]->location.transforms.empty();
    if (i > 0 && known && total + entries[i]->location.length > limits_.max_reply_bytes) {
      for (size_t j = i; j < entries.size(); ++j) reply.remaining.push_back(entries[j]->key);
      break;
    }
    absl::StatusOr<std::string> data = read_(*entries[i]);
    if (!data.ok()) return data.status();
    if (data->size() > limits_.max_reply_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("bytes entry ", Quote(entries[i]->key), " holds ", data->size(),
                                                       " bytes, more than the ", limits_.max_reply_bytes,
                                                       " a reply carries; read it from the checkpoint itself"));
    }
    if (i > 0 && total + data->size() > limits_.max_reply_bytes) {
      for (size_t j = i; j < entries.size(); ++j) reply.remaining.push_back(entries[j]->key);
      break;
    }
    total += data->size();
    reply.values.emplace_back(entries[i]->key, *std::move(data));
  }
  return reply;
}

}  // namespace shardcast
