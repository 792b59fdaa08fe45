#include "reshard/planner.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/shard_request.h"
#include "common/status_macros.h"
#include "reshard/glu_grid.h"

namespace shardcast {

uint64_t ShardPlan::num_elements() const {
  uint64_t n = 1;
  for (int64_t s : copy_shape) n *= static_cast<uint64_t>(s);
  return n;
}

DType ShardOutputDType(const ShardPlan& shard, std::optional<DType> request_cast) {
  return OutputDType(shard.tensor->dtype, shard.cast ? shard.cast : request_cast);
}

std::string ShardRuleText(const ShardPlan& shard) {
  if (shard.box) return "box";
  return shard.rule_matched ? shard.rule.ToString() : "replicate (default)";
}

absl::StatusOr<std::pair<std::string, std::string>> ParseRename(const std::string& text) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--rename '", text, "': expected OLD=NEW (a name prefix)"));
  }
  return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
}

namespace {

struct Piece {
  Box src;          // in stored coordinates
  Shape dst_offset; // in copy_shape coordinates
};

struct Cut {
  std::vector<Piece> pieces;
  std::vector<Box> zero_fill;
  Shape copy_shape;
};

std::string ApplyRenames(const std::string& key, const PlanOptions& options) {
  for (const auto& [from, to] : options.renames) {
    if (absl::StartsWith(key, from)) return to + key.substr(from.size());
  }
  return key;
}

// "a.layers.w" -> "a.layers.3.w"
std::string LayerName(const std::string& name, int layer) {
  size_t p = name.rfind(".layers.");
  if (p == std::string::npos) return absl::StrCat(name, ".", layer);
  p += 8;
  return absl::StrCat(name.substr(0, p), layer, ".", name.substr(p));
}

// Overflow-checked int64 arithmetic: rule parameters come from clients (ranges checked by
// ParseRule, but a Rule can be built directly) and sizes from the checkpoint.
absl::Status Overflow(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " overflows 64-bit arithmetic"));
}
bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool CheckedAdd(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

// qkv:H:G: the fused rows must be (heads + 2*groups) * head_dim, and TP must split both the heads
// and the query groups (or replicate groups across ranks). The cut itself is a split.
absl::Status CheckQkv(const Rule& rule, int64_t n, int tp) {
  if (rule.heads <= 0) return absl::OkStatus();
  const int64_t h = rule.heads, g = rule.groups;
  if (g < 1 || h < 1) return absl::InvalidArgumentError(absl::StrCat("qkv:", h, ":", g, ": needs HEADS, GROUPS >= 1"));
  if (n % (h + 2 * g) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("qkv:", h, ":", g, ": ", n, " rows are not (heads + 2*groups) * head_dim = ",
                                                   h + 2 * g, " * d"));
  }
  if (h % tp != 0) return absl::InvalidArgumentError(absl::StrCat("qkv: ", h, " heads do not divide by TP ", tp));
  if (g % tp != 0 && tp % g != 0) {
    return absl::InvalidArgumentError(absl::StrCat("qkv: ", g, " query groups must be a multiple or a divisor of TP ", tp));
  }
  return absl::OkStatus();
}

// split:D: rank r's contiguous 1/tp of dim d.
absl::Status CutSplit(const Shape& shape, int d, int tp, int r, Cut& cut) {
  const int64_t n = shape[d];
  if (n % tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dim ", d, " of size ", n, " does not divide by TP ", tp));
  }
  Box b = FullBox(shape);
  b.offsets[d] = r * (n / tp);
  b.sizes[d] = n / tp;
  cut.copy_shape[d] = n / tp;
  cut.pieces.push_back(Piece{b, Shape(shape.size(), 0)});
  return absl::OkStatus();
}

