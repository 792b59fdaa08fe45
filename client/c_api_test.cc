// The C ABI against an in-process shardcastd stand-in (one gRPC server playing rank 0 and its only
// loader rank): a manifest handle is obtained once and received from; NULL pointers and wrongly
// typed request members are refused with INVALID_ARGUMENT and a message, before anything is sent.
#include "client/c_api.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

constexpr char kBytes[] = "0123456789abcdef";  // shard "w": float32 [2, 2], 16 bytes

class FakeService final : public v1::Shardcast::Service, public v1::LoaderRank::Service {
 public:
  std::string address;
  std::atomic<int> manifests{0}, fetches{0};

  // Manifest digests: none (an older server) unless `digest` is set; then a request whose
  // known_manifest equals it (or any, with `lie_unchanged`) gets only a new lease.
  std::string digest;
  std::atomic<bool> lie_unchanged{false};
  std::string last_known;  // the last request's known_manifest

  grpc::Status GetManifest(grpc::ServerContext*, const v1::ShardRequest* req, v1::Manifest* out) override {
    const int n = ++manifests;
    last_known = req->known_manifest();
    out->set_request_id("r");
    out->set_lease_id("lease-" + std::to_string(n));
    out->set_digest(digest);
    if (!digest.empty() && (lie_unchanged || req->known_manifest() == digest)) {
      out->set_unchanged(true);
      return grpc::Status::OK;
    }
    v1::ShardInfo* s = out->add_shards();
    s->set_name("w");
    s->set_key("model.w");
    s->set_dtype("float32");
    s->add_shape(2);
    s->add_shape(2);
    s->set_nbytes(16);
    s->set_crc32c(Crc32c(kBytes, 16));
    s->set_owner_rank(0);
    v1::RankEndpoint* e = out->add_endpoints();
    e->set_rank(0);
    e->set_address(address);
    return req->tp_size() == 1 ? grpc::Status::OK : grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "tp 1 only");
  }
  // ---- The index (two pages of one entry each) and bytes entries (one per reply) ----
  std::atomic<bool> stuck_index{false};     // every page points back to itself
  std::atomic<bool> wrong_bytes{false};     // replies name a key not asked for
  std::atomic<int> bytes_requests{0};
  grpc::Status GetIndex(grpc::ServerContext*, const v1::IndexRequest* req, v1::CheckpointIndex* out) override {
    out->set_total(2);
    out->set_prefix("model.");
    if (req->start() == 0) {
      v1::TensorIndexEntry* t = out->add_tensors();
      t->set_key("model.w");
      t->set_dtype("bfloat16");
      t->add_shape(8);
      t->add_shape(4);
      out->set_next(stuck_index ? 0 : 1);
      if (stuck_index) out->set_total(3);  // announces more than it gives
    } else {
      v1::BytesIndexEntry* b = out->add_bytes();
      b->set_key("model.extra");
      b->set_nbytes(5);
    }
    return grpc::Status::OK;
  }
  grpc::Status ReadBytes(grpc::ServerContext*, const v1::ReadBytesRequest* req, v1::ReadBytesReply* out) override {
    ++bytes_requests;
    for (int i = 0; i < req->keys_size(); ++i) {
      if (i == 0) {
        v1::BytesValue* v = out->add_values();
        v->set_key(wrong_bytes ? "other" : req->keys(0));
        v->set_data(std::string("\0\xff", 2) + req->keys(0));
      } else {
        out->add_remaining(req->keys(i));  // one entry per reply: the client asks again
      }
    }
    return grpc::Status::OK;
  }
  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest*, grpc::ServerWriter<v1::FetchChunk>* w) override {
    ++fetches;
    v1::FetchChunk c;
    c.set_name("w");
    c.set_offset(0);
    c.set_data(std::string(kBytes, 16));
    w->Write(c);
    return grpc::Status::OK;
  }
};

// A malloc'ed string from the C ABI, freed with shardcast_free.
struct CString {
  char* p = nullptr;
  ~CString() { shardcast_free(p); }
  std::string str() const { return p ? p : ""; }
};

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(static_cast<v1::Shardcast::Service*>(&fake_));
    b.RegisterService(static_cast<v1::LoaderRank::Service*>(&fake_));
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    fake_.address = "127.0.0.1:" + std::to_string(port);
    CString err;
    ASSERT_EQ(shardcast_connect(fake_.address.c_str(), nullptr, 10.0, &client_, &err.p), 0) << err.str();
  }
  void TearDown() override {
    shardcast_close(client_);
    server_->Shutdown();
  }

  FakeService fake_;
  std::unique_ptr<grpc::Server> server_;
  shardcast_client* client_ = nullptr;
};

