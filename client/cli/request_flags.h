// The flags that spell a request (common/shard_request.h) on the command line, declared once and
// read once for `reshard` (cut locally) and `fetch` (asked of shardcastd): --tp, --rank,
// --layout, --rule, --strict-rules, --prefix, --rename, --unstack, --dtype.
#ifndef SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_
#define SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/args.h"
#include "common/shard_request.h"

namespace shardcast::cli {

// What differs between the commands: where the layout comes from when --layout is not given.
struct LayoutFlagDefault {
  std::string value;  // "megatron" (reshard) or "" (fetch: the server's --layout)
  std::string help;
};

void AddRequestFlags(ArgParser& flags, const LayoutFlagDefault& layout);

// The request the flags spell. InvalidArgument unless --tp and --rank are given as integers; the
// numbers are taken as given (int64): their range is ValidateShardRequest's (or the caller's).
// The layout and rules are compiled here, so that an unknown preset, an unreadable layout file or
// an invalid --rule is a usage error (exit 2) naming it; `layout` "" (fetch: the server's) checks
// the rules alone.
absl::StatusOr<ShardRequestSpec> RequestFromFlags(const ArgParser& flags);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_
