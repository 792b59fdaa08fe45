#include "checkpoint/digest.h"

#include <memory>

#include "common/sha256.h"
#include "common/status_macros.h"

namespace shardcast {

absl::StatusOr<std::vector<std::string>> DigestTensors(CheckpointReader& reader,
                                                       const std::vector<const TensorEntry*>& tensors,
                                                       uint64_t batch_bytes,
                                                       const std::function<void(uint64_t)>& progress) {
  std::vector<std::string> out(tensors.size());
  size_t i = 0;
  while (i < tensors.size()) {
    // Gather a batch.
    size_t j = i;
    uint64_t bytes = 0;
    while (j < tensors.size() && (j == i || bytes + tensors[j]->nbytes() <= batch_bytes)) bytes += tensors[j++]->nbytes();
    std::unique_ptr<char[]> buf(new char[bytes == 0 ? 1 : bytes]);
    std::vector<BoxRead> reads;
    uint64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      reads.push_back(BoxRead{tensors[k], FullBox(tensors[k]->shape), buf.get() + off});
      off += tensors[k]->nbytes();
    }
    SC_RETURN_IF_ERROR(reader.Read(reads));
    off = 0;
    for (size_t k = i; k < j; ++k) {
      out[k] = Sha256Hex(absl::string_view(buf.get() + off, tensors[k]->nbytes()));
      off += tensors[k]->nbytes();
      if (progress) progress(tensors[k]->nbytes());
    }
    i = j;
  }
  return out;
}

}  // namespace shardcast
