// `shardcast`: the command-line tool. Dispatches to a subcommand; each lives in its own file.
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/inspect.h"
#include "client/cli/remote.h"
#include "client/cli/reshard.h"
#include "common/version.h"

namespace {

constexpr char kUsage[] =
    "usage: shardcast <command> [args]\n\n"
    "Reads PyTorch Distributed Checkpoints natively and serves tensor-parallel shards.\n\n"
    "commands:\n"
    "  inspect PATH    list a checkpoint's tensors (dtype, shape, chunks, bytes; --digest, --json)\n"
    "  reshard PATH    cut one TP rank's shards (--tp N --rank R; --out FILE.safetensors | --digest)\n"
    "  layouts         list the layout presets, or show one\n"
    "  status          state of a running shardcastd (--server ADDR; --json, --watch, --wait-ready S)\n"
    "  fetch           receive a TP rank's shards from a running shardcastd (--server ADDR --tp N --rank R)\n"
    "  index           tensors and bytes entries a running shardcastd serves (--server ADDR; --json)\n\n"
    "Run 'shardcast <command> --help' for a command's flags; 'shardcast --version' for the version.\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
    std::cout << "shardcast " << shardcast::kVersion << "\n";
    return 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "inspect") return shardcast::cli::RunInspect(args);
  if (cmd == "reshard") return shardcast::cli::RunReshard(args);
  if (cmd == "layouts") return shardcast::cli::RunLayouts(args);
  if (cmd == "status") return shardcast::cli::RunStatus(args);
  if (cmd == "fetch") return shardcast::cli::RunFetch(args);
  if (cmd == "index") return shardcast::cli::RunIndex(args);
  std::cerr << "shardcast: unknown command '" << cmd << "'\n\n" << kUsage;
  return 2;
}
