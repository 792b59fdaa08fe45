// `shardcast status` and `shardcast fetch` (a command object: request flags -> manifest -> receive
// -> ShardSink) over the client library.
#include "client/cli/remote.h"

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <iostream>
#include <new>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/command.h"
#include "client/cli/device.h"
#include "client/cli/inspect.h"
#include "client/cli/request_flags.h"
#include "client/cli/shard_sink.h"
#include "client/cli/unused_rules.h"
#include "client/client.h"
#include "common/args.h"
#include "common/dtype.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "common/text_escape.h"
#include "common/safetensors.h"
#include "common/sha256.h"
#include "kernels/device_buffer.h"
#include "common/token_file.h"

namespace shardcast::cli {
namespace {

void AddConnectionFlags(ArgParser* p) {
  p->AddFlag("server", "HOST:PORT", "shardcastd rank 0 (default: $SHARDCAST_ADDR)");
  p->AddFlag("token-file", "F", "the job's token (default: $SHARDCAST_TOKEN_FILE)");
  p->AddFlag("timeout", "SECONDS", "deadline of each call", "60");
  p->AddFlag("tls-ca", "F", "TLS: the service's CA or self-signed certificate (default: $SHARDCAST_TLS_CA)");
  p->AddFlag("tls-server-name", "NAME", "TLS: the name its certificate carries, if not the host dialled");
}

absl::StatusOr<ClientOptions> ConnectionOptions(const ArgParser& p) {
  ClientOptions o;
  const char* env_addr = std::getenv("SHARDCAST_ADDR");
  o.address = p.Has("server") ? p.Get("server") : (env_addr ? env_addr : "");
  std::string token_file = p.Get("token-file");
  if (token_file.empty() && std::getenv("SHARDCAST_TOKEN_FILE")) token_file = std::getenv("SHARDCAST_TOKEN_FILE");
  if (!token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(token_file);
    if (!t.ok()) return t.status();
    o.token = *t;
  }
  absl::StatusOr<int64_t> timeout = p.GetInt("timeout");
  if (!timeout.ok() || *timeout <= 0) return absl::InvalidArgumentError("--timeout expects a positive number of seconds");
  o.deadline = std::chrono::seconds(*timeout);
  o.tls_ca_file = p.Get("tls-ca");
  o.tls_server_name = p.Get("tls-server-name");
  return o;
}

}  // namespace

namespace {

// A number member, or `otherwise` when absent (an older service).
double Number(const Json& j, const char* key, double otherwise = 0) {
  const Json* v = j.Find(key);
  return v != nullptr && v->is_number() ? v->as_double() : otherwise;
}

// A byte count from the server's JSON as a uint64 without undefined behaviour (NaN, negative and
// out-of-range values saturate).
uint64_t SaturatedBytes(double v) {
  if (!(v > 0)) return 0;
  if (v >= 18446744073709549568.0) return UINT64_MAX;
  return static_cast<uint64_t>(v);
}

// "12 s", "3 min 5 s", "?" (unknown: negative), "-" (done).
std::string FormatEta(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";  // also NaN and absurd values from a server
  if (seconds == 0) return "-";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrCat(std::max<int64_t>(s, 1), " s");
  if (s < 3600) return absl::StrCat(s / 60, " min ", s % 60, " s");
  return absl::StrCat(s / 3600, " h ", (s % 3600) / 60, " min");
}

// "1.2 GB / 2.7 GB (44.4%)": payload bytes in place of those to load.
std::string FormatLoaded(double done, double total, double percent) {
  if (!(percent >= 0)) percent = 0;  // NaN too: the numbers come from the server
  return absl::StrCat(HumanBytes(SaturatedBytes(done)), " / ", HumanBytes(SaturatedBytes(total)),
                      absl::StrFormat(" (%.1f%%)", std::min(percent, 100.0)));
}

// The service's progress in one line: "loaded 1.2 GB / 2.7 GB (44.4%), ETA 12 s".
std::string FormatProgress(const Json& j) {
  return absl::StrCat("loaded ", FormatLoaded(Number(j, "payload_bytes_done"), Number(j, "payload_bytes_total"),
                                              Number(j, "percent")),
                      ", ETA ", FormatEta(Number(j, "eta_seconds", -1)));
}

std::string FormatRank(const Json& r) {
  return absl::StrFormat(
      "%-4d %-8s %-8s %-22s %-32s %9s %9s %9.2f %9s %7d %8d %8d  %s\n", r.Find("rank")->as_int(),
      r.Find("state")->as_string(), r.Find("device")->as_string(), r.Find("address")->as_string(),
      FormatLoaded(Number(r, "payload_bytes_done"), Number(r, "bytes_selected"), Number(r, "percent")),
      FormatEta(Number(r, "eta_seconds", -1)), HumanBytes(r.Find("bytes_read")->as_int()),
      r.Find("read_gbps")->as_double(), HumanBytes(r.Find("memory_held")->as_int()), r.Find("tensors_owned")->as_int(),
      r.Find("clients_served")->as_int(), r.Find("clients_active")->as_int(), r.Find("last_error")->as_string());
}

}  // namespace

std::string FormatStatus(const Json& j) {
  std::string out = absl::StrCat("state       ", j.Find("state")->as_string());
  if (const Json* r = j.Find("reason")) absl::StrAppend(&out, " (", r->as_string(), ")");
  absl::StrAppend(&out, "\ncheckpoint  ", j.Find("checkpoint")->as_string(), "\nuptime      ",
                  absl::StrFormat("%.1f s", j.Find("uptime_seconds")->as_double()), "\nranks       ",
                  j.Find("world_size")->as_int(), "\nprogress    ", FormatProgress(j), "\n");
  if (j.Find("nccl_version")->as_int() > 0) absl::StrAppend(&out, "nccl        ", j.Find("nccl_version")->as_int(), "\n");
  absl::StrAppend(&out, absl::StrFormat("\n%-4s %-8s %-8s %-22s %-32s %9s %9s %9s %9s %7s %8s %8s  %s\n", "rank", "state",
                                        "device", "address", "loaded", "ETA", "read", "GB/s", "held", "tensors", "served",
                                        "active", "last error"));
  for (const Json& r : j.Find("ranks")->items()) absl::StrAppend(&out, FormatRank(r));
  absl::StrAppend(&out,
                  "(loaded: tensor bytes in place, the progress; read: every byte read from the files, record\n"
                  " headers and compressed or strided spans included, so it can differ from the tensor bytes)\n");
  absl::StrAppend(&out, "\ncached requests (rank 0):", j.Find("cached_layouts")->items().empty() ? " none" : "", "\n");
  for (const Json& c : j.Find("cached_layouts")->items()) absl::StrAppend(&out, "  ", c.as_string(), "\n");
  return out;
}

namespace {

// `shardcast status`: the service's state once, every second (--watch), or until ready
// (--wait-ready SECONDS).
class StatusCommand final : public Command {
 public:
  std::string name() const override { return "status"; }
  std::string usage() const override {
    return "shardcast status --server ADDR [--token-file F] [--json] [--watch] [--wait-ready SECONDS]";
  }
  std::string description() const override {
    return "Shows a running shardcastd: overall state (loading / ready / failed) and progress (tensor bytes\n"
           "loaded / to load, percent, ETA) and, per loader rank, state, progress, bytes read from the files,\n"
           "throughput, memory held, tensors owned, clients and the last error.\n"
           "--wait-ready exits 0 once the service is ready, 1 if it failed or the time ran out; meanwhile it\n"
           "shows the progress on stderr (a bar on a terminal, else a line every 5 s).";
  }
  void AddFlags(ArgParser& p) const override {
    AddConnectionFlags(&p);
    p.AddSwitch("json", "print JSON for scripts");
    p.AddSwitch("watch", "refresh every second until interrupted");
    p.AddFlag("wait-ready", "SECONDS", "wait until ready");
  }
  absl::Status Parse(const ArgParser& p) override {
    SC_ASSIGN_OR_RETURN(connection_, ConnectionOptions(p));
    SC_ASSIGN_OR_RETURN(wait_ready_, p.GetOptionalInt("wait-ready"));
    json_ = p.GetSwitch("json");
    watch_ = p.GetSwitch("watch");
    return absl::OkStatus();
  }
  absl::Status Run() override { return wait_ready_ ? WaitReady(*wait_ready_) : Show(); }

