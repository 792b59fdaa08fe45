// libFuzzer target for the JSON parser and writer (common/json.cc) and the output escaping of
// untrusted text (common/text_escape.cc).
//
// Each input goes through three paths:
//  1. Json::Parse(input) (nlohmann-json's parser underneath). When it succeeds: the input was
//     UTF-8; the compact and the indented Dump() are valid UTF-8 and parse again; parsing the
//     dump and dumping again gives the same text (a fixed point: types, exact integers up to
//     uint64, doubles, escapes and surrogate pairs survive the round trip). When it fails: an
//     INVALID_ARGUMENT whose message is UTF-8 and names an offset.
//  2. The input as a string value (and as an object key): Dump() is valid UTF-8 JSON whatever
//     the bytes; it parses back, to the same bytes when the input was valid UTF-8, and the
//     second Dump() is a fixed point.
//  3. EscapeForTerminal(input): valid UTF-8, no control byte, no newline.
// A broken promise abort()s with INVARIANT VIOLATION, so libFuzzer saves the input as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/json.h"
#include "common/text_escape.h"

namespace {

using shardcast::Json;

[[noreturn]] void Violation(const char* what, const std::string& detail) {
  std::fprintf(stderr, "INVARIANT VIOLATION (json_fuzzer): %s: %s\n", what, detail.substr(0, 300).c_str());
  std::abort();
}

// `exact`: `j` came from Parse (its strings are valid UTF-8), so Dump() must already be a fixed
// point. Otherwise (strings of arbitrary bytes) the first Dump() normalizes (invalid bytes to
// U+FFFD, pickle-style surrogates to \udXXX, which parse to U+FFFD) and the second must be one.
void CheckDumpRoundTrips(const Json& j, bool exact) {
  std::string compact = j.Dump();
  if (!shardcast::IsValidUtf8(compact)) Violation("Dump() is not valid UTF-8", compact);
  absl::StatusOr<Json> again = Json::Parse(compact);
  if (!again.ok()) Violation("Dump() does not parse", std::string(again.status().message()) + " in " + compact);
  if (!exact) {
    compact = again->Dump();
    again = Json::Parse(compact);
    if (!again.ok()) Violation("a normalized Dump() does not parse", compact);
  }
  if (again->Dump() != compact) Violation("Parse(Dump()).Dump() differs", compact + " vs " + again->Dump());
  const std::string pretty = j.Dump(2);
  absl::StatusOr<Json> from_pretty = Json::Parse(pretty);
  if (!from_pretty.ok()) Violation("Dump(2) does not parse", pretty);
  if (exact && from_pretty->Dump() != compact) Violation("Dump(2) is not the same document", pretty);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);

  // 1. Parse, then the writer's round trip.
  absl::StatusOr<Json> parsed = Json::Parse(in);
  if (parsed.ok()) {
    if (!shardcast::IsValidUtf8(in)) Violation("accepted a document that is not UTF-8", std::string(in));
    CheckDumpRoundTrips(*parsed, /*exact=*/true);
  } else {
    const std::string message(parsed.status().message());
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) Violation("an error other than INVALID_ARGUMENT", message);
    if (!shardcast::IsValidUtf8(message) || message.find(" at offset ") == std::string::npos) {
      Violation("an error message that is not UTF-8 or names no offset", message);
    }
  }

  // 2. Arbitrary bytes as a string value and as a key.
  const std::string s(in);
  Json obj = Json::Object();
  obj.Set(s, Json(s));
  CheckDumpRoundTrips(obj, /*exact=*/false);
  absl::StatusOr<Json> back = Json::Parse(Json(s).Dump());
  if (!back.ok() || !back->is_string()) Violation("a dumped string does not parse back", s);
  if (shardcast::IsValidUtf8(s) && back->as_string() != s) Violation("valid UTF-8 changed in a round trip", s);

  // 3. Terminal escaping.
  const std::string shown = shardcast::EscapeForTerminal(in);
  if (!shardcast::IsValidUtf8(shown)) Violation("EscapeForTerminal output is not UTF-8", shown);
  for (unsigned char c : shown) {
    if (c < 0x20 || c == 0x7F) Violation("EscapeForTerminal left a control byte", shown);
  }
  return 0;
}
