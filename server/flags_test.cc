#include "server/flags.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

absl::StatusOr<ServerOptions> Options(std::vector<std::string> args) {
  ArgParser p = NewServerArgParser();
  absl::Status s = p.Parse(args);
  if (!s.ok()) return s;
  return ServerOptionsFromFlags(p);
}

TEST(ServerFlags, DefaultsOfAMinimalCommandLine) {
  auto o = Options({"--checkpoint", "/ckpt"});
  SC_ASSERT_OK(o.status());
  EXPECT_EQ(o->loader.checkpoint, "/ckpt");
  EXPECT_EQ(o->loader.layout, "megatron");
  EXPECT_EQ(o->device, "cuda");
  EXPECT_EQ(o->deadline, std::chrono::seconds(60));
  EXPECT_EQ(o->loader.max_cached_requests, 1024u);
  EXPECT_EQ(o->loader.read_threads, 8);
  EXPECT_TRUE(o->loader.verify_storage_crc);
  EXPECT_FALSE(o->memory_budget.has_value());
  EXPECT_FALSE(o->loader.iteration.has_value());
  EXPECT_TRUE(o->token.empty());
  EXPECT_EQ(o->exit_when_idle.count(), 0);
  EXPECT_EQ(o->exit_after_clients, 0u);
  EXPECT_EQ(o->exit_on_failure, std::chrono::seconds(60));
}

TEST(ServerFlags, LifecycleFlagsReachTheirOptions) {
  auto o = Options({"--checkpoint", "/c", "--exit-when-idle", "2", "--exit-after-clients", "5", "--exit-on-failure", "0"});
  SC_ASSERT_OK(o.status());
  EXPECT_EQ(o->exit_when_idle, std::chrono::seconds(2));
  EXPECT_EQ(o->exit_after_clients, 5u);
  EXPECT_EQ(o->exit_on_failure.count(), 0);
}

TEST(ServerFlags, LogFormatFlagParsesAndNamesItselfWhenWrong) {
  unsetenv("SHARDCAST_LOG_FORMAT");
  ArgParser p = NewServerArgParser();
  SC_ASSERT_OK(p.Parse({"--checkpoint", "/c", "--log-format", "json"}));
  EXPECT_EQ(*LogFormatFromFlags(p), LogFormat::kJson);
  ArgParser none = NewServerArgParser();
  SC_ASSERT_OK(none.Parse({"--checkpoint", "/c"}));
  EXPECT_EQ(*LogFormatFromFlags(none), LogFormat::kText);
  ArgParser bad = NewServerArgParser();
  SC_ASSERT_OK(bad.Parse({"--checkpoint", "/c", "--log-format", "xml"}));
  absl::StatusOr<LogFormat> f = LogFormatFromFlags(bad);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("--log-format: unknown log format 'xml' (text or json)"), std::string::npos)
      << f.status();
  EXPECT_NE(bad.Help().find("--log-format"), std::string::npos);
}

TEST(ServerFlags, HelpDocumentsTheExitStatuses) {
  const std::string help = NewServerArgParser().Help();
  EXPECT_NE(help.find("Exit statuses"), std::string::npos);
  EXPECT_NE(help.find("--exit-on-failure"), std::string::npos);
  EXPECT_NE(help.find("3 (rank 0) the service failed"), std::string::npos);
}

TEST(ServerFlags, VersionNeedsNoOtherFlag) {
  // main() prints the version (common/version.h) when the switch is set, before --checkpoint is
  // required.
  ArgParser p = NewServerArgParser();
  SC_ASSERT_OK(p.Parse({"--version"}));
  EXPECT_TRUE(p.GetSwitch("version"));
  EXPECT_NE(p.Help().find("--version"), std::string::npos);
  ArgParser q = NewServerArgParser();
  SC_ASSERT_OK(q.Parse({"--checkpoint", "/c"}));
  EXPECT_FALSE(q.GetSwitch("version"));
}

