// `shardcast reshard` (a command object: flags -> plan -> executor -> ShardSink) and `shardcast layouts`;
// MaterializeShards, the batched reader -> executor -> sink loop.
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
#include "client/cli/command.h"
#include "client/cli/device.h"
#include "client/cli/request_flags.h"
#include "client/cli/shard_sink.h"
#include "client/cli/unused_rules.h"
#include "common/args.h"
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
      const DType od = ShardOutputDType(sp, dtype);
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

// The human form of reshard's report: one line per shard (names escaped: they come from the
// checkpoint, and none may forge an output line), then a summary.
void PrintReshardTable(const Json& report, const std::string& out_path) {
  const Json& tensors = *report.Find("tensors");
  size_t width = 4;
  std::vector<std::string> names;
  for (const Json& t : tensors.items()) {
    names.push_back(EscapeForTerminal(t.Find("name")->as_string()));
    width = std::max(width, names.back().size());
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const Json& t = tensors.items()[i];
    std::vector<int64_t> shape;
    for (const Json& d : t.Find("shape")->items()) shape.push_back(d.as_int());
    std::cout << absl::StrFormat("%-*s  %-9s %-16s %-20s%s\n", width, names[i], t.Find("dtype")->as_string(),
                                 absl::StrCat("[", absl::StrJoin(shape, ","), "]"),
                                 EscapeForTerminal(t.Find("rule")->as_string()),
                                 t.Find("sha256") ? "  " + t.Find("sha256")->as_string() : "");
  }
  std::cout << absl::StrFormat("%d shards for TP rank %d of %d, %.1f MB%s\n", tensors.size(),
                               report.Find("tp_rank")->as_int(), report.Find("tp_size")->as_int(),
                               report.Find("bytes")->as_uint() / 1e6,
                               out_path.empty() ? "" : absl::StrCat(", written to ", out_path));
}

// `shardcast reshard`: read the checkpoint, plan one TP rank, cut its shards, hand them to the sink.
class ReshardCommand final : public Command {
 public:
  std::string name() const override { return "reshard"; }
  std::string usage() const override {
    return "shardcast reshard PATH --tp N --rank R [--layout NAME|FILE] [--rule P=R ...] [--glu yes|no] [--prefix P]\n"
           "       [--rename OLD=NEW ...] [--unstack] [--dtype bf16|fp16|fp32] [--device cpu|cuda]\n"
           "       (--out FILE.safetensors | --digest) [--json] [--expect FILE] [--verbose]";
  }
  std::string description() const override {
    return "Cuts one tensor-parallel rank's shards out of a DCP or safetensors checkpoint, exactly as Megatron cuts them,\n"
           "whatever TP the checkpoint was saved at. Writes them as safetensors or prints their sha256\n"
           "(C order). Layout rules: 'shardcast layouts show megatron'.";
  }
  void AddFlags(ArgParser& p) const override;
  absl::Status Parse(const ArgParser& p) override;
  absl::Status Run() override;

 private:
  absl::StatusOr<RankPlan> Plan(const CheckpointReader& reader) const;
  absl::Status CheckPlan(const RankPlan& plan) const;
  absl::StatusOr<std::unique_ptr<ShardSink>> OpenSink(const CheckpointReader& reader, const RankPlan& plan) const;
  uint64_t OutputBytes(const RankPlan& plan) const;

  std::string path_;
  ShardRequestSpec request_;
  std::optional<DType> dtype_;
  PlanOptions plan_options_;
  OutputFlags output_;
  DeviceFlag device_;
  std::string expect_;  // "" unless --expect
  bool strict_rules_ = false;
  std::vector<std::string> user_rules_;  // --rule as given (not --glu's): the ones checked for use
  bool verbose_ = false;
  ReaderOptions reader_options_;
  uint64_t batch_bytes_ = 0;
};

void ReshardCommand::AddFlags(ArgParser& p) const {
  p.AddPositional("PATH", "checkpoint: DCP folder, Megatron save folder, safetensors folder or .safetensors file");
  AddRequestFlags(p, {"megatron", "layout preset or file"});
  p.AddFlag("device", "cpu|cuda[:N]", "where shards are cut (cuda: GPU 0; cuda:N: GPU N)", "cpu");
  AddOutputFlags(p);
  p.AddFlag("expect", "FILE", "strict mode: JSON list of expected names, or {name: shape}");
  p.AddSwitch("verbose", "list the keys no layout rule matched (replicated by default)");
  p.AddFlag("iteration", "N", "Megatron iteration folder to open");
  p.AddFlag("threads", "N", "parallel reads", "8");
  p.AddFlag("batch", "BYTES", "host memory per batch of shards", "1GiB");
  p.AddSwitch("no-verify-storage-crc", "do not check records' stored CRC-32 (checked when a record is read whole)");
}

