// FindUnusedRules / ReportUnusedRules: each --rule compiled alone, matched against the keys.
#include "client/cli/unused_rules.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/text_escape.h"
#include "reshard/layout.h"

namespace shardcast::cli {

absl::StatusOr<std::vector<UnusedRule>> FindUnusedRules(const std::vector<std::string>& rules,
                                                        const std::vector<std::string>& keys) {
  std::vector<Layout> alone;  // rule i as a one-entry layout
  alone.reserve(rules.size());
  for (const std::string& r : rules) {
    SC_ASSIGN_OR_RETURN(Layout layout, Layout::Build("", "--rule", {r}));
    alone.push_back(std::move(layout));
  }
  std::vector<bool> matches_some(rules.size(), false), decides_some(rules.size(), false);
  for (const std::string& key : keys) {
    // The last rule given that matches decides the key (Layout::Build puts it in front).
    bool decided = false;
    for (size_t i = rules.size(); i-- > 0;) {
      if (alone[i].Match(key) == nullptr) continue;
      matches_some[i] = true;
      if (!decided) decides_some[i] = true;
      decided = true;
    }
  }
  std::vector<UnusedRule> unused;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (decides_some[i]) continue;
    unused.push_back({rules[i], matches_some[i] ? "every tensor it matches is taken by a later --rule"
                                                : "its pattern matches no selected tensor (check it against "
                                                  "'shardcast inspect' and --prefix)"});
  }
  return unused;
}

absl::Status ReportUnusedRules(const std::vector<UnusedRule>& unused, bool strict) {
  if (unused.empty()) return absl::OkStatus();
  if (strict) {
    std::vector<std::string> lines;
    for (const UnusedRule& u : unused) lines.push_back(absl::StrCat("'", u.rule, "': ", u.reason));
    return absl::FailedPreconditionError(
        absl::StrCat("--strict-rules: unused --rule: ", absl::StrJoin(lines, "; ")));
  }
  for (const UnusedRule& u : unused) {
    std::cerr << "warning: --rule '" << EscapeForTerminal(u.rule) << "' is unused: " << u.reason << "\n";
  }
  return absl::OkStatus();
}

}  // namespace shardcast::cli
