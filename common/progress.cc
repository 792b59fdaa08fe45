#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace shardcast {

ProgressBar::ProgressBar(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

bool ProgressBar::StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

void ProgressBar::Add(uint64_t bytes) {
  done_ += bytes;
  Draw(done_ >= total_);
}

void ProgressBar::Draw(bool force) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const int width = 30;
  const int fill = static_cast<int>(frac * width);
  std::string bar(fill, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r\033[K%s [%s] %5.1f%% %.2f/%.2f GB %.2f GB/s", label_.c_str(), bar.c_str(), 100 * frac,
               done_ / 1e9, total_ / 1e9, secs > 0 ? done_ / 1e9 / secs : 0.0);
  std::fflush(stderr);
}

}  // namespace shardcast
