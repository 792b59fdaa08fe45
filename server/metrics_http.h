// MetricsHttpServer: the `/metrics` endpoint of `shardcastd --metrics-listen HOST:PORT`, on
// libmicrohttpd (Debian's libmicrohttpd-dev). GET /metrics answers the render callback's text
// (Prometheus text format 0.0.4); any other path is 404, any other method 405. Hostile clients
// are bounded: one internal polling thread (no thread per connection), a cap on connections in
// all and per client address, a per-connection memory limit (request headers beyond it are
// refused) and an idle timeout.
#ifndef SHARDCAST_SERVER_METRICS_HTTP_H_
#define SHARDCAST_SERVER_METRICS_HTTP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct MHD_Daemon;

namespace shardcast {

struct MetricsHttpOptions {
  unsigned connection_limit = 64;        // connections at once, all clients
  unsigned per_ip_connection_limit = 8;  // connections at once from one address
  unsigned timeout_seconds = 10;         // an idle or slow connection is closed after this
  size_t connection_memory_bytes = 32 * 1024;  // a request's headers must fit in this
};

class MetricsHttpServer {
 public:
  using Render = std::function<absl::StatusOr<std::string>()>;

  // Binds exactly `address` (HOST:PORT, [V6]:PORT; port 0: ephemeral) and serves. InvalidArgument
  // for an address that does not parse or resolve, Unavailable when the bind fails (in use?).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address, Render render,
                                                                  MetricsHttpOptions options = {});
  ~MetricsHttpServer();  // stops serving (joins the polling thread)
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  // HOST:PORT with the bound port.
  const std::string& address() const { return address_; }

 private:
  explicit MetricsHttpServer(Render render) : render_(std::move(render)) {}

  Render render_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  std::string address_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_METRICS_HTTP_H_
