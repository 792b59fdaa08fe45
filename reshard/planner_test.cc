// Planner tests: targeted cases (stacked, 2-D grids, uneven chunks, vocab padding, qkv
// validation, sections, errors) and a property test over random grids and layouts that runs the
// plan with the CPU executor and compares with a naive "assemble the full tensor, then slice".
#include "reshard/planner.h"

#include <cstring>
#include <limits>
#include <map>
#include <random>

#include "common/shard_request.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "reshard/executor.h"

namespace shardcast {
namespace {

TensorEntry MakeTensor(const std::string& key, Shape shape, std::vector<Box> chunks, DType dtype = DType::kInt32) {
  TensorEntry t;
  t.key = key;
  t.dtype = dtype;
  t.shape = std::move(shape);
  for (Box& b : chunks) t.chunks.push_back(StoredChunk{std::move(b), {}});
  return t;
}

CheckpointMetadata Md(std::vector<TensorEntry> ts) {
  CheckpointMetadata md;
  for (auto& t : ts) {
    md.tensor_index[t.key] = md.tensors.size();
    md.tensors.push_back(std::move(t));
  }
  return md;
}

Layout L(const std::string& text) {
  auto l = Layout::Parse(text);
  EXPECT_TRUE(l.ok()) << l.status();
  return std::move(*l);
}

// Random chunk grid: cut each dim at random points (uneven), optionally keeping some dims whole.
std::vector<Box> RandomGrid(const Shape& shape, std::mt19937& rng) {
  std::vector<std::vector<int64_t>> cuts(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    cuts[d] = {0};
    if (shape[d] > 1 && rng() % 2) {
      for (int64_t x = 1; x < shape[d]; ++x) {
        if (rng() % 3 == 0) cuts[d].push_back(x);
      }
    }
    cuts[d].push_back(shape[d]);
  }
  std::vector<Box> out{Box{}};
  for (size_t d = 0; d < shape.size(); ++d) {
    std::vector<Box> next;
    for (const Box& b : out) {
      for (size_t k = 0; k + 1 < cuts[d].size(); ++k) {
        Box nb = b;
        nb.offsets.push_back(cuts[d][k]);
        nb.sizes.push_back(cuts[d][k + 1] - cuts[d][k]);
        next.push_back(nb);
      }
    }
    out = next;
  }
  return out;
}

// Naive reference: the global index that shard element `e` of rank r holds, or -1 for zero.
int64_t ReferenceSource(const Shape& shape, const Rule& rule, int tp, int r, const Shape& e) {
  Shape g = e;
  const int d = rule.stored_dim();
  const int64_t n = shape.empty() ? 0 : shape[d];
  switch (rule.kind) {
    case Rule::Kind::kSplit:
    case Rule::Kind::kQkv:
      g[d] = r * (n / tp) + e[d];
      break;
    case Rule::Kind::kSections: {
      std::vector<int64_t> sizes = rule.section_sizes;
      if (sizes.empty()) sizes.assign(rule.num_sections, n / rule.num_sections);
      int64_t start = 0, acc = 0;
      for (int64_t s : sizes) {
        if (e[d] < acc + s / tp) {
          g[d] = start + r * (s / tp) + (e[d] - acc);
          break;
        }
        acc += s / tp;
        start += s;
      }
      break;
    }
    case Rule::Kind::kVocab: {
      const int64_t unit = rule.multiple * tp;
      const int64_t part = (n + unit - 1) / unit * unit / tp;
      g[d] = r * part + e[d];
      if (g[d] >= n) return -1;
      break;
    }
    default:
      break;
  }
  int64_t lin = 0;
  for (size_t k = 0; k < shape.size(); ++k) lin = lin * shape[k] + g[k];
  return lin;
}

// Executes `plan` with sources = each stored chunk filled with global linear indices.
std::vector<int32_t> Execute(const ShardPlan& plan) {
  const TensorEntry& t = *plan.tensor;
  std::vector<std::vector<int32_t>> bufs;
  std::vector<SourceBuffer> sources;
  const Shape gstr = ContiguousStrides(t.shape);
  for (const StoredChunk& c : t.chunks) {
    const int64_t n = *NumElements(c.box.sizes);
    std::vector<int32_t> b(n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, lin = 0;
      for (size_t d = c.box.rank(); d-- > 0;) {
        lin += (c.box.offsets[d] + rem % c.box.sizes[d]) * gstr[d];
        rem /= c.box.sizes[d];
      }
      b[i] = static_cast<int32_t>(lin);
    }
    bufs.push_back(std::move(b));
  }
  for (size_t i = 0; i < t.chunks.size(); ++i) sources.push_back(SourceBuffer{bufs[i].data(), t.chunks[i].box});
  std::vector<int32_t> out(plan.num_elements(), -7);  // poisoned
  ShardJob job{&plan, &sources, out.data(), DType::kInt32};
  auto ex = NewCpuExecutor(2);
  absl::Status s = ex->Run({job});
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

void CheckWrittenOnce(const ShardPlan& plan) {
  std::vector<int> hits(plan.num_elements(), 0);
  const Shape st = ContiguousStrides(plan.copy_shape);
  auto mark = [&](const Shape& off, const Shape& sizes) {
    const int64_t n = *NumElements(sizes);
    for (int64_t i = 0; i < n; ++i) {
      int64_t rem = i, lin = 0;
      for (size_t d = sizes.size(); d-- > 0;) {
        lin += (off[d] + rem % sizes[d]) * st[d];
        rem /= sizes[d];
      }
      ++hits[lin];
    }
  };
  for (const CopyOp& op : plan.ops) mark(op.dst_offset, op.src.sizes);
  for (const Box& z : plan.zero_fill) mark(z.offsets, z.sizes);
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << plan.name << " element " << i;
}

TEST(PlanReshard, PropertyRandomGridsAndLayouts) {
  std::mt19937 rng(1234);
  int checked = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const int tp = 1 + rng() % 4;
    const size_t rank = 1 + rng() % 3;
    Shape shape(rank);
    for (auto& s : shape) s = 1 + rng() % 9;
    Rule rule;
    const int kind = rng() % 6;
    const int d = rng() % rank;
    if (kind == 0) {
      rule.kind = Rule::Kind::kReplicate;
    } else if (kind == 1 || kind == 2) {
      rule.kind = kind == 1 ? Rule::Kind::kSplit : Rule::Kind::kQkv;
      rule.dim = kind == 1 ? d : 0;
      shape[rule.dim] = tp * (1 + rng() % 4);
    } else if (kind == 3) {
      rule.kind = Rule::Kind::kSections;
      rule.dim = d;
      const int ns = 1 + rng() % 3;
      if (rng() % 2) {
        rule.num_sections = ns;
        shape[d] = ns * tp * (1 + rng() % 3);
      } else {
        int64_t sum = 0;
        for (int k = 0; k < ns; ++k) {
          rule.section_sizes.push_back(tp * (1 + rng() % 3));
          sum += rule.section_sizes.back();
        }
        rule.num_sections = ns;
        shape[d] = sum;
      }
    } else if (kind == 4) {
      rule.kind = Rule::Kind::kVocab;
      rule.dim = d;
      rule.multiple = 1 + rng() % 3;
    } else {
      // Stacked split: a leading layer axis.
      rule.kind = Rule::Kind::kSplit;
      rule.stacked = true;
      shape.insert(shape.begin(), 1 + rng() % 3);
      rule.dim = d;
      shape[rule.dim + 1] = tp * (1 + rng() % 3);
    }
    CheckpointMetadata md = Md({MakeTensor("t", shape, RandomGrid(shape, rng))});
    Layout layout;
    ASSERT_TRUE(layout.Prepend("t", rule).ok());
    std::vector<Target> targets;
    for (int r = 0; r < tp; ++r) targets.push_back({tp, r});
    SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, layout, targets, {}));
    int64_t total = 0;
    for (int r = 0; r < tp; ++r) {
      ASSERT_EQ(plans[r].shards.size(), 1u);
      const ShardPlan& sp = plans[r].shards[0];
      CheckWrittenOnce(sp);
      std::vector<int32_t> got = Execute(sp);
      const Shape st = ContiguousStrides(sp.copy_shape);
      for (int64_t i = 0; i < static_cast<int64_t>(got.size()); ++i) {
        Shape e(sp.copy_shape.size());
        int64_t rem = i;
        for (size_t k = e.size(); k-- > 0;) {
          e[k] = rem % sp.copy_shape[k];
          rem /= sp.copy_shape[k];
        }
        int64_t want = ReferenceSource(shape, rule, tp, r, e);
        ASSERT_EQ(got[i], want < 0 ? 0 : want) << "rule " << rule.ToString() << " shape " << ShapeToString(shape)
                                               << " tp " << tp << " rank " << r << " elem " << i;
      }
      total += static_cast<int64_t>(sp.num_elements());
      ++checked;
    }
    // Bytes conserved: split-like rules partition the tensor; replicate copies it tp times.
    const int64_t n = *NumElements(shape);
    if (rule.kind == Rule::Kind::kReplicate) EXPECT_EQ(total, n * tp);
    if (rule.kind == Rule::Kind::kSplit || rule.kind == Rule::Kind::kSections || rule.kind == Rule::Kind::kQkv) {
      EXPECT_EQ(total, n);
    }
  }
  EXPECT_GT(checked, 400);
}