 private:
  absl::Status WaitReady(int64_t seconds) const;
  absl::Status Show() const;

  ClientOptions connection_;
  std::optional<int64_t> wait_ready_;
  bool json_ = false;
  bool watch_ = false;
};

// Shows --wait-ready's progress on stderr: a bar on a terminal, else a plain line every few
// seconds (logs of batch jobs).
class ReadyProgress {
 public:
  void Update(const Json& st) {
    const uint64_t done = SaturatedBytes(Number(st, "payload_bytes_done"));
    const uint64_t total = SaturatedBytes(Number(st, "payload_bytes_total"));
    if (ProgressBar::StderrIsTerminal()) {
      if (bar_ == nullptr && total > 0) bar_ = std::make_unique<ProgressBar>("loading", total, true);
      if (bar_ != nullptr && done > shown_) {
        bar_->Add(done - shown_);
        shown_ = done;
      }
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (last_line_ && now - *last_line_ < kLineInterval) return;
    last_line_ = now;
    std::cerr << "shardcast: " << st.Find("state")->as_string() << ", " << FormatProgress(st) << std::endl;
  }
  void Finish() { bar_.reset(); }  // clears the bar's line

 private:
  static constexpr std::chrono::seconds kLineInterval{5};
  std::unique_ptr<ProgressBar> bar_;
  uint64_t shown_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_line_;
};

// Polls (short deadlines, a fresh connection each time: the service may not listen yet) until
// ready, showing the progress; FailedPrecondition once it failed, DeadlineExceeded when the time
// runs out.
absl::Status StatusCommand::WaitReady(int64_t seconds) const {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::string last = "unreachable";
  ReadyProgress progress;
  while (std::chrono::steady_clock::now() < end) {
    ClientOptions o = connection_;
    o.deadline = std::min<std::chrono::milliseconds>(o.deadline, std::chrono::milliseconds(2000));
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(o);
    absl::StatusOr<Json> st = c.ok() ? (*c)->Status() : c.status();
    if (st.ok()) {
      last = st->Find("state")->as_string();
      if (last == "ready") {
        progress.Finish();
        std::cout << (json_ ? st->Dump(1) + "\n" : absl::StrCat("ready (", FormatProgress(*st), ")\n"));
        return absl::OkStatus();
      }
      if (last == "failed") {
        progress.Finish();
        return absl::FailedPreconditionError(
            absl::StrCat("the service failed: ", st->Find("reason") ? st->Find("reason")->as_string() : ""));
      }
      progress.Update(*st);
    } else if (st.status().code() == absl::StatusCode::kUnauthenticated) {
      return st.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  progress.Finish();
  return absl::DeadlineExceededError(absl::StrCat("not ready after ", seconds, " s (last state: ", last, ")"));
}

absl::Status StatusCommand::Show() const {
  SC_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(connection_));
  do {
    SC_ASSIGN_OR_RETURN(const Json st, client->Status());
    if (json_) {
      std::cout << st.Dump(1) << std::endl;
    } else {
      if (watch_) std::cout << "\033[H\033[2J";
      std::cout << FormatStatus(st) << std::flush;
    }
    if (watch_) std::this_thread::sleep_for(std::chrono::seconds(1));
  } while (watch_);
  return absl::OkStatus();
}

}  // namespace

int RunStatus(const std::vector<std::string>& args) {
  StatusCommand command;
  return Execute(command, args);
}

namespace {

// One buffer per shard of a manifest: host memory always (what the sink reads), and with
// --device cuda[:N] GPU memory too (what the receive writes), freed when this goes.
class ReceiveBuffers {
 public:
  ReceiveBuffers() = default;
  ReceiveBuffers(const ReceiveBuffers&) = delete;
  ReceiveBuffers& operator=(const ReceiveBuffers&) = delete;
  ~ReceiveBuffers() {
    for (void* d : device_) DeviceFree(d);
  }