// The section sizes of sections:D:N (equal) or sections:D:a,b,.. (given), checked to add up to n.
absl::StatusOr<std::vector<int64_t>> SectionSizes(const Rule& rule, int d, int64_t n) {
  std::vector<int64_t> sizes = rule.section_sizes;
  if (sizes.empty()) {
    if (rule.num_sections < 1 || rule.num_sections > kMaxSections) {
      return absl::InvalidArgumentError(absl::StrCat("the section count ", rule.num_sections, " is not in 1..",
                                                     kMaxSections));
    }
    if (n % rule.num_sections != 0) {
      return absl::InvalidArgumentError(absl::StrCat("dim ", d, " of size ", n, " does not hold ",
                                                     rule.num_sections, " equal sections"));
    }
    sizes.assign(rule.num_sections, n / rule.num_sections);
  }
  int64_t sum = 0;
  for (int64_t s : sizes) {
    if (s < 0) return absl::InvalidArgumentError(absl::StrCat("section size ", s, " is negative"));
    if (!CheckedAdd(sum, s, &sum)) return Overflow("the sum of the section sizes");
  }
  if (sum != n) {
    return absl::InvalidArgumentError(absl::StrCat("sections ", absl::StrJoin(sizes, ","), " add up to ", sum,
                                                   " but dim ", d, " has size ", n));
  }
  return sizes;
}

// sections: rank r's 1/tp of every section, packed one after another along dim d.
absl::Status CutSections(const Shape& shape, const Rule& rule, int d, int tp, int r, Cut& cut) {
  const int64_t n = shape[d];
  SC_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes, SectionSizes(rule, d, n));
  int64_t start = 0, dst = 0;
  for (int64_t s : sizes) {
    if (s % tp != 0) {
      return absl::InvalidArgumentError(absl::StrCat("section of size ", s, " (dim ", d, " of size ", n,
                                                     ") does not divide by TP ", tp));
    }
    Box b = FullBox(shape);
    b.offsets[d] = start + r * (s / tp);
    b.sizes[d] = s / tp;
    Shape off(shape.size(), 0);
    off[d] = dst;
    cut.pieces.push_back(Piece{b, off});
    start += s;
    dst += s / tp;
  }
  cut.copy_shape[d] = dst;
  return absl::OkStatus();
}

// A sections rule without @stacked that fails on a tensor it would fit with @stacked (a [L, 2F, H]
// stacked fc1 under sections:0:2): the error says so.
absl::Status WithStackedHint(absl::Status error, const Shape& shape, const Rule& rule, int tp, int r) {
  if (error.ok() || rule.stacked || shape.size() < 2 || rule.dim + 1 >= static_cast<int>(shape.size())) return error;
  Rule stacked = rule;
  stacked.stacked = true;
  Cut probe;
  probe.copy_shape = shape;
  if (!CutSections(shape, stacked, stacked.stored_dim(), tp, r, probe).ok()) return error;
  return absl::InvalidArgumentError(absl::StrCat(error.message(), "; did you mean ", stacked.ToString(),
                                                 "? the tensor may have a leading layer axis of ", shape[0],
                                                 " (Megatron torch_dist stacks layers as `...layers.<param>`)"));
}

// vocab:D:M: padded = ceil(n / (M*tp)) * M*tp; part = padded / tp; rank r gets rows
// [r*part, +part), the rows past n zero-filled.
absl::Status CutVocab(const Shape& shape, const Rule& rule, int d, int tp, int r, Cut& cut) {
  const int64_t n = shape[d];
  if (rule.multiple < 1) return absl::InvalidArgumentError(absl::StrCat("vocab multiple ", rule.multiple, " < 1"));
  int64_t unit, padded, lo, end;
  if (!CheckedMul(rule.multiple, tp, &unit)) return Overflow(absl::StrCat("vocab multiple ", rule.multiple, " * TP ", tp));
  const int64_t units = n / unit + (n % unit != 0 ? 1 : 0);
  if (!CheckedMul(units, unit, &padded)) return Overflow(absl::StrCat("padding ", n, " rows to a multiple of ", unit));
  const int64_t part = padded / tp;
  if (!CheckedMul(r, part, &lo) || !CheckedAdd(lo, part, &end)) return Overflow("the padded vocab rows");
  const int64_t hi = std::min(n, end);
  cut.copy_shape[d] = part;
  if (hi > lo) {
    Box b = FullBox(shape);
    b.offsets[d] = lo;
    b.sizes[d] = hi - lo;
    cut.pieces.push_back(Piece{b, Shape(shape.size(), 0)});
  }
  const int64_t copied = std::max<int64_t>(0, hi - lo);
  if (copied < part) {
    Box z = FullBox(cut.copy_shape);
    z.offsets[d] = copied;
    z.sizes[d] = part - copied;
    cut.zero_fill.push_back(z);
  }
  return absl::OkStatus();
}

