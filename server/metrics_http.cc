// MetricsHttpServer on libmicrohttpd (see metrics_http.h).
#include "server/metrics_http.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include <microhttpd.h>

#include "absl/strings/str_cat.h"
#include "server/listen_address.h"

namespace shardcast {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

MHD_Result Reply(MHD_Connection* connection, unsigned code, const std::string& body, const char* content_type,
                 bool allow_get = false) {
  MHD_Response* response =
      MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (allow_get) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET");
  const MHD_Result result = MHD_queue_response(connection, code, response);
  MHD_destroy_response(response);
  return result;
}

// libmicrohttpd's access handler; `cls` is the server's Render. Answers at the first call: a
// request body (none is expected) is never read into memory.
MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url, const char* method, const char*,
                  const char*, size_t*, void**) {
  if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
    return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics is served\n", "text/plain", true);
  }
  if (std::strcmp(url, "/metrics") != 0) {
    return Reply(connection, MHD_HTTP_NOT_FOUND, "not found: shardcastd serves GET /metrics only\n", "text/plain");
  }
  absl::StatusOr<std::string> text = (*static_cast<MetricsHttpServer::Render*>(cls))();
  if (!text.ok()) {
    return Reply(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, absl::StrCat(text.status().message(), "\n"),
                 "text/plain");
  }
  return Reply(connection, MHD_HTTP_OK, *text, kContentType);
}

// The socket address of HOST:PORT (a name is resolved; the first answer is taken).
absl::StatusOr<sockaddr_storage> Resolve(const std::string& address, int* family) {
  absl::StatusOr<HostPort> hp = SplitHostPort(address, "--metrics-listen");
  if (!hp.ok()) return hp.status();
  std::string host = hp->host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(hp->port);
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-listen ", address, ": cannot resolve '", host,
                                                   "' (", gai_strerror(rc), "); give an address this host has"));
  }
  sockaddr_storage out{};
  std::memcpy(&out, found->ai_addr, found->ai_addrlen);
  *family = found->ai_family;
  freeaddrinfo(found);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address, Render render,
                                                                            MetricsHttpOptions options) {
  int family = AF_INET;
  absl::StatusOr<sockaddr_storage> addr = Resolve(address, &family);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(std::move(render)));
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;  // one polling thread, poll/epoll as available
  if (family == AF_INET6) flags |= MHD_USE_IPv6;
  server->daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Handle, &server->render_,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&*addr),
      MHD_OPTION_CONNECTION_LIMIT, options.connection_limit,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, options.per_ip_connection_limit,
      MHD_OPTION_CONNECTION_TIMEOUT, options.timeout_seconds,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, options.connection_memory_bytes,
      MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen ", address,
                                               ": cannot listen there (port in use, or not this host's address?)"));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(server->daemon_, MHD_DAEMON_INFO_BIND_PORT);
  server->port_ = info != nullptr ? info->port : 0;
  const std::string host = address.substr(0, address.rfind(':'));
  server->address_ = absl::StrCat(host, ":", server->port_);
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

}  // namespace shardcast
