#include "server/proto_convert.h"

namespace shardcast {

ShardRequestSpec FromProto(const v1::ShardRequest& p) {
  ShardRequestSpec s;
  s.tp_size = p.tp_size();  // uint32 -> int64: no narrowing; ValidateShardRequest checks the range
  s.tp_rank = p.tp_rank();
  s.layout = p.layout();
  s.layout_text = p.layout_text();
  s.rules.assign(p.rules().begin(), p.rules().end());
  s.prefix = p.prefix();
  s.renames.assign(p.renames().begin(), p.renames().end());
  s.unstack = p.unstack();
  s.dtype = p.dtype();
  return s;
}

void ToProto(const ShardRequestSpec& s, v1::ShardRequest* p) {
  p->set_tp_size(static_cast<uint32_t>(s.tp_size));
  p->set_tp_rank(static_cast<uint32_t>(s.tp_rank));
  p->set_layout(s.layout);
  p->set_layout_text(s.layout_text);
  for (const auto& r : s.rules) p->add_rules(r);
  p->set_prefix(s.prefix);
  for (const auto& r : s.renames) p->add_renames(r);
  p->set_unstack(s.unstack);
  p->set_dtype(s.dtype);
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
}

}  // namespace shardcast
