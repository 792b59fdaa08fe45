// ShardRequestSpec <-> v1::ShardRequest: field by field, in one place.
#include "proto/request_convert.h"

#include <cstdint>

namespace shardcast {

ShardRequestSpec ShardRequestFromProto(const v1::ShardRequest& proto) {
  ShardRequestSpec spec;
  spec.tp_size = proto.tp_size();  // uint32 -> int64: no narrowing; ValidateShardRequest checks the range
  spec.tp_rank = proto.tp_rank();
  spec.layout = proto.layout();
  spec.layout_text = proto.layout_text();
  spec.rules.assign(proto.rules().begin(), proto.rules().end());
  spec.prefix = proto.prefix();
  spec.renames.assign(proto.renames().begin(), proto.renames().end());
  spec.unstack = proto.unstack();
  spec.dtype = proto.dtype();
  spec.boxes.reserve(proto.boxes_size());  // bounded by the message size (4 MiB)
  for (const v1::BoxRequest& b : proto.boxes()) {
    spec.boxes.push_back(BoxSpec{b.name(), b.key(), {b.offsets().begin(), b.offsets().end()},
                                 {b.sizes().begin(), b.sizes().end()}, b.dtype()});
  }
  return spec;
}

v1::ShardRequest ShardRequestToProto(const ShardRequestSpec& spec) {
  v1::ShardRequest proto;
  proto.set_tp_size(static_cast<uint32_t>(spec.tp_size));  // validated: 1..kMaxTpSize
  proto.set_tp_rank(static_cast<uint32_t>(spec.tp_rank));
  proto.set_layout(spec.layout);
  proto.set_layout_text(spec.layout_text);
  for (const std::string& rule : spec.rules) proto.add_rules(rule);
  proto.set_prefix(spec.prefix);
  for (const std::string& rename : spec.renames) proto.add_renames(rename);
  proto.set_unstack(spec.unstack);
  proto.set_dtype(spec.dtype);
  for (const BoxSpec& b : spec.boxes) {
    v1::BoxRequest* out = proto.add_boxes();
    out->set_name(b.name);
    out->set_key(b.key);
    for (int64_t o : b.offsets) out->add_offsets(o);
    for (int64_t z : b.sizes) out->add_sizes(z);
    out->set_dtype(b.dtype);
  }
  return proto;
}

}  // namespace shardcast
