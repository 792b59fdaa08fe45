// Which --rule overrides cut nothing: a rule whose pattern matches no selected key (a typo, a
// prefix that excludes its tensors), or whose every key is taken by a later --rule (the last one
// given wins). Computed on the client from the keys it cuts (`reshard`: its plan) or receives
// (`fetch`: the manifest's keys), so that a mistyped rule never goes silently unused.
#ifndef SHARDCAST_CLIENT_CLI_UNUSED_RULES_H_
#define SHARDCAST_CLIENT_CLI_UNUSED_RULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardcast::cli {

struct UnusedRule {
  std::string rule;     // as given: "PATTERN=RULE"
  std::string reason;   // "matches no selected tensor" or "every tensor it matches is taken by a later --rule"
};

// The rules (each "PATTERN=RULE", in the order given) that decide no key of `keys`.
// InvalidArgument if a rule does not compile (the same error Layout::Build gives).
absl::StatusOr<std::vector<UnusedRule>> FindUnusedRules(const std::vector<std::string>& rules,
                                                        const std::vector<std::string>& keys);

// Prints "warning: --rule '...' is unused: REASON" per unused rule on stderr (escaped for the
// terminal). With `strict`, FailedPrecondition listing them instead (nothing printed).
absl::Status ReportUnusedRules(const std::vector<UnusedRule>& unused, bool strict);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_UNUSED_RULES_H_