TEST_F(CApiTest, AManifestHandleIsReceivedFrom) {
  shardcast_manifest_handle* m = nullptr;
  CString json, err;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1, "tp_rank": 0})", &m, &json.p, &err.p), 0) << err.str();
  EXPECT_THAT(json.str(), HasSubstr("\"model.w\""));
  const char* names[] = {"w"};
  char buffer[16] = {};
  void* buffers[] = {buffer};
  const uint64_t sizes[] = {16};
  CString report;
  ASSERT_EQ(shardcast_receive_manifest(client_, m, 1, names, buffers, sizes, -1, &report.p, &err.p), 0) << err.str();
  EXPECT_EQ(std::memcmp(buffer, kBytes, 16), 0);
  EXPECT_THAT(report.str(), HasSubstr("\"crc_checked\":1"));
  // The same handle again: no new manifest is asked for.
  std::memset(buffer, 0, sizeof(buffer));
  ASSERT_EQ(shardcast_receive_manifest(client_, m, 1, names, buffers, sizes, -1, nullptr, &err.p), 0);
  EXPECT_EQ(std::memcmp(buffer, kBytes, 16), 0);
  EXPECT_EQ(fake_.manifests.load(), 1);
  EXPECT_EQ(fake_.fetches.load(), 2);
  shardcast_manifest_free(m);
}

TEST_F(CApiTest, AnUnchangedManifestComesFromTheClientsCopyWithTheNewLease) {
  fake_.digest = "d1";
  shardcast_manifest_handle *first = nullptr, *again = nullptr;
  CString json, err;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &first, &json.p, &err.p), 0) << err.str();
  EXPECT_EQ(fake_.last_known, "");  // nothing held yet
  EXPECT_STREQ(shardcast_manifest_digest(first), "d1");
  EXPECT_THAT(json.str(), HasSubstr("\"lease_id\":\"lease-1\""));
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &again, nullptr, &err.p), 0) << err.str();
  EXPECT_EQ(fake_.last_known, "d1");  // the server was told which manifest the client holds
  EXPECT_STREQ(shardcast_manifest_digest(again), "d1");
  EXPECT_EQ(shardcast_manifest_unchanged(first), 0);
  EXPECT_EQ(shardcast_manifest_unchanged(again), 1);
  CString again_json{shardcast_manifest_json(again)};
  EXPECT_THAT(again_json.str(), HasSubstr("\"model.w\""));  // the shards, from the client's copy
  EXPECT_THAT(again_json.str(), HasSubstr("\"lease_id\":\"lease-2\""));  // the new lease
  const char* names[] = {"w"};
  char buffer[16] = {};
  void* buffers[] = {buffer};
  const uint64_t sizes[] = {16};
  ASSERT_EQ(shardcast_receive_manifest(client_, again, 1, names, buffers, sizes, -1, nullptr, &err.p), 0) << err.str();
  EXPECT_EQ(std::memcmp(buffer, kBytes, 16), 0);
  shardcast_manifest_free(first);
  shardcast_manifest_free(again);
}

TEST_F(CApiTest, AnUnchangedReplyForAManifestTheClientDoesNotHoldIsDataLoss) {
  fake_.digest = "d1";
  fake_.lie_unchanged = true;
  shardcast_manifest_handle* m = nullptr;
  CString err;
  EXPECT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &m, nullptr, &err.p), 15);
  EXPECT_THAT(err.str(), HasSubstr("unchanged"));
  EXPECT_EQ(m, nullptr);
  // A real copy first, then a lie about another: the entry is dropped, not kept after the lie.
  fake_.lie_unchanged = false;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &m, nullptr, &err.p), 0) << err.str();
  shardcast_manifest_free(m);
  fake_.digest = "d2";  // the server now answers "unchanged" to d2 only, but the client holds d1
  fake_.lie_unchanged = true;
  CString err2;
  EXPECT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &m, nullptr, &err2.p), 15);
  fake_.lie_unchanged = false;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &m, nullptr, &err.p), 0) << err.str();
  EXPECT_EQ(fake_.last_known, "");  // nothing was held any more
  shardcast_manifest_free(m);
}

TEST_F(CApiTest, AnOverlongDigestIsNotKeptNorSentBack) {
  fake_.digest = std::string(1000, 'x');
  shardcast_manifest_handle *a = nullptr, *b = nullptr;
  CString err;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &a, nullptr, &err.p), 0) << err.str();
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &b, nullptr, &err.p), 0) << err.str();
  EXPECT_EQ(fake_.last_known, "");
  EXPECT_EQ(shardcast_manifest_unchanged(b), 0);
  shardcast_manifest_free(a);
  shardcast_manifest_free(b);
}

