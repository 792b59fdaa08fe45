// LoadProgress: how far a loader rank (or the whole service) is in reading its tensors, from
// payload bytes only (what TensorLoader has put in place), with a percent that never exceeds 100
// and an ETA from the rate so far. Pure arithmetic; the Loader and the Coordinator fill it in.
#ifndef SHARDCAST_SERVER_LOAD_PROGRESS_H_
#define SHARDCAST_SERVER_LOAD_PROGRESS_H_

#include <cstdint>
#include <vector>

namespace shardcast {

struct LoadProgress {
  uint64_t done = 0;           // payload bytes in place
  uint64_t total = 0;          // payload bytes to load
  double percent = 0;          // 0..100
  double eta_seconds = -1;     // -1: unknown (nothing done yet); 0: finished
};

// One rank's progress after `elapsed_seconds` of loading. `done` is clamped to `total`;
// `finished` (loaded) gives 100% and ETA 0 whatever the numbers (an empty rank included).
LoadProgress RankProgress(uint64_t done, uint64_t total, double elapsed_seconds, bool finished);

// The service's progress: sums of done and total; ETA the largest of the ranks' (they load in
// parallel), unknown if any unfinished rank's is unknown.
LoadProgress ServiceProgress(const std::vector<LoadProgress>& ranks);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LOAD_PROGRESS_H_