TEST(PlanReshard, TwoDGridRowSplit) {
  // Saved as a 2x2 grid; target TP 4 along dim 1 crosses the column boundary.
  CheckpointMetadata md = Md({MakeTensor("w", {4, 8},
                                         {Box{{0, 0}, {2, 4}}, Box{{0, 4}, {2, 4}}, Box{{2, 0}, {2, 4}}, Box{{2, 4}, {2, 4}}})});
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, L("w split:1"), {{2, 1}}, {}));
  const ShardPlan& sp = plans[0].shards[0];
  EXPECT_EQ(sp.shape, (Shape{4, 4}));
  ASSERT_EQ(sp.ops.size(), 2u);  // the right column of chunks
  EXPECT_EQ(sp.ops[0].chunk, 1);
  EXPECT_EQ(sp.ops[1].chunk, 3);
  EXPECT_EQ(sp.ops[1].dst_offset, (Shape{2, 0}));
}

TEST(PlanReshard, UnevenChunksAcrossShardBoundary) {
  CheckpointMetadata md = Md({MakeTensor("w", {10, 2}, {Box{{0, 0}, {3, 2}}, Box{{3, 0}, {7, 2}}})});
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, L("w split:0"), {{2, 0}, {2, 1}}, {}));
  ASSERT_EQ(plans[0].shards[0].ops.size(), 2u);  // rows 0-4: 3 from chunk 0, 2 from chunk 1
  EXPECT_EQ(plans[0].shards[0].ops[1].src, (Box{{3, 0}, {2, 2}}));
  EXPECT_EQ(plans[0].shards[0].ops[1].dst_offset, (Shape{3, 0}));
  ASSERT_EQ(plans[1].shards[0].ops.size(), 1u);
  EXPECT_EQ(plans[1].shards[0].ops[0].src, (Box{{5, 0}, {5, 2}}));
}