  // `device` < 0: host buffers only; else GPU buffers on that device too.
  absl::Status Allocate(const Manifest& m, int device) {
    for (const ShardEntry& e : m.shards) {
      // nbytes comes from the server (checked against the shape by GetManifest): no abort if huge.
      host_.emplace_back(new (std::nothrow) char[e.nbytes ? e.nbytes : 1]);
      if (host_.back() == nullptr) {
        return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", e.nbytes, " bytes for '", e.name, "'"));
      }
      Destination d{e.name, host_.back().get(), e.nbytes, e.dtype, e.shape};
      if (device >= 0) {
        SC_ASSIGN_OR_RETURN(void* p, DeviceAlloc(e.nbytes, device));
        device_.push_back(p);
        d.data = p;
      }
      destinations_.push_back(std::move(d));
    }
    return absl::OkStatus();
  }
  // Brings what the GPU received into the host buffers.
  absl::Status CopyDeviceToHostBuffers() {
    for (size_t i = 0; i < device_.size(); ++i) {
      SC_RETURN_IF_ERROR(CopyDeviceToHost(host_[i].get(), device_[i], destinations_[i].nbytes));
    }
    return absl::OkStatus();
  }
  const std::vector<Destination>& destinations() const { return destinations_; }
  absl::string_view host(size_t i) const { return absl::string_view(host_[i].get(), destinations_[i].nbytes); }

