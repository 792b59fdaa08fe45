#include "client/cli/remote.h"

#include <cstdlib>
#include <iostream>
#include <new>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/inspect.h"
#include "client/client.h"
#include "common/args.h"
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

int Error(const char* cmd, const absl::Status& s, int code = 1) {
  std::cerr << "shardcast " << cmd << ": error: " << s.message() << "\n";
  return code;
}

}  // namespace

std::string FormatStatus(const Json& j) {
  std::string out = absl::StrCat("state       ", j.Find("state")->as_string());
  if (const Json* r = j.Find("reason")) absl::StrAppend(&out, " (", r->as_string(), ")");
  absl::StrAppend(&out, "\ncheckpoint  ", j.Find("checkpoint")->as_string(), "\nuptime      ",
                  absl::StrFormat("%.1f s", j.Find("uptime_seconds")->as_double()), "\nranks       ",
                  j.Find("world_size")->as_int(), "\n");
  if (j.Find("nccl_version")->as_int() > 0) absl::StrAppend(&out, "nccl        ", j.Find("nccl_version")->as_int(), "\n");
  absl::StrAppend(&out, absl::StrFormat("\n%-4s %-8s %-8s %-22s %-24s %9s %9s %7s %8s %8s  %s\n", "rank", "state", "device",
                                        "address", "read", "GB/s", "held", "tensors", "served", "active", "last error"));
  for (const Json& r : j.Find("ranks")->items()) {
    absl::StrAppend(&out, absl::StrFormat("%-4d %-8s %-8s %-22s %-24s %9.2f %9s %7d %8d %8d  %s\n", r.Find("rank")->as_int(),
                                          r.Find("state")->as_string(), r.Find("device")->as_string(),
                                          r.Find("address")->as_string(),
                                          absl::StrCat(HumanBytes(r.Find("bytes_read")->as_int()), " / ",
                                                       HumanBytes(r.Find("bytes_selected")->as_int())),
                                          r.Find("read_gbps")->as_double(), HumanBytes(r.Find("memory_held")->as_int()),
                                          r.Find("tensors_owned")->as_int(), r.Find("clients_served")->as_int(),
                                          r.Find("clients_active")->as_int(), r.Find("last_error")->as_string()));
  }
  absl::StrAppend(&out, "\ncached requests (rank 0):", j.Find("cached_layouts")->items().empty() ? " none" : "", "\n");
  for (const Json& c : j.Find("cached_layouts")->items()) absl::StrAppend(&out, "  ", c.as_string(), "\n");
  return out;
}

