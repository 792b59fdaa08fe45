#include "server/listen_address.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shardcast {

absl::StatusOr<HostPort> SplitHostPort(const std::string& address, const std::string& flag) {
  const size_t colon = address.rfind(':');
  const std::string bad = absl::StrCat(flag, " '", address, "' is not HOST:PORT");
  if (colon == std::string::npos || colon == 0) return absl::InvalidArgumentError(bad);
  HostPort hp;
  hp.host = address.substr(0, colon);
  if (hp.host.front() == '[' && hp.host.back() != ']') return absl::InvalidArgumentError(bad);
  if (hp.host.front() != '[' && hp.host.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(bad, " (write an IPv6 host in brackets: [::1]:PORT)"));
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), &hp.port) || hp.port < 0 || hp.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " '", address, "': the port must be 0..65535"));
  }
  return hp;
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = absl::AsciiStrToLower(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost" || h == "ip6-localhost" || h == "ip6-loopback" || h == "::1") return true;
  if (absl::EndsWith(h, ".localhost")) return true;
  return absl::StartsWith(h, "127.") && h.find_first_not_of("0123456789.") == std::string::npos;
}

std::string DataPlaneHost(const std::string& data_host_flag, const std::string& listen_host,
                          const std::string& node_name) {
  if (!data_host_flag.empty()) return data_host_flag;
  if (IsLoopbackHost(listen_host)) return listen_host;
  return node_name;
}

}  // namespace shardcast
