// Escaping untrusted text (tensor keys, file names from a checkpoint) for output.
//
// Keys come from a checkpoint's `.metadata`, which anyone may have written: they can hold
// newlines (forging output lines), terminal control sequences, bidi overrides or bytes that are
// not UTF-8 (making `--json` output invalid). Two policies live here:
//  - JSON (AppendJsonString in common/json.h uses DecodeUtf8 below): valid UTF-8 passes through;
//    a surrogate code point in the 3-byte form Python's pickle writes for lone surrogates
//    ("surrogatepass", bytes ED A0..BF xx) becomes the matching \udXXX escape (what Python's json
//    writes for that str); every other byte that is not part of valid UTF-8 becomes \ufffd.
//  - Terminal (EscapeForTerminal): printable UTF-8 passes through; backslash, C0/C1 control
//    characters, DEL, U+2028/U+2029 and bidi controls become \n, \t, \xNN, \u{XXXX}; invalid
//    bytes become \xNN. The output is a single line and never contains raw control bytes.
#ifndef SHARDCAST_COMMON_TEXT_ESCAPE_H_
#define SHARDCAST_COMMON_TEXT_ESCAPE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace shardcast {

// One step of UTF-8 decoding at s[pos]. `length` is always >= 1 (the bytes consumed).
struct Utf8Step {
  enum class Kind {
    kCodePoint,  // a valid scalar value in `code_point`
    kSurrogate,  // ED A0..BF xx: a UTF-16 surrogate in `code_point` (not valid UTF-8)
    kInvalid,    // one byte that starts no valid sequence (`code_point` is that byte)
  };
  Kind kind;
  uint32_t code_point;
  size_t length;
};
Utf8Step DecodeUtf8(absl::string_view s, size_t pos);

// True if `s` is valid UTF-8 (no surrogates, no overlong forms, nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// Appends the UTF-8 encoding of a scalar value (surrogates and values past U+10FFFF: U+FFFD).
void AppendUtf8(std::string* out, uint32_t code_point);

// `s` as one printable line (see the file comment). Returns `s` unchanged when nothing needs
// escaping, which is the common case.
std::string EscapeForTerminal(absl::string_view s);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_TEXT_ESCAPE_H_
