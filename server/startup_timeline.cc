#include "server/startup_timeline.h"

#include "absl/strings/str_format.h"

namespace shardcast {
namespace {

// Taken during static initialization, before main(): the closest this process gets to its start.
const StartupTimeline::Clock::time_point kProcessStart = StartupTimeline::Clock::now();

}  // namespace

StartupTimeline::StartupTimeline() : StartupTimeline(kProcessStart) {}

void StartupTimeline::Mark(const std::string& step) {
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  steps_.emplace_back(step, std::chrono::duration<double, std::milli>(now - last_).count());
  last_ = now;
}

void StartupTimeline::Add(const std::string& step, double ms) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.emplace_back(step, ms);
}

double StartupTimeline::elapsed_ms() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
}

void StartupTimeline::Lane::Mark(const std::string& step) {
  const Clock::time_point now = Clock::now();
  if (timeline_ != nullptr) timeline_->Add(step, std::chrono::duration<double, std::milli>(now - last_).count());
  last_ = now;
}

std::string StartupTimeline::Summary() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [step, ms] : steps_) absl::StrAppendFormat(&out, "%s%s %.1f ms", out.empty() ? "" : ", ", step, ms);
  return out;
}

double StartupTimeline::total_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::chrono::duration<double, std::milli>(last_ - start_).count();
}

std::vector<std::pair<std::string, double>> StartupTimeline::steps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return steps_;
}

}  // namespace shardcast
