// The MPI bootstrap. Every MPI call runs on one thread of its own (MPI_THREAD_FUNNELED), so that
// the all-gather can be waited for with a deadline. The rank waits for MPI_Init before it starts
// anything else: MPI_Init changes the process's environment (setenv), and glibc's getenv is not
// safe beside that (a gRPC server's getaddrinfo crashed in getenv while MPI_Init ran on its
// thread, in service_test on the 2-core machine), and CUDA, gRPC and others read the environment.
// When the launcher's environment already says where this rank is (server/launcher_env.h), the
// first call that needs MPI (AllGather) checks that MPI agrees. A process started without a
// launcher is a single rank without MPI (LocalBootstrap).
#include <mpi.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/bootstrap.h"
#include "server/launcher_env.h"

namespace shardcast {
namespace {

class MpiBootstrap : public Bootstrap {
 public:
  explicit MpiBootstrap(std::optional<LauncherPlacement> early) : early_(std::move(early)) {
    thread_ = std::thread([this] { Serve(); });
    WaitInitialized();  // nothing else may run beside MPI_Init's setenv (see the file comment)
  }
  ~MpiBootstrap() override { StopThread(); }

  int rank() const override { return early_ ? early_->rank : mpi_.rank; }
  int world_size() const override { return early_ ? early_->world_size : mpi_.world_size; }
  int local_rank() const override { return early_ ? early_->local_rank : mpi_.local_rank; }
  int local_size() const override { return early_ ? early_->local_size : mpi_.local_size; }

  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& value,
                                                     std::chrono::milliseconds deadline) override {
    constexpr int kMax = 512;
    if (value.size() >= kMax) return absl::InvalidArgumentError("value too long for the all-gather");
    WaitInitialized();
    if (early_ && (early_->rank != mpi_.rank || early_->world_size != mpi_.world_size ||
                   early_->local_rank != mpi_.local_rank || early_->local_size != mpi_.local_size)) {
      return absl::FailedPreconditionError(absl::StrCat(
          early_->source, "'s environment placed this process as rank ", early_->rank, " of ", early_->world_size,
          " (node-local ", early_->local_rank, " of ", early_->local_size, ") but MPI says rank ", mpi_.rank, " of ",
          mpi_.world_size, " (node-local ", mpi_.local_rank, " of ", mpi_.local_size,
          "): start shardcastd with the launcher of the MPI it was built with"));
    }
    absl::StatusOr<std::vector<std::string>> out;
    OnMpiThread([&] {
      char mine[kMax] = {};
      std::memcpy(mine, value.data(), value.size());
      std::vector<char> all(static_cast<size_t>(kMax) * mpi_.world_size);
      MPI_Request req;
      MPI_Iallgather(mine, kMax, MPI_CHAR, all.data(), kMax, MPI_CHAR, MPI_COMM_WORLD, &req);
      const auto end = std::chrono::steady_clock::now() + deadline;
      int done = 0;
      while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (std::chrono::steady_clock::now() > end) {
          out = absl::DeadlineExceededError(absl::StrCat("not every loader rank joined within ", deadline.count(), " ms"));
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      std::vector<std::string> values;
      for (int r = 0; r < mpi_.world_size; ++r) values.emplace_back(all.data() + static_cast<size_t>(r) * kMax);
      out = std::move(values);
    });
    return out;
  }

  void Finalize() override {
    WaitInitialized();
    OnMpiThread([] { MPI_Finalize(); });
    StopThread();
  }

  [[noreturn]] void Abort(int status) override {
    WaitInitialized();
    OnMpiThread([status] { MPI_Abort(MPI_COMM_WORLD, status); });
    std::_Exit(status);  // MPI_Abort does not return; in case it does
  }

 private:
  struct Placement {
    int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  };

  // The MPI thread: MPI_Init, then the calls OnMpiThread hands it, until StopThread.
  void Serve() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    Placement p;
    MPI_Comm_rank(MPI_COMM_WORLD, &p.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p.world_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &p.local_rank);
    MPI_Comm_size(local, &p.local_size);
    MPI_Comm_free(&local);
    std::unique_lock<std::mutex> lock(mu_);
    mpi_ = p;
    initialized_ = true;
    cv_.notify_all();
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      ++tasks_done_;
      cv_.notify_all();
    }
  }

  void WaitInitialized() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return initialized_; });
  }

  // Runs `task` on the MPI thread and waits for it.
  void OnMpiThread(std::function<void()> task) {
    std::unique_lock<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    const uint64_t mine = tasks_done_ + tasks_.size();
    cv_.notify_all();
    cv_.wait(lock, [&] { return tasks_done_ >= mine; });
  }

  void StopThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  const std::optional<LauncherPlacement> early_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool initialized_ = false, stop_ = false;
  Placement mpi_;  // written once by the MPI thread before initialized_
  std::deque<std::function<void()>> tasks_;
  uint64_t tasks_done_ = 0;
  std::thread thread_;
};

// A process started on its own (no launcher's variables): the only rank, without MPI (MPI_Init of
// a singleton costs hundreds of milliseconds and, with Open MPI, a helper daemon).
class LocalBootstrap : public Bootstrap {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& value, std::chrono::milliseconds) override {
    return std::vector<std::string>{value};
  }
  void Finalize() override {}
  [[noreturn]] void Abort(int status) override { std::_Exit(status); }
};

}  // namespace

std::unique_ptr<Bootstrap> NewMpiBootstrap(int* /*argc*/, char*** /*argv*/) {
  const auto getenv = [](const char* name) { return static_cast<const char*>(std::getenv(name)); };
  if (!StartedByALauncher(getenv)) return std::make_unique<LocalBootstrap>();
  return std::make_unique<MpiBootstrap>(PlacementFromEnvironment(getenv));
}

}  // namespace shardcast
