// ParseDeviceFlag, MakeExecutor and strict mode's expected-names file.
#include "client/cli/device.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "reshard/cuda_executor.h"

namespace shardcast::cli {

absl::StatusOr<DeviceFlag> ParseDeviceFlag(const std::string& text) {
  constexpr int kMaxDeviceIndex = 1023;
  if (text == "cpu") return DeviceFlag{false, 0};
  if (text == "cuda") return DeviceFlag{true, 0};
  int index = -1;
  if (absl::StartsWith(text, "cuda:") && absl::SimpleAtoi(text.substr(5), &index) && index >= 0 &&
      index <= kMaxDeviceIndex && text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return DeviceFlag{true, index};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device '", text.substr(0, 64), "': expected cpu, cuda (GPU 0) or cuda:N (GPU N)"));
}

absl::StatusOr<std::unique_ptr<ShardExecutor>> MakeExecutor(const DeviceFlag& device) {
  if (!device.cuda) return NewCpuExecutor(4);
  return NewCudaStagingExecutor(device.index);
}

absl::StatusOr<std::vector<std::pair<std::string, std::optional<Shape>>>> LoadExpectedNames(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --expect file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<Json> j = Json::Parse(ss.str());
  if (!j.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", j.status().message()));
  std::vector<std::pair<std::string, std::optional<Shape>>> out;
  if (j->is_array()) {
    for (const Json& n : j->items()) {
      if (!n.is_string()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a list of names"));
      out.emplace_back(n.as_string(), std::nullopt);
    }
  } else if (j->is_object()) {
    for (const auto& [name, shape] : j->members()) {
      if (shape.is_null()) {
        out.emplace_back(name, std::nullopt);
        continue;
      }
      if (!shape.is_array()) return absl::InvalidArgumentError(absl::StrCat(path, ": shape of '", name, "' is not a list"));
      Shape s;
      for (const Json& d : shape.items()) s.push_back(d.as_int());
      out.emplace_back(name, s);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON list or object"));
  }
  return out;
}

}  // namespace shardcast::cli
