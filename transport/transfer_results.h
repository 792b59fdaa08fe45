// TransferResults: the sending side's record of how each transfer ended, for the receiving peer
// to wait on (LoaderRank.AwaitTransfer): a client blocked in an NCCL receive learns of a failed
// send at once, with the sender's reason, instead of at its deadline. Transfers are numbered
// from 1 and belong to a session (another session's id does not find them); a result is handed
// out once; finished results nobody asked for are dropped beyond a bound, oldest first.
#ifndef SHARDCAST_TRANSPORT_TRANSFER_RESULTS_H_
#define SHARDCAST_TRANSPORT_TRANSFER_RESULTS_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"

namespace shardcast {

class TransferResults {
 public:
  explicit TransferResults(size_t max_finished = 4096) : max_finished_(max_finished) {}

  // A new transfer of `session_id`, not yet finished; its id (> 0).
  uint64_t Start(const std::string& session_id);
  // How transfer `id` ended; wakes its waiters.
  void Finish(uint64_t id, absl::Status result);
  // Waits until transfer `id` of `session_id` has finished, then sets `*result` to how it ended;
  // waits until `deadline` and while `cancelled()` is false (polled every `poll`). Returns the
  // wait's status: NotFound for an unknown (or already collected) transfer, DeadlineExceeded,
  // Cancelled (then `*result` is untouched).
  absl::Status Await(const std::string& session_id, uint64_t id, std::chrono::steady_clock::time_point deadline,
                     const std::function<bool()>& cancelled, absl::Status* result,
                     std::chrono::milliseconds poll = std::chrono::milliseconds(100));
  size_t size() const;

 private:
  struct Entry {
    std::string session_id;
    bool finished = false;
    absl::Status result;
  };
  const size_t max_finished_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 0;
};

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_TRANSFER_RESULTS_H_
