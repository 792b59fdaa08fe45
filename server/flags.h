// shardcastd's command line: the flags (with their --help text) and their conversion into
// ServerOptions, apart from main() so that the conversion is unit-tested (flags_test.cc). Every
// error names the flag and is returned, never printed here.
#ifndef SHARDCAST_SERVER_FLAGS_H_
#define SHARDCAST_SERVER_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/args.h"
#include "common/log.h"
#include "server/server.h"

namespace shardcast {

// A parser that knows every shardcastd flag.
ArgParser NewServerArgParser();

// ServerOptions from parsed flags: InvalidArgument naming the flag for a bad value or a missing
// --checkpoint; --token-file and the TLS files are read here (their errors name the file).
absl::StatusOr<ServerOptions> ServerOptionsFromFlags(const ArgParser& flags);

// --log-level, else $SHARDCAST_LOG_LEVEL, else info: InvalidArgument naming the flag's values.
absl::StatusOr<LogLevel> LogLevelFromFlags(const ArgParser& flags);
// --log-format, else $SHARDCAST_LOG_FORMAT, else text.
absl::StatusOr<LogFormat> LogFormatFromFlags(const ArgParser& flags);

// Whether the whole service stays on loopback (--listen and the data-plane host are loopback):
// then MPI's start-up transport is kept off the network too (main sets OMPI_MCA_btl).
absl::StatusOr<bool> LoopbackOnly(const ServerOptions& options);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_FLAGS_H_
