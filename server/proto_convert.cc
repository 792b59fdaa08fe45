// The server cores' results as protobuf messages (prepared shards, a rank's snapshot). Requests
// convert through proto/request_convert.h, shared with the client.
#include "server/proto_convert.h"

namespace shardcast {

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
}

}  // namespace shardcast
