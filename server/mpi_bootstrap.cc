#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/bootstrap.h"

namespace shardcast {
namespace {

class MpiBootstrap : public Bootstrap {
 public:
  MpiBootstrap(int* argc, char*** argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& value,
                                                     std::chrono::milliseconds deadline) override {
    constexpr int kMax = 512;
    if (value.size() >= kMax) return absl::InvalidArgumentError("value too long for the all-gather");
    char mine[kMax] = {};
    std::memcpy(mine, value.data(), value.size());
    std::vector<char> all(static_cast<size_t>(kMax) * size_);
    MPI_Request req;
    MPI_Iallgather(mine, kMax, MPI_CHAR, all.data(), kMax, MPI_CHAR, MPI_COMM_WORLD, &req);
    const auto end = std::chrono::steady_clock::now() + deadline;
    int done = 0;
    while (!done) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) break;
      if (std::chrono::steady_clock::now() > end) {
        return absl::DeadlineExceededError(absl::StrCat("not every loader rank joined within ", deadline.count(), " ms"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * kMax);
    return out;
  }
  void Finalize() override { MPI_Finalize(); }
  [[noreturn]] void Abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; in case it does
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Bootstrap> NewMpiBootstrap(int* argc, char*** argv) { return std::make_unique<MpiBootstrap>(argc, argv); }

}  // namespace shardcast
