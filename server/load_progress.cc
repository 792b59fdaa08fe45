#include "server/load_progress.h"

#include <algorithm>

namespace shardcast {
namespace {

double Percent(uint64_t done, uint64_t total) {
  if (total == 0) return 100;
  return 100.0 * static_cast<double>(std::min(done, total)) / static_cast<double>(total);
}

}  // namespace

LoadProgress RankProgress(uint64_t done, uint64_t total, double elapsed_seconds, bool finished) {
  LoadProgress p;
  p.total = total;
  p.done = finished ? total : std::min(done, total);
  p.percent = Percent(p.done, total);
  if (finished || p.done == total) {
    p.eta_seconds = 0;
  } else if (p.done > 0 && elapsed_seconds > 0) {
    const double rate = static_cast<double>(p.done) / elapsed_seconds;
    p.eta_seconds = static_cast<double>(total - p.done) / rate;
  }
  return p;
}

LoadProgress ServiceProgress(const std::vector<LoadProgress>& ranks) {
  LoadProgress s;
  s.eta_seconds = 0;
  for (const LoadProgress& r : ranks) {
    s.done += std::min(r.done, r.total);
    s.total += r.total;
    if (s.eta_seconds >= 0) s.eta_seconds = r.eta_seconds < 0 ? -1 : std::max(s.eta_seconds, r.eta_seconds);
  }
  s.percent = Percent(s.done, s.total);
  return s;
}

}  // namespace shardcast
