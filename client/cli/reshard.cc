#include "client/cli/reshard.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/args.h"
#include "client/cli/device.h"
#include "common/json.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "common/shard_request.h"
#include "common/status_macros.h"
#include "common/text_escape.h"
#include "reshard/layout.h"

namespace shardcast::cli {

absl::Status MaterializeShards(CheckpointReader& reader, const RankPlan& plan, ShardExecutor& executor,
                               std::optional<DType> dtype, uint64_t batch_bytes,
                               const std::function<absl::Status(const ShardPlan&, DType, absl::string_view)>& sink) {
  size_t i = 0;
  while (i < plan.shards.size()) {
    // One batch: shards whose sources and outputs fit the budget (at least one shard).
    struct Work {
      size_t index;     // in plan.shards
      ShardPlan local;  // ops renumbered: op k reads source k
      std::vector<SourceBuffer> sources;
      std::vector<std::unique_ptr<char[]>> source_bytes;
      std::unique_ptr<char[]> out;
      DType out_dtype;
      uint64_t out_bytes;
    };
    std::vector<Work> batch;
    std::vector<BoxRead> reads;
    uint64_t bytes = 0;
    for (; i < plan.shards.size(); ++i) {
      const ShardPlan& sp = plan.shards[i];
      const DType od = OutputDType(sp.tensor->dtype, dtype);
      uint64_t need = sp.num_elements() * ItemSize(od);
      for (const CopyOp& op : sp.ops) need += *NumElements(op.src.sizes) * ItemSize(sp.tensor->dtype);
      if (!batch.empty() && bytes + need > batch_bytes) break;
      bytes += need;
      Work w;
      w.index = i;
      w.local = sp;
      w.out_dtype = od;
      w.out_bytes = sp.num_elements() * ItemSize(od);
      w.out.reset(new char[w.out_bytes ? w.out_bytes : 1]);
      for (size_t k = 0; k < sp.ops.size(); ++k) {
        const uint64_t n = *NumElements(sp.ops[k].src.sizes) * ItemSize(sp.tensor->dtype);
        w.source_bytes.emplace_back(new char[n ? n : 1]);
        w.sources.push_back(SourceBuffer{w.source_bytes.back().get(), sp.ops[k].src});
        w.local.ops[k].chunk = static_cast<int32_t>(k);
      }
      batch.push_back(std::move(w));
    }
    for (Work& w : batch) {
      for (size_t k = 0; k < w.local.ops.size(); ++k) {
        reads.push_back(BoxRead{w.local.tensor, w.local.ops[k].src, static_cast<char*>(const_cast<void*>(w.sources[k].data)),
                                plan.shards[w.index].ops[k].chunk});  // the stored chunk holding the box
      }
    }
    SC_RETURN_IF_ERROR(reader.Read(reads));
    std::vector<ShardJob> jobs;
    for (Work& w : batch) jobs.push_back(ShardJob{&w.local, &w.sources, w.out.get(), w.out_dtype});
    SC_RETURN_IF_ERROR(executor.Run(jobs));
    for (Work& w : batch) {
      // Sinks see the caller's plan (original chunk numbers).
      SC_RETURN_IF_ERROR(sink(plan.shards[w.index], w.out_dtype, absl::string_view(w.out.get(), w.out_bytes)));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status Fail(absl::string_view cmd, const absl::Status& s) {
  std::cerr << "shardcast " << cmd << ": error: " << EscapeForTerminal(s.message()) << "\n";
  return s;
}

// Refuses an output path inside the checkpoint folder: the checkpoint is only ever read.
absl::Status CheckOutsideCheckpoint(const std::string& out, const std::string& ckpt_dir) {
  std::string dir = out.substr(0, out.rfind('/') == std::string::npos ? 0 : out.rfind('/'));
  if (dir.empty()) dir = ".";
  char real[PATH_MAX];
  if (::realpath(dir.c_str(), real) == nullptr) {
    return absl::NotFoundError(absl::StrCat("output folder ", dir, " does not exist"));
  }
  const std::string r = real;
  if (r == ckpt_dir || absl::StartsWith(r, ckpt_dir + "/")) {
    return absl::PermissionDeniedError(
        absl::StrCat("--out ", out, " lies inside the checkpoint folder ", ckpt_dir, ", which shardcast never writes"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunReshard(const std::vector<std::string>& args) {
  ArgParser p("shardcast reshard",
              "shardcast reshard PATH --tp N --rank R [--layout NAME|FILE] [--rule P=R ...] [--prefix P]\n"
              "       [--rename OLD=NEW ...] [--unstack] [--dtype bf16|fp16|fp32] [--device cpu|cuda]\n"
              "       (--out FILE.safetensors | --digest) [--json] [--expect FILE] [--verbose]",
              "Cuts one tensor-parallel rank's shards out of a DCP checkpoint, exactly as Megatron cuts them,\n"
              "whatever TP the checkpoint was saved at. Writes them as safetensors or prints their sha256\n"
              "(C order). Layout rules: 'shardcast layouts show megatron'.");
  p.AddPositional("PATH", "checkpoint folder (DCP, or Megatron save folder)");
  p.AddFlag("tp", "N", "tensor-parallel size");
  p.AddFlag("rank", "R", "tensor-parallel rank, 0..N-1");
  p.AddFlag("layout", "NAME|FILE", "layout preset or file", "megatron");
  p.AddFlag("rule", "PATTERN=RULE", "a rule that takes precedence over the layout", "", true);
  p.AddFlag("prefix", "P", "only keys starting with P");
  p.AddFlag("rename", "OLD=NEW", "rename the name prefix OLD to NEW", "", true);
  p.AddSwitch("unstack", "split stacked (@stacked) tensors into per-layer names ...layers.<i>.<param>");
  p.AddFlag("dtype", "bf16|fp16|fp32", "cast floating-point shards");
  p.AddFlag("device", "cpu|cuda", "where shards are cut", "cpu");
  p.AddFlag("out", "FILE.safetensors", "write the shards to a safetensors file");
  p.AddSwitch("digest", "print the sha256 of each shard");
  p.AddSwitch("json", "print JSON for scripts");
  p.AddFlag("expect", "FILE", "strict mode: JSON list of expected names, or {name: shape}");
  p.AddSwitch("verbose", "list the keys no layout rule matched (replicated by default)");
  p.AddFlag("iteration", "N", "Megatron iteration folder to open");
  p.AddFlag("threads", "N", "parallel reads", "8");
  p.AddFlag("batch", "BYTES", "host memory per batch of shards", "1GiB");
  p.AddSwitch("no-verify-storage-crc", "do not check records' stored CRC-32 (checked when a record is read whole)");
  absl::Status s = p.Parse(args);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  auto usage = [](const absl::Status& st) {
    std::cerr << "shardcast reshard: error: " << st.message() << "\n";
    return 2;
  };
  if (!s.ok()) return usage(s);
  if (!p.Has("tp") || !p.Has("rank")) return usage(absl::InvalidArgumentError("--tp and --rank are required"));
  if (p.Has("out") == p.GetSwitch("digest")) return usage(absl::InvalidArgumentError("give exactly one of --out FILE or --digest"));
  auto tp = p.GetInt("tp");
  auto rank = p.GetInt("rank");
  auto threads = p.GetInt("threads");
  auto batch = p.GetBytes("batch");
  auto iter = p.GetOptionalInt("iteration");
  for (const absl::Status& st : {tp.status(), rank.status(), threads.status(), batch.status(), iter.status()}) {
    if (!st.ok()) return usage(st);
  }
  if (*tp < 1 || *tp > kMaxTpSize) {
    return usage(absl::InvalidArgumentError(absl::StrCat("--tp must be in 1..", kMaxTpSize)));
  }
  if (*rank < 0 || *rank >= *tp) {
    return usage(absl::InvalidArgumentError(absl::StrCat("--rank must be in 0..", *tp - 1, " for --tp ", *tp)));
  }
  std::optional<DType> dtype;
  if (absl::StatusOr<std::optional<DType>> d = ParseCastDType(p.Get("dtype")); d.ok()) {
    dtype = *d;
  } else {
    return usage(absl::InvalidArgumentError("--dtype must be bf16, fp16 or fp32"));
  }
  const std::string device = p.Get("device");
  if (device != "cpu" && device != "cuda") return usage(absl::InvalidArgumentError("--device must be cpu or cuda"));
  PlanOptions po;
  po.prefix = p.Get("prefix");
  po.unstack = p.GetSwitch("unstack");
  for (const std::string& r : p.GetAll("rename")) {
    auto rn = ParseRename(r);
    if (!rn.ok()) return usage(rn.status());
    po.renames.push_back(*rn);
  }
  const bool json = p.GetSwitch("json");

  // From here on errors are about the checkpoint or the layout: exit 1.
  auto run = [&]() -> absl::Status {
    ReaderOptions ro;
    ro.threads = static_cast<int>(*threads);
    ro.iteration = *iter;
    ro.verify_storage_crc = !p.GetSwitch("no-verify-storage-crc");
    absl::StatusOr<std::unique_ptr<CheckpointReader>> reader = CheckpointReader::Open(p.positional(0), ro);
    if (!reader.ok()) return Fail("reshard", reader.status());
    absl::StatusOr<Layout> layout = Layout::Load(p.Get("layout"), p.GetAll("rule"));
    if (!layout.ok()) return Fail("reshard", layout.status());
    auto plans = PlanReshard((*reader)->metadata(), *layout, {Target{static_cast<int>(*tp), static_cast<int>(*rank)}}, po);
    if (!plans.ok()) return Fail("reshard", plans.status());
    const RankPlan& plan = (*plans)[0];
    if (plan.shards.empty()) {
      return Fail("reshard", absl::NotFoundError(absl::StrCat("no tensor selected (prefix '", po.prefix, "')")));
    }
    if (p.GetSwitch("verbose")) {
      for (const ShardPlan& sp : plan.shards) {
        if (!sp.rule_matched) std::cerr << "replicated (no rule matched): " << EscapeForTerminal(sp.key()) << "\n";
      }
    }
    if (p.Has("expect")) {
      absl::StatusOr<std::vector<std::pair<std::string, std::optional<Shape>>>> expected = LoadExpectedNames(p.Get("expect"));
      if (!expected.ok()) return Fail("reshard", expected.status());
      absl::Status st = CheckExpected(plan, *expected);
      if (!st.ok()) return Fail("reshard", st);
    }
    absl::StatusOr<std::unique_ptr<ShardExecutor>> executor = MakeExecutor(device);
    if (!executor.ok()) return Fail("reshard", executor.status());

    std::unique_ptr<SafetensorsWriter> writer;
    if (p.Has("out")) {
      absl::Status st = CheckOutsideCheckpoint(p.Get("out"), (*reader)->resolved().dir);
      if (!st.ok()) return Fail("reshard", st);
      std::vector<SafetensorsWriter::Entry> entries;
      for (const ShardPlan& sp : plan.shards) entries.push_back({sp.name, OutputDType(sp.tensor->dtype, dtype), sp.shape});
      auto w = SafetensorsWriter::Create(p.Get("out"), entries,
                                         {{"tp_size", std::to_string(*tp)}, {"tp_rank", std::to_string(*rank)},
                                          {"checkpoint", (*reader)->resolved().dir}, {"written_by", "shardcast reshard"}});
      if (!w.ok()) return Fail("reshard", w.status());
      writer = std::move(*w);
    }
    Json out = Json::Object();
    out.Set("tp_size", *tp);
    out.Set("tp_rank", *rank);
    out.Set("device", (*executor)->device());
    Json tensors = Json::Array();
    uint64_t total = 0;
    for (const ShardPlan& sp : plan.shards) total += sp.num_elements() * ItemSize(OutputDType(sp.tensor->dtype, dtype));
    ProgressBar bar("resharding", total, !json && ProgressBar::StderrIsTerminal());
    absl::Status st = MaterializeShards(**reader, plan, **executor, dtype, *batch,
                                        [&](const ShardPlan& sp, DType od, absl::string_view bytes) -> absl::Status {
                                          Json t = Json::Object();
                                          t.Set("key", sp.key());
                                          t.Set("name", sp.name);
                                          t.Set("dtype", std::string(DTypeName(od)));
                                          t.Set("shape", Json::ArrayOf(sp.shape));
                                          t.Set("rule", sp.rule_matched ? sp.rule.ToString() : "replicate (default)");
                                          t.Set("bytes", static_cast<uint64_t>(bytes.size()));
                                          if (p.GetSwitch("digest")) t.Set("sha256", Sha256Hex(bytes));
                                          tensors.Append(std::move(t));
                                          bar.Add(bytes.size());
                                          return writer ? writer->Append(bytes.data(), bytes.size()) : absl::OkStatus();
                                        });
    if (!st.ok()) return Fail("reshard", st);
    if (writer) {
      st = writer->Finish();
      if (!st.ok()) return Fail("reshard", st);
    }
    Json opaque = Json::Array();
    for (const BytesEntry* b : plan.opaque) opaque.Append(Json(b->key));
    out.Set("tensors", std::move(tensors));
    out.Set("opaque", std::move(opaque));
    out.Set("bytes", total);
    if (p.Has("out")) out.Set("out", p.Get("out"));
    if (json) {
      std::cout << out.Dump(1) << "\n";
    } else {
      // Names come from the checkpoint: escaped so that none can forge an output line.
      size_t w = 4;
      std::vector<std::string> names;
      for (const Json& t : out.Find("tensors")->items()) {
        names.push_back(EscapeForTerminal(t.Find("name")->as_string()));
        w = std::max(w, names.back().size());
      }
      for (size_t i = 0; i < names.size(); ++i) {
        const Json& t = out.Find("tensors")->items()[i];
        std::vector<int64_t> shape;
        for (const Json& d : t.Find("shape")->items()) shape.push_back(d.as_int());
        std::cout << absl::StrFormat("%-*s  %-9s %-16s %-20s%s\n", w, names[i], t.Find("dtype")->as_string(),
                                     absl::StrCat("[", absl::StrJoin(shape, ","), "]"),
                                     EscapeForTerminal(t.Find("rule")->as_string()),
                                     t.Find("sha256") ? "  " + t.Find("sha256")->as_string() : "");
      }
      std::cout << absl::StrFormat("%d shards for TP rank %d of %d, %.1f MB%s\n", out.Find("tensors")->size(), *rank, *tp,
                                   total / 1e6, p.Has("out") ? absl::StrCat(", written to ", p.Get("out")) : "");
    }
    return absl::OkStatus();
  };
  return run().ok() ? 0 : 1;
}

int RunLayouts(const std::vector<std::string>& args) {
  ArgParser p("shardcast layouts", "shardcast layouts (list | show NAME|FILE)",
              "Lists the built-in layout presets or prints one (PATTERN  RULE per line; first match wins).");
  p.AddPositional("ACTION", "list or show");
  p.AddPositional("NAME", "preset name or layout file (for show)", true);
  absl::Status s = p.Parse(args);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  if (!s.ok()) {
    std::cerr << "shardcast layouts: error: " << s.message() << "\n";
    return 2;
  }
  if (p.positional(0) == "list") {
    for (const std::string& n : Layout::PresetNames()) std::cout << n << "\n";
    return 0;
  }
  if (p.positional(0) != "show") {
    std::cerr << "shardcast layouts: error: unknown action '" << p.positional(0) << "' (list, show)\n";
    return 2;
  }
  auto l = Layout::Load(args.size() > 1 ? args[1] : "megatron", {});
  if (!l.ok()) {
    std::cerr << "shardcast layouts: error: " << l.status().message() << "\n";
    return 1;
  }
  std::cout << "# first match wins; unmatched tensors are replicated\n" << l->ToText();
  return 0;
}

}  // namespace shardcast::cli
