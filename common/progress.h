// A progress bar on stderr for long work, drawn only when stderr is a terminal.
#ifndef SHARDCAST_COMMON_PROGRESS_H_
#define SHARDCAST_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace shardcast {

class ProgressBar {
 public:
  // `total` in bytes; `enabled` = false draws nothing (e.g. --json or not a terminal).
  ProgressBar(std::string label, uint64_t total, bool enabled);
  ~ProgressBar();  // clears the line

  void Add(uint64_t done_bytes);

  // True when stderr is a terminal.
  static bool StderrIsTerminal();

 private:
  void Draw(bool force);
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_PROGRESS_H_
