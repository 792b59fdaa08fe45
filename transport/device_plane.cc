#include "transport/device_plane.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/cuda_ipc.h"

namespace shardcast {

std::chrono::milliseconds Remaining(DataPlaneClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - DataPlaneClock::now());
  return std::max(left, std::chrono::milliseconds(1));
}

absl::Status NcclShardSender::Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) {
  std::vector<NcclBuffer> buffers;
  for (const ShardSource& s : shards) buffers.push_back(NcclBuffer{const_cast<void*>(s.data), s.nbytes});
  return comm_->Transfer(buffers, /*send=*/true, Remaining(deadline));
}

void NcclShardReceiver::Cancel(absl::Status why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.ok()) cancelled_ = why.ok() ? absl::CancelledError("cancelled") : std::move(why);
  }
  comm_->Cancel();
}

void NcclShardReceiver::WatchSender() {
  absl::Status sent = await_sender_();
  bool over;
  {
    std::lock_guard<std::mutex> lock(mu_);
    over = receive_over_;
  }
  if (!sent.ok() && !over) {
    Cancel(absl::Status(sent.code(), absl::StrCat("the loader rank's NCCL send failed: ", sent.message())));
  }
}

absl::Status NcclShardReceiver::Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) {
  std::vector<NcclBuffer> buffers;
  for (const ShardDestination& d : shards) buffers.push_back(NcclBuffer{d.data, d.nbytes});
  std::thread watch;
  if (await_sender_) watch = std::thread([this] { WatchSender(); });
  absl::Status received = comm_->Transfer(buffers, /*send=*/false, Remaining(deadline));
  {
    std::lock_guard<std::mutex> lock(mu_);
    receive_over_ = true;
  }
  if (stop_await_) stop_await_();
  if (watch.joinable()) watch.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (!received.ok() && !cancelled_.ok()) return cancelled_;  // the reason, not the cancelled wait
  return received;
}

absl::StatusOr<v1::IpcExport> ExportIpcShards(int device, const std::vector<IpcSource>& shards) {
  v1::IpcExport out;
  std::map<const void*, uint32_t> region_of;
  for (const IpcSource& s : shards) {
    auto [it, added] = region_of.emplace(s.allocation, static_cast<uint32_t>(region_of.size()));
    if (added) {
      SC_ASSIGN_OR_RETURN(std::string handle, ExportIpcHandle(device, s.allocation));
      out.add_handles(std::move(handle));
      out.add_resident(s.resident);
    }
    v1::IpcShard* shard = out.add_shards();
    shard->set_name(s.name);
    shard->set_region(it->second);
    shard->set_offset(static_cast<const char*>(s.data) - static_cast<const char*>(s.allocation));
    shard->set_nbytes(s.nbytes);
  }
  return out;
}

void IpcShardReceiver::Cancel(absl::Status why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_.ok()) cancelled_ = why.ok() ? absl::CancelledError("cancelled") : std::move(why);
}

absl::Status IpcShardReceiver::Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) {
  std::unordered_map<std::string_view, const ShardDestination*> by_name;
  for (const ShardDestination& d : shards) by_name.emplace(d.name, &d);
  std::vector<IpcPiece> pieces;
  for (const v1::IpcShard& s : exported_.shards()) {
    auto it = by_name.find(s.name());
    const ShardDestination* d = it == by_name.end() ? nullptr : it->second;
    if (d == nullptr || s.nbytes() != d->nbytes || !FitsIn(s.offset(), s.nbytes(), UINT64_MAX)) {
      return absl::DataLossError(
          absl::StrCat(peer_, " exported an unrequested or mis-sized shard '", s.name().substr(0, 200), "'"));
    }
    pieces.push_back(IpcPiece{s.region(), s.offset(), d->data, d->nbytes});
    by_name.erase(it);  // a shard exported twice is unrequested the second time
  }
  if (pieces.size() != shards.size()) {
    return absl::DataLossError(absl::StrCat(peer_, " exported ", pieces.size(), " of ", shards.size(), " shards"));
  }
  // Every handle is opened before any copy: at most one per shard, each used by some shard.
  std::vector<bool> used(exported_.handles_size(), false);
  for (const IpcPiece& p : pieces) {
    if (p.region >= used.size()) {
      return absl::DataLossError(absl::StrCat(peer_, " exported a shard in region ", p.region, " of ",
                                              used.size(), " handles"));
    }
    used[p.region] = true;
  }
  if (std::find(used.begin(), used.end(), false) != used.end()) {
    return absl::DataLossError(absl::StrCat(peer_, " exported ", used.size(), " IPC handles, some used by no shard"));
  }
  if (exported_.resident_size() != 0 && exported_.resident_size() != exported_.handles_size()) {
    return absl::DataLossError(absl::StrCat(peer_, " exported ", exported_.handles_size(), " IPC handles but ",
                                            exported_.resident_size(), " resident flags"));
  }
  std::vector<IpcRegion> regions;
  for (int i = 0; i < exported_.handles_size(); ++i) {
    regions.push_back(IpcRegion{exported_.handles(i), exported_.resident_size() != 0 && exported_.resident(i)});
  }
  absl::Status copied = IpcCopy(device_, regions, pieces, Remaining(deadline), mappings_);
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_.ok() ? copied : cancelled_;
}

}  // namespace shardcast
