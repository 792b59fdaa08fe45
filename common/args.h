// A small command-line parser for the `shardcast` subcommands: `--flag value`, `--flag=value`,
// boolean `--flag`, repeated flags, positional arguments and a generated `--help`.
#ifndef SHARDCAST_COMMON_ARGS_H_
#define SHARDCAST_COMMON_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

class ArgParser {
 public:
  ArgParser(std::string command, std::string usage, std::string description)
      : command_(std::move(command)), usage_(std::move(usage)), description_(std::move(description)) {}

  // Declares a flag taking a value (`--name VALUE`); `repeated` collects every occurrence.
  void AddFlag(const std::string& name, const std::string& value_name, const std::string& help,
               const std::string& default_value = "", bool repeated = false);
  // Declares a boolean switch (`--name`).
  void AddSwitch(const std::string& name, const std::string& help);
  // Declares a positional argument (required unless `optional`).
  void AddPositional(const std::string& name, const std::string& help, bool optional = false);

  // InvalidArgument with a message naming the bad argument. `--help` sets help_requested().
  absl::Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  std::string Help() const;

  bool Has(const std::string& name) const;
  std::string Get(const std::string& name) const;  // value or default
  std::vector<std::string> GetAll(const std::string& name) const;
  bool GetSwitch(const std::string& name) const { return Has(name); }
  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  absl::StatusOr<std::optional<int64_t>> GetOptionalInt(const std::string& name) const;
  // Accepts plain bytes or K/M/G/KiB/MiB/GiB suffixes.
  absl::StatusOr<uint64_t> GetBytes(const std::string& name) const;
  const std::string& positional(size_t i) const { return positional_values_[i]; }

 private:
  struct Flag {
    std::string name, value_name, help, default_value;
    bool is_switch = false;
    bool repeated = false;
  };
  const Flag* Find(const std::string& name) const;

  std::string command_, usage_, description_;
  std::vector<Flag> flags_;
  std::vector<std::pair<std::string, std::string>> positionals_;  // name, help
  size_t required_positionals_ = 0;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_values_;
  bool help_requested_ = false;
};

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_ARGS_H_
