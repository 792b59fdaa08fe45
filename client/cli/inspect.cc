// `shardcast inspect`: Inspect() builds the --json document from a reader, FormatInspect() renders it
// for humans, InspectCommand is the thin command object.
#include "client/cli/inspect.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "checkpoint/digest.h"
#include "client/cli/command.h"
#include "common/args.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "common/text_escape.h"

namespace shardcast::cli {

std::string HumanBytes(uint64_t b) {
  if (b >= 1000000000ull) return absl::StrFormat("%.2f GB", b / 1e9);
  if (b >= 1000000ull) return absl::StrFormat("%.1f MB", b / 1e6);
  if (b >= 1000ull) return absl::StrFormat("%.1f KB", b / 1e3);
  return absl::StrCat(b, " B");
}

absl::StatusOr<Json> Inspect(CheckpointReader& reader, const InspectOptions& options,
                             const std::function<void(uint64_t)>& progress) {
  const CheckpointMetadata& md = reader.metadata();
  std::vector<const TensorEntry*> selected;
  if (!options.key.empty()) {
    const TensorEntry* t = md.FindTensor(options.key);
    if (t == nullptr) {
      return absl::NotFoundError(absl::StrCat("no tensor '", options.key, "' in ", reader.resolved().dir,
                                              md.FindBytes(options.key) ? " (it is a bytes entry)" : ""));
    }
    selected.push_back(t);
  } else {
    selected = reader.Select(options.prefix);
    if (selected.empty() && !options.prefix.empty()) {
      return absl::NotFoundError(absl::StrCat("--prefix '", options.prefix, "' selects none of the ", md.tensors.size(),
                                              " tensors in ", reader.resolved().dir));
    }
  }
  std::vector<std::string> digests;
  if (options.digest) {
    SC_ASSIGN_OR_RETURN(digests, DigestTensors(reader, selected, 1ull << 30, progress));
  }
  uint64_t total = 0, sel = 0;
  for (const TensorEntry& t : md.tensors) total += t.nbytes();
  for (const TensorEntry* t : selected) sel += t->nbytes();

  Json out = Json::Object();
  out.Set("path", reader.resolved().dir);
  if (reader.resolved().iteration) {
    out.Set("iteration", *reader.resolved().iteration);
  } else if (reader.resolved().release) {
    out.Set("iteration", "release");
  } else {
    out.Set("iteration", nullptr);
  }
  const bool safetensors = reader.resolved().format == CheckpointFormat::kSafetensors;
  out.Set("format", safetensors ? "safetensors" : "dcp");
  if (!md.version.empty()) out.Set("dcp_version", md.version);
  if (safetensors) {  // each file's __metadata__, informational
    Json files = Json::Object();
    for (const auto& [file, kv] : md.file_metadata) {
      Json m = Json::Object();
      for (const auto& [k, v] : kv) m.Set(k, v);
      files.Set(file, std::move(m));
    }
    out.Set("file_metadata", std::move(files));
  }
  out.Set("tensor_count", static_cast<int64_t>(md.tensors.size()));
  out.Set("total_bytes", total);
  out.Set("selected_bytes", sel);
  Json tensors = Json::Array();
  for (size_t i = 0; i < selected.size(); ++i) {
    const TensorEntry* t = selected[i];
    Json j = Json::Object();
    j.Set("key", t->key);
    j.Set("dtype", std::string(DTypeName(t->dtype)));
    j.Set("shape", Json::ArrayOf(t->shape));
    Json chunks = Json::Array();
    for (const StoredChunk& c : t->chunks) {
      Json cj = Json::Object();
      cj.Set("offsets", Json::ArrayOf(c.box.offsets));
      cj.Set("sizes", Json::ArrayOf(c.box.sizes));
      cj.Set("file", c.location.relative_path);
      chunks.Append(std::move(cj));
    }
    j.Set("chunks", std::move(chunks));
    j.Set("bytes", t->nbytes());
    if (options.digest) j.Set("sha256", digests[i]);
    tensors.Append(std::move(j));
  }
  out.Set("tensors", std::move(tensors));
  if (options.digest) {
    // What the digest read could check: records read whole are verified against their stored
    // CRC-32 (unless switched off); records storing none are counted apart.
    const ReaderStats stats = reader.stats();
    Json crc = Json::Object();
    crc.Set("verified_records", stats.crc_verified_records);
    crc.Set("absent_records", stats.crc_absent_records);
    crc.Set("unverified_partial_records", stats.crc_unverified_partial_records);
    out.Set("storage_crc", std::move(crc));
  }
  Json bytes = Json::Array();
  for (const BytesEntry& b : md.bytes_entries) {
    if (!options.key.empty() ? b.key != options.key : b.key.rfind(options.prefix, 0) != 0) continue;
    Json bj = Json::Object();
    bj.Set("key", b.key);
    bj.Set("bytes", b.location.length);
    bytes.Append(std::move(bj));
  }
  out.Set("bytes_entries", std::move(bytes));
  return out;
}

std::string FormatInspect(const Json& j) {
  std::string out;
  const Json* it = j.Find("iteration");
  // Keys and paths come from the checkpoint: escaped so that none can forge a line (a newline in
  // a key) or send terminal control sequences (common/text_escape.h).
  absl::StrAppend(&out, "checkpoint  ", EscapeForTerminal(j.Find("path")->as_string()), "\n");
  if (it && !it->is_null()) {
    absl::StrAppend(&out, "iteration   ", it->is_string() ? EscapeForTerminal(it->as_string()) : absl::StrCat(it->as_int()),
                    "\n");
  }
  const auto& tensors = j.Find("tensors")->items();
  absl::StrAppend(&out, "tensors     ", j.Find("tensor_count")->as_int(), " (", tensors.size(), " selected)\n");
  absl::StrAppend(&out, "bytes       ", HumanBytes(j.Find("total_bytes")->as_uint()), " total, ",
                  HumanBytes(j.Find("selected_bytes")->as_uint()), " selected\n\n");
  std::vector<std::string> keys;
  size_t key_w = 3;
  for (const Json& t : tensors) {
    keys.push_back(EscapeForTerminal(t.Find("key")->as_string()));
    key_w = std::max(key_w, keys.back().size());
  }
  const bool digest = !tensors.empty() && tensors[0].Find("sha256") != nullptr;
  absl::StrAppend(&out, absl::StrFormat("%-*s  %-14s %-18s %6s %10s%s\n", key_w, "key", "dtype", "shape", "chunks",
                                        "bytes", digest ? "  sha256" : ""));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Json& t = tensors[i];
    std::vector<int64_t> shape;
    for (const Json& d : t.Find("shape")->items()) shape.push_back(d.as_int());
    absl::StrAppend(&out, absl::StrFormat("%-*s  %-14s %-18s %6d %10s", key_w, keys[i], t.Find("dtype")->as_string(),
                                          absl::StrCat("[", absl::StrJoin(shape, ","), "]"), t.Find("chunks")->size(),
                                          HumanBytes(t.Find("bytes")->as_uint())));
    if (digest) absl::StrAppend(&out, "  ", t.Find("sha256")->as_string());
    out += "\n";
  }
  if (const Json* crc = j.Find("storage_crc")) {
    absl::StrAppend(&out, "\nstorage CRC-32: ", crc->Find("verified_records")->as_uint(), " records verified",
                    crc->Find("absent_records")->as_uint() ? absl::StrCat(", ", crc->Find("absent_records")->as_uint(),
                                                                         " store none") : "",
                    "\n");
  }
  const auto& bytes = j.Find("bytes_entries")->items();
  if (!bytes.empty()) {
    out += "\nnon-tensor entries:\n";
    for (const Json& b : bytes) {
      absl::StrAppend(&out, "  ", EscapeForTerminal(b.Find("key")->as_string()), "  ",
                      HumanBytes(b.Find("bytes")->as_uint()), "\n");
    }
  }
  return out;
}

