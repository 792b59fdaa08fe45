// Test helpers (testonly): where the shared fixtures are inside the test's runfiles, and small
// file utilities for tests that build corrupted copies of them.
#ifndef SHARDCAST_CHECKPOINT_TEST_FIXTURES_H_
#define SHARDCAST_CHECKPOINT_TEST_FIXTURES_H_

#include <string>

namespace shardcast::testing {

// Absolute path of `relative` inside ../shared/fixtures (the @shared_fixtures repository).
std::string FixturePath(const std::string& relative);

// A fresh empty folder under the test's temp dir.
std::string MakeTempDir(const std::string& name);

// Copies the regular files (dotfiles included) of `from` into `to` (created), writable.
void CopyDir(const std::string& from, const std::string& to);

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& bytes);

}  // namespace shardcast::testing

#endif  // SHARDCAST_CHECKPOINT_TEST_FIXTURES_H_
