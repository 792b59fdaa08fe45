// MetricsHttpServer over real sockets on loopback: GET /metrics answers the render's text with
// the Prometheus content type; other paths 404, other methods 405; a render error is a 500;
// oversized request headers are refused; an idle connection is closed at the timeout; bad and
// busy addresses are refused at start.
#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until the peer closes or `timeout` passes.
std::string ReadAll(int fd, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  return out;
}

// One request on a fresh connection ("Connection: close"); the whole response ("" when the server
// closed the connection without one).
std::string Request(int port, const std::string& request) {
  const int fd = Connect(port);
  EXPECT_GE(fd, 0);
  if (fd < 0) return "";
  // A refused connection may be reset before the write: MSG_NOSIGNAL, and the (empty) response says it.
  (void)send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response = ReadAll(fd);
  close(fd);
  return response;
}

std::string Get(int port, const std::string& path) {
  return Request(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

TEST(MetricsHttpServer, ServesMetricsWithThePrometheusContentType) {
  std::atomic<int> renders{0};
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", [&renders]() -> absl::StatusOr<std::string> {
                            return "shardcast_x " + std::to_string(++renders) + "\n";
                          }));
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  std::string r = Get(server->port(), "/metrics");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  EXPECT_THAT(r, HasSubstr("\r\n\r\nshardcast_x 1\n"));
  EXPECT_THAT(Get(server->port(), "/metrics"), HasSubstr("shardcast_x 2\n"));  // rendered per scrape
}

TEST(MetricsHttpServer, OtherPathsAndMethodsAreRefused) {
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", []() -> absl::StatusOr<std::string> {
                            return std::string("m 1\n");
                          }));
  EXPECT_THAT(Get(server->port(), "/"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Get(server->port(), "/metrics/x"), StartsWith("HTTP/1.1 404"));
  const std::string post = Request(
      server->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(post, HasSubstr("Allow: GET"));
}

TEST(MetricsHttpServer, ARenderErrorIsA500) {
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", []() -> absl::StatusOr<std::string> {
                            return absl::InternalError("broken family");
                          }));
  const std::string r = Get(server->port(), "/metrics");
  EXPECT_THAT(r, StartsWith("HTTP/1.1 500"));
  EXPECT_THAT(r, HasSubstr("broken family"));
}

TEST(MetricsHttpServer, OversizedHeadersAreRefusedAndTheServerGoesOn) {
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", []() -> absl::StatusOr<std::string> {
                            return std::string("m 1\n");
                          }));
  const std::string huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(256 * 1024, 'a') +
                           "\r\nConnection: close\r\n\r\n";
  const std::string r = Request(server->port(), huge);
  EXPECT_THAT(r, ::testing::Not(StartsWith("HTTP/1.1 200")));
  EXPECT_THAT(Get(server->port(), "/metrics"), StartsWith("HTTP/1.1 200"));
}

TEST(MetricsHttpServer, AnIdleConnectionIsClosedAtTheTimeout) {
  MetricsHttpOptions o;
  o.timeout_seconds = 1;
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", []() -> absl::StatusOr<std::string> {
                            return std::string("m 1\n");
                          }, o));
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "GET /metr", 9), 9);  // a request never finished
  const auto start = std::chrono::steady_clock::now();
  ReadAll(fd, std::chrono::seconds(10));   // returns when the server closes
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  close(fd);
}

TEST(MetricsHttpServer, ConnectionsBeyondThePerAddressCapAreClosed) {
  MetricsHttpOptions o;
  o.per_ip_connection_limit = 2;
  SC_ASSERT_OK_AND_ASSIGN(auto server, MetricsHttpServer::Start("127.0.0.1:0", []() -> absl::StatusOr<std::string> {
                            return std::string("m 1\n");
                          }, o));
  const int idle1 = Connect(server->port()), idle2 = Connect(server->port());
  ASSERT_GE(idle1, 0);
  ASSERT_GE(idle2, 0);
  // The kernel accepts the third connection; the server closes it without an answer.
  EXPECT_EQ(Get(server->port(), "/metrics"), "");
  close(idle1);
  close(idle2);
  std::string r;
  for (int attempt = 0; attempt < 50 && r.empty(); ++attempt) {  // until the server has seen the closes
    r = Get(server->port(), "/metrics");
    if (r.empty()) usleep(20000);
  }
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200"));
}

TEST(MetricsHttpServer, BadAndBusyAddressesAreRefusedAtStart) {
  auto render = []() -> absl::StatusOr<std::string> { return std::string(); };
  EXPECT_EQ(MetricsHttpServer::Start("no-port", render).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("host.invalid:9100", render).status().code(),
            absl::StatusCode::kInvalidArgument);
  SC_ASSERT_OK_AND_ASSIGN(auto first, MetricsHttpServer::Start("127.0.0.1:0", render));
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start("127.0.0.1:" + std::to_string(first->port()), render);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace shardcast
