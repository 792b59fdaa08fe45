// `shardcast status`, `shardcast fetch` and `shardcast index`: the CLI side of a running shardcastd, through the
// client library.
#ifndef SHARDCAST_CLIENT_CLI_REMOTE_H_
#define SHARDCAST_CLIENT_CLI_REMOTE_H_

#include <string>
#include <vector>

#include "common/json.h"

namespace shardcast::cli {

// The human form of `status --json`.
std::string FormatStatus(const Json& status);

int RunStatus(const std::vector<std::string>& args);
int RunFetch(const std::vector<std::string>& args);
// `shardcast index`: the service's index (tensors and bytes entries it serves).
int RunIndex(const std::vector<std::string>& args);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_REMOTE_H_
