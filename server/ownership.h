// Which loader rank owns which tensor. Pure and deterministic: every rank computes the same
// assignment from the same metadata, so no message is needed to agree on it.
//
// NOTE [Why whole tensors]
// The unit of ownership is a whole tensor, not a stored chunk: the owner reads every chunk of
// its tensors and holds each tensor complete, so it can cut any shard of any layout alone and no
// loader rank ever has to send pieces to another. Tensors are dealt largest first to the rank
// with the fewest bytes so far (LPT), which balances bytes read within the size of the largest
// tensor; ties go to the lowest rank.
#ifndef SHARDCAST_SERVER_OWNERSHIP_H_
#define SHARDCAST_SERVER_OWNERSHIP_H_

#include <vector>

#include "checkpoint/metadata.h"

namespace shardcast {

// owners[i] is the rank (0..world_size-1) that owns tensors[i].
std::vector<int> AssignOwners(const std::vector<const TensorEntry*>& tensors, int world_size);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_OWNERSHIP_H_
