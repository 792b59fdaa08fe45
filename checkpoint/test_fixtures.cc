#include "checkpoint/test_fixtures.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace shardcast::testing {

std::string FixturePath(const std::string& relative) {
  // Runfiles are a tree of symlinks; the reader refuses files that resolve outside the folder it
  // opened, so hand out the real location (found through the fixtures' README).
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string base = srcdir ? srcdir : ".";
  for (const std::string& root : {base + "/shared_fixtures", base + "/shardcast/external/shared_fixtures"}) {
    char real[PATH_MAX];
    if (::realpath((root + "/README.md").c_str(), real) != nullptr) {
      std::string r = real;
      return r.substr(0, r.size() - std::string("/README.md").size()) + "/" + relative;
    }
  }
  return base + "/shared_fixtures/" + relative;
}

std::string MakeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/" + name;
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + dir);
  return dir;
}

void CopyDir(const std::string& from, const std::string& to) {
  ::mkdir(to.c_str(), 0755);
  DIR* d = ::opendir(from.c_str());
  if (d == nullptr) throw std::runtime_error("cannot open " + from);
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (::stat((from + "/" + n).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      CopyDir(from + "/" + n, to + "/" + n);
    } else {
      WriteFileOrDie(to + "/" + n, ReadFileOrDie(from + "/" + n));
    }
  }
  ::closedir(d);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  ::unlink(path.c_str());
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace shardcast::testing
