// The stream pair without a network: StreamSender's chunks go into a vector, a fake Fetch reader
// plays them (or hostile ones) to StreamReceiver. Chunking (sizes, the name on each shard's first
// chunk, empty shards), the receiver's bounds checks (FitsIn, unrequested shards, short shards),
// the call's status and a cancel's reason. Then the pair over an in-process gRPC server: a
// multi-chunk round trip, and a sender failing mid-stream reaching the receiver with its reason.
#include "transport/stream_plane.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"

namespace shardcast {
namespace {

constexpr auto kNoDeadline = DataPlaneClock::time_point::max();

// Plays `chunks`, then finishes with `status`.
class FakeFetchReader final : public grpc::ClientReaderInterface<v1::FetchChunk> {
 public:
  FakeFetchReader(std::vector<v1::FetchChunk> chunks, grpc::Status status)
      : chunks_(std::move(chunks)), status_(std::move(status)) {}
  bool Read(v1::FetchChunk* chunk) override {
    if (next_ >= chunks_.size()) return false;
    *chunk = chunks_[next_++];
    return true;
  }
  grpc::Status Finish() override { return status_; }
  bool NextMessageSize(uint32_t* size) override {
    *size = 1u << 30;
    return next_ < chunks_.size();
  }
  void WaitForInitialMetadata() override {}

 private:
  std::vector<v1::FetchChunk> chunks_;
  grpc::Status status_;
  size_t next_ = 0;
};

ShardSource FromString(const std::string& name, const std::string& bytes) {
  return ShardSource{name, bytes.size(), bytes.data(), [&bytes](uint64_t off, uint64_t n, void* dst) {
                       std::memcpy(dst, bytes.data() + off, n);
                       return absl::OkStatus();
                     }};
}

v1::FetchChunk Chunk(const std::string& name, uint64_t offset, const std::string& data) {
  v1::FetchChunk c;
  c.set_name(name);
  c.set_offset(offset);
  c.set_data(data);
  return c;
}

absl::Status ReceiveFrom(std::vector<v1::FetchChunk> chunks, std::vector<ShardDestination> dst,
                         grpc::Status status = grpc::Status::OK) {
  StreamReceiver receiver([&] { return std::make_unique<FakeFetchReader>(std::move(chunks), std::move(status)); },
                          [] {}, "loader rank 3");
  return receiver.Receive(dst, kNoDeadline);
}

TEST(StreamSender, CutsShardsIntoChunksNamingEachShardOnce) {
  const std::string a = "0123456789", empty, b = "xyz";
  std::vector<v1::FetchChunk> sent;
  StreamSender sender([&](const v1::FetchChunk& c) { sent.push_back(c); return true; }, [] { return false; },
                      /*chunk_bytes=*/4);
  ASSERT_TRUE(sender.Send({FromString("a", a), FromString("e", empty), FromString("b", b)}, kNoDeadline).ok());
  ASSERT_EQ(sent.size(), 5u);  // a: 4+4+2, e: one empty chunk, b: 3
  EXPECT_EQ(sent[0].name(), "a");
  EXPECT_EQ(sent[1].name(), "");
  EXPECT_EQ(sent[2].offset(), 8u);
  EXPECT_EQ(sent[2].data(), "89");
  EXPECT_EQ(sent[3].name(), "e");
  EXPECT_EQ(sent[3].data(), "");
  EXPECT_EQ(sent[4].name(), "b");
  // What it sent is what a receiver rebuilds.
  std::string got_a(10, '.'), got_b(3, '.');
  EXPECT_TRUE(ReceiveFrom(sent, {{"a", got_a.data(), 10}, {"e", nullptr, 0}, {"b", got_b.data(), 3}}).ok());
  EXPECT_EQ(got_a, a);
  EXPECT_EQ(got_b, b);
}

TEST(StreamSender, StopsWhenTheClientStopsOrTheCopyFails) {
  const std::string a(100, 'a');
  int writes = 0;
  StreamSender stopped([&](const v1::FetchChunk&) { return ++writes < 2; }, [] { return false; }, 10);
  absl::Status s = stopped.Send({FromString("a", a)}, kNoDeadline);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(writes, 2);

  StreamSender gone([](const v1::FetchChunk&) { return true; }, [] { return true; });
  EXPECT_EQ(gone.Send({FromString("a", a)}, kNoDeadline).code(), absl::StatusCode::kCancelled);

  ShardSource broken{"b", 8, nullptr, [](uint64_t, uint64_t, void*) { return absl::InternalError("cudaMemcpy failed"); }};
  StreamSender fine([](const v1::FetchChunk&) { return true; }, [] { return false; });
  s = fine.Send({broken}, kNoDeadline);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message(), "cudaMemcpy failed");
}

TEST(StreamReceiver, ChunkPastTheShardIsRefusedNotWritten) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (uint64_t offset : {uint64_t{9}, kMax - 7, uint64_t{17}}) {
    std::string buf(16, 'x');
    const absl::Status s = ReceiveFrom({Chunk("a", offset, std::string(8, 'E'))}, {{"a", buf.data(), 16}});
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << offset;
    EXPECT_NE(s.message().find("loader rank 3 sent bytes past a shard's end"), std::string::npos) << s;
    EXPECT_EQ(buf, std::string(16, 'x')) << offset;
  }
}

