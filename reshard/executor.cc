#include "reshard/executor.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"

namespace shardcast {
namespace {

int FloatKindOf(DType d) {
  switch (d) {
    case DType::kFloat32: return static_cast<int>(cast::FloatKind::kFloat32);
    case DType::kBFloat16: return static_cast<int>(cast::FloatKind::kBFloat16);
    case DType::kFloat16: return static_cast<int>(cast::FloatKind::kFloat16);
    default: return -1;
  }
}

int64_t DenseOffsetElems(const Shape& dims, const Shape& origin, const Shape& at) {
  const Shape strides = ContiguousStrides(dims);
  int64_t off = 0;
  for (size_t d = 0; d < dims.size(); ++d) off += (at[d] - origin[d]) * strides[d];
  return off;
}

}  // namespace

absl::StatusOr<std::vector<CopyDesc>> BuildCopyDescs(const ShardJob& job) {
  const ShardPlan& p = *job.plan;
  const TensorEntry& t = *p.tensor;
  if (!CanCast(t.dtype, job.dst_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("key '", t.key, "': cannot cast ", DTypeName(t.dtype), " to ",
                                                   DTypeName(job.dst_dtype), " (casts: float32, bfloat16, float16)"));
  }
  const size_t rank = p.copy_shape.size();
  if (rank > static_cast<size_t>(kMaxCopyRank)) {
    return absl::UnimplementedError(absl::StrCat("key '", t.key, "': rank ", rank, " exceeds ", kMaxCopyRank));
  }
  const Shape dst_strides = ContiguousStrides(p.copy_shape);
  const bool casting = t.dtype != job.dst_dtype;
  std::vector<CopyDesc> out;
  for (const CopyOp& op : p.ops) {
    if (job.sources == nullptr || op.chunk < 0 || static_cast<size_t>(op.chunk) >= job.sources->size() ||
        (*job.sources)[op.chunk].data == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("key '", t.key, "': no source buffer for chunk ", op.chunk));
    }
    const SourceBuffer& s = (*job.sources)[op.chunk];
    if (s.box.rank() != rank || !Contains(s.box, op.src)) {
      return absl::FailedPreconditionError(absl::StrCat("key '", t.key, "': source buffer ", BoxToString(s.box),
                                                        " does not hold ", BoxToString(op.src)));
    }
    CopyDesc c;
    c.rank = static_cast<int>(rank);
    const Shape src_strides = ContiguousStrides(s.box.sizes);
    for (size_t d = 0; d < rank; ++d) {
      c.extent[d] = op.src.sizes[d];
      c.src_stride[d] = src_strides[d];
      c.dst_stride[d] = dst_strides[d];
    }
    c.src_item = static_cast<int>(ItemSize(t.dtype));
    c.dst_item = static_cast<int>(ItemSize(job.dst_dtype));
    c.src = static_cast<const char*>(s.data) + DenseOffsetElems(s.box.sizes, s.box.offsets, op.src.offsets) * c.src_item;
    c.dst = static_cast<char*>(job.dst) + DenseOffsetElems(p.copy_shape, Shape(rank, 0), op.dst_offset) * c.dst_item;
    if (casting) {
      c.src_kind = FloatKindOf(t.dtype);
      c.dst_kind = FloatKindOf(job.dst_dtype);
    }
    CoalesceCopyDesc(&c);
    out.push_back(c);
  }
  for (const Box& z : p.zero_fill) {
    CopyDesc c;
    c.rank = static_cast<int>(rank);
    for (size_t d = 0; d < rank; ++d) {
      c.extent[d] = z.sizes[d];
      c.src_stride[d] = 0;
      c.dst_stride[d] = dst_strides[d];
    }
    c.src_item = c.dst_item = static_cast<int>(ItemSize(job.dst_dtype));
    c.dst = static_cast<char*>(job.dst) + DenseOffsetElems(p.copy_shape, Shape(rank, 0), z.offsets) * c.dst_item;
    CoalesceCopyDesc(&c);
    out.push_back(c);
  }
  return out;
}

namespace {

class CpuExecutor : public ShardExecutor {
 public:
  explicit CpuExecutor(int threads) : pool_(threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr) {}

  absl::Status Run(const std::vector<ShardJob>& jobs) override {
    std::vector<CopyDesc> descs;
    for (const ShardJob& j : jobs) {
      SC_ASSIGN_OR_RETURN(std::vector<CopyDesc> d, BuildCopyDescs(j));
      descs.insert(descs.end(), d.begin(), d.end());
    }
    return ParallelFor(pool_.get(), descs.size(), [&](size_t i) {
      RunCopyDescOnHost(descs[i]);
      return absl::OkStatus();
    });
  }
  std::string device() const override { return "cpu"; }

 private:
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<ShardExecutor> NewCpuExecutor(int threads) { return std::make_unique<CpuExecutor>(threads); }

}  // namespace shardcast
