// NcclPeerComm: a two-rank NCCL communicator (shardcastd loader rank = 0, client = 1), created
// non-blocking and driven with deadlines: every wait polls ncclCommGetAsyncError and the stream,
// and on timeout or peer failure the communicator is aborted and a named error returned. Nothing
// here touches the client's own communicators.
#ifndef SHARDCAST_TRANSPORT_NCCL_COMM_H_
#define SHARDCAST_TRANSPORT_NCCL_COMM_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/nccl_lib.h"

namespace shardcast {

struct NcclBuffer {
  void* data;       // device memory
  uint64_t bytes;
};

class NcclPeerComm {
 public:
  // Joins the communicator of `unique_id` (128 bytes) as `rank` of 2 on `device`.
  // DeadlineExceeded if the peer does not join in time.
  static absl::StatusOr<std::unique_ptr<NcclPeerComm>> Create(std::shared_ptr<const NcclLib> lib, const std::string& unique_id,
                                                              int rank, int device, std::chrono::milliseconds deadline);
  ~NcclPeerComm();  // aborts the communicator locally (never waits for the peer)

  // Sends (rank 0) or receives (rank 1) every buffer in order, grouped, and waits for completion.
  absl::Status Transfer(const std::vector<NcclBuffer>& buffers, bool send, std::chrono::milliseconds deadline);
  // A cancel that came after the last Transfer returned also breaks it (its state is unknown).
  bool broken() const { return broken_.load() || cancelled_.load(); }
  // Makes a Transfer waiting now (or later) return Cancelled and leaves the communicator broken
  // (thread-safe; e.g. the client, once rank 0 has marked the peer failed).
  void Cancel() { cancelled_ = true; }

  // A fresh unique id (128 bytes).
  static absl::StatusOr<std::string> NewUniqueId(const NcclLib& lib);

 private:
  NcclPeerComm() = default;
  absl::Status Wait(const char* what, std::chrono::milliseconds deadline, bool stream_too);

  std::shared_ptr<const NcclLib> lib_;
  ncclComm_t comm_ = nullptr;
  void* stream_ = nullptr;  // cudaStream_t
  int device_ = 0;
  int peer_ = 0;
  std::atomic<bool> broken_{false};
  std::atomic<bool> cancelled_{false};
};

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_NCCL_COMM_H_