TEST(StreamReceiver, UnrequestedNamelessAndShortShardsAreDataLoss) {
  std::string buf(8, 'x');
  absl::Status s = ReceiveFrom({Chunk("other", 0, "12345678")}, {{"a", buf.data(), 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("unrequested shard 'other'"), std::string::npos) << s;

  s = ReceiveFrom({Chunk("", 0, "1234")}, {{"a", buf.data(), 8}});  // bytes before any name
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;

  s = ReceiveFrom({Chunk("a", 0, "123")}, {{"a", buf.data(), 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("received 3 of 8 bytes"), std::string::npos) << s;
}

TEST(StreamReceiver, TheCallsErrorNamesThePeerAndACancelGivesItsReason) {
  std::string buf(8, 'x');
  absl::Status s = ReceiveFrom({}, {{"a", buf.data(), 8}}, grpc::Status(grpc::StatusCode::NOT_FOUND, "not prepared"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "fetch from loader rank 3: not prepared");

  bool call_cancelled = false;
  StreamReceiver receiver(
      [] {
        return std::make_unique<FakeFetchReader>(std::vector<v1::FetchChunk>{},
                                                 grpc::Status(grpc::StatusCode::CANCELLED, ""));
      },
      [&] { call_cancelled = true; }, "loader rank 3");
  receiver.Cancel(absl::UnavailableError("loader rank 3 failed"));
  EXPECT_TRUE(call_cancelled);
  s = receiver.Receive({{"a", buf.data(), 8}}, kNoDeadline);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "loader rank 3 failed");
}

// Fetch answered by a StreamSender over `shards` (64 KiB chunks).
class StreamingService final : public v1::LoaderRank::Service {
 public:
  explicit StreamingService(std::vector<ShardSource> shards) : shards_(std::move(shards)) {}
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest*, grpc::ServerWriter<v1::FetchChunk>* w) override {
    StreamSender sender([w](const v1::FetchChunk& c) { return w->Write(c); }, [ctx] { return ctx->IsCancelled(); },
                        64 << 10);
    const absl::Status s = sender.Send(shards_, kNoDeadline);
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
  }

 private:
  std::vector<ShardSource> shards_;
};

// Receives `dst` from an in-process server streaming `shards`.
absl::Status ReceiveOverGrpc(std::vector<ShardSource> shards, const std::vector<ShardDestination>& dst) {
  StreamingService service(std::move(shards));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto stub = v1::LoaderRank::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::FetchRequest req;
  StreamReceiver receiver([&] { return stub->Fetch(&ctx, req); }, [&ctx] { ctx.TryCancel(); }, "loader rank 1");
  absl::Status s = receiver.Receive(dst, kNoDeadline);
  server->Shutdown();
  return s;
}

TEST(StreamPairOverGrpc, ShardsArriveWhole) {
  std::string a((1 << 20) + 3, '\0'), b = "tail";
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>(i * 131 + 7);
  std::string got_a(a.size(), '.'), got_b(b.size(), '.');
  const absl::Status s = ReceiveOverGrpc({FromString("a", a), FromString("b", b)},
                                         {{"a", got_a.data(), got_a.size()}, {"b", got_b.data(), got_b.size()}});
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(got_a, a);
  EXPECT_EQ(got_b, b);
}

TEST(StreamPairOverGrpc, ASenderFailingMidStreamReachesTheReceiverWithItsReason) {
  const std::string a(200 << 10, 'a');
  ShardSource failing{"a", a.size(), nullptr, [&a](uint64_t off, uint64_t n, void* dst) {
                        if (off >= (128 << 10)) return absl::DataLossError("record __0_0.distcp: CRC-32 mismatch");
                        std::memcpy(dst, a.data() + off, n);
                        return absl::OkStatus();
                      }};
  std::string got(a.size(), '.');
  const absl::Status s = ReceiveOverGrpc({failing}, {{"a", got.data(), got.size()}});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(s.message(), "fetch from loader rank 1: record __0_0.distcp: CRC-32 mismatch");
}

}  // namespace
}  // namespace shardcast
