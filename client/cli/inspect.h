// `shardcast inspect`: what a checkpoint holds, as JSON (the `--json` form) or a human table.
#ifndef SHARDCAST_CLIENT_CLI_INSPECT_H_
#define SHARDCAST_CLIENT_CLI_INSPECT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/reader.h"
#include "common/json.h"

namespace shardcast::cli {

struct InspectOptions {
  std::string prefix;  // select keys starting with this
  std::string key;     // or one exact key
  bool digest = false; // read the selected tensors and add sha256
};

// {"path", "iteration", "tensor_count", "total_bytes", "selected_bytes",
//  "tensors": [{"key", "dtype", "shape", "chunks": [{"offsets", "sizes"}], "bytes"[, "sha256"]}],
//  "bytes_entries": [{"key", "bytes"}]}
// NotFound if --key names no tensor or the prefix selects nothing.
absl::StatusOr<Json> Inspect(CheckpointReader& reader, const InspectOptions& options,
                             const std::function<void(uint64_t)>& progress = nullptr);

// The human-readable form of Inspect's JSON.
std::string FormatInspect(const Json& inspect);

// "1.26 GB", "318.0 MB", "512 B".
std::string HumanBytes(uint64_t bytes);

// Runs the subcommand; returns the process exit code.
int RunInspect(const std::vector<std::string>& args);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_INSPECT_H_