TEST(PlanReshard, StackedAndUnstacked) {
  // [L=3, 4, 2] stored as per-layer, per-TP-2 chunks (Megatron torch_dist stacking).
  std::vector<Box> chunks;
  for (int64_t l = 0; l < 3; ++l) {
    for (int64_t r = 0; r < 2; ++r) chunks.push_back(Box{{l, 0, r}, {1, 4, 1}});
  }
  CheckpointMetadata md = Md({MakeTensor("enc.layers.fc2.weight", {3, 4, 2}, chunks)});
  Layout layout = L(R"(.*\.layers\.fc2\.weight split:0@stacked)");
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, layout, {{4, 3}}, {}));
  ASSERT_EQ(plans[0].shards.size(), 1u);
  EXPECT_EQ(plans[0].shards[0].shape, (Shape{3, 1, 2}));  // dim 0 of the layer = stored dim 1
  PlanOptions unstack;
  unstack.unstack = true;
  unstack.renames = {{"enc.", "model.encoder."}};
  SC_ASSERT_OK_AND_ASSIGN(auto un, PlanReshard(md, layout, {{4, 3}}, unstack));
  ASSERT_EQ(un[0].shards.size(), 3u);
  EXPECT_EQ(un[0].shards[1].name, "model.encoder.layers.1.fc2.weight");
  EXPECT_EQ(un[0].shards[1].shape, (Shape{1, 2}));
  for (const ShardPlan& sp : un[0].shards) {
    std::vector<int32_t> got = Execute(sp);
    // Layer l, row 3 of 4, both columns: global index l*8 + 3*2 + c.
    EXPECT_EQ(got, (std::vector<int32_t>{*sp.layer * 8 + 6, *sp.layer * 8 + 7}));
  }
}

TEST(PlanReshard, VocabPadsWithZerosAndTruncates) {
  CheckpointMetadata md = Md({MakeTensor("emb", {5, 2}, {Box{{0, 0}, {5, 2}}})});
  // TP 2, multiple 2: padded to ceil(5/4)*4 = 8 rows, 4 per rank; rank 1 gets row 4 + 3 zero rows.
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, L("emb vocab:0:2"), {{2, 1}}, {}));
  const ShardPlan& sp = plans[0].shards[0];
  EXPECT_EQ(sp.shape, (Shape{4, 2}));
  EXPECT_EQ(Execute(sp), (std::vector<int32_t>{8, 9, 0, 0, 0, 0, 0, 0}));
  // Truncation: a checkpoint padded for a larger multiple gives fewer rows at a smaller one.
  CheckpointMetadata big = Md({MakeTensor("emb", {16, 1}, {Box{{0, 0}, {16, 1}}})});
  SC_ASSERT_OK_AND_ASSIGN(auto t, PlanReshard(big, L("emb vocab:0:4"), {{2, 1}}, {}));
  EXPECT_EQ(t[0].shards[0].shape, (Shape{8, 1}));
}

// Issue 9: a client's vocab multiple near 2^60 overflowed the padding arithmetic (a loader rank
// segfaulted; the CLI wrote wrong shards with exit 0). The planner checks its arithmetic even for
// a Rule that did not come through ParseRule.
Layout WithRule(const std::string& pattern, Rule rule) {
  Layout l;
  EXPECT_TRUE(l.Prepend(pattern, rule).ok());
  return l;
}

