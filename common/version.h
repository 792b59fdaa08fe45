// The one source of shardcast's version: `shardcast --version`, `shardcastd --version` and the
// Python package (tools/build_wheel.sh and shardcast.__version__ read the kVersion line below, so keep
// it a single string literal on one line).
#ifndef SHARDCAST_COMMON_VERSION_H_
#define SHARDCAST_COMMON_VERSION_H_

namespace shardcast {

inline constexpr char kVersion[] = "0.1.0";

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_VERSION_H_