TEST(ServerFlags, EveryFlagReachesItsOption) {
  auto o = Options({"--checkpoint", "/c", "--iteration", "7", "--prefix", "model.", "--layout", "x.layout",
                    "--rule", "a=replicate", "--rule", "b=split:0", "--listen", "127.0.0.1:5000",
                    "--data-host", "127.0.0.1", "--device", "cpu", "--memory-budget", "2GiB",
                    "--max-cached-requests", "3", "--deadline", "5", "--ready-file", "/r", "--nccl-lib", "/n.so",
                    "--read-threads", "4", "--no-verify-storage-crc", "--metrics-listen", "[::1]:9100"});
  SC_ASSERT_OK(o.status());
  EXPECT_EQ(*o->loader.iteration, 7);
  EXPECT_EQ(o->loader.prefix, "model.");
  EXPECT_EQ(o->loader.layout, "x.layout");
  EXPECT_EQ(o->loader.rules, (std::vector<std::string>{"a=replicate", "b=split:0"}));
  EXPECT_EQ(o->listen, "127.0.0.1:5000");
  EXPECT_EQ(o->data_host, "127.0.0.1");
  EXPECT_EQ(o->device, "cpu");
  EXPECT_EQ(*o->memory_budget, 2ull << 30);
  EXPECT_EQ(o->loader.max_cached_requests, 3u);
  EXPECT_EQ(o->deadline, std::chrono::seconds(5));
  EXPECT_EQ(o->ready_file, "/r");
  EXPECT_EQ(o->nccl_library, "/n.so");
  EXPECT_EQ(o->loader.read_threads, 4);
  EXPECT_FALSE(o->loader.verify_storage_crc);
  EXPECT_EQ(o->metrics_listen, "[::1]:9100");
}

TEST(ServerFlags, MetricsAreOffByDefault) {
  auto o = Options({"--checkpoint", "/c"});
  SC_ASSERT_OK(o.status());
  EXPECT_EQ(o->metrics_listen, "");
}

TEST(ServerFlags, ErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{}, "--checkpoint is required"},
           {{"--checkpoint", "/c", "--deadline", "0"}, "--deadline"},
           {{"--checkpoint", "/c", "--deadline", "soon"}, "--deadline"},
           {{"--checkpoint", "/c", "--max-cached-requests", "0"}, "--max-cached-requests"},
           {{"--checkpoint", "/c", "--read-threads", "0"}, "--read-threads"},
           {{"--checkpoint", "/c", "--memory-budget", "lots"}, "memory-budget"},
           {{"--checkpoint", "/c", "--iteration", "x"}, "iteration"},
           {{"--checkpoint", "/c", "--exit-when-idle", "-1"}, "--exit-when-idle"},
           {{"--checkpoint", "/c", "--exit-on-failure", "soon"}, "--exit-on-failure"},
           {{"--checkpoint", "/c", "--exit-after-clients", "-2"}, "--exit-after-clients"},
           {{"--checkpoint", "/c", "--token-file", "/nonexistent/token"}, "/nonexistent/token"},
           {{"--checkpoint", "/c", "--metrics-listen", "9100"}, "--metrics-listen '9100' is not HOST:PORT"},
           {{"--checkpoint", "/c", "--metrics-listen", ":9100"}, "--metrics-listen"},
           {{"--checkpoint", "/c", "--metrics-listen", "0.0.0.0:99999"}, "--metrics-listen"},
           {{"--checkpoint", "/c", "--metrics-listen", "0.0.0.0:http"}, "--metrics-listen"},
           {{"--checkpoint", "/c", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/k"}, "cert.pem"},
       }) {
    auto o = Options(c.args);
    ASSERT_FALSE(o.ok()) << c.says;
    EXPECT_NE(o.status().message().find(c.says), std::string::npos) << o.status();
  }
}

TEST(ServerFlags, LoopbackOnlyWhenListenAndDataHostAreLoopback) {
  ServerOptions o;
  EXPECT_FALSE(*LoopbackOnly(o));  // <hostname>:0
  o.listen = "127.0.0.1:0";
  EXPECT_TRUE(*LoopbackOnly(o));
  o.data_host = "node7";
  EXPECT_FALSE(*LoopbackOnly(o));
  o.listen = "[::1]:0";
  o.data_host = "";
  EXPECT_TRUE(*LoopbackOnly(o));
  o.listen = "no-port";
  EXPECT_FALSE(LoopbackOnly(o).ok());
}

}  // namespace
}  // namespace shardcast
