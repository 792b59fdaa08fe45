// The server cores' results as protobuf messages (prepared shards, a rank's snapshot). Requests
// convert through proto/request_convert.h, shared with the client.
#include "server/proto_convert.h"

#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "common/sha256.h"

namespace shardcast {
namespace {

// The digest of `m` with its lease, digest and unchanged fields cleared (restored afterwards).
std::string DigestWithoutLease(v1::Manifest* m) {
  std::string lease = std::move(*m->mutable_lease_id());
  const double lease_seconds = m->lease_seconds();
  m->clear_lease_id();
  m->clear_lease_seconds();
  m->clear_digest();
  m->clear_unchanged();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    m->SerializeToCodedStream(&coded);
  }
  m->set_lease_id(std::move(lease));
  m->set_lease_seconds(lease_seconds);
  return Sha256Hex(bytes).substr(0, 32);
}

}  // namespace

std::string ManifestDigest(const v1::Manifest& m) {
  v1::Manifest copy = m;
  return DigestWithoutLease(&copy);
}

void SetDigestAndTrimIfKnown(const std::string& known, v1::Manifest* m) {
  std::string digest = DigestWithoutLease(m);
  if (!known.empty() && known == digest) {
    v1::Manifest lease_only;
    lease_only.set_request_id(m->request_id());
    lease_only.set_lease_id(m->lease_id());
    lease_only.set_lease_seconds(m->lease_seconds());
    lease_only.set_unchanged(true);
    *m = std::move(lease_only);
  }
  m->set_digest(std::move(digest));
}

void ToProto(const PreparedShard& s, v1::ShardInfo* p) {
  p->set_name(s.name);
  p->set_key(s.key);
  p->set_dtype(std::string(DTypeName(s.dtype)));
  for (int64_t d : s.shape) p->add_shape(d);
  p->set_nbytes(s.nbytes);
  p->set_crc32c(s.crc32c);
  p->set_owner_rank(s.owner);
  p->set_rule(s.rule);
}

void ToProto(const RankSnapshot& s, v1::RankState* p) {
  p->set_state(std::string(RankStateName(s.state)));
  p->set_device(s.device);
  p->set_bytes_read(s.bytes_read);
  p->set_bytes_selected(s.bytes_selected);
  p->set_read_gbps(s.read_gbps);
  p->set_memory_held(s.memory_held);
  p->set_tensors_owned(s.tensors_owned);
  p->set_clients_served(s.clients_served);
  p->set_clients_active(s.clients_active);
  p->set_last_error(s.last_error);
  p->set_payload_bytes_done(s.progress.done);
  p->set_percent(s.progress.percent);
  p->set_eta_seconds(s.progress.eta_seconds);
  p->set_load_seconds(s.load_seconds);
  p->set_leases_pinned(s.leases_pinned);
  p->set_exiting(s.exiting);
  p->set_memory_budget(s.memory_budget);
  p->set_requests_prepared(s.requests.admitted);
  p->set_requests_cached(s.requests.cached);
  p->set_requests_evicted(s.requests.evicted);
  p->set_bytes_sent_stream(s.bytes_sent[static_cast<int>(Transport::kStream)]);
  p->set_bytes_sent_nccl(s.bytes_sent[static_cast<int>(Transport::kNccl)]);
  p->set_bytes_sent_ipc(s.bytes_sent[static_cast<int>(Transport::kIpc)]);
}

void ToProto(const std::vector<RpcMethodStats>& stats, v1::RankState* p) {
  p->clear_rpcs();
  for (const RpcMethodStats& s : stats) {
    v1::RpcStats* r = p->add_rpcs();
    r->set_method(std::string(RpcMethodName(s.method)));
    for (uint64_t c : s.calls_by_code) r->add_calls_by_code(c);
    for (double b : RpcLatencyBounds()) r->add_latency_bounds(b);
    for (uint64_t c : s.latency_counts) r->add_latency_counts(c);
    r->set_latency_sum_seconds(s.latency_sum_seconds);
  }
}

}  // namespace shardcast
