// PreparedShard and PreparedRequest: the shards a loader rank has cut (or aliased) for one
// request, with the buffers that hold them. What the ShardCache keeps and the data plane sends.
#ifndef SHARDCAST_SERVER_PREPARED_REQUEST_H_
#define SHARDCAST_SERVER_PREPARED_REQUEST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/box.h"
#include "common/dtype.h"
#include "server/memory_space.h"
#include "server/slab_arena.h"

namespace shardcast {

struct PreparedShard {
  std::string name, key, rule;
  DType dtype = DType::kFloat32;
  Shape shape;
  uint64_t nbytes = 0;
  uint32_t crc32c = 0;
  int owner = 0;
  // Non-owning views into the memory space, only on the owner: the shard's bytes, and the start
  // of the allocation they lie in (the tensors' slab or the request's, for CUDA IPC export).
  const void* data = nullptr;
  const void* allocation = nullptr;
  // `allocation` lives until the service exits (the tensors' slab, or a block of the rank's
  // SlabArena): a CUDA IPC client may keep it mapped.
  bool resident = false;
};

struct PreparedRequest {
  std::string id;
  std::string description;              // "layout megatron, TP 2 rank 1, prefix ..., 12 shards"
  std::vector<PreparedShard> shards;    // every shard of the request, in plan order
  std::vector<std::string> opaque;
  std::vector<std::string> notes;       // the plan's notes (RankPlan::notes), for the manifest
  uint64_t owned_bytes = 0;             // bytes of shards this rank holds (not aliases)
  // The cut shards' memory, given back with the request: a range of the rank's SlabArena (GPU),
  // or an allocation of its own (host memory); or none.
  ArenaSlab arena_slab;
  std::vector<Buffer> allocations;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_PREPARED_REQUEST_H_
