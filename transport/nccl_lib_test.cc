// NcclLib on any machine: loading NCCL by path and asking its version needs no GPU.
#include "transport/nccl_lib.h"

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(NcclLib, LoadsByPathAndReportsItsVersion) {
  auto lib = NcclLib::Load("/usr/local/cuda/lib64/libnccl.so.2");
  ASSERT_TRUE(lib.ok()) << lib.status();
  EXPECT_GE((*lib)->version, 22000);
  EXPECT_EQ((*lib)->path, "/usr/local/cuda/lib64/libnccl.so.2");
}

TEST(NcclLib, MissingLibraryIsANamedError) {
  auto lib = NcclLib::Load("/nonexistent/libnccl.so.2");
  ASSERT_FALSE(lib.ok());
  EXPECT_EQ(lib.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(lib.status().message().find("SHARDCAST_NCCL_LIBRARY"), std::string::npos);
}

TEST(NcclLib, VersionMismatchNamesBothVersionsAndTheFix) {
  EXPECT_EQ(NcclLib::VersionString(22809), "2.28.9");
  EXPECT_EQ(NcclLib::VersionString(22803), "2.28.3");
  absl::Status s = NcclVersionMismatch(22803, "/usr/lib/x86_64-linux-gnu/libnccl.so.2", 22809);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("shardcastd uses NCCL 2.28.3"), std::string::npos) << s;
  EXPECT_NE(s.message().find("this client uses NCCL 2.28.9"), std::string::npos) << s;
  EXPECT_NE(s.message().find("--nccl-lib"), std::string::npos) << s;
}

}  // namespace
}  // namespace shardcast