// Computes the pieces of rank r's shard. Errors are per tensor (collected by the caller).
absl::StatusOr<Cut> CutTensor(const TensorEntry& t, const Rule& rule, int tp, int r) {
  const Shape& shape = t.shape;
  Cut cut;
  cut.copy_shape = shape;
  // Whole-tensor cases; vocab still pads at TP 1.
  const bool whole = rule.kind == Rule::Kind::kReplicate || rule.kind == Rule::Kind::kOpaque ||
                     (tp == 1 && rule.kind != Rule::Kind::kVocab);
  if (whole) {
    cut.pieces.push_back(Piece{FullBox(shape), Shape(shape.size(), 0)});
    return cut;
  }
  const int d = rule.stored_dim();
  if (rule.stacked && shape.empty()) return absl::InvalidArgumentError("@stacked needs a leading layer axis");
  if (d < 0 || d >= static_cast<int>(shape.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("dim ", d, " is out of range for shape ", ShapeToString(shape)));
  }
  switch (rule.kind) {
    case Rule::Kind::kQkv:
      SC_RETURN_IF_ERROR(CheckQkv(rule, shape[d], tp));
      SC_RETURN_IF_ERROR(CutSplit(shape, d, tp, r, cut));
      return cut;
    case Rule::Kind::kSplit:
      SC_RETURN_IF_ERROR(CutSplit(shape, d, tp, r, cut));
      return cut;
    case Rule::Kind::kSections:
      SC_RETURN_IF_ERROR(WithStackedHint(CutSections(shape, rule, d, tp, r, cut), shape, rule, tp, r));
      return cut;
    case Rule::Kind::kVocab:
      SC_RETURN_IF_ERROR(CutVocab(shape, rule, d, tp, r, cut));
      return cut;
    default:
      break;
  }
  return absl::InternalError("unhandled rule");
}

// Intersects the pieces with the stored chunks.
void AddOps(const TensorEntry& t, const std::vector<Piece>& pieces, std::vector<CopyOp>* ops) {
  for (const Piece& p : pieces) {
    for (size_t c = 0; c < t.chunks.size(); ++c) {
      std::optional<Box> x = Intersect(t.chunks[c].box, p.src);
      if (!x) continue;
      bool empty = false;
      for (int64_t s : x->sizes) empty |= (s == 0);
      if (empty) continue;
      CopyOp op;
      op.chunk = static_cast<int32_t>(c);
      op.dst_offset = p.dst_offset;
      for (size_t d = 0; d < x->rank(); ++d) op.dst_offset[d] += x->offsets[d] - p.src.offsets[d];
      op.src = std::move(*x);
      ops->push_back(std::move(op));
    }
  }
}

// The rule a tensor is cut by, and what the plan should say about it.
struct ChosenRule {
  Rule rule;
  bool matched = false;
  bool inferred = false;
  std::string note;          // "" when there is nothing to say
  bool note_if_tp1 = false;  // the note matters at TP 1 too (an inferred rule is always reported)
};

