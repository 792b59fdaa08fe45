// GoogleTest helpers for absl::Status (testonly).
#ifndef SHARDCAST_COMMON_STATUS_TESTUTIL_H_
#define SHARDCAST_COMMON_STATUS_TESTUTIL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define SC_ASSERT_OK(expr)                         \
  do {                                             \
    const ::absl::Status sc_s_ = (expr);           \
    ASSERT_TRUE(sc_s_.ok()) << sc_s_.ToString();   \
  } while (0)

#define SC_EXPECT_OK(expr)                         \
  do {                                             \
    const ::absl::Status sc_s_ = (expr);           \
    EXPECT_TRUE(sc_s_.ok()) << sc_s_.ToString();   \
  } while (0)

#define SC_TESTUTIL_CONCAT_INNER_(a, b) a##b
#define SC_TESTUTIL_CONCAT_(a, b) SC_TESTUTIL_CONCAT_INNER_(a, b)

#define SC_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  SC_ASSERT_OK_AND_ASSIGN_IMPL_(SC_TESTUTIL_CONCAT_(sc_sor_, __LINE__), lhs, rexpr)
#define SC_ASSERT_OK_AND_ASSIGN_IMPL_(sor, lhs, rexpr)   \
  auto sor = (rexpr);                                    \
  ASSERT_TRUE(sor.ok()) << sor.status().ToString();      \
  lhs = std::move(sor).value()

#endif  // SHARDCAST_COMMON_STATUS_TESTUTIL_H_
