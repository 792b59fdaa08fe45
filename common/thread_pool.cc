#include "common/thread_pool.h"

#include <atomic>
#include <memory>

namespace shardcast {

ThreadPool::ThreadPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Schedule(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void ThreadPool::Loop() {
  while (true) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

absl::Status ParallelFor(ThreadPool* pool, size_t n, const std::function<absl::Status(size_t)>& fn) {
  if (pool == nullptr || n <= 1) {
    for (size_t i = 0; i < n; ++i) {
      absl::Status s = fn(i);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  struct State {
    std::mutex mu;
    std::condition_variable done_cv;
    size_t remaining;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    absl::Status first_error;
  };
  auto st = std::make_shared<State>();
  st->remaining = n;
  // One task per worker pulling indices keeps the queue short for large n.
  const size_t tasks = std::min<size_t>(n, static_cast<size_t>(pool->size()));
  for (size_t t = 0; t < tasks; ++t) {
    pool->Schedule([st, &fn, n] {
      size_t finished = 0;
      for (size_t i = st->next++; i < n; i = st->next++) {
        if (!st->failed.load()) {
          absl::Status s = fn(i);
          if (!s.ok()) {
            std::lock_guard<std::mutex> lock(st->mu);
            if (!st->failed.exchange(true)) st->first_error = s;
          }
        }
        ++finished;
      }
      std::lock_guard<std::mutex> lock(st->mu);
      st->remaining -= finished;
      if (st->remaining == 0) st->done_cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(st->mu);
  st->done_cv.wait(lock, [&] { return st->remaining == 0; });
  return st->first_error;
}

}  // namespace shardcast