TEST(PlanReshard, VocabMultipleOverflowIsRefusedNotWrapped) {
  CheckpointMetadata md = Md({MakeTensor("emb", {5, 2}, {Box{{0, 0}, {5, 2}}})});
  Rule vocab;
  vocab.kind = Rule::Kind::kVocab;
  for (int64_t m : {int64_t{1} << 60, (int64_t{1} << 62) + 1, std::numeric_limits<int64_t>::max()}) {
    vocab.multiple = m;
    for (int tp : {2, 8, 1}) {
      auto p = PlanReshard(md, WithRule("emb", vocab), {{tp, tp - 1}}, {});
      ASSERT_FALSE(p.ok()) << "multiple " << m << " tp " << tp;
      EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
      const std::string msg(p.status().message());
      EXPECT_TRUE(msg.find("overflows") != std::string::npos || msg.find("larger than the tensor") != std::string::npos)
          << msg;
    }
  }
  // Within the parser's range, padding far beyond the tensor is refused instead of allocated.
  vocab.multiple = kMaxVocabMultiple;
  CheckpointMetadata wide = Md({MakeTensor("emb", {5, 4096}, {Box{{0, 0}, {5, 4096}}}, DType::kFloat32)});
  auto p = PlanReshard(wide, WithRule("emb", vocab), {{64, 0}}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("larger than the tensor"), std::string::npos) << p.status();
}

TEST(PlanReshard, SectionSizesOverflowAndTargetsOutOfRange) {
  CheckpointMetadata md = Md({MakeTensor("w", {8}, {Box{{0}, {8}}})});
  Rule sec;
  sec.kind = Rule::Kind::kSections;
  sec.section_sizes = {std::numeric_limits<int64_t>::max(), 9};
  sec.num_sections = 2;
  auto p = PlanReshard(md, WithRule("w", sec), {{2, 0}}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("overflows"), std::string::npos) << p.status();
  sec.section_sizes.clear();
  sec.num_sections = 0;  // would divide by zero
  EXPECT_FALSE(PlanReshard(md, WithRule("w", sec), {{2, 0}}, {}).ok());
  Rule qkv;
  qkv.kind = Rule::Kind::kQkv;
  qkv.heads = 4;
  qkv.groups = 0;  // would divide by zero
  EXPECT_FALSE(PlanReshard(md, WithRule("w", qkv), {{2, 0}}, {}).ok());
  for (Target t : {Target{0, 0}, Target{kMaxTpSize + 1, 0}, Target{std::numeric_limits<int>::max(), 1},
                   Target{2, 2}, Target{2, -1}}) {
    auto bad = PlanReshard(md, Layout(), {t}, {});
    ASSERT_FALSE(bad.ok()) << t.tp_size << " " << t.tp_rank;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(PlanReshard, QkvValidation) {
  // 16 heads, 4 groups, head_dim 2: (16 + 8) * 2 = 48 rows.
  CheckpointMetadata md = Md({MakeTensor("qkv", {48, 4}, {Box{{0, 0}, {48, 4}}})});
  EXPECT_TRUE(PlanReshard(md, L("qkv qkv:16:4"), {{4, 0}}, {}).ok());
  EXPECT_TRUE(PlanReshard(md, L("qkv qkv:16:4"), {{8, 0}}, {}).ok());  // TP > groups, divisor
  auto heads = PlanReshard(md, L("qkv qkv:16:4"), {{3, 0}}, {});
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.status().message().find("heads do not divide by TP 3"), std::string::npos) << heads.status();
  auto rows = PlanReshard(md, L("qkv qkv:16:8"), {{2, 0}}, {});
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("not (heads + 2*groups)"), std::string::npos) << rows.status();
  CheckpointMetadata md2 = Md({MakeTensor("qkv", {72, 4}, {Box{{0, 0}, {72, 4}}})});  // 24 heads, 6 groups, d 2
  auto groups = PlanReshard(md2, L("qkv qkv:24:6"), {{4, 0}}, {});
  ASSERT_FALSE(groups.ok());
  EXPECT_NE(groups.status().message().find("multiple or a divisor"), std::string::npos) << groups.status();
}

