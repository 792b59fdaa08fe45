// Status propagation macros for absl::Status / absl::StatusOr (Debian 12's Abseil has none).
//
//   SC_RETURN_IF_ERROR(ReadFile(path));
//   SC_ASSIGN_OR_RETURN(Metadata md, ParseMetadata(bytes));
#ifndef SHARDCAST_COMMON_STATUS_MACROS_H_
#define SHARDCAST_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SC_STATUS_CONCAT_INNER_(a, b) a##b
#define SC_STATUS_CONCAT_(a, b) SC_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define SC_RETURN_IF_ERROR(expr)                                    \
  do {                                                              \
    ::absl::Status sc_status_ = (expr);                             \
    if (!sc_status_.ok()) return sc_status_;                        \
  } while (0)

// Evaluates `rexpr` (a StatusOr); on error returns its status, else assigns the value to `lhs`.
#define SC_ASSIGN_OR_RETURN(lhs, rexpr) \
  SC_ASSIGN_OR_RETURN_IMPL_(SC_STATUS_CONCAT_(sc_statusor_, __LINE__), lhs, rexpr)

#define SC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SHARDCAST_COMMON_STATUS_MACROS_H_
