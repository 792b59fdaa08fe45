// Incremental SHA-256 (OpenSSL's libcrypto), hex output as `sha256sum` prints it.
#ifndef SHARDCAST_COMMON_SHA256_H_
#define SHARDCAST_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace shardcast {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  void Update(const void* data, size_t n) { Update(absl::string_view(static_cast<const char*>(data), n)); }
  // Lower-case hex digest. The object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(absl::string_view bytes);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_SHA256_H_
