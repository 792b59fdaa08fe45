// Recognising a Megatron GLU (SwiGLU/GeGLU) fc1 from its stored chunk grid.
//
// Megatron-Core saves a gated fc1 ([gate; up] along dim 0, 2F rows) through
// apply_swiglu_sharded_factory: TP rank r writes its gate rows at r*F/T and its up rows at
// F + r*F/T as two separate chunks, so the stored dim-0 grid has 2T equal parts where a plain
// column-parallel tensor has T. T is not in the metadata, so it is read from the sibling
// row-parallel `linear_fc2.weight` of the same MLP (T equal chunks along its dim 1). The
// inference is exact: the tensor must be cut along the rule's dim only (besides the layer axis
// when stacked), fc2 likewise along its dim 1, and both grids must be equal parts.
#ifndef SHARDCAST_RESHARD_GLU_GRID_H_
#define SHARDCAST_RESHARD_GLU_GRID_H_

#include <string>

#include "checkpoint/metadata.h"

namespace shardcast {

struct GluGrid {
  enum class Kind {
    kGated,    // 2T equal dim-0 parts, fc2 in T parts: [gate; up] halves, sections:0:2
    kPlain,    // T equal dim-0 parts with T > 1: an ordinary column-parallel split
    kUnknown,  // the grid cannot tell (one chunk, no fc2 sibling, another grid)
  };
  Kind kind = Kind::kUnknown;
  int saved_tp = 0;  // T, when known
};

// The fc2 weight of the MLP that `fc1_key` (`...linear_fc1.weight` or `.bias`) belongs to;
// "" when the key is not an fc1 weight or bias.
std::string Fc2SiblingKey(const std::string& fc1_key);

// Classifies `fc1` (a tensor of `metadata`): `stacked` says both it and its fc2 sibling carry a
// leading layer axis, so the split dims are 1 (fc1) and 2 (fc2).
GluGrid ClassifyGluGrid(const CheckpointMetadata& metadata, const TensorEntry& fc1, bool stacked);

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_GLU_GRID_H_