TEST_F(CApiTest, AServerWithoutDigestsIsAskedForTheWholeManifestEachTime) {
  shardcast_manifest_handle *a = nullptr, *b = nullptr;
  CString err;
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &a, nullptr, &err.p), 0) << err.str();
  ASSERT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1})", &b, nullptr, &err.p), 0) << err.str();
  EXPECT_EQ(fake_.last_known, "");
  EXPECT_STREQ(shardcast_manifest_digest(b), "");
  shardcast_manifest_free(a);
  shardcast_manifest_free(b);
}

TEST_F(CApiTest, NullPointersAreRefusedNotDereferenced) {
  CString err;
  EXPECT_EQ(shardcast_receive_manifest(client_, nullptr, 0, nullptr, nullptr, nullptr, -1, nullptr, &err.p), 3);
  EXPECT_THAT(err.str(), HasSubstr("manifest must not be NULL"));
  shardcast_manifest_handle* m = nullptr;
  CString err2, err3, err4;
  EXPECT_EQ(shardcast_manifest_get(nullptr, "{}", &m, nullptr, &err2.p), 3);
  EXPECT_THAT(err2.str(), HasSubstr("client must not be NULL"));
  EXPECT_EQ(shardcast_manifest_get(client_, "{}", nullptr, nullptr, &err3.p), 3);
  EXPECT_EQ(shardcast_status(nullptr, nullptr, &err4.p), 3);
  EXPECT_EQ(shardcast_manifest_parse(nullptr, &m, nullptr), 3);  // no error out-pointer either
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(fake_.manifests.load(), 0);
}

TEST_F(CApiTest, WronglyTypedRequestMembersAreRefusedBeforeSending) {
  shardcast_manifest_handle* m = nullptr;
  CString err;
  EXPECT_EQ(shardcast_manifest_get(client_, R"({"tp_size": 1, "rules": [1]})", &m, nullptr, &err.p), 3);
  EXPECT_THAT(err.str(), HasSubstr("rules"));
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(fake_.manifests.load(), 0);
}

TEST_F(CApiTest, AParsedManifestIsCheckedLikeTheServers) {
  shardcast_manifest_handle* m = nullptr;
  CString err;
  // 2 x 2 float32 is 16 bytes, not 17.
  const std::string bad = R"({"request_id": "r", "endpoints": ["h:1"], "shards": [{"name": "w", "key": "w",
      "dtype": "float32", "rule": "", "shape": [2, 2], "nbytes": 17, "crc32c": 0, "owner_rank": 0}]})";
  EXPECT_EQ(shardcast_manifest_parse(bad.c_str(), &m, &err.p), 3);
  EXPECT_THAT(err.str(), HasSubstr("the manifest says 17"));
  EXPECT_EQ(m, nullptr);
}

// ---- The index and bytes entries ----

TEST_F(CApiTest, IndexIsAskedPageByPage) {
  CString out, err;
  ASSERT_EQ(shardcast_index(client_, &out.p, &err.p), 0) << err.str();
  EXPECT_EQ(out.str(),
            R"({"prefix":"model.","tensors":[{"key":"model.w","dtype":"bfloat16","shape":[8,4]}],)"
            R"("bytes":[{"key":"model.extra","nbytes":5,"compressed":false}]})");
  fake_.stuck_index = true;
  CString out2, err2;
  EXPECT_EQ(shardcast_index(client_, &out2.p, &err2.p), 15);  // DATA_LOSS
  EXPECT_THAT(err2.str(), HasSubstr("announced 3"));
  EXPECT_EQ(out2.p, nullptr);
  CString err3;
  EXPECT_EQ(shardcast_index(nullptr, &out2.p, &err3.p), 3);
}

TEST_F(CApiTest, ReadBytesAsksAgainForWhatARepliesLeftAndEncodesBase64) {
  CString out, err;
  ASSERT_EQ(shardcast_read_bytes(client_, R"(["a", "b", "c"])", &out.p, &err.p), 0) << err.str();
  // "\0\xff" + key, base64-encoded: AP9h, AP9i, AP9j.
  EXPECT_EQ(out.str(), R"([{"key":"a","base64":"AP9h"},{"key":"b","base64":"AP9i"},{"key":"c","base64":"AP9j"}])");
  EXPECT_EQ(fake_.bytes_requests.load(), 3);
  CString out2, err2, err2b;
  EXPECT_EQ(shardcast_read_bytes(client_, R"(["a", 1])", &out2.p, &err2.p), 3);
  EXPECT_EQ(shardcast_read_bytes(client_, R"({"a": 1})", &out2.p, &err2b.p), 3);
  EXPECT_EQ(fake_.bytes_requests.load(), 3);  // refused before sending
  fake_.wrong_bytes = true;
  CString err3;
  EXPECT_EQ(shardcast_read_bytes(client_, R"(["a"])", &out2.p, &err3.p), 15);
  EXPECT_THAT(err3.str(), HasSubstr("does not match the keys"));
  EXPECT_EQ(out2.p, nullptr);
}

}  // namespace
}  // namespace shardcast