TEST(PlanReshard, NonDividingSplitNamesEveryTensor) {
  CheckpointMetadata md = Md({MakeTensor("a", {6, 4}, {Box{{0, 0}, {6, 4}}}), MakeTensor("b", {5}, {Box{{0}, {5}}}),
                              MakeTensor("c", {8}, {Box{{0}, {8}}})});
  auto p = PlanReshard(md, L(". split:0\n(a|b|c) split:0"), {{4, 0}}, {});
  ASSERT_FALSE(p.ok());
  const std::string msg(p.status().message());
  EXPECT_NE(msg.find("2 tensor(s)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a [6, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("b [5]"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("c [8]"), std::string::npos) << msg;
}

TEST(PlanReshard, PrefixRenameAndStrictCheck) {
  CheckpointMetadata md = Md({MakeTensor("model.vision_model.w", {4}, {Box{{0}, {4}}}),
                              MakeTensor("model.language_model.w", {4}, {Box{{0}, {4}}})});
  PlanOptions o;
  o.prefix = "model.vision_model.";
  o.renames = {{"model.vision_model.", "vision."}};
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Layout(), {{1, 0}}, o));
  ASSERT_EQ(plans[0].shards.size(), 1u);
  EXPECT_EQ(plans[0].shards[0].name, "vision.w");
  EXPECT_TRUE(CheckExpected(plans[0], {{"vision.w", Shape{4}}}).ok());
  absl::Status s = CheckExpected(plans[0], {{"vision.w", Shape{2}}, {"vision.b", std::nullopt}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("1 missing"), std::string::npos) << s;
  EXPECT_NE(s.message().find("vision.b"), std::string::npos) << s;
  EXPECT_NE(s.message().find("expected [2], the checkpoint gives [4]"), std::string::npos) << s;
}

TEST(CpuExecutor, CastsLikePyTorch) {
  // fp32 -> bf16 / fp16 round to nearest even; values chosen on rounding boundaries.
  CheckpointMetadata md = Md({MakeTensor("f", {6}, {Box{{0}, {6}}}, DType::kFloat32)});
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Layout(), {{1, 0}}, {}));
  const float in[6] = {1.0f, 1.00390625f /* 1 + 2^-8: tie -> even (1.0) */, 1.01171875f /* tie -> up */, -2.5f,
                       65520.0f /* fp16 overflow -> inf */, 3.0e-8f /* fp16 subnormal */};
  std::vector<SourceBuffer> src{SourceBuffer{in, Box{{0}, {6}}}};
  uint16_t bf[6], hf[6];
  auto ex = NewCpuExecutor(1);
  SC_ASSERT_OK(ex->Run({ShardJob{&plans[0].shards[0], &src, bf, DType::kBFloat16}}));
  SC_ASSERT_OK(ex->Run({ShardJob{&plans[0].shards[0], &src, hf, DType::kFloat16}}));
  EXPECT_EQ(bf[0], 0x3F80);
  EXPECT_EQ(bf[1], 0x3F80);
  EXPECT_EQ(bf[2], 0x3F82);
  EXPECT_EQ(bf[3], 0xC020);
  EXPECT_EQ(hf[0], 0x3C00);
  EXPECT_EQ(hf[3], 0xC100);
  EXPECT_EQ(hf[4], 0x7C00);
  EXPECT_EQ(hf[5], 0x0001);  // 3e-8 rounds to the smallest subnormal (5.96e-8 / 2 < 3e-8)
  // int -> float is refused.
  CheckpointMetadata mi = Md({MakeTensor("i", {2}, {Box{{0}, {2}}}, DType::kInt64)});
  SC_ASSERT_OK_AND_ASSIGN(auto pi, PlanReshard(mi, Layout(), {{1, 0}}, {}));
  int64_t iv[2] = {1, 2};
  std::vector<SourceBuffer> isrc{SourceBuffer{iv, Box{{0}, {2}}}};
  float out[2];
  EXPECT_FALSE(ex->Run({ShardJob{&pi[0].shards[0], &isrc, out, DType::kFloat32}}).ok());
}


// --- GLU fc1 under the megatron preset (issue 10, item 4) ---

Layout Megatron(const std::vector<std::string>& rules = {}) {
  auto text = Layout::PresetText("megatron");
  EXPECT_TRUE(text.ok());
  auto l = Layout::Build(*text, "preset megatron", rules);
  EXPECT_TRUE(l.ok()) << l.status();
  return std::move(*l);
}

// `parts` equal chunks along dim `d` of `shape`, per layer when `stacked` (dim 0 = layers).
std::vector<Box> EqualChunks(const Shape& shape, int d, int64_t parts, bool stacked) {
  std::vector<Box> out;
  const int64_t layers = stacked ? shape[0] : 1;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t p = 0; p < parts; ++p) {
      Box b = FullBox(shape);
      if (stacked) b.offsets[0] = l, b.sizes[0] = 1;
      b.offsets[d] = p * (shape[d] / parts);
      b.sizes[d] = shape[d] / parts;
      out.push_back(b);
    }
  }
  return out;
}

// An MLP saved by Megatron at TP `saved_tp`: fc1 [2F, H] (bias [2F]) in `fc1_parts` dim-0 chunks,
// fc2 [H, F] in `saved_tp` dim-1 chunks; with `layers` > 0 stacked as [L, ...] under `layers.`.
CheckpointMetadata Mlp(int64_t f, int64_t h, int saved_tp, int fc1_parts, int64_t layers = 0) {
  const bool st = layers > 0;
  const std::string pre = st ? "dec.layers.mlp." : "dec.layers.0.mlp.";
  Shape w1{2 * f, h}, b1{2 * f}, w2{h, f};
  if (st) {
    for (Shape* s : {&w1, &b1, &w2}) s->insert(s->begin(), layers);
  }
  const int lead = st ? 1 : 0;
  return Md({MakeTensor(pre + "linear_fc1.weight", w1, EqualChunks(w1, lead, fc1_parts, st)),
             MakeTensor(pre + "linear_fc1.bias", b1, EqualChunks(b1, lead, fc1_parts, st)),
             MakeTensor(pre + "linear_fc2.weight", w2, EqualChunks(w2, lead + 1, saved_tp, st))});
}

