// Small helpers shared by the reshard-style subcommands: the executor for --device, and the
// expected-names file of strict mode.
#ifndef SHARDCAST_CLIENT_CLI_DEVICE_H_
#define SHARDCAST_CLIENT_CLI_DEVICE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/box.h"
#include "reshard/executor.h"

namespace shardcast::cli {

// What --device names: host memory, or a CUDA device by index.
struct DeviceFlag {
  bool cuda = false;
  int index = 0;  // the GPU when `cuda`
};

// "cpu", "cuda" (GPU 0) or "cuda:N" (N a GPU index, 0..1023): InvalidArgument naming the forms.
absl::StatusOr<DeviceFlag> ParseDeviceFlag(const std::string& text);

// "cpu": the reference executor; "cuda[:N]": the CUDA executor staging host buffers through that
// GPU (Unavailable, saying so, on machines without a GPU).
absl::StatusOr<std::unique_ptr<ShardExecutor>> MakeExecutor(const DeviceFlag& device);

// Strict mode input: a JSON list of names, or an object {name: shape} (shape may be null).
absl::StatusOr<std::vector<std::pair<std::string, std::optional<Shape>>>> LoadExpectedNames(const std::string& path);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_DEVICE_H_
