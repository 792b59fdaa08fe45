#include "server/launcher_env.h"

#include "absl/strings/numbers.h"

namespace shardcast {
namespace {

struct Names {
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
  const char* source;
};

constexpr Names kLaunchers[] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
     "Open MPI"},
    {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MPICH Hydra"},
};

std::optional<int> IntVar(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  int out = 0;
  if (v == nullptr || !absl::SimpleAtoi(v, &out)) return std::nullopt;
  return out;
}

}  // namespace

std::optional<LauncherPlacement> PlacementFromEnvironment(const std::function<const char*(const char*)>& getenv) {
  for (const Names& n : kLaunchers) {
    const std::optional<int> rank = IntVar(getenv, n.rank), size = IntVar(getenv, n.size);
    const std::optional<int> local_rank = IntVar(getenv, n.local_rank), local_size = IntVar(getenv, n.local_size);
    if (!rank || !size || !local_rank || !local_size) continue;
    if (*rank < 0 || *rank >= *size || *local_rank < 0 || *local_rank >= *local_size || *local_size > *size) continue;
    return LauncherPlacement{*rank, *size, *local_rank, *local_size, n.source};
  }
  return std::nullopt;
}

bool StartedByALauncher(const std::function<const char*(const char*)>& getenv) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMI_SIZE", "PMIX_RANK",
                           "PMIX_NAMESPACE", "MPI_LOCALNRANKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID"}) {
    if (getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace shardcast
