// The plain C++ results of the server cores as protobuf messages: a prepared shard (ShardInfo) and a
// rank's snapshot (RankState). A request's conversion lives in proto/request_convert.h (shared
// with the client library).
#ifndef SHARDCAST_SERVER_PROTO_CONVERT_H_
#define SHARDCAST_SERVER_PROTO_CONVERT_H_

#include "proto/shardcast/v1/shardcast.pb.h"
#include <string>
#include <vector>

#include "server/loader.h"
#include "server/rpc_metrics.h"

namespace shardcast {

void ToProto(const PreparedShard& s, v1::ShardInfo* p);
void ToProto(const RankSnapshot& s, v1::RankState* p);
// Replaces p's rpcs with `stats` (the latency bounds spelled out in each).
void ToProto(const std::vector<RpcMethodStats>& stats, v1::RankState* p);

// Manifest.digest: 32 hex digits of the SHA-256 of `m` without its lease, digest and unchanged
// fields (deterministic serialization): the same for the same shards, endpoints, notes.
std::string ManifestDigest(const v1::Manifest& m);
// Sets m's digest; when it equals `known` (the client's, ShardRequest.known_manifest), leaves
// only request_id, the lease and the digest, with unchanged = true.
void SetDigestAndTrimIfKnown(const std::string& known, v1::Manifest* m);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_PROTO_CONVERT_H_
