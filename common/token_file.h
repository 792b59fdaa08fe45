// Reading a job's shared token file (whitespace trimmed), used by shardcastd and by clients.
#ifndef SHARDCAST_COMMON_TOKEN_FILE_H_
#define SHARDCAST_COMMON_TOKEN_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace shardcast {

// NotFound if unreadable; InvalidArgument if empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_TOKEN_FILE_H_
