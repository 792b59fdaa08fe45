#include "transport/transfer_results.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shardcast {

uint64_t TransferResults::Start(const std::string& session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = ++next_id_;
  entries_[id].session_id = session_id;
  return id;
}

void TransferResults::Finish(uint64_t id, absl::Status result) {
  std::lock_guard<std::mutex> lock(mu_);
  auto found = entries_.find(id);
  if (found == entries_.end()) return;
  found->second.finished = true;
  found->second.result = std::move(result);
  size_t finished = 0;
  for (const auto& [key, e] : entries_) finished += e.finished;
  for (auto it = entries_.begin(); finished > max_finished_ && it != entries_.end();) {
    if (it->second.finished) {
      it = entries_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
  cv_.notify_all();
}

absl::Status TransferResults::Await(const std::string& session_id, uint64_t id,
                                    std::chrono::steady_clock::time_point deadline,
                                    const std::function<bool()>& cancelled, absl::Status* result,
                                    std::chrono::milliseconds poll) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.session_id != session_id) {
      return absl::NotFoundError(absl::StrCat("no transfer ", id, " of session '", session_id.substr(0, 64), "'"));
    }
    if (it->second.finished) {
      *result = std::move(it->second.result);
      entries_.erase(it);
      return absl::OkStatus();
    }
    if (cancelled()) return absl::CancelledError("the peer stopped waiting");
    if (std::chrono::steady_clock::now() >= deadline) return absl::DeadlineExceededError("the transfer is still running");
    cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + poll));
  }
}

size_t TransferResults::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace shardcast