// Naive reference for a GLU fc1 shard: gate = rows[:F], up = rows[F:], shard r = [gate_r; up_r],
// as global linear indices of the stored tensor (per layer when stacked).
std::vector<int32_t> GluReference(const Shape& shape, bool stacked, int tp, int r) {
  const int lead = stacked ? 1 : 0;
  const int64_t layers = stacked ? shape[0] : 1, rows = shape[lead], f = rows / 2, part = f / tp;
  int64_t cols = 1;
  for (size_t d = lead + 1; d < shape.size(); ++d) cols *= shape[d];
  std::vector<int64_t> pick;
  for (int64_t i = 0; i < part; ++i) pick.push_back(r * part + i);      // gate_r
  for (int64_t i = 0; i < part; ++i) pick.push_back(f + r * part + i);  // up_r
  std::vector<int32_t> out;
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t row : pick) {
      for (int64_t c = 0; c < cols; ++c) out.push_back(static_cast<int32_t>((l * rows + row) * cols + c));
    }
  }
  return out;
}

const ShardPlan* Find(const RankPlan& p, const std::string& name) {
  for (const ShardPlan& s : p.shards) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

bool HasNote(const RankPlan& p, const std::string& needle) {
  for (const std::string& n : p.notes) {
    if (n.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(GluFc1, SavedAtTp2IsCutPerHalfAtTp124) {
  for (const int64_t layers : {0, 3}) {
    const bool st = layers > 0;
    // F = 8, H = 3, saved at TP 2: 2 sections x 2 writers = 4 dim-0 chunks.
    CheckpointMetadata md = Mlp(8, 3, 2, 4, layers);
    const std::string pre = st ? "dec.layers.mlp." : "dec.layers.0.mlp.";
    for (int tp : {1, 2, 4}) {
      for (int r = 0; r < tp; ++r) {
        SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Megatron(), {{tp, r}}, {}));
        for (const char* param : {"linear_fc1.weight", "linear_fc1.bias"}) {
          const ShardPlan* sp = Find(plans[0], pre + param);
          ASSERT_NE(sp, nullptr) << param;
          EXPECT_TRUE(sp->rule_inferred);
          EXPECT_EQ(sp->rule.ToString(), st ? "sections:0:2@stacked" : "sections:0:2");
          EXPECT_EQ(Execute(*sp), GluReference(sp->tensor->shape, st, tp, r)) << param << " TP " << tp << " rank " << r;
          EXPECT_TRUE(HasNote(plans[0], pre + param + ": " + sp->rule.ToString() +
                                            " inferred from the stored chunk grid (GLU fc1 saved at TP 2"))
              << plans[0].notes.size();
        }
        EXPECT_EQ(Find(plans[0], pre + "linear_fc2.weight")->rule.ToString(), st ? "split:1@stacked" : "split:1");
        EXPECT_EQ(plans[0].notes.size(), 2u);
      }
    }
  }
}

TEST(GluFc1, AnInferredRuleThatCannotCutSaysItWasInferred) {
  // F = 6 saved at TP 2: TP 4 would split 2F = 12 rows, but not the halves of 6.
  CheckpointMetadata md = Mlp(6, 2, 2, 4);
  auto p = PlanReshard(md, Megatron(), {{4, 0}}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("rule sections:0:2 (inferred: GLU fc1 in the stored chunk grid) at TP 4"),
            std::string::npos)
      << p.status();
}

TEST(GluFc1, OrdinarySplitGridKeepsSplit) {
  // Saved at TP 2 without GLU (2 chunks), and at TP 4 without GLU: 4 dim-0 chunks, as a GLU fc1
  // saved at TP 2 would have, but fc2's 4 dim-1 chunks say TP 4.
  for (const auto& [saved_tp, parts] : {std::pair<int, int>{2, 2}, {4, 4}}) {
    CheckpointMetadata md = Mlp(8, 4, saved_tp, parts);
    SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Megatron(), {{2, 1}}, {}));
    const ShardPlan* sp = Find(plans[0], "dec.layers.0.mlp.linear_fc1.weight");
    ASSERT_NE(sp, nullptr);
    EXPECT_FALSE(sp->rule_inferred);
    EXPECT_EQ(sp->rule.ToString(), "split:0");
    EXPECT_TRUE(plans[0].notes.empty()) << plans[0].notes[0];
    // Rank 1 of 2 gets rows [8, 16): the second half, no interleave.
    EXPECT_EQ(Execute(*sp).front(), 8 * 4);
  }
}

TEST(GluFc1, ExplicitRuleOrEditedLayoutWins) {
  CheckpointMetadata md = Mlp(8, 3, 2, 4);
  const std::string key = "dec.layers.0.mlp.linear_fc1.weight";
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Megatron({R"(.*linear_fc1\.(weight|bias)=split:0)"}), {{2, 0}}, {}));
  EXPECT_EQ(Find(plans[0], key)->rule.ToString(), "split:0");
  EXPECT_FALSE(Find(plans[0], key)->rule_inferred);
  EXPECT_TRUE(plans[0].notes.empty());
  // A layout file made from the preset (here: one comment added) states its rules explicitly.
  std::string text = *Layout::PresetText("megatron") + "# edited\n";
  SC_ASSERT_OK_AND_ASSIGN(auto edited, PlanReshard(md, L(text), {{2, 0}}, {}));
  EXPECT_EQ(Find(edited[0], key)->rule.ToString(), "split:0");
  EXPECT_TRUE(edited[0].notes.empty());
}

