// The CUDA IPC receiver's checks of a server's export, which run before any handle is opened:
// hostile or broken exports are refused with DataLoss naming the peer, on a machine without a GPU
// (a check that let one through would reach cudaIpcOpenMemHandle and fail differently).
#include "transport/device_plane.h"

#include "transport/cuda_ipc.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

v1::IpcExport Export(int handles, const std::vector<std::tuple<std::string, uint32_t, uint64_t, uint64_t>>& shards) {
  v1::IpcExport e;
  for (int i = 0; i < handles; ++i) e.add_handles(std::string(64, 'h'));
  for (const auto& [name, region, offset, nbytes] : shards) {
    v1::IpcShard* s = e.add_shards();
    s->set_name(name);
    s->set_region(region);
    s->set_offset(offset);
    s->set_nbytes(nbytes);
  }
  return e;
}

absl::Status ReceiveFrom(v1::IpcExport exported) {
  char a[16], b[8];
  IpcShardReceiver receiver(/*device=*/0, std::move(exported), "loader rank 1 (h:1)");
  return receiver.Receive({{"a", a, sizeof(a)}, {"b", b, sizeof(b)}}, DataPlaneClock::now() + std::chrono::seconds(5));
}

TEST(IpcShardReceiver, RefusesExportsThatDoNotNameEachRequestedShardOnce) {
  struct Case {
    const char* what;
    v1::IpcExport exported;
    const char* says;
  } cases[] = {
      {"unrequested", Export(1, {{"a", 0, 0, 16}, {"c", 0, 16, 8}}), "unrequested or mis-sized shard 'c'"},
      {"mis-sized", Export(1, {{"a", 0, 0, 16}, {"b", 0, 16, 9}}), "unrequested or mis-sized shard 'b'"},
      {"twice", Export(1, {{"a", 0, 0, 16}, {"a", 0, 16, 16}, {"b", 0, 32, 8}}), "shard 'a'"},
      {"missing", Export(1, {{"a", 0, 0, 16}}), "exported 1 of 2 shards"},
      {"offset wraps", Export(1, {{"a", 0, UINT64_MAX - 3, 16}, {"b", 0, 0, 8}}), "shard 'a'"},
  };
  for (Case& c : cases) {
    const absl::Status s = ReceiveFrom(std::move(c.exported));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.what << ": " << s;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << c.what << ": " << s;
    EXPECT_NE(s.message().find("loader rank 1"), std::string::npos) << c.what << ": " << s;
  }
}

TEST(IpcShardReceiver, RefusesHandlesNoShardUsesAndRegionsBeyondTheHandles) {
  // A hostile server could otherwise make the client open (map) a million allocations.
  absl::Status s = ReceiveFrom(Export(1000, {{"a", 0, 0, 16}, {"b", 0, 16, 8}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("1000 IPC handles, some used by no shard"), std::string::npos) << s;
  s = ReceiveFrom(Export(1, {{"a", 0, 0, 16}, {"b", 7, 0, 8}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("region 7 of 1 handles"), std::string::npos) << s;
}

TEST(IpcShardReceiver, RefusesResidentFlagsThatDoNotMatchTheHandles) {
  v1::IpcExport e = Export(1, {{"a", 0, 0, 16}, {"b", 0, 16, 8}});
  e.add_resident(true);
  e.add_resident(false);
  const absl::Status s = ReceiveFrom(std::move(e));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("1 IPC handles but 2 resident flags"), std::string::npos) << s;
}

TEST(IpcMappings, StartsEmpty) {
  IpcMappings m;
  EXPECT_EQ(m.size(), 0u);
  // A malformed handle is refused before the driver sees it (no GPU here).
  absl::StatusOr<void*> got = m.Get(0, "short");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
  EXPECT_EQ(m.size(), 0u);
}

}  // namespace
}  // namespace shardcast
