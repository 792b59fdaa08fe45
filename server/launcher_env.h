// Where the launcher placed this process, read from its environment before MPI_Init: Open MPI's
// mpirun (OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK/_LOCAL_SIZE) and MPICH's Hydra (PMI_RANK,
// PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS) say it to every rank. Knowing it early lets a rank
// start its reads while MPI initializes; MpiBootstrap checks it against MPI's own answer (pure).
#ifndef SHARDCAST_SERVER_LAUNCHER_ENV_H_
#define SHARDCAST_SERVER_LAUNCHER_ENV_H_

#include <functional>
#include <optional>
#include <string>

namespace shardcast {

struct LauncherPlacement {
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  std::string source;  // which launcher's variables said so
};

// The placement when one launcher's four variables are all present and consistent (0 <= rank <
// size, 0 <= local_rank < local_size <= size); nullopt otherwise (then MPI has to say).
std::optional<LauncherPlacement> PlacementFromEnvironment(const std::function<const char*(const char*)>& getenv);

// Whether any launcher's variables are set (Open MPI, PMI/PMIx, MPICH, Slurm): when none is, the
// process was started on its own, as a single rank that needs no MPI at all.
bool StartedByALauncher(const std::function<const char*(const char*)>& getenv);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LAUNCHER_ENV_H_
