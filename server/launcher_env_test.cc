#include "server/launcher_env.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

std::optional<LauncherPlacement> From(const std::map<std::string, std::string>& env) {
  return PlacementFromEnvironment([&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(LauncherEnv, OpenMpiAndHydraSayWhereTheRankIs) {
  auto ompi = From({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                    {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  ASSERT_TRUE(ompi.has_value());
  EXPECT_EQ(ompi->rank, 5);
  EXPECT_EQ(ompi->world_size, 8);
  EXPECT_EQ(ompi->local_rank, 1);
  EXPECT_EQ(ompi->local_size, 4);
  EXPECT_EQ(ompi->source, "Open MPI");
  auto hydra = From({{"PMI_RANK", "0"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "2"}});
  ASSERT_TRUE(hydra.has_value());
  EXPECT_EQ(hydra->world_size, 2);
  EXPECT_EQ(hydra->source, "MPICH Hydra");
}

TEST(LauncherEnv, MissingOrInconsistentVariablesLeaveItToMpi) {
  EXPECT_FALSE(From({}).has_value());
  EXPECT_FALSE(From({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}).has_value());  // no local ones
  EXPECT_FALSE(From({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}}).has_value());  // rank out of range
  EXPECT_FALSE(From({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}}).has_value());  // not a number
  EXPECT_FALSE(From({{"PMI_RANK", "0"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "3"}})
                   .has_value());  // more ranks on the node than in the job
}

TEST(LauncherEnv, AProcessStartedOnItsOwnSeesNoLauncher) {
  auto started = [](const std::map<std::string, std::string>& env) {
    return StartedByALauncher([&env](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  };
  EXPECT_FALSE(started({}));
  EXPECT_FALSE(started({{"HOME", "/root"}, {"CUDA_VISIBLE_DEVICES", "0"}}));
  EXPECT_TRUE(started({{"OMPI_COMM_WORLD_SIZE", "1"}}));
  EXPECT_TRUE(started({{"PMIX_RANK", "0"}}));
  EXPECT_TRUE(started({{"SLURM_PROCID", "0"}}));  // srun or a batch step: MPI decides
}

}  // namespace
}  // namespace shardcast
