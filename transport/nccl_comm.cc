#include "transport/nccl_comm.h"

#include <cuda_runtime.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shardcast {
namespace {

absl::Status CudaErr(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

}  // namespace

absl::StatusOr<std::string> NcclPeerComm::NewUniqueId(const NcclLib& lib) {
  ncclUniqueId id;
  ncclResult_t r = lib.GetUniqueId(&id);
  if (r != ncclSuccess) return absl::InternalError(absl::StrCat("ncclGetUniqueId: ", lib.GetErrorString(r)));
  return std::string(id.internal, sizeof(id.internal));
}

absl::Status NcclPeerComm::Wait(const char* what, std::chrono::milliseconds deadline, bool stream_too) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = lib_->CommGetAsyncError(comm_, &async);
    if (r != ncclSuccess) async = r;
    if (async != ncclSuccess && async != ncclInProgress) {
      broken_ = true;
      return absl::UnavailableError(absl::StrCat("NCCL ", what, " failed: ", lib_->GetErrorString(async),
                                                 " (the peer may have died)"));
    }
    bool done = async == ncclSuccess;
    if (done && stream_too) {
      cudaError_t q = cudaStreamQuery(static_cast<cudaStream_t>(stream_));
      if (q == cudaErrorNotReady) {
        done = false;
      } else if (q != cudaSuccess) {
        broken_ = true;
        return CudaErr(q, what);
      }
    }
    if (done) return absl::OkStatus();
    if (cancelled_.load()) {
      broken_ = true;
      return absl::CancelledError(absl::StrCat("NCCL ", what, " cancelled; communicator aborted"));
    }
    if (std::chrono::steady_clock::now() > end) {
      broken_ = true;
      return absl::DeadlineExceededError(absl::StrCat("NCCL ", what, " did not finish within ", deadline.count(),
                                                      " ms; communicator aborted"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

absl::StatusOr<std::unique_ptr<NcclPeerComm>> NcclPeerComm::Create(std::shared_ptr<const NcclLib> lib,
                                                                  const std::string& unique_id, int rank, int device,
                                                                  std::chrono::milliseconds deadline) {
  if (unique_id.size() != sizeof(ncclUniqueId)) return absl::InvalidArgumentError("bad NCCL unique id");
  std::unique_ptr<NcclPeerComm> c(new NcclPeerComm);
  c->lib_ = std::move(lib);
  c->device_ = device;
  c->peer_ = 1 - rank;
  SC_RETURN_IF_ERROR(CudaErr(cudaSetDevice(device), "cudaSetDevice"));
  cudaStream_t s;
  SC_RETURN_IF_ERROR(CudaErr(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"));
  c->stream_ = s;
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t r = c->lib_->CommInitRankConfig(&c->comm_, 2, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    return absl::InternalError(absl::StrCat("ncclCommInitRankConfig: ", c->lib_->GetErrorString(r)));
  }
  SC_RETURN_IF_ERROR(c->Wait("communicator set-up (ncclCommInitRank)", deadline, false));
  return c;
}

NcclPeerComm::~NcclPeerComm() {
  // Abort, not destroy: ncclCommDestroy waits for the peer to tear down its side too, and the
  // peer (a sidecar keeping the session for reuse, or a client that already left) may never do
  // so. Every transfer has completed or failed by now, so a local abort loses nothing.
  if (comm_ != nullptr) lib_->CommAbort(comm_);
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

absl::Status NcclPeerComm::Transfer(const std::vector<NcclBuffer>& buffers, bool send, std::chrono::milliseconds deadline) {
  if (broken()) return absl::UnavailableError("the NCCL session is broken; open a new one");
  SC_RETURN_IF_ERROR(CudaErr(cudaSetDevice(device_), "cudaSetDevice"));
  ncclResult_t r = lib_->GroupStart();
  for (const NcclBuffer& b : buffers) {
    if (r != ncclSuccess) break;
    if (b.bytes == 0) continue;
    r = send ? lib_->Send(b.data, b.bytes, ncclUint8, peer_, comm_, static_cast<cudaStream_t>(stream_))
             : lib_->Recv(b.data, b.bytes, ncclUint8, peer_, comm_, static_cast<cudaStream_t>(stream_));
  }
  ncclResult_t g = lib_->GroupEnd();
  if (r == ncclSuccess) r = g;
  if (r != ncclSuccess && r != ncclInProgress) {
    broken_ = true;
    return absl::InternalError(absl::StrCat(send ? "ncclSend: " : "ncclRecv: ", lib_->GetErrorString(r)));
  }
  return Wait(send ? "send" : "receive", deadline, true);
}

}  // namespace shardcast
