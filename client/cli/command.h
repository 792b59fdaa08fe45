// The shape of a `shardcast` subcommand: a small object that declares its flags, reads them into
// its own fields (Parse) and does its work (Run), each step returning absl::Status. Execute()
// drives one: `--help`, usage errors (exit 2) and run errors (exit 1) are handled in one place.
#ifndef SHARDCAST_CLIENT_CLI_COMMAND_H_
#define SHARDCAST_CLIENT_CLI_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/args.h"

namespace shardcast::cli {

class Command {
 public:
  virtual ~Command() = default;
  // "reshard": the word after `shardcast`.
  virtual std::string name() const = 0;
  // The synopsis and description `--help` prints.
  virtual std::string usage() const = 0;
  virtual std::string description() const = 0;
  // Declares the command's flags and positionals.
  virtual void AddFlags(ArgParser& flags) const = 0;
  // Reads the parsed flags into the command. An error is a usage error (exit 2).
  virtual absl::Status Parse(const ArgParser& flags) = 0;
  // Does the work, printing its results. An error exits 1.
  virtual absl::Status Run() = 0;
};

// Parses `args` for `command` and runs it: 0 on success or after `--help`; 2 after a usage error,
// 1 after a run error, each as "shardcast NAME: error: MESSAGE" on stderr (escaped for the
// terminal: a message may carry a checkpoint's keys or a server's words).
int Execute(Command& command, const std::vector<std::string>& args);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_COMMAND_H_
