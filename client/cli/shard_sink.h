// Where the shards of `reshard` and `fetch` go, one after the other in plan order: a safetensors
// file (--out; written to FILE.tmp and renamed when complete), each shard's sha256 (--digest),
// and the report of every shard, printed as JSON (--json) or by the command for humans.
#ifndef SHARDCAST_CLIENT_CLI_SHARD_SINK_H_
#define SHARDCAST_CLIENT_CLI_SHARD_SINK_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/args.h"
#include "common/json.h"
#include "common/safetensors.h"

namespace shardcast::cli {

struct OutputFlags {
  std::string out;      // "" unless --out
  bool digest = false;  // --digest
  bool json = false;    // --json
};

// --out FILE.safetensors, --digest, --json.
void AddOutputFlags(ArgParser& flags);
// InvalidArgument unless exactly one of --out and --digest is given.
absl::StatusOr<OutputFlags> OutputFromFlags(const ArgParser& flags);

class ShardSink {
 public:
  // Opens the safetensors file for `entries` (in the order Add will see them) under --out.
  static absl::StatusOr<std::unique_ptr<ShardSink>> Open(const OutputFlags& flags,
                                                         const std::vector<SafetensorsWriter::Entry>& entries,
                                                         const std::map<std::string, std::string>& metadata);

  // One shard: `entry` (its report: name, dtype, shape, ...) gets "sha256" under --digest and is
  // kept; `bytes` are appended to the file under --out.
  absl::Status Add(Json entry, absl::string_view bytes);
  // Completes the file (renamed into place). Call once, after the last Add.
  absl::Status Finish();

  const OutputFlags& flags() const { return flags_; }
  // The reports of the shards added so far, in order.
  Json TakeTensors() { return std::move(tensors_); }

  // The report as JSON, one line per member (--json), on stdout.
  static void PrintJson(const Json& report);

 private:
  explicit ShardSink(OutputFlags flags) : flags_(std::move(flags)), tensors_(Json::Array()) {}

  OutputFlags flags_;
  std::unique_ptr<SafetensorsWriter> writer_;
  Json tensors_;
};

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_SHARD_SINK_H_
