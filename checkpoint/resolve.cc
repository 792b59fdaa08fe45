#include "checkpoint/resolve.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/safe_file.h"
#include "common/status_macros.h"
#include "common/text_escape.h"

namespace shardcast {
namespace {

constexpr uint64_t kMaxTrackerBytes = 4096;

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool IsFile(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
// Anything at `p` (a FIFO or device too): such a `.metadata` is then refused by name when it is
// opened (common/safe_file.h), rather than reported as missing.
bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::vector<std::string> ListDir(const std::string& p) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(p.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The first 8 names, joined.
std::string FirstNames(const std::vector<std::string>& names) {
  std::vector<std::string> shown(names.begin(), names.begin() + std::min<size_t>(names.size(), 8));
  return absl::StrCat(absl::StrJoin(shown, ", "), names.size() > 8 ? ", ..." : "");
}

std::string Describe(const std::vector<std::string>& entries) {
  if (entries.empty()) return "it is empty";
  return absl::StrCat("it holds ", FirstNames(entries));
}

absl::StatusOr<ResolvedCheckpoint> CheckDcpDir(const std::string& dir, ResolvedCheckpoint r, absl::string_view why) {
  if (!IsDir(dir)) return absl::NotFoundError(absl::StrCat(why, ", but ", dir, " does not exist"));
  if (!Exists(dir + "/.metadata")) {
    return absl::NotFoundError(absl::StrCat(why, ", but ", dir, " has no .metadata (incomplete save?); ",
                                            Describe(ListDir(dir))));
  }
  r.dir = dir;
  return r;
}

std::string Dirname(const std::string& p) {
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

// A path to one `.safetensors` file or index: the folder is its parent (after symlinks: the user
// chose this file); nullopt for any other path.
std::optional<ResolvedCheckpoint> SafetensorsFilePath(const std::string& path) {
  const bool index = absl::EndsWith(path, ".safetensors.index.json");
  if (!(index || absl::EndsWith(path, ".safetensors")) || IsDir(path) || !Exists(path)) return std::nullopt;
  char real[PATH_MAX];
  const std::string target = ::realpath(path.c_str(), real) != nullptr ? std::string(real) : path;
  ResolvedCheckpoint r;
  r.format = CheckpointFormat::kSafetensors;
  r.dir = Dirname(target);
  const std::string name = target.substr(target.rfind('/') + 1);
  if (index) {
    r.safetensors_index = name;
  } else {
    r.safetensors_files = {name};
  }
  return r;
}

// A folder's safetensors content: its one index, else its data files. nullopt when it has none;
// an error when it has several indexes or also a DCP `.metadata`.
absl::StatusOr<std::optional<ResolvedCheckpoint>> SafetensorsFolder(const std::string& path) {
  std::vector<std::string> indexes, data;
  for (const std::string& e : ListDir(path)) {
    if (absl::EndsWith(e, ".safetensors.index.json")) indexes.push_back(e);
    if (absl::EndsWith(e, ".safetensors")) data.push_back(e);
  }
  if (indexes.empty() && data.empty()) return std::nullopt;
  const std::string found = FirstNames(indexes.empty() ? data : indexes);
  if (Exists(path + "/.metadata")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds both a DCP checkpoint (.metadata) and safetensors (", found,
        "); move one of them out, or pass the path of the .safetensors file or index to read"));
  }
  if (indexes.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds several safetensors indexes (", found,
                                                   "); pass the path of the one to read"));
  }
  ResolvedCheckpoint r;
  r.format = CheckpointFormat::kSafetensors;
  r.dir = path;
  if (!indexes.empty()) {
    r.safetensors_index = indexes[0];
  } else {
    r.safetensors_files = data;
  }
  return r;
}

}  // namespace

absl::StatusOr<ResolvedCheckpoint> ResolveCheckpoint(const std::string& path_in, std::optional<int64_t> iteration) {
  std::string path = path_in;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (IsFile(path) && absl::EndsWith(path, "/.metadata")) path = path.substr(0, path.size() - 10);
  if (!iteration.has_value()) {
    if (std::optional<ResolvedCheckpoint> st = SafetensorsFilePath(path)) return *st;
  }
  if (!IsDir(path)) {
    return absl::NotFoundError(absl::StrCat("checkpoint path ", path,
                                            " is not a folder (nor a .safetensors file or index)"));
  }
  if (!iteration.has_value()) {
    SC_ASSIGN_OR_RETURN(std::optional<ResolvedCheckpoint> st, SafetensorsFolder(path));
    if (st.has_value()) return *st;
  }

  ResolvedCheckpoint r;
  if (iteration.has_value()) {
    if (*iteration < 0) return absl::InvalidArgumentError("--iteration must be >= 0");
    r.iteration = iteration;
    return CheckDcpDir(absl::StrFormat("%s/iter_%07d", path, *iteration), r,
                       absl::StrCat("--iteration ", *iteration, " was given"));
  }
  if (Exists(path + "/.metadata")) {
    r.dir = path;
    return r;
  }
  const std::string tracker = path + "/latest_checkpointed_iteration.txt";
  if (Exists(tracker)) {
    // Megatron writes a number or "release": a few bytes. Capped, and never a blocking open.
    char real[PATH_MAX];  // a symlinked tracker is fine: the user chose this folder
    const std::string target = ::realpath(tracker.c_str(), real) != nullptr ? std::string(real) : tracker;
    absl::StatusOr<std::string> content = ReadSmallFile(target, kMaxTrackerBytes, "Megatron tracker file");
    if (!content.ok()) return content.status();
    std::string text(absl::StripAsciiWhitespace(*content));
    if (text == "release") {
      r.release = true;
      return CheckDcpDir(path + "/release", r, absl::StrCat(tracker, " says 'release'"));
    }
    int64_t it;
    if (!absl::SimpleAtoi(text, &it) || it < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(tracker, " holds '", EscapeForTerminal(text.substr(0, 40)),
                       "'; expected an iteration number or 'release'"));
    }
    r.iteration = it;
    return CheckDcpDir(absl::StrFormat("%s/iter_%07d", path, it), r, absl::StrCat(tracker, " says ", it));
  }
  const std::vector<std::string> entries = ListDir(path);
  for (const std::string& e : entries) {
    if (absl::StartsWith(e, "mp_rank_")) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is a legacy Megatron 'torch' checkpoint (", e,
                                                     "/), not a distributed checkpoint; convert it to torch_dist"));
    }
  }
  for (const std::string& e : entries) {
    if (absl::StartsWith(e, "__") && absl::EndsWith(e, ".metadata")) {
      return absl::UnimplementedError(absl::StrCat(
          path, " has per-rank metadata (", e, ": saved with use_collectives=False) but no global .metadata; "
          "shardcast needs the global .metadata"));
    }
  }
  std::vector<std::string> iters;
  for (const std::string& e : entries) {
    if (absl::StartsWith(e, "iter_")) iters.push_back(e);
  }
  std::string hint = iters.empty() ? "" : absl::StrCat("; it has ", iters.back(), ": pass --iteration N");
  return absl::NotFoundError(absl::StrCat(path, " is not a DCP checkpoint (no .metadata and no "
                                          "latest_checkpointed_iteration.txt) nor safetensors (no *.safetensors); ",
                                          Describe(entries), hint));
}

}  // namespace shardcast