TEST(GluFc1, SavedAtTp1NotesTheAssumption) {
  CheckpointMetadata md = Mlp(8, 3, 1, 1);  // one chunk each: the grid cannot tell
  const std::string key = "dec.layers.0.mlp.linear_fc1.weight";
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Megatron(), {{2, 0}}, {}));
  EXPECT_EQ(Find(plans[0], key)->rule.ToString(), "split:0");
  ASSERT_EQ(plans[0].notes.size(), 2u);  // weight and bias
  EXPECT_TRUE(HasNote(plans[0], key + ": assumed not gated (split:0)"));
  EXPECT_TRUE(HasNote(plans[0], "--glu yes"));
  // At TP 1 both readings give the whole tensor: nothing to say.
  SC_ASSERT_OK_AND_ASSIGN(auto tp1, PlanReshard(md, Megatron(), {{1, 0}}, {}));
  EXPECT_TRUE(tp1[0].notes.empty());
  // An explicit rule settles it either way.
  for (const char* rule : {"split:0", "sections:0:2"}) {
    SC_ASSERT_OK_AND_ASSIGN(auto ex, PlanReshard(md, Megatron({std::string(R"(.*linear_fc1\.(weight|bias)=)") + rule}),
                                                 {{2, 0}}, {}));
    EXPECT_TRUE(ex[0].notes.empty()) << rule;
    EXPECT_EQ(Find(ex[0], key)->rule.ToString(), rule);
  }
}

TEST(GluFc1, NoSiblingOrOtherGridIsUnknown) {
  // fc1 in 4 chunks but no fc2 to give the saving TP: not inferred, assumption noted.
  CheckpointMetadata md = Md({MakeTensor("m.layers.0.mlp.linear_fc1.weight", {8, 2}, EqualChunks({8, 2}, 0, 4, false))});
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Megatron(), {{2, 0}}, {}));
  EXPECT_EQ(plans[0].shards[0].rule.ToString(), "split:0");
  EXPECT_TRUE(HasNote(plans[0], "assumed not gated"));
  // fc1 also cut along dim 1: not a GLU grid.
  CheckpointMetadata two_d = Mlp(4, 2, 2, 4);
  two_d.tensors[0].chunks.clear();
  for (int64_t p = 0; p < 4; ++p) {
    for (int64_t c = 0; c < 2; ++c) two_d.tensors[0].chunks.push_back(StoredChunk{Box{{p * 2, c}, {2, 1}}, {}});
  }
  SC_ASSERT_OK_AND_ASSIGN(auto p2, PlanReshard(two_d, Megatron(), {{2, 0}}, {}));
  EXPECT_EQ(Find(p2[0], "dec.layers.0.mlp.linear_fc1.weight")->rule.ToString(), "split:0");
}

TEST(PlanReshard, SectionsOnAStackedTensorSuggestStacked) {
  // [L=3, 2F=8, H=2] under sections:0:2 without @stacked: 3 layers do not hold 2 sections.
  CheckpointMetadata md = Md({MakeTensor("dec.layers.mlp.linear_fc1.weight", {3, 8, 2}, {Box{{0, 0, 0}, {3, 8, 2}}})});
  auto p = PlanReshard(md, L(R"(.*linear_fc1\.weight sections:0:2)"), {{2, 0}}, {});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("did you mean sections:0:2@stacked? the tensor may have a leading layer axis of 3"),
            std::string::npos)
      << p.status();
  // A 1-D tensor that does not hold 2 sections gets no such hint.
  CheckpointMetadata flat = Md({MakeTensor("w", {3}, {Box{{0}, {3}}})});
  auto q = PlanReshard(flat, L("w sections:0:2"), {{2, 0}}, {});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message().find("@stacked"), std::string::npos) << q.status();
}

// Box requests: any box of a tensor, from any stored grid, holds exactly the global elements
// [offsets, offsets + sizes), every element written once.
TEST(PlanBoxes, PropertyRandomGridsAndBoxes) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    const size_t rank = 1 + rng() % 3;
    Shape shape(rank);
    for (auto& x : shape) x = 1 + rng() % 9;
    CheckpointMetadata md = Md({MakeTensor("w", shape, RandomGrid(shape, rng))});
    BoxSpec b{"dst", "w", Shape(rank), Shape(rank), ""};
    for (size_t d = 0; d < rank; ++d) {
      b.offsets[d] = rng() % shape[d];
      b.sizes[d] = rng() % (shape[d] - b.offsets[d] + 1);  // zero-sized boxes too
    }
    absl::StatusOr<RankPlan> plan = PlanBoxes(md, {b}, "");
    SC_ASSERT_OK(plan.status());
    ASSERT_EQ(plan->shards.size(), 1u);
    const ShardPlan& sp = plan->shards[0];
    EXPECT_TRUE(sp.box);
    EXPECT_EQ(sp.name, "dst");
    EXPECT_EQ(sp.shape, b.sizes);
    CheckWrittenOnce(sp);
    const std::vector<int32_t> got = Execute(sp);
    const Shape gstr = ContiguousStrides(shape);
    for (size_t i = 0; i < got.size(); ++i) {
      int64_t rem = static_cast<int64_t>(i), lin = 0;
      for (size_t d = rank; d-- > 0;) {
        lin += (b.offsets[d] + rem % b.sizes[d]) * gstr[d];
        rem /= b.sizes[d];
      }
      ASSERT_EQ(got[i], lin) << "iter " << iter << " element " << i << " of " << BoxToString({b.offsets, b.sizes});
    }
  }
}

