// Which address each shardcastd socket binds (pure string logic, no sockets): HOST:PORT parsing,
// loopback detection, and the data-plane host of the loader ranks (--data-host, else --listen's
// host when that is loopback, else the node's host name). Sockets bind exactly these hosts, and
// ranks advertise what they bind.
#ifndef SHARDCAST_SERVER_LISTEN_ADDRESS_H_
#define SHARDCAST_SERVER_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"

namespace shardcast {

struct HostPort {
  std::string host;  // as given: "node1", "127.0.0.1", "[::1]"
  int port = 0;      // 0 = ephemeral
};

// "HOST:PORT" or "[V6]:PORT". InvalidArgument naming `flag` without a host or with a bad port.
absl::StatusOr<HostPort> SplitHostPort(const std::string& address, const std::string& flag = "--listen");

// localhost, ip6-localhost, 127.0.0.0/8, ::1 (bracketed or not).
bool IsLoopbackHost(const std::string& host);

// The host the loader ranks' data-plane ports bind and advertise.
std::string DataPlaneHost(const std::string& data_host_flag, const std::string& listen_host,
                          const std::string& node_name);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LISTEN_ADDRESS_H_
