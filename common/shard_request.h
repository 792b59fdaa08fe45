// ShardRequestSpec: what a client asks shardcastd for (one TP rank's shards under a layout), as
// plain data shared by the client library and the server cores.
#ifndef SHARDCAST_COMMON_SHARD_REQUEST_H_
#define SHARDCAST_COMMON_SHARD_REQUEST_H_

#include <string>
#include <vector>

namespace shardcast {

struct ShardRequestSpec {
  int tp_size = 1;
  int tp_rank = 0;
  std::string layout;                   // "" = the server's --layout
  std::vector<std::string> rules;       // "PATTERN=RULE", in front of the layout
  std::string prefix;                   // "" = the server's --prefix
  std::vector<std::string> renames;     // "OLD=NEW"
  bool unstack = false;
  std::string dtype;                    // "", bf16, fp16, fp32
};

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_SHARD_REQUEST_H_