absl::Status ReshardCommand::Parse(const ArgParser& p) {
  path_ = p.positional(0);
  SC_ASSIGN_OR_RETURN(request_, RequestFromFlags(p));
  SC_ASSIGN_OR_RETURN(output_, OutputFromFlags(p));
  SC_ASSIGN_OR_RETURN(const int64_t threads, p.GetInt("threads"));
  SC_ASSIGN_OR_RETURN(batch_bytes_, p.GetBytes("batch"));
  SC_ASSIGN_OR_RETURN(reader_options_.iteration, p.GetOptionalInt("iteration"));
  reader_options_.threads = static_cast<int>(threads);
  reader_options_.verify_storage_crc = !p.GetSwitch("no-verify-storage-crc");
  // No server checks this request: the ranges are checked here, naming the flags.
  if (!request_.is_box_request() && request_.tp_size < 1 || request_.tp_size > kMaxTpSize) {
    return absl::InvalidArgumentError(absl::StrCat("--tp must be in 1..", kMaxTpSize));
  }
  if (!request_.is_box_request() && (request_.tp_rank < 0 || request_.tp_rank >= request_.tp_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank must be in 0..", request_.tp_size - 1, " for --tp ", request_.tp_size));
  }
  absl::StatusOr<std::optional<DType>> dtype = ParseCastDType(request_.dtype);
  if (!dtype.ok()) return absl::InvalidArgumentError("--dtype must be bf16, fp16 or fp32");
  dtype_ = *dtype;
  SC_ASSIGN_OR_RETURN(device_, ParseDeviceFlag(p.Get("device")));
  strict_rules_ = p.GetSwitch("strict-rules");
  user_rules_ = p.GetAll("rule");
  plan_options_.prefix = request_.prefix;
  plan_options_.unstack = request_.unstack;
  for (const std::string& r : request_.renames) {
    SC_ASSIGN_OR_RETURN(auto rename, ParseRename(r));
    plan_options_.renames.push_back(std::move(rename));
  }
  expect_ = p.Get("expect");
  verbose_ = p.GetSwitch("verbose");
  return absl::OkStatus();
}

absl::StatusOr<RankPlan> ReshardCommand::Plan(const CheckpointReader& reader) const {
  if (request_.is_box_request()) return PlanBoxes(reader.metadata(), request_.boxes, "");
  SC_ASSIGN_OR_RETURN(const Layout layout, Layout::Load(request_.layout, request_.rules));
  const Target target{static_cast<int>(request_.tp_size), static_cast<int>(request_.tp_rank)};
  SC_ASSIGN_OR_RETURN(std::vector<RankPlan> plans, PlanReshard(reader.metadata(), layout, {target}, plan_options_));
  RankPlan plan = std::move(plans[0]);
  if (plan.shards.empty()) {
    return absl::NotFoundError(absl::StrCat("no tensor selected (prefix '", plan_options_.prefix, "')"));
  }
  return plan;
}

// --verbose's list of unmatched keys, unused --rules (warned of; an error with --strict-rules) and
// strict mode (--expect), before any byte moves.
absl::Status ReshardCommand::CheckPlan(const RankPlan& plan) const {
  if (verbose_) {
    for (const ShardPlan& sp : plan.shards) {
      if (!sp.box && !sp.rule_matched) std::cerr << "replicated (no rule matched): " << EscapeForTerminal(sp.key()) << "\n";
    }
  }
  std::vector<std::string> keys;
  for (const ShardPlan& sp : plan.shards) keys.push_back(sp.key());
  SC_ASSIGN_OR_RETURN(const std::vector<UnusedRule> unused, FindUnusedRules(user_rules_, keys));
  SC_RETURN_IF_ERROR(ReportUnusedRules(unused, strict_rules_));
  if (expect_.empty()) return absl::OkStatus();
  SC_ASSIGN_OR_RETURN(const auto expected, LoadExpectedNames(expect_));
  return CheckExpected(plan, expected);
}

absl::StatusOr<std::unique_ptr<ShardSink>> ReshardCommand::OpenSink(const CheckpointReader& reader,
                                                                    const RankPlan& plan) const {
  if (!output_.out.empty()) SC_RETURN_IF_ERROR(CheckOutsideCheckpoint(output_.out, reader.resolved().dir));
  std::vector<SafetensorsWriter::Entry> entries;
  for (const ShardPlan& sp : plan.shards) entries.push_back({sp.name, ShardOutputDType(sp, dtype_), sp.shape});
  return ShardSink::Open(output_, entries,
                         {{"tp_size", std::to_string(request_.tp_size)},
                          {"tp_rank", std::to_string(request_.tp_rank)},
                          {"checkpoint", reader.resolved().dir},
                          {"written_by", "shardcast reshard"}});
}

uint64_t ReshardCommand::OutputBytes(const RankPlan& plan) const {
  uint64_t total = 0;
  for (const ShardPlan& sp : plan.shards) total += sp.num_elements() * ItemSize(ShardOutputDType(sp, dtype_));
  return total;
}

absl::Status ReshardCommand::Run() {
  SC_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointReader> reader, CheckpointReader::Open(path_, reader_options_));
  SC_ASSIGN_OR_RETURN(const RankPlan plan, Plan(*reader));
  SC_RETURN_IF_ERROR(CheckPlan(plan));
  WarnAboutNotes(plan.notes);
  SC_ASSIGN_OR_RETURN(std::unique_ptr<ShardExecutor> executor, MakeExecutor(device_));
  SC_ASSIGN_OR_RETURN(std::unique_ptr<ShardSink> sink, OpenSink(*reader, plan));
  const uint64_t total = OutputBytes(plan);
  ProgressBar bar("resharding", total, !output_.json && ProgressBar::StderrIsTerminal());
  SC_RETURN_IF_ERROR(MaterializeShards(
      *reader, plan, *executor, dtype_, batch_bytes_,
      [&](const ShardPlan& sp, DType od, absl::string_view bytes) -> absl::Status {
        Json t = Json::Object();
        t.Set("key", sp.key());
        t.Set("name", sp.name);
        t.Set("dtype", std::string(DTypeName(od)));
        t.Set("shape", Json::ArrayOf(sp.shape));
        t.Set("rule", ShardRuleText(sp));
        t.Set("bytes", static_cast<uint64_t>(bytes.size()));
        bar.Add(bytes.size());
        return sink->Add(std::move(t), bytes);
      }));
  SC_RETURN_IF_ERROR(sink->Finish());
  Json report = Json::Object();
  report.Set("tp_size", request_.tp_size);
  report.Set("tp_rank", request_.tp_rank);
  report.Set("device", executor->device());
  report.Set("tensors", sink->TakeTensors());
  Json opaque = Json::Array();
  for (const BytesEntry* b : plan.opaque) opaque.Append(Json(b->key));
  report.Set("opaque", std::move(opaque));
  report.Set("notes", Json::ArrayOf(plan.notes));
  report.Set("bytes", total);
  if (!output_.out.empty()) report.Set("out", output_.out);
  if (output_.json) {
    ShardSink::PrintJson(report);
  } else {
    PrintReshardTable(report, output_.out);
  }
  return absl::OkStatus();
}

}  // namespace