// The layout's rule, refined for the megatron preset's fc1 default: sections:D:2 when the grid
// shows GLU halves, split:D kept (with a note when the grid cannot tell) otherwise.
ChosenRule ChooseRule(const CheckpointMetadata& md, const Layout& layout, const TensorEntry& t) {
  ChosenRule c;
  const LayoutMatch m = layout.Find(t.key);
  c.matched = m.rule != nullptr;
  if (m.rule) c.rule = *m.rule;
  if (!m.glu_fc1_default || c.rule.kind != Rule::Kind::kSplit) return c;
  const GluGrid grid = ClassifyGluGrid(md, t, c.rule.stacked);
  if (grid.kind == GluGrid::Kind::kPlain) return c;
  const std::string split = c.rule.ToString();
  if (grid.kind == GluGrid::Kind::kGated) {
    c.rule.kind = Rule::Kind::kSections;
    c.rule.num_sections = 2;
    c.inferred = true;
    c.note_if_tp1 = true;
    c.note = absl::StrCat(t.key, ": ", c.rule.ToString(), " inferred from the stored chunk grid (GLU fc1 saved at TP ",
                          grid.saved_tp, ": ", 2 * grid.saved_tp, " dim-", c.rule.stored_dim(),
                          " chunks); pass --glu no or --rule to override");
    return c;
  }
  Rule gated = c.rule;
  gated.kind = Rule::Kind::kSections;
  gated.num_sections = 2;
  c.note = absl::StrCat(t.key, ": assumed not gated (", split,
                        "), the stored chunk grid cannot tell; if the model uses SwiGLU/GeGLU pass --glu yes (or --rule '",
                        t.key, "=", gated.ToString(), "'); --glu no confirms ", split);
  return c;
}

}  // namespace

