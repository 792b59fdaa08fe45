#include "server/memory_space.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/crc32c.h"

namespace shardcast {
namespace {

class HostMemorySpace : public MemorySpace {
 public:
  std::string name() const override { return "cpu"; }
  bool is_device() const override { return false; }
  absl::StatusOr<Buffer> Allocate(size_t n) override {
    void* p = nullptr;
    if (::posix_memalign(&p, 64, n ? n : 1) != 0) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", n, " bytes of host memory"));
    }
    return Buffer(p, n, [](void* data) { std::free(data); });
  }
  absl::StatusOr<Buffer> AllocateStaging(size_t n) override { return Allocate(n); }
  absl::Status CopyIn(void* dst, const void* src, size_t n) override {
    std::memcpy(dst, src, n);
    return absl::OkStatus();
  }
  absl::Status CopyOut(void* dst, const void* src, size_t n) override {
    std::memcpy(dst, src, n);
    return absl::OkStatus();
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<uint32_t>> Checksums(const std::vector<std::pair<const void*, uint64_t>>& spans) override {
    std::vector<uint32_t> out;
    for (const auto& [p, n] : spans) out.push_back(Crc32c(p, n));
    return out;
  }
  absl::StatusOr<uint64_t> FreeBytes() override {
    std::ifstream in("/proc/meminfo");
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return absl::UnavailableError("cannot read /proc/meminfo: pass --memory-budget");
    return ParseMemAvailable(text.str());
  }
  absl::StatusOr<std::unique_ptr<ShardExecutor>> NewExecutor() override { return NewCpuExecutor(4); }
};

}  // namespace

uint64_t PackSlab(const std::vector<uint64_t>& sizes, std::vector<uint64_t>* offsets) {
  uint64_t total = 0;
  offsets->clear();
  for (uint64_t n : sizes) {
    offsets->push_back(total);
    total += (n + kSlabAlign - 1) / kSlabAlign * kSlabAlign;
  }
  return total;
}

std::unique_ptr<MemorySpace> NewHostMemorySpace() { return std::make_unique<HostMemorySpace>(); }

absl::StatusOr<uint64_t> ParseMemAvailable(const std::string& meminfo) {
  for (absl::string_view line : absl::StrSplit(meminfo, '\n')) {
    if (!absl::ConsumePrefix(&line, "MemAvailable:")) continue;
    line = absl::StripAsciiWhitespace(line);
    const bool kb = absl::ConsumeSuffix(&line, "kB");
    uint64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n)) break;
    return kb ? n * 1024 : n;
  }
  return absl::NotFoundError("no MemAvailable line in /proc/meminfo: pass --memory-budget");
}

}  // namespace shardcast