int RunStatus(const std::vector<std::string>& args) {
  ArgParser p("shardcast status", "shardcast status --server ADDR [--token-file F] [--json] [--watch] [--wait-ready SECONDS]",
              "Shows a running shardcastd: overall state (loading / ready / failed) and, per loader rank, state,\n"
              "bytes read, throughput, memory held, tensors owned, clients and the last error.\n"
              "--wait-ready exits 0 once the service is ready, 1 if it failed or the time ran out.");
  AddConnectionFlags(&p);
  p.AddSwitch("json", "print JSON for scripts");
  p.AddSwitch("watch", "refresh every second until interrupted");
  p.AddFlag("wait-ready", "SECONDS", "wait until ready");
  absl::Status s = p.Parse(args);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  if (!s.ok()) return Error("status", s, 2);
  absl::StatusOr<ClientOptions> co = ConnectionOptions(p);
  if (!co.ok()) return Error("status", co.status(), 2);
  if (p.Has("wait-ready")) {
    absl::StatusOr<int64_t> secs = p.GetInt("wait-ready");
    if (!secs.ok()) return Error("status", secs.status(), 2);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(*secs);
    std::string last = "unreachable";
    while (std::chrono::steady_clock::now() < end) {
      ClientOptions o = *co;
      o.deadline = std::min<std::chrono::milliseconds>(o.deadline, std::chrono::milliseconds(2000));
      absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(o);
      if (c.ok()) {
        absl::StatusOr<Json> st = (*c)->Status();
        if (st.ok()) {
          last = st->Find("state")->as_string();
          if (last == "ready") {
            std::cout << (p.GetSwitch("json") ? st->Dump(1) + "\n" : "ready\n");
            return 0;
          }
          if (last == "failed") {
            std::cerr << "shardcast status: the service failed: "
                      << (st->Find("reason") ? st->Find("reason")->as_string() : "") << "\n";
            return 1;
          }
        } else if (st.status().code() == absl::StatusCode::kUnauthenticated) {
          return Error("status", st.status());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    std::cerr << "shardcast status: not ready after " << *secs << " s (last state: " << last << ")\n";
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(*co);
  if (!c.ok()) return Error("status", c.status());
  do {
    absl::StatusOr<Json> st = (*c)->Status();
    if (!st.ok()) return Error("status", st.status());
    if (p.GetSwitch("json")) {
      std::cout << st->Dump(1) << std::endl;
    } else {
      if (p.GetSwitch("watch")) std::cout << "\033[H\033[2J";
      std::cout << FormatStatus(*st) << std::flush;
    }
    if (p.GetSwitch("watch")) std::this_thread::sleep_for(std::chrono::seconds(1));
  } while (p.GetSwitch("watch"));
  return 0;
}

int RunFetch(const std::vector<std::string>& args) {
  ArgParser p("shardcast fetch",
              "shardcast fetch --server ADDR [--token-file F] --tp N --rank R [--layout NAME|FILE] [--rule P=R ...]\n"
              "       [--prefix P] [--rename OLD=NEW ...] [--unstack] [--dtype bf16|fp16|fp32] [--device cpu|cuda]\n"
              "       (--out FILE.safetensors | --digest) [--json]",
              "Receives one TP rank's shards from a running shardcastd, as a training rank would: over the gRPC\n"
              "byte stream (--device cpu) or into GPU memory (--device cuda: NCCL, or CUDA IPC from a loader rank\n"
              "on the same GPU). Every shard's CRC32C is checked. Output as in 'shardcast reshard'.");
  AddConnectionFlags(&p);
  p.AddFlag("tp", "N", "tensor-parallel size");
  p.AddFlag("rank", "R", "tensor-parallel rank");
  p.AddFlag("layout", "NAME|FILE", "layout preset, or a local layout file (its text is sent); default: the server's");
  p.AddFlag("rule", "PATTERN=RULE", "extra rule", "", true);
  p.AddFlag("prefix", "P", "only keys starting with P");
  p.AddFlag("rename", "OLD=NEW", "rename name prefixes", "", true);
  p.AddSwitch("unstack", "per-layer names for stacked tensors");
  p.AddFlag("dtype", "bf16|fp16|fp32", "cast floating-point shards");
  p.AddFlag("device", "cpu|cuda", "receive into host memory (stream) or GPU 0 (NCCL / CUDA IPC)", "cpu");
  p.AddFlag("out", "FILE.safetensors", "write the shards here");
  p.AddSwitch("digest", "print each shard's sha256");
  p.AddSwitch("json", "print JSON for scripts");
  p.AddSwitch("no-verify", "skip the CRC32C check");
  p.AddFlag("repeat", "N", "receive N times (timing; the NCCL session is reused)", "1");
  absl::Status s = p.Parse(args);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  if (!s.ok()) return Error("fetch", s, 2);
  if (!p.Has("tp") || !p.Has("rank")) return Error("fetch", absl::InvalidArgumentError("--tp and --rank are required"), 2);
  if (p.Has("out") == p.GetSwitch("digest")) {
    return Error("fetch", absl::InvalidArgumentError("give exactly one of --out FILE or --digest"), 2);
  }
  absl::StatusOr<ClientOptions> co = ConnectionOptions(p);
  if (!co.ok()) return Error("fetch", co.status(), 2);
  co->verify_crc32c = !p.GetSwitch("no-verify");
  auto tp = p.GetInt("tp");
  auto rank = p.GetInt("rank");
  if (!tp.ok() || !rank.ok()) return Error("fetch", absl::InvalidArgumentError("--tp and --rank expect integers"), 2);
  const std::string device = p.Get("device");
  if (device != "cpu" && device != "cuda") return Error("fetch", absl::InvalidArgumentError("--device must be cpu or cuda"), 2);
  ShardRequestSpec spec;
  spec.tp_size = *tp;  // int64: the client checks the range (README: Request limits)
  spec.tp_rank = *rank;
  spec.layout = p.Get("layout");
  spec.rules = p.GetAll("rule");
  spec.prefix = p.Get("prefix");
  spec.renames = p.GetAll("rename");
  spec.unstack = p.GetSwitch("unstack");
  spec.dtype = p.Get("dtype");

  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(*co);
  if (!c.ok()) return Error("fetch", c.status());
  const auto m0 = std::chrono::steady_clock::now();
  absl::StatusOr<Manifest> m = (*c)->GetManifest(spec);
  if (!m.ok()) return Error("fetch", m.status());
  const double manifest_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - m0).count();
  absl::StatusOr<int64_t> repeat = p.GetInt("repeat");
  if (!repeat.ok() || *repeat < 1) return Error("fetch", absl::InvalidArgumentError("--repeat expects N >= 1"), 2);
  // Buffers for every shard (host; device ones too with --device cuda).
  std::vector<std::unique_ptr<char[]>> host;
  std::vector<void*> dev;
  std::vector<Destination> dst;
  for (const ShardEntry& e : m->shards) {
    // nbytes comes from the server (checked against the shape by GetManifest): no abort if huge.
    host.emplace_back(new (std::nothrow) char[e.nbytes ? e.nbytes : 1]);
    if (host.back() == nullptr) {
      return Error("fetch", absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", e.nbytes, " bytes for '",
                                                                      e.name, "'")));
    }
    Destination d{e.name, host.back().get(), e.nbytes, e.dtype, e.shape};
    if (device == "cuda") {
      absl::StatusOr<void*> dp = DeviceAlloc(e.nbytes, 0);
      if (!dp.ok()) return Error("fetch", dp.status());
      dev.push_back(*dp);
      d.data = *dp;
    }
    dst.push_back(d);
  }
  absl::StatusOr<FetchReport> report;
  Json receive_seconds = Json::Array();
  for (int64_t i = 0; i < *repeat; ++i) {
    report = device == "cuda" ? (*c)->ReceiveDevice(*m, dst, 0) : (*c)->ReceiveHost(*m, dst);
    if (!report.ok()) break;
    receive_seconds.Append(Json(report->seconds));
  }
  if (report.ok() && device == "cuda") {
    for (size_t i = 0; i < dst.size() && report.ok(); ++i) {
      absl::Status cs = CopyDeviceToHost(host[i].get(), dev[i], dst[i].nbytes);
      if (!cs.ok()) report = cs;
    }
  }
  for (void* d : dev) DeviceFree(d);
  if (!report.ok()) return Error("fetch", report.status());

  Json out = Json::Object();
  out.Set("tp_size", *tp);
  out.Set("tp_rank", *rank);
  out.Set("request_id", m->request_id);
  Json tensors = Json::Array();
  std::unique_ptr<SafetensorsWriter> writer;
  if (p.Has("out")) {
    std::vector<SafetensorsWriter::Entry> entries;
    for (const ShardEntry& e : m->shards) entries.push_back({e.name, *DTypeFromName(e.dtype), e.shape});
    auto w = SafetensorsWriter::Create(p.Get("out"), entries,
                                       {{"tp_size", std::to_string(*tp)}, {"tp_rank", std::to_string(*rank)},
                                        {"written_by", "shardcast fetch"}});
    if (!w.ok()) return Error("fetch", w.status());
    writer = std::move(*w);
  }
  for (size_t i = 0; i < m->shards.size(); ++i) {
    const ShardEntry& e = m->shards[i];
    Json t = Json::Object();
    t.Set("key", e.key);
    t.Set("name", e.name);
    t.Set("dtype", e.dtype);
    t.Set("shape", Json::ArrayOf(e.shape));
    t.Set("rule", e.rule);
    t.Set("bytes", e.nbytes);
    t.Set("owner_rank", e.owner_rank);
    if (p.GetSwitch("digest")) t.Set("sha256", Sha256Hex(absl::string_view(host[i].get(), e.nbytes)));
    if (writer) {
      absl::Status ws = writer->Append(host[i].get(), e.nbytes);
      if (!ws.ok()) return Error("fetch", ws);
    }
    tensors.Append(std::move(t));
  }
  if (writer) {
    absl::Status ws = writer->Finish();
    if (!ws.ok()) return Error("fetch", ws);
  }
  out.Set("tensors", std::move(tensors));
  out.Set("report", report->ToJson());
  out.Set("manifest_seconds", manifest_seconds);
  out.Set("receive_seconds", std::move(receive_seconds));
  if (p.GetSwitch("json")) {
    std::cout << out.Dump(1) << std::endl;
  } else {
    for (const Json& t : out.Find("tensors")->items()) {
      std::cout << t.Find("name")->as_string() << "  " << t.Find("dtype")->as_string() << "  " << t.Find("rule")->as_string();
      if (t.Find("sha256")) std::cout << "  " << t.Find("sha256")->as_string();
      std::cout << "\n";
    }
    std::cout << absl::StrFormat("%d shards, %s over %s in %.3f s, %d CRC32C checked\n", report->shards,
                                 HumanBytes(report->bytes), report->transport, report->seconds, report->crc_checked);
  }
  return 0;
}

}  // namespace shardcast::cli