absl::StatusOr<std::vector<RankPlan>> PlanReshard(const CheckpointMetadata& md, const Layout& layout,
                                                  const std::vector<Target>& targets, const PlanOptions& options) {
  for (const Target& tg : targets) {
    if (tg.tp_size < 1 || tg.tp_size > kMaxTpSize || tg.tp_rank < 0 || tg.tp_rank >= tg.tp_size) {
      return absl::InvalidArgumentError(absl::StrCat("bad target: rank ", tg.tp_rank, " of TP ", tg.tp_size));
    }
  }
  std::vector<RankPlan> plans(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) plans[i].target = targets[i];
  std::vector<std::string> errors;
  for (const TensorEntry& t : md.tensors) {
    if (!absl::StartsWith(t.key, options.prefix)) continue;
    const ChosenRule chosen = ChooseRule(md, layout, t);
    const Rule& rule = chosen.rule;
    const std::string name = ApplyRenames(t.key, options);
    const bool unstack = options.unstack && rule.stacked && !t.shape.empty();
    std::map<int, std::string> failed_for_tp;  // one error per (tensor, tp size)
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      const Target& tg = targets[ti];
      if (failed_for_tp.count(tg.tp_size)) continue;
      if (!chosen.note.empty() && (tg.tp_size > 1 || chosen.note_if_tp1)) plans[ti].notes.push_back(chosen.note);
      absl::StatusOr<Cut> cut = CutTensor(t, rule, tg.tp_size, tg.tp_rank);
      if (!cut.ok()) {
        failed_for_tp[tg.tp_size] = std::string(cut.status().message());
        errors.push_back(absl::StrCat("  ", t.key, " ", ShapeToString(t.shape), " rule ", rule.ToString(),
                                      chosen.inferred ? " (inferred: GLU fc1 in the stored chunk grid)" : "", " at TP ",
                                      tg.tp_size, ": ", cut.status().message()));
        continue;
      }
      // The shard's size, checked: the padding of a vocab rule can grow a shard past the tensor.
      int64_t elements = 1, shard_bytes = 0;
      bool overflow = false;
      for (int64_t s : cut->copy_shape) overflow |= s < 0 || !CheckedMul(elements, s, &elements);
      overflow |= !CheckedMul(elements, static_cast<int64_t>(ItemSize(t.dtype)), &shard_bytes);
      if (overflow || static_cast<uint64_t>(shard_bytes) > t.nbytes() + kMaxPaddingBytes) {
        failed_for_tp[tg.tp_size] = "too large";
        errors.push_back(absl::StrCat("  ", t.key, " ", ShapeToString(t.shape), " rule ", rule.ToString(), " at TP ",
                                      tg.tp_size, ": the padded shard ", ShapeToString(cut->copy_shape), " would be more than ",
                                      kMaxPaddingBytes, " bytes larger than the tensor"));
        continue;
      }
      const int layers = unstack ? static_cast<int>(t.shape[0]) : 1;
      for (int l = 0; l < layers; ++l) {
        ShardPlan sp;
        sp.tensor = &t;
        sp.rule = rule;
        sp.rule_matched = chosen.matched;
        sp.rule_inferred = chosen.inferred;
        sp.copy_shape = cut->copy_shape;
        std::vector<Piece> pieces = cut->pieces;
        if (unstack) {
          sp.layer = l;
          sp.name = LayerName(name, l);
          sp.copy_shape[0] = 1;
          // Restrict every piece to layer l (pieces span the whole layer axis) and land it at 0.
          for (Piece& p : pieces) {
            p.src.offsets[0] = l;
            p.src.sizes[0] = 1;
          }
          for (Box z : cut->zero_fill) {
            z.sizes[0] = 1;
            sp.zero_fill.push_back(z);
          }
          sp.shape.assign(sp.copy_shape.begin() + 1, sp.copy_shape.end());
        } else {
          sp.name = name;
          sp.zero_fill = cut->zero_fill;
          sp.shape = sp.copy_shape;
        }
        AddOps(t, pieces, &sp.ops);
        plans[ti].total_elements_bytes += sp.num_elements() * ItemSize(t.dtype);
        plans[ti].shards.push_back(std::move(sp));
      }
    }
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(errors.size(), " tensor(s) cannot be cut as the layout says:\n",
                                                   absl::StrJoin(errors, "\n"),
                                                   "\nFix the TP size, or give these keys another rule with --rule 'PATTERN=RULE'."));
  }
  if (options.include_opaque) {
    for (RankPlan& p : plans) {
      for (const BytesEntry& b : md.bytes_entries) {
        if (absl::StartsWith(b.key, options.prefix)) p.opaque.push_back(&b);
      }
    }
  }
  return plans;
}

namespace {

// The plan of one box, or the problem with it (`not_found`: the key is not served).
struct BoxOutcome {
  std::optional<ShardPlan> shard;
  std::string problem;
  bool not_found = false;
};

BoxOutcome PlanBox(const CheckpointMetadata& md, const BoxSpec& b, absl::string_view prefix) {
  BoxOutcome out;
  const std::string what = absl::StrCat(b.name.substr(0, 200), " (key '", b.key.substr(0, 200), "')");
  const TensorEntry* t = absl::StartsWith(b.key, prefix) ? md.FindTensor(b.key) : nullptr;
  if (t == nullptr) {
    out.not_found = true;
    out.problem = absl::StrCat(what, ": no such tensor",
                               md.FindBytes(b.key) ? " (it is a bytes entry, not a tensor)" : "",
                               prefix.empty() ? "" : absl::StrCat(" among the keys this service holds (prefix '", prefix, "')"));
    return out;
  }
  Box box{b.offsets, b.sizes};
  if (box.rank() != t->shape.size() || !Contains(FullBox(t->shape), box)) {
    out.problem = absl::StrCat(what, ": box ", BoxToString(box), " is not inside the tensor's shape ",
                               ShapeToString(t->shape));
    return out;
  }
  absl::StatusOr<std::optional<DType>> cast = ParseCastDType(b.dtype);
  if (!cast.ok()) {
    out.problem = absl::StrCat(what, ": ", cast.status().message());
    return out;
  }
  if (*cast && !CanCast(t->dtype, **cast)) {
    out.problem = absl::StrCat(what, ": cannot cast ", DTypeName(t->dtype), " to ", DTypeName(**cast),
                               " (casts: float32, bfloat16, float16)");
    return out;
  }
  ShardPlan sp;
  sp.tensor = t;
  sp.name = b.name;
  sp.box = true;
  sp.cast = *cast;
  sp.shape = b.sizes;
  sp.copy_shape = b.sizes;
  AddOps(*t, {Piece{box, Shape(box.rank(), 0)}}, &sp.ops);
  out.shard = std::move(sp);
  return out;
}

}  // namespace