namespace {

// `shardcast inspect`: a checkpoint's tensors (and with --digest their sha256), as JSON or a table.
class InspectCommand final : public Command {
 public:
  std::string name() const override { return "inspect"; }
  std::string usage() const override {
    return "shardcast inspect PATH [--prefix P] [--iteration N] [--key K] [--digest] [--json]";
  }
  std::string description() const override {
    return "Lists the tensors of a PyTorch Distributed Checkpoint (DCP) or of safetensors: dtype, shape, stored\n"
           "chunks and bytes. PATH is a DCP folder (holding .metadata), a Megatron save folder with\n"
           "latest_checkpointed_iteration.txt, a folder of safetensors (model.safetensors, or shards with\n"
           "model.safetensors.index.json) or one .safetensors file. The checkpoint is only read, never written.";
  }
  void AddFlags(ArgParser& p) const override {
    p.AddPositional("PATH", "checkpoint folder");
    p.AddFlag("prefix", "P", "only keys starting with P (e.g. model.vision_model.)");
    p.AddFlag("iteration", "N", "open iter_N/ of a Megatron save folder instead of the latest");
    p.AddFlag("key", "K", "only the tensor with this exact key");
    p.AddSwitch("digest", "read the selected tensors and print the sha256 of each (C order)");
    p.AddSwitch("json", "print JSON for scripts");
    p.AddFlag("threads", "N", "parallel reads", "8");
    p.AddFlag("block-size", "BYTES", "bytes per read request", "16MiB");
    p.AddSwitch("direct", "read with O_DIRECT (bypass the page cache)");
    p.AddSwitch("no-verify-storage-crc", "with --digest: do not check each record's stored CRC-32");
  }
  absl::Status Parse(const ArgParser& p) override {
    path_ = p.positional(0);
    SC_ASSIGN_OR_RETURN(reader_options_.iteration, p.GetOptionalInt("iteration"));
    SC_ASSIGN_OR_RETURN(const int64_t threads, p.GetInt("threads"));
    SC_ASSIGN_OR_RETURN(reader_options_.block_size, p.GetBytes("block-size"));
    reader_options_.threads = static_cast<int>(threads);
    reader_options_.storage.o_direct = p.GetSwitch("direct");
    reader_options_.verify_storage_crc = !p.GetSwitch("no-verify-storage-crc");
    inspect_ = InspectOptions{p.Get("prefix"), p.Get("key"), p.GetSwitch("digest")};
    json_ = p.GetSwitch("json");
    return absl::OkStatus();
  }
  absl::Status Run() override {
    SC_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointReader> reader, CheckpointReader::Open(path_, reader_options_));
    uint64_t to_read = 0;
    for (const TensorEntry* t : reader->Select(inspect_.prefix)) to_read += t->nbytes();
    ProgressBar bar("reading", to_read, inspect_.digest && ProgressBar::StderrIsTerminal());
    SC_ASSIGN_OR_RETURN(const Json result, Inspect(*reader, inspect_, [&](uint64_t n) { bar.Add(n); }));
    std::cout << (json_ ? result.Dump(1) + "\n" : FormatInspect(result));
    return absl::OkStatus();
  }

 private:
  std::string path_;
  ReaderOptions reader_options_;
  InspectOptions inspect_;
  bool json_ = false;
};

}  // namespace

int RunInspect(const std::vector<std::string>& args) {
  InspectCommand command;
  return Execute(command, args);
}

}  // namespace shardcast::cli
