#include "client/cli/device.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "reshard/cuda_executor.h"

namespace shardcast::cli {

absl::StatusOr<std::unique_ptr<ShardExecutor>> MakeExecutor(const std::string& device) {
  if (device == "cpu") return NewCpuExecutor(4);
  if (device == "cuda") return NewCudaStagingExecutor(0);
  return absl::InvalidArgumentError(absl::StrCat("unknown device '", device, "' (cpu, cuda)"));
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
