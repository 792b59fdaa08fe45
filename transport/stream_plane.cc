#include "transport/stream_plane.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace shardcast {

absl::Status StreamCallStatus(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.error_message());
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) msg += " (deadline exceeded; raise the client timeout?)";
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

StreamSender::StreamSender(std::function<bool(const v1::FetchChunk&)> write, std::function<bool()> cancelled,
                           uint64_t chunk_bytes)
    : write_(std::move(write)), cancelled_(std::move(cancelled)), chunk_bytes_(std::max<uint64_t>(chunk_bytes, 1)) {}

absl::Status StreamSender::Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) {
  std::string buf;
  for (const ShardSource& s : shards) {
    if (absl::Status st = SendShard(s, deadline, &buf); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status StreamSender::SendShard(const ShardSource& shard, DataPlaneClock::time_point deadline, std::string* buf) {
  uint64_t off = 0;
  do {  // an empty shard still sends one chunk: its name
    if (cancelled_()) return absl::CancelledError("client went away");
    if (DataPlaneClock::now() > deadline) return absl::DeadlineExceededError("the stream's deadline passed");
    const uint64_t n = std::min(chunk_bytes_, shard.nbytes - off);
    buf->resize(n);
    if (absl::Status st = shard.copy_out(off, n, buf->data()); !st.ok()) return st;
    v1::FetchChunk chunk;
    if (off == 0) chunk.set_name(shard.name);
    chunk.set_offset(off);
    chunk.set_data(*buf);
    if (!write_(chunk)) return absl::CancelledError("client stopped reading");
    off += n;
  } while (off < shard.nbytes);
  return absl::OkStatus();
}

StreamReceiver::StreamReceiver(StartCall start_call, std::function<void()> cancel_call, std::string peer)
    : start_call_(std::move(start_call)), cancel_call_(std::move(cancel_call)), peer_(std::move(peer)) {}

void StreamReceiver::Cancel(absl::Status why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.ok()) cancelled_ = why.ok() ? absl::CancelledError("cancelled") : std::move(why);
  }
  cancel_call_();
}

absl::Status StreamReceiver::ReadAll(const std::vector<ShardDestination>& shards, std::vector<uint64_t>* received) {
  std::unordered_map<std::string_view, size_t> index;
  for (size_t i = 0; i < shards.size(); ++i) index.emplace(shards[i].name, i);
  v1::FetchChunk chunk;
  const ShardDestination* current = nullptr;
  size_t current_index = 0;
  while (reader_->Read(&chunk)) {
    if (!chunk.name().empty()) {
      auto it = index.find(chunk.name());
      if (it == index.end()) {
        return absl::DataLossError(absl::StrCat(peer_, " sent an unrequested shard '", chunk.name().substr(0, 200), "'"));
      }
      current_index = it->second;
      current = &shards[current_index];
    }
    // Overflow-safe: offset + size could wrap in uint64 and pass a plain sum check.
    if (current == nullptr || !FitsIn(chunk.offset(), chunk.data().size(), current->nbytes)) {
      return absl::DataLossError(absl::StrCat(peer_, " sent bytes past a shard's end"));
    }
    if (!chunk.data().empty()) {  // an empty shard may have no buffer at all (data == nullptr)
      std::memcpy(static_cast<char*>(current->data) + chunk.offset(), chunk.data().data(), chunk.data().size());
    }
    (*received)[current_index] += chunk.data().size();
  }
  return absl::OkStatus();
}

absl::Status StreamReceiver::Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point) {
  std::vector<uint64_t> received(shards.size(), 0);
  reader_ = start_call_();
  absl::Status read = ReadAll(shards, &received);
  if (!read.ok()) {
    cancel_call_();
    reader_->Finish();
    return read;
  }
  absl::Status finished = StreamCallStatus(reader_->Finish(), absl::StrCat("fetch from ", peer_));
  if (!finished.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_.ok() ? finished : cancelled_;
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    if (received[i] != shards[i].nbytes) {
      return absl::DataLossError(
          absl::StrCat("'", shards[i].name, "': received ", received[i], " of ", shards[i].nbytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shardcast
