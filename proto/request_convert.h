// The one conversion between a request's plain form (common/shard_request.h: ShardRequestSpec)
// and its wire form (v1::ShardRequest). The client library, the server's adapters and
// coordinator, and the request fuzzer all convert through here, so a request's fields are
// spelled out once. Depends only on common/ and the generated protobuf code: client/ may use it
// without reaching into server/.
#ifndef SHARDCAST_PROTO_REQUEST_CONVERT_H_
#define SHARDCAST_PROTO_REQUEST_CONVERT_H_

#include "common/shard_request.h"
#include "proto/shardcast/v1/shardcast.pb.h"

namespace shardcast {

// Every field as sent. Widens tp_size / tp_rank (uint32 -> int64): no value is lost, so
// ValidateShardRequest sees exactly what the client sent.
ShardRequestSpec ShardRequestFromProto(const v1::ShardRequest& proto);

// Every field of `spec`. tp_size / tp_rank are narrowed to uint32: call it on a spec that passed
// ValidateShardRequest (1..kMaxTpSize), as the client does before sending.
v1::ShardRequest ShardRequestToProto(const ShardRequestSpec& spec);

}  // namespace shardcast

#endif  // SHARDCAST_PROTO_REQUEST_CONVERT_H_