// SwiGLU's two halves of one key, as Megatron asks for them at TP 2 from a grid saved at TP 4.
TEST(PlanBoxes, TwoBoxesOfOneKeyAcrossChunks) {
  std::vector<Box> grid;
  for (int64_t r = 0; r < 8; ++r) grid.push_back(Box{{r * 2, 0}, {2, 3}});  // 8 chunks of 2 rows
  CheckpointMetadata md = Md({MakeTensor("fc1", {16, 3}, grid)});
  absl::StatusOr<RankPlan> plan = PlanBoxes(md, {BoxSpec{"gate", "fc1", {4, 0}, {4, 3}, ""},
                                                 BoxSpec{"up", "fc1", {12, 0}, {4, 3}, ""}}, "");
  SC_ASSERT_OK(plan.status());
  ASSERT_EQ(plan->shards.size(), 2u);
  EXPECT_EQ(plan->shards[0].ops.size(), 2u);  // rows 4-7: chunks 2 and 3
  EXPECT_EQ(Execute(plan->shards[1])[0], 12 * 3);
  EXPECT_EQ(plan->total_elements_bytes, 2u * 4 * 3 * 4);
}

TEST(PlanBoxes, ListsEveryProblem) {
  CheckpointMetadata md = Md({MakeTensor("a.w", {4, 4}, {Box{{0, 0}, {4, 4}}}),
                              MakeTensor("a.i", {4}, {Box{{0}, {4}}}, DType::kInt64),
                              MakeTensor("a.f", {4}, {Box{{0}, {4}}}, DType::kFloat32)});
  md.bytes_entries.push_back(BytesEntry{"a.extra", {}});
  absl::StatusOr<RankPlan> plan =
      PlanBoxes(md, {BoxSpec{"x", "a.nope", {0}, {1}, ""}, BoxSpec{"y", "a.w", {2, 0}, {3, 4}, ""},
                     BoxSpec{"z", "a.w", {0}, {4}, ""}, BoxSpec{"i", "a.i", {0}, {4}, "bf16"},
                     BoxSpec{"f", "a.f", {0}, {4}, "int8"}, BoxSpec{"e", "a.extra", {}, {}, ""},
                     BoxSpec{"ok", "a.f", {1}, {2}, "bf16"}},
                "a.");
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << plan.status();
  const std::string msg(plan.status().message());
  for (const char* needle : {"6 of 7 boxes cannot be served", "x (key 'a.nope'): no such tensor among the keys",
                             "y (key 'a.w'): box offsets [2, 0] sizes [3, 4] is not inside the tensor's shape [4, 4]",
                             "z (key 'a.w'): box offsets [0] sizes [4] is not inside",
                             "i (key 'a.i'): cannot cast int64 to bfloat16", "f (key 'a.f'): dtype 'int8'",
                             "e (key 'a.extra'): no such tensor (it is a bytes entry, not a tensor)"}) {
    EXPECT_NE(msg.find(needle), std::string::npos) << needle << "\n" << msg;
  }
  // Keys outside the service's prefix are not served; unknown keys alone are NotFound.
  plan = PlanBoxes(md, {BoxSpec{"x", "a.w", {0, 0}, {1, 1}, ""}}, "b.");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound) << plan.status();
  plan = PlanBoxes(md, {BoxSpec{"ok", "a.f", {1}, {2}, "bf16"}}, "a.");
  SC_ASSERT_OK(plan.status());
  EXPECT_EQ(plan->shards[0].cast, DType::kBFloat16);
}

TEST(PlanBoxes, BoundsChunkIntersections) {
  std::vector<Box> grid;
  for (int64_t r = 0; r < 4096; ++r) grid.push_back(Box{{r}, {1}});
  CheckpointMetadata md = Md({MakeTensor("w", {4096}, grid)});
  std::vector<BoxSpec> boxes;
  for (int i = 0; i < 1025; ++i) boxes.push_back(BoxSpec{std::to_string(i), "w", {0}, {4096}, ""});  // 4.2M ops
  absl::StatusOr<RankPlan> plan = PlanBoxes(md, boxes, "");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find("stored chunks in all"), std::string::npos) << plan.status();
}

}  // namespace
}  // namespace shardcast
