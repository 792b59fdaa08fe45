// Execute(): the one driver of every subcommand object.
#include "client/cli/command.h"

#include <iostream>

#include "common/text_escape.h"

namespace shardcast::cli {

int Execute(Command& command, const std::vector<std::string>& args) {
  ArgParser flags("shardcast " + command.name(), command.usage(), command.description());
  command.AddFlags(flags);
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    std::cout << flags.Help();
    return 0;
  }
  if (parsed.ok()) parsed = command.Parse(flags);
  if (!parsed.ok()) {
    std::cerr << "shardcast " << command.name() << ": error: " << EscapeForTerminal(parsed.message()) << "\n";
    return 2;
  }
  const absl::Status ran = command.Run();
  if (!ran.ok()) {
    std::cerr << "shardcast " << command.name() << ": error: " << EscapeForTerminal(ran.message()) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace shardcast::cli
