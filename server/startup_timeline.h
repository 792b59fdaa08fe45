// StartupTimeline: how long each step of a rank's start-up took, from the process's start (static
// initialization) to ready, logged as one "start-up" line per rank. Operators read it to see where
// a slow start went (MPI, CUDA, the metadata, the reads); bench/cold_start.sh reads it to split
// the sidecar's cold start against a plain read of the same files.
#ifndef SHARDCAST_SERVER_STARTUP_TIMELINE_H_
#define SHARDCAST_SERVER_STARTUP_TIMELINE_H_

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shardcast {

class StartupTimeline {
 public:
  using Clock = std::chrono::steady_clock;
  // The timeline starts at the process's start (steps measured from there).
  StartupTimeline();
  // A timeline starting at `start` (tests).
  explicit StartupTimeline(Clock::time_point start) : start_(start), last_(start) {}

  // Records `step` as lasting from the previous mark (or the start) until now. Thread-safe.
  void Mark(const std::string& step);
  // Records `step` with its own duration (a step that ran beside others, e.g. on another thread);
  // does not move the previous mark.
  void Add(const std::string& step, double ms);

  // Milliseconds from the start until now.
  double elapsed_ms() const;

  // Steps on another thread (e.g. loading, beside the main thread's): each Mark records the time
  // since this lane's previous mark, or since it was made.
  class Lane {
   public:
    explicit Lane(StartupTimeline* timeline) : timeline_(timeline), last_(Clock::now()) {}
    void Mark(const std::string& step);

   private:
    StartupTimeline* timeline_;  // may be null: then nothing is recorded
    Clock::time_point last_;
  };

  // "mpi init 120.3 ms, memory space 310.0 ms, ..." in the order recorded.
  std::string Summary() const;
  // Milliseconds from the start to the last mark.
  double total_ms() const;
  std::vector<std::pair<std::string, double>> steps() const;

 private:
  mutable std::mutex mu_;
  Clock::time_point start_, last_;
  std::vector<std::pair<std::string, double>> steps_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_STARTUP_TIMELINE_H_
