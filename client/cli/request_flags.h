// The flags that spell a request (common/shard_request.h) on the command line, declared once and
// read once for `reshard` (cut locally) and `fetch` (asked of shardcastd): --tp, --rank,
// --layout, --rule, --strict-rules, --glu, --prefix, --rename, --unstack, --dtype, and --boxes
// FILE (a box request instead of the TP layout flags).
#ifndef SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_
#define SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_

#include <string>
#include <vector>

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
// With --boxes, the request is the file's boxes (and --dtype); any TP layout flag beside it is a
// usage error naming it.
// `--glu yes|no` becomes the fc1 rules of Layout::GluRules, in front of which the --rule flags
// still take precedence.
absl::StatusOr<ShardRequestSpec> RequestFromFlags(const ArgParser& flags);

// Prints a plan's or a manifest's notes (a GLU fc1 rule inferred, or assumed not gated) to
// stderr once, as one warning naming the tensors and the flags that settle it; nothing when
// there are none. The notes may come from a server: escaped for the terminal.
void WarnAboutNotes(const std::vector<std::string>& notes);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_REQUEST_FLAGS_H_
