// A fixed-size thread pool and a ParallelFor that returns the first error.
#ifndef SHARDCAST_COMMON_THREAD_POOL_H_
#define SHARDCAST_COMMON_THREAD_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace shardcast {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();  // finishes queued work, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Schedule(std::function<void()> fn);
  int size() const { return static_cast<int>(workers_.size()); }

 private:
  void Loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// Runs fn(0..n-1) on the pool (inline when pool is null) and waits. Once a call fails, calls not
// yet started are skipped; returns the first error by index order of failure.
absl::Status ParallelFor(ThreadPool* pool, size_t n, const std::function<absl::Status(size_t)>& fn);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_THREAD_POOL_H_
