// The client against a hostile server: an in-process gRPC server sends manifests and Fetch
// chunks whose numbers would make a naive client write past its buffers (issue 9, item 8). And
// the request side: layout files are read locally, requests over the limits are refused before
// anything is sent.
#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"

namespace shardcast {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

// Answers GetManifest with `manifest` and Fetch with `chunks`.
class HostileServer final : public v1::Shardcast::Service, public v1::LoaderRank::Service {
 public:
  v1::Manifest manifest;
  std::vector<v1::FetchChunk> chunks;

  grpc::Status GetManifest(grpc::ServerContext*, const v1::ShardRequest* req, v1::Manifest* out) override {
    last_request = *req;
    *out = manifest;
    return grpc::Status::OK;
  }
  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest*, grpc::ServerWriter<v1::FetchChunk>* w) override {
    for (const v1::FetchChunk& c : chunks) w->Write(c);
    return grpc::Status::OK;
  }
  v1::ShardRequest last_request;
};

class HostileServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(static_cast<v1::Shardcast::Service*>(&fake_));
    b.RegisterService(static_cast<v1::LoaderRank::Service*>(&fake_));
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    ClientOptions o;
    o.address = address_;
    o.deadline = std::chrono::milliseconds(10000);
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown();
  }

  // A manifest of one float32 shard "w" [2, 2] (16 bytes) owned by rank 0 at this server.
  v1::Manifest GoodManifest() {
    v1::Manifest m;
    m.set_request_id("r");
    v1::ShardInfo* s = m.add_shards();
    s->set_name("w");
    s->set_key("w");
    s->set_dtype("float32");
    s->add_shape(2);
    s->add_shape(2);
    s->set_nbytes(16);
    s->set_owner_rank(0);
    v1::RankEndpoint* e = m.add_endpoints();
    e->set_rank(0);
    e->set_address(address_);
    return m;
  }

  HostileServer fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<Client> client_;
};

TEST_F(HostileServerTest, ManifestNumbersAreCheckedBeforeUse) {
  ShardRequestSpec spec;
  fake_.manifest = GoodManifest();
  SC_ASSERT_OK_AND_ASSIGN(Manifest ok, client_->GetManifest(spec));
  EXPECT_EQ(ok.shards.size(), 1u);

  struct Case {
    const char* what;
    std::function<void(v1::ShardInfo*)> spoil;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {"owner beyond int", [](v1::ShardInfo* s) { s->set_owner_rank(0xffffffffu); }, "names loader rank -1 of 1"},
           {"owner without endpoint", [](v1::ShardInfo* s) { s->set_owner_rank(1); }, "names loader rank 1 of 1"},
           {"nbytes larger than the shape", [](v1::ShardInfo* s) { s->set_nbytes(kMax); }, "the manifest says"},
           // 2^62 * 2^2 * 4 bytes wraps to 0 in uint64: must not agree with nbytes 0.
           {"shape that wraps",
            [](v1::ShardInfo* s) {
              s->set_shape(0, int64_t{1} << 62);
              s->set_nbytes(0);
            },
            "impossible shape"},
           {"negative dim", [](v1::ShardInfo* s) { s->set_shape(1, -2); }, "impossible shape"},
           {"unknown dtype", [](v1::ShardInfo* s) { s->set_dtype("float1024"); }, "unknown dtype"},
       }) {
    fake_.manifest = GoodManifest();
    c.spoil(fake_.manifest.mutable_shards(0));
    absl::StatusOr<Manifest> m = client_->GetManifest(spec);
    ASSERT_FALSE(m.ok()) << c.what;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << c.what;
    EXPECT_NE(m.status().message().find(c.needle), std::string::npos) << c.what << ": " << m.status();
  }
}

TEST_F(HostileServerTest, FetchChunkPastTheBufferIsRefusedNotWritten) {
  fake_.manifest = GoodManifest();
  SC_ASSERT_OK_AND_ASSIGN(Manifest m, client_->GetManifest(ShardRequestSpec{}));
  std::vector<char> buf(16, 'x');
  std::vector<Destination> dst{Destination{"w", buf.data(), 16, "", std::nullopt}};
  // offset + size wraps to 8 in uint64: the old check (offset + size > nbytes) let it through and
  // memcpy wrote 16 bytes at buf + 2^64 - 8.
  for (uint64_t offset : {kMax - 7, kMax, uint64_t{9}, uint64_t{17}}) {
    fake_.chunks.clear();
    v1::FetchChunk c;
    c.set_name("w");
    c.set_offset(offset);
    c.set_data(std::string(16, 'E'));
    fake_.chunks.push_back(c);
    absl::StatusOr<FetchReport> r = client_->ReceiveHost(m, dst);
    ASSERT_FALSE(r.ok()) << offset;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    EXPECT_NE(r.status().message().find("past a shard's end"), std::string::npos) << r.status();
    EXPECT_EQ(std::string(buf.begin(), buf.end()), std::string(16, 'x'));
  }
  // An honest chunk arrives (and its CRC32C is checked against the manifest's, 0 here).
  fake_.chunks.clear();
  v1::FetchChunk c;
  c.set_name("w");
  c.set_data(std::string(16, 'E'));
  fake_.chunks.push_back(c);
  client_->mutable_options().verify_crc32c = false;
  SC_ASSERT_OK_AND_ASSIGN(FetchReport r, client_->ReceiveHost(m, dst));
  EXPECT_EQ(r.bytes, 16u);
  EXPECT_EQ(std::string(buf.begin(), buf.end()), std::string(16, 'E'));
}

TEST(FitsIn, NoWrapAround) {
  EXPECT_TRUE(FitsIn(0, 16, 16));
  EXPECT_TRUE(FitsIn(16, 0, 16));
  EXPECT_FALSE(FitsIn(1, 16, 16));
  EXPECT_FALSE(FitsIn(17, 0, 16));
  EXPECT_FALSE(FitsIn(kMax - 7, 16, 16));
  EXPECT_FALSE(FitsIn(8, kMax, 16));
  EXPECT_TRUE(FitsIn(kMax - 16, 16, kMax));
}

TEST_F(HostileServerTest, LayoutFilesAreSentAsText) {
  fake_.manifest = GoodManifest();
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/mine.layout";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("w split:1\n", f);
  std::fclose(f);
  ShardRequestSpec spec;
  spec.layout = path;
  SC_ASSERT_OK(client_->GetManifest(spec).status());
  EXPECT_EQ(fake_.last_request.layout(), "");
  EXPECT_EQ(fake_.last_request.layout_text(), "w split:1\n");
  spec.layout = "megatron";  // a preset goes by name
  SC_ASSERT_OK(client_->GetManifest(spec).status());
  EXPECT_EQ(fake_.last_request.layout(), "megatron");
  EXPECT_EQ(fake_.last_request.layout_text(), "");
  spec.layout = "/dev/zero";
  EXPECT_EQ(client_->GetManifest(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveLayout, RequestLimitsBeforeSending) {
  ShardRequestSpec spec;
  spec.tp_size = int64_t{1} << 31;
  auto r = ResolveLayout(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tp_size: 2147483648"), std::string::npos) << r.status();
  spec.tp_size = 2;
  spec.rules.assign(65, "x=split:0");
  EXPECT_EQ(ResolveLayout(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shardcast
