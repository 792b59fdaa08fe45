// A manifest's JSON document (client.h's ManifestToJson, what the C ABI hands out) read back into
// a Manifest, and a request's JSON document (the C ABI's shardcast_manifest) read into a
// ShardRequestSpec. Every member is looked up and type-checked before it is used: a document from
// a caller is not trusted (a missing or wrongly typed member is InvalidArgument naming it).
#ifndef SHARDCAST_CLIENT_MANIFEST_JSON_H_
#define SHARDCAST_CLIENT_MANIFEST_JSON_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "common/shard_request.h"

namespace shardcast {

// The inverse of ManifestToJson, then the checks of a manifest from the server (ValidateManifest:
// owners, dtypes, sizes), reported as InvalidArgument.
absl::StatusOr<Manifest> ManifestFromJson(absl::string_view text);

// {"tp_size", "tp_rank", "layout", "layout_text", "rules": [], "prefix", "renames": [], "unstack",
// "dtype", "glu", "boxes": [{"name", "key", "offsets": [], "sizes": [], "dtype"}]}, every member
// optional (ShardRequestSpec's defaults). Numbers as given (int64): the range is
// ValidateShardRequest's to check.
absl::StatusOr<ShardRequestSpec> ShardRequestFromJson(absl::string_view text);

}  // namespace shardcast

#endif  // SHARDCAST_CLIENT_MANIFEST_JSON_H_