 private:
  std::vector<std::unique_ptr<char[]>> host_;
  std::vector<void*> device_;
  std::vector<Destination> destinations_;
};

// `shardcast fetch`: a manifest from shardcastd, the shards received as a training rank would,
// then the same sink as `reshard`.
class FetchCommand final : public Command {
 public:
  std::string name() const override { return "fetch"; }
  std::string usage() const override {
    return "shardcast fetch --server ADDR [--token-file F] --tp N --rank R [--layout NAME|FILE] [--rule P=R ...] [--glu yes|no]\n"
           "       [--prefix P] [--rename OLD=NEW ...] [--unstack] [--dtype bf16|fp16|fp32] [--device cpu|cuda[:N]]\n"
           "       (--out FILE.safetensors | --digest) [--json] [--strict-rules]";
  }
  std::string description() const override {
    return "Receives one TP rank's shards from a running shardcastd, as a training rank would: over the gRPC\n"
           "byte stream (--device cpu) or into GPU memory (--device cuda or cuda:N: NCCL, or CUDA IPC from a loader\n"
           "rank on the same GPU). Every shard's CRC32C is checked. Output as in 'shardcast reshard'. A --rule\n"
           "that cuts none of the manifest's tensors is warned of (an error with --strict-rules).";
  }
  void AddFlags(ArgParser& p) const override {
    AddConnectionFlags(&p);
    AddRequestFlags(p, {"", "layout preset, or a local layout file (its text is sent); default: the server's"});
    p.AddFlag("device", "cpu|cuda[:N]",
              "receive into host memory (stream) or a GPU: cuda = GPU 0, cuda:N = GPU N (NCCL / CUDA IPC)", "cpu");
    AddOutputFlags(p);
    p.AddSwitch("no-verify", "skip the CRC32C check");
    p.AddFlag("repeat", "N", "receive N times (timing; the NCCL session is reused)", "1");
  }
  absl::Status Parse(const ArgParser& p) override;
  absl::Status Run() override;

 private:
  // Receives every shard `repeat_` times; the seconds of each receive go to receive_seconds_.
  absl::StatusOr<FetchReport> Receive(Client& client, const Manifest& m, const ReceiveBuffers& buffers);
  absl::Status Output(const Manifest& m, const ReceiveBuffers& buffers, const FetchReport& report);
  static void PrintLines(const Json& report, const FetchReport& fetch);

