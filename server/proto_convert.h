// Conversions between the protobuf messages and the plain C++ structs of the cores.
#ifndef SHARDCAST_SERVER_PROTO_CONVERT_H_
#define SHARDCAST_SERVER_PROTO_CONVERT_H_

#include "proto/shardcast/v1/shardcast.pb.h"
#include "server/loader.h"

namespace shardcast {

ShardRequestSpec FromProto(const v1::ShardRequest& p);
void ToProto(const ShardRequestSpec& s, v1::ShardRequest* p);
void ToProto(const PreparedShard& s, v1::ShardInfo* p);
void ToProto(const RankSnapshot& s, v1::RankState* p);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_PROTO_CONVERT_H_