int RunReshard(const std::vector<std::string>& args) {
  ReshardCommand command;
  return Execute(command, args);
}

namespace {

// `shardcast layouts`: the preset names, or one layout's text.
class LayoutsCommand final : public Command {
 public:
  // NAME is read from the raw arguments (the second, when given).
  explicit LayoutsCommand(std::vector<std::string> args) : args_(std::move(args)) {}
  std::string name() const override { return "layouts"; }
  std::string usage() const override { return "shardcast layouts (list | show NAME|FILE)"; }
  std::string description() const override {
    return "Lists the built-in layout presets or prints one (PATTERN  RULE per line; first match wins).";
  }
  void AddFlags(ArgParser& p) const override {
    p.AddPositional("ACTION", "list or show");
    p.AddPositional("NAME", "preset name or layout file (for show)", true);
  }
  absl::Status Parse(const ArgParser& p) override {
    action_ = p.positional(0);
    if (action_ != "list" && action_ != "show") {
      return absl::InvalidArgumentError(absl::StrCat("unknown action '", action_, "' (list, show)"));
    }
    return absl::OkStatus();
  }
  absl::Status Run() override {
    if (action_ == "list") {
      for (const std::string& n : Layout::PresetNames()) std::cout << n << "\n";
      return absl::OkStatus();
    }
    SC_ASSIGN_OR_RETURN(const Layout layout, Layout::Load(args_.size() > 1 ? args_[1] : "megatron", {}));
    std::cout << "# first match wins; unmatched tensors are replicated\n" << layout.ToText();
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> args_;
  std::string action_;
};

}  // namespace

int RunLayouts(const std::vector<std::string>& args) {
  LayoutsCommand command(args);
  return Execute(command, args);
}

}  // namespace shardcast::cli
