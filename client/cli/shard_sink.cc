// ShardSink and the output flags shared by `reshard` and `fetch`.
#include "client/cli/shard_sink.h"

#include <iostream>

#include "common/sha256.h"

namespace shardcast::cli {

void AddOutputFlags(ArgParser& flags) {
  flags.AddFlag("out", "FILE.safetensors", "write the shards to a safetensors file");
  flags.AddSwitch("digest", "print the sha256 of each shard");
  flags.AddSwitch("json", "print JSON for scripts");
}

absl::StatusOr<OutputFlags> OutputFromFlags(const ArgParser& flags) {
  if (flags.Has("out") == flags.GetSwitch("digest")) {
    return absl::InvalidArgumentError("give exactly one of --out FILE or --digest");
  }
  OutputFlags out;
  out.out = flags.Get("out");
  out.digest = flags.GetSwitch("digest");
  out.json = flags.GetSwitch("json");
  return out;
}

absl::StatusOr<std::unique_ptr<ShardSink>> ShardSink::Open(const OutputFlags& flags,
                                                           const std::vector<SafetensorsWriter::Entry>& entries,
                                                           const std::map<std::string, std::string>& metadata) {
  std::unique_ptr<ShardSink> sink(new ShardSink(flags));
  if (!flags.out.empty()) {
    absl::StatusOr<std::unique_ptr<SafetensorsWriter>> writer = SafetensorsWriter::Create(flags.out, entries, metadata);
    if (!writer.ok()) return writer.status();
    sink->writer_ = *std::move(writer);
  }
  return sink;
}

absl::Status ShardSink::Add(Json entry, absl::string_view bytes) {
  if (flags_.digest) entry.Set("sha256", Sha256Hex(bytes));
  tensors_.Append(std::move(entry));
  return writer_ ? writer_->Append(bytes.data(), bytes.size()) : absl::OkStatus();
}

absl::Status ShardSink::Finish() { return writer_ ? writer_->Finish() : absl::OkStatus(); }

void ShardSink::PrintJson(const Json& report) { std::cout << report.Dump(1) << std::endl; }

}  // namespace shardcast::cli
