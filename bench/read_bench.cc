// read_bench: reads every selected tensor of a checkpoint with shardcast's parallel reader and,
// in the same run, a plain sequential read of the same files, cold (page cache dropped) and warm.
//
//   read_bench PATH [--prefix P] [--threads N] [--block-size BYTES] [--direct] [--repeat N] [--json]
//              [--crc-cost]
//
// --crc-cost: shardcast reads each time both with and without the records' CRC-32 check
// (ReaderOptions::verify_storage_crc), alternating, and reports both and their ratio, so that one
// run on the target storage says what the check costs.
//
// Cold: writes 3 to /proc/sys/vm/drop_caches when permitted (root), otherwise evicts the files
// with posix_fadvise(DONTNEED), which needs no privileges. The plain read is `read()` of each
// file front to back through one 16 MiB buffer, the way `cat` or `dd` would.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "checkpoint/reader.h"
#include "common/args.h"
#include "common/json.h"

namespace shardcast {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Returns how the cache was dropped ("drop_caches" or "fadvise").
std::string DropCaches(const std::vector<std::string>& files) {
  ::sync();
  if (FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w")) {
    bool ok = std::fputs("3\n", f) >= 0;
    ok = (std::fclose(f) == 0) && ok;
    if (ok) return "drop_caches";
  }
  for (const std::string& p : files) {
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  return "fadvise";
}

uint64_t PlainRead(const std::vector<std::string>& files) {
  std::vector<char> buf(16 << 20);
  uint64_t total = 0;
  for (const std::string& p : files) {
    int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
    ::close(fd);
  }
  return total;
}

int Main(int argc, char** argv) {
  ArgParser p("read_bench", "read_bench PATH [--prefix P] [--threads N] [--block-size BYTES] [--direct] [--repeat N] [--json]",
                   "Throughput of shardcast's parallel checkpoint reader next to a plain sequential read of the\n"
                   "same files, cold and warm page cache.");
  p.AddPositional("PATH", "checkpoint folder");
  p.AddFlag("prefix", "P", "read only keys starting with P");
  p.AddFlag("threads", "N", "parallel reads", "8");
  p.AddFlag("block-size", "BYTES", "bytes per read request", "16MiB");
  p.AddSwitch("direct", "shardcast reads with O_DIRECT");
  p.AddFlag("repeat", "N", "measurements per mode (best is reported)", "3");
  p.AddSwitch("json", "print one JSON document");
  p.AddSwitch("crc-cost", "also read without the CRC-32 check and report both (cost of the check)");
  absl::Status s = p.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  if (!s.ok()) {
    std::cerr << "read_bench: " << s.message() << "\n";
    return 2;
  }
  ReaderOptions ro;
  ro.threads = static_cast<int>(*p.GetInt("threads"));
  ro.block_size = *p.GetBytes("block-size");
  ro.storage.o_direct = p.GetSwitch("direct");
  const int repeat = static_cast<int>(*p.GetInt("repeat"));
  const bool crc_cost = p.GetSwitch("crc-cost");
  auto probe = CheckpointReader::Open(p.positional(0), ro);
  if (!probe.ok()) {
    std::cerr << "read_bench: " << probe.status().message() << "\n";
    return 1;
  }
  std::vector<const TensorEntry*> sel = (*probe)->Select(p.Get("prefix"));
  std::set<std::string> file_set;
  uint64_t selected = 0;
  for (const TensorEntry* t : sel) {
    selected += t->nbytes();
    for (const StoredChunk& c : t->chunks) file_set.insert((*probe)->resolved().dir + "/" + c.location.relative_path);
  }
  std::vector<std::string> files(file_set.begin(), file_set.end());
  uint64_t file_bytes = 0;
  for (const std::string& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    file_bytes += static_cast<uint64_t>(::lseek(fd, 0, SEEK_END));
    ::close(fd);
  }
  // Destination, faulted in once (a real loader stages into pinned, already-mapped memory).
  std::unique_ptr<char[]> dst(new char[selected ? selected : 1]);
  std::memset(dst.get(), 0, selected);

  Json out = Json::Object();
  out.Set("path", (*probe)->resolved().dir);
  out.Set("tensors", static_cast<int64_t>(sel.size()));
  out.Set("selected_bytes", selected);
  out.Set("file_bytes", file_bytes);
  out.Set("threads", ro.threads);
  out.Set("block_size", ro.block_size);
  out.Set("verify_storage_crc", true);
  std::string how;
  // One timed shardcast read with a fresh reader (no record headers cached); -1 on error.
  auto shardcast_read = [&](bool verify_crc, ReaderStats* stats) -> double {
    ReaderOptions o = ro;
    o.verify_storage_crc = verify_crc;
    auto reader = CheckpointReader::Open(p.positional(0), o);
    if (!reader.ok()) {
      std::cerr << reader.status().message() << "\n";
      return -1;
    }
    std::vector<BoxRead> reads;
    uint64_t off = 0;
    for (const TensorEntry* t : (*reader)->Select(p.Get("prefix"))) {
      reads.push_back(BoxRead{t, FullBox(t->shape), dst.get() + off});
      off += t->nbytes();
    }
    const double t0 = Now();
    absl::Status st = (*reader)->Read(reads);
    const double dt = Now() - t0;
    if (!st.ok()) {
      std::cerr << st.message() << "\n";
      return -1;
    }
    *stats = (*reader)->stats();
    return dt;
  };
  ReaderStats crc_stats;
  for (const bool cold : {true, false}) {
    double best_plain = 1e30, best_sc = 1e30, best_nocrc = 1e30;
    uint64_t sc_bytes_read = 0;
    if (!cold) PlainRead(files);  // warm the cache
    for (int r = 0; r < repeat; ++r) {
      if (cold) how = DropCaches(files);
      double t0 = Now();
      PlainRead(files);
      best_plain = std::min(best_plain, Now() - t0);
      // With the CRC check (the default), then, for --crc-cost, without it; the order
      // alternates between repeats so that neither always runs second.
      for (int k = 0; k < (crc_cost ? 2 : 1); ++k) {
        const bool verify = ((k + r) % 2 == 0) || !crc_cost;
        if (cold) DropCaches(files);
        ReaderStats stats;
        const double dt = shardcast_read(verify, &stats);
        if (dt < 0) return 1;
        if (verify) {
          best_sc = std::min(best_sc, dt);
          sc_bytes_read = stats.bytes_read;
          crc_stats = stats;
        } else {
          best_nocrc = std::min(best_nocrc, dt);
        }
      }
    }
    Json m = Json::Object();
    m.Set("plain_seconds", best_plain);
    m.Set("plain_gbps", file_bytes / best_plain / 1e9);
    m.Set("shardcast_seconds", best_sc);
    m.Set("shardcast_gbps", selected / best_sc / 1e9);
    m.Set("shardcast_bytes_read", sc_bytes_read);
    m.Set("ratio", (selected / best_sc) / (file_bytes / best_plain));
    if (crc_cost) {
      m.Set("shardcast_no_crc_seconds", best_nocrc);
      m.Set("shardcast_no_crc_gbps", selected / best_nocrc / 1e9);
      m.Set("crc_cost", best_sc / best_nocrc - 1);  // extra time the check takes, 0.05 = 5%
    }
    if (cold) m.Set("cache_drop", how);
    out.Set(cold ? "cold" : "warm", std::move(m));
  }
  Json crc = Json::Object();
  crc.Set("verified_records", crc_stats.crc_verified_records);
  crc.Set("absent_records", crc_stats.crc_absent_records);
  crc.Set("unverified_partial_records", crc_stats.crc_unverified_partial_records);
  out.Set("storage_crc", std::move(crc));
  if (p.GetSwitch("json")) {
    std::cout << out.Dump(1) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("checkpoint %s: %d tensors, %.3f GB selected, %.3f GB in %d files\n",
                               out.Find("path")->as_string(), sel.size(), selected / 1e9, file_bytes / 1e9, files.size());
  std::cout << absl::StrFormat("threads %d, block %d KiB\n", ro.threads, ro.block_size >> 10);
  for (const char* mode : {"cold", "warm"}) {
    const Json& m = *out.Find(mode);
    std::cout << absl::StrFormat("%-5s plain read %6.2f GB/s (%.3f s)   shardcast %6.2f GB/s (%.3f s)   ratio %.2fx%s\n", mode,
                                 m.Find("plain_gbps")->as_double(), m.Find("plain_seconds")->as_double(),
                                 m.Find("shardcast_gbps")->as_double(), m.Find("shardcast_seconds")->as_double(),
                                 m.Find("ratio")->as_double(),
                                 m.Find("cache_drop") ? " [" + m.Find("cache_drop")->as_string() + "]" : "");
    if (crc_cost) {
      std::cout << absl::StrFormat("      shardcast without CRC check %6.2f GB/s (%.3f s): the check costs %+.1f%%\n",
                                   m.Find("shardcast_no_crc_gbps")->as_double(),
                                   m.Find("shardcast_no_crc_seconds")->as_double(), 100 * m.Find("crc_cost")->as_double());
    }
  }
  std::cout << absl::StrFormat("storage CRC-32: %d records verified, %d store none, %d read only in part\n",
                               crc_stats.crc_verified_records, crc_stats.crc_absent_records,
                               crc_stats.crc_unverified_partial_records);
  return 0;
}

}  // namespace
}  // namespace shardcast

int main(int argc, char** argv) { return shardcast::Main(argc, argv); }