absl::StatusOr<RankPlan> PlanBoxes(const CheckpointMetadata& md, const std::vector<BoxSpec>& boxes,
                                   absl::string_view prefix) {
  RankPlan plan;
  std::vector<std::string> problems;
  bool all_not_found = true;
  size_t ops = 0;
  for (const BoxSpec& b : boxes) {
    BoxOutcome o = PlanBox(md, b, prefix);
    if (!o.shard) {
      problems.push_back(std::move(o.problem));
      all_not_found &= o.not_found;
      continue;
    }
    ops += o.shard->ops.size();
    if (ops > kMaxBoxCopyOps) {
      return absl::InvalidArgumentError(absl::StrCat("the boxes intersect more than ", kMaxBoxCopyOps,
                                                     " stored chunks in all (README: Request limits); split the request"));
    }
    plan.total_elements_bytes += o.shard->num_elements() * ItemSize(o.shard->tensor->dtype);
    plan.shards.push_back(std::move(*o.shard));
  }
  if (problems.empty()) return plan;
  std::string msg = absl::StrCat(problems.size(), " of ", boxes.size(), " boxes cannot be served (nothing was sent):");
  for (size_t i = 0; i < problems.size() && i < 50; ++i) absl::StrAppend(&msg, "\n  ", problems[i]);
  if (problems.size() > 50) absl::StrAppend(&msg, "\n  ... and ", problems.size() - 50, " more");
  return all_not_found ? absl::NotFoundError(msg) : absl::InvalidArgumentError(msg);
}

absl::Status CheckExpected(const RankPlan& plan,
                           const std::vector<std::pair<std::string, std::optional<Shape>>>& expected) {
  std::map<std::string, const ShardPlan*> have;
  for (const ShardPlan& s : plan.shards) have[s.name] = &s;
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> wanted;
  for (const auto& [name, shape] : expected) {
    wanted.insert(name);
    auto it = have.find(name);
    if (it == have.end()) {
      missing.push_back(name);
    } else if (shape && *shape != it->second->shape) {
      mismatched.push_back(absl::StrCat(name, ": expected ", ShapeToString(*shape), ", the checkpoint gives ",
                                        ShapeToString(it->second->shape), " (key ", it->second->key(), ", rule ",
                                        it->second->rule.ToString(), ")"));
    }
  }
  for (const auto& [name, s] : have) {
    if (!wanted.count(name)) unexpected.push_back(name);
  }
  if (missing.empty() && mismatched.empty() && unexpected.empty()) return absl::OkStatus();
  std::string msg = "the checkpoint does not match the expected names (strict mode):";
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    absl::StrAppend(&msg, "\n", v.size(), " ", what, ":");
    for (size_t i = 0; i < v.size() && i < 50; ++i) absl::StrAppend(&msg, "\n  ", v[i]);
    if (v.size() > 50) absl::StrAppend(&msg, "\n  ... and ", v.size() - 50, " more");
  };
  list("missing (expected, not in the checkpoint)", missing);
  list("unexpected (in the checkpoint, not expected)", unexpected);
  list("shape mismatches", mismatched);
  return absl::FailedPreconditionError(msg);
}

}  // namespace shardcast