  ClientOptions connection_;
  ShardRequestSpec request_;
  OutputFlags output_;
  DeviceFlag device_;
  bool strict_rules_ = false;
  std::vector<std::string> user_rules_;  // --rule as given (not --glu's): the ones checked for use
  int64_t repeat_ = 1;
  double manifest_seconds_ = 0;
  Json receive_seconds_ = Json::Array();
};

absl::Status FetchCommand::Parse(const ArgParser& p) {
  SC_ASSIGN_OR_RETURN(request_, RequestFromFlags(p));  // ranges: the client checks them (exit 1)
  SC_ASSIGN_OR_RETURN(output_, OutputFromFlags(p));
  SC_ASSIGN_OR_RETURN(connection_, ConnectionOptions(p));
  connection_.verify_crc32c = !p.GetSwitch("no-verify");
  SC_ASSIGN_OR_RETURN(device_, ParseDeviceFlag(p.Get("device")));
  strict_rules_ = p.GetSwitch("strict-rules");
  user_rules_ = p.GetAll("rule");
  absl::StatusOr<int64_t> repeat = p.GetInt("repeat");
  if (!repeat.ok() || *repeat < 1) return absl::InvalidArgumentError("--repeat expects N >= 1");
  repeat_ = *repeat;
  return absl::OkStatus();
}

absl::Status FetchCommand::Run() {
  SC_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(connection_));
  const auto asked = std::chrono::steady_clock::now();
  SC_ASSIGN_OR_RETURN(const Manifest m, client->GetManifest(request_));
  WarnAboutNotes(m.notes);
  manifest_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  // The server planned: its manifest's keys say which tensors the request cuts.
  std::vector<std::string> keys;
  for (const ShardEntry& e : m.shards) keys.push_back(e.key);
  SC_ASSIGN_OR_RETURN(const std::vector<UnusedRule> unused, FindUnusedRules(user_rules_, keys));
  SC_RETURN_IF_ERROR(ReportUnusedRules(unused, strict_rules_));
  ReceiveBuffers buffers;
  SC_RETURN_IF_ERROR(buffers.Allocate(m, device_.cuda ? device_.index : -1));
  SC_ASSIGN_OR_RETURN(const FetchReport report, Receive(*client, m, buffers));
  if (device_.cuda) SC_RETURN_IF_ERROR(buffers.CopyDeviceToHostBuffers());
  return Output(m, buffers, report);
}

absl::StatusOr<FetchReport> FetchCommand::Receive(Client& client, const Manifest& m, const ReceiveBuffers& buffers) {
  absl::StatusOr<FetchReport> report;
  for (int64_t i = 0; i < repeat_; ++i) {
    report = device_.cuda ? client.ReceiveDevice(m, buffers.destinations(), device_.index)
                          : client.ReceiveHost(m, buffers.destinations());
    if (!report.ok()) return report.status();
    receive_seconds_.Append(Json(report->seconds));
  }
  return report;
}

absl::Status FetchCommand::Output(const Manifest& m, const ReceiveBuffers& buffers, const FetchReport& fetch) {
  std::vector<SafetensorsWriter::Entry> entries;
  for (const ShardEntry& e : m.shards) entries.push_back({e.name, *DTypeFromName(e.dtype), e.shape});  // validated
  SC_ASSIGN_OR_RETURN(std::unique_ptr<ShardSink> sink,
                      ShardSink::Open(output_, entries,
                                      {{"tp_size", std::to_string(request_.tp_size)},
                                       {"tp_rank", std::to_string(request_.tp_rank)},
                                       {"written_by", "shardcast fetch"}}));
  for (size_t i = 0; i < m.shards.size(); ++i) {
    const ShardEntry& e = m.shards[i];
    Json t = Json::Object();
    t.Set("key", e.key);
    t.Set("name", e.name);
    t.Set("dtype", e.dtype);
    t.Set("shape", Json::ArrayOf(e.shape));
    t.Set("rule", e.rule);
    t.Set("bytes", e.nbytes);
    t.Set("owner_rank", e.owner_rank);
    SC_RETURN_IF_ERROR(sink->Add(std::move(t), buffers.host(i)));
  }
  SC_RETURN_IF_ERROR(sink->Finish());
  Json report = Json::Object();
  report.Set("tp_size", request_.tp_size);
  report.Set("tp_rank", request_.tp_rank);
  report.Set("request_id", m.request_id);
  report.Set("tensors", sink->TakeTensors());
  report.Set("notes", Json::ArrayOf(m.notes));
  report.Set("report", fetch.ToJson());
  report.Set("manifest_seconds", manifest_seconds_);
  report.Set("receive_seconds", std::move(receive_seconds_));
  if (output_.json) {
    ShardSink::PrintJson(report);
  } else {
    PrintLines(report, fetch);
  }
  return absl::OkStatus();
}

// The human form of fetch's report: one line per shard (names escaped: they come from the
// server), then a summary.
void FetchCommand::PrintLines(const Json& report, const FetchReport& fetch) {
  for (const Json& t : report.Find("tensors")->items()) {
    std::cout << EscapeForTerminal(t.Find("name")->as_string()) << "  " << t.Find("dtype")->as_string() << "  "
              << EscapeForTerminal(t.Find("rule")->as_string());
    if (t.Find("sha256")) std::cout << "  " << t.Find("sha256")->as_string();
    std::cout << "\n";
  }
  std::cout << absl::StrFormat("%d shards, %s over %s in %.3f s, %d CRC32C checked\n", fetch.shards,
                               HumanBytes(fetch.bytes), fetch.transport, fetch.seconds, fetch.crc_checked);
}

}  // namespace

int RunFetch(const std::vector<std::string>& args) {
  FetchCommand command;
  return Execute(command, args);
}

// ---- `shardcast index` ----

namespace {

// `shardcast index`: what a running shardcastd holds (its --prefix's selection), from rank 0's
// index, without reading the checkpoint: tensors (dtype, global shape) and bytes entries (size).
class IndexCommand final : public Command {
 public:
  std::string name() const override { return "index"; }
  std::string usage() const override { return "shardcast index --server ADDR [--token-file F] [--json]"; }
  std::string description() const override {
    return "Lists what a running shardcastd serves, in .metadata order: every tensor (key, dtype, global\n"
           "shape) and every bytes entry (key, stored size; non-tensor values such as _extra_state). The\n"
           "service answers in pages of at most 4096 entries (about 1 MiB); this asks for all of them.";
  }
  void AddFlags(ArgParser& p) const override {
    AddConnectionFlags(&p);
    p.AddSwitch("json", "print JSON: {\"prefix\", \"tensors\": [{key, dtype, shape}], \"bytes\": [{key, nbytes, compressed}]}");
  }
  absl::Status Parse(const ArgParser& p) override {
    SC_ASSIGN_OR_RETURN(connection_, ConnectionOptions(p));
    json_ = p.GetSwitch("json");
    return absl::OkStatus();
  }
  absl::Status Run() override {
    SC_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(connection_));
    SC_ASSIGN_OR_RETURN(ServiceIndex index, client->GetIndex());
    std::cout << (json_ ? index.ToJson().Dump(1) + "\n" : FormatIndex(index));
    return absl::OkStatus();
  }

 private:
  static std::string FormatIndex(const ServiceIndex& index) {
    std::string out = absl::StrCat("prefix '", EscapeForTerminal(index.prefix), "': ", index.tensors.size(),
                                   " tensors, ", index.bytes.size(), " bytes entries\n");
    for (const IndexedTensor& t : index.tensors) {
      absl::StrAppend(&out, absl::StrFormat("%-60s %-13s %s\n", EscapeForTerminal(t.key), t.dtype,
                                            ShapeToString(t.shape)));
    }
    for (const IndexedBytes& b : index.bytes) {
      absl::StrAppend(&out, absl::StrFormat("%-60s %-13s %s%s\n", EscapeForTerminal(b.key), "bytes",
                                            HumanBytes(b.nbytes), b.compressed ? " (compressed)" : ""));
    }
    return out;
  }

  ClientOptions connection_;
  bool json_ = false;
};

}  // namespace

int RunIndex(const std::vector<std::string>& args) {
  IndexCommand command;
  return Execute(command, args);
}

}  // namespace shardcast::cli
