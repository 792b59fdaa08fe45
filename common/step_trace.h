// StepTrace: with SHARDCAST_TRACE=1 in the environment, one stderr line per traced operation
// giving the time of each of its steps ("ipc: open 0.412 ms copies 1.203 ms ..."), for profiling
// where a receive spends its time (bench/ipc_profile.py). Off (and nearly free) otherwise.
#ifndef SHARDCAST_COMMON_STEP_TRACE_H_
#define SHARDCAST_COMMON_STEP_TRACE_H_

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_format.h"

namespace shardcast {

class StepTrace {
 public:
  explicit StepTrace(const char* what) : on_(std::getenv("SHARDCAST_TRACE") != nullptr), line_(what) {}
  ~StepTrace() {
    if (on_) std::fprintf(stderr, "trace %s\n", line_.c_str());
  }
  StepTrace(const StepTrace&) = delete;
  StepTrace& operator=(const StepTrace&) = delete;

  // The time since the last mark (or the start), under `step`.
  void Mark(const char* step) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    absl::StrAppendFormat(&line_, " %s %.3f ms", step, std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }

 private:
  bool on_;
  std::string line_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_STEP_TRACE_H_
