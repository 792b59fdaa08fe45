// How loader ranks find each other at start-up: rank, world size, node-local rank (GPU binding)
// and an all-gather of each rank's data-plane address. The MPI implementation (mpi_bootstrap.cc)
// is the only code that includes mpi.h; after start-up no MPI call is made, so a dead peer can
// never block a rank inside MPI (liveness is watched over gRPC with deadlines).
#ifndef SHARDCAST_SERVER_BOOTSTRAP_H_
#define SHARDCAST_SERVER_BOOTSTRAP_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

class Bootstrap {
 public:
  virtual ~Bootstrap() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;  // ranks on this node
  // Every rank's value, by rank. DeadlineExceeded if some rank does not join within `deadline`.
  virtual absl::StatusOr<std::vector<std::string>> AllGather(const std::string& value,
                                                             std::chrono::milliseconds deadline) = 0;
  // Called once at clean exit (MPI_Finalize); skipped after a failure, where a dead peer could
  // make finalization wait.
  virtual void Finalize() = 0;
  // Ends the whole job with `status` (MPI_Abort): the launcher exits with it even where it
  // ignores its ranks' exit statuses (mpirun --mca orte_abort_on_non_zero_status 0). Does not
  // return.
  [[noreturn]] virtual void Abort(int status) = 0;
};

// The bootstrap of a process started by an MPI launcher (mpirun, srun, Hydra): MPI on a thread of
// its own, the placement known early from the launcher's environment where it says it. A process
// started on its own (no launcher's variables) is the only rank, and makes no MPI call at all.
std::unique_ptr<Bootstrap> NewMpiBootstrap(int* argc, char*** argv);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_BOOTSTRAP_H_
