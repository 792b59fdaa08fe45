#include "common/text_escape.h"

#include "absl/strings/str_format.h"

namespace shardcast {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Characters that a terminal or a line-oriented reader may act on: controls, line/paragraph
// separators and the bidi embedding/override/isolate marks (which reorder what is shown).
bool NeedsTerminalEscape(uint32_t cp) {
  return cp < 0x20 || cp == '\\' || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x200E && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         cp == 0xFEFF;
}

}  // namespace

Utf8Step DecodeUtf8(absl::string_view s, size_t pos) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[pos + k]); };
  const unsigned char c = at(0);
  const Utf8Step invalid{Utf8Step::Kind::kInvalid, c, 1};
  if (c < 0x80) return {Utf8Step::Kind::kCodePoint, c, 1};
  size_t n;
  uint32_t cp;
  uint32_t min;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return invalid;
  }
  if (s.size() - pos < n) return invalid;
  for (size_t k = 1; k < n; ++k) {
    if (!IsContinuation(at(k))) return invalid;
    cp = (cp << 6) | (at(k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF) return invalid;
  if (cp >= 0xD800 && cp <= 0xDFFF) return {Utf8Step::Kind::kSurrogate, cp, n};
  return {Utf8Step::Kind::kCodePoint, cp, n};
}

bool IsValidUtf8(absl::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Step step = DecodeUtf8(s, pos);
    if (step.kind != Utf8Step::Kind::kCodePoint) return false;
    pos += step.length;
  }
  return true;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string EscapeForTerminal(absl::string_view s) {
  bool clean = true;
  for (size_t pos = 0; pos < s.size() && clean;) {
    const Utf8Step step = DecodeUtf8(s, pos);
    clean = step.kind == Utf8Step::Kind::kCodePoint && !NeedsTerminalEscape(step.code_point);
    pos += step.length;
  }
  if (clean) return std::string(s);
  std::string out;
  for (size_t pos = 0; pos < s.size();) {
    const Utf8Step step = DecodeUtf8(s, pos);
    if (step.kind != Utf8Step::Kind::kCodePoint) {
      for (size_t k = 0; k < step.length; ++k) {
        absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(s[pos + k]));
      }
    } else if (!NeedsTerminalEscape(step.code_point)) {
      out.append(s.data() + pos, step.length);
    } else if (step.code_point == '\\') {
      out += "\\\\";
    } else if (step.code_point == '\n') {
      out += "\\n";
    } else if (step.code_point == '\r') {
      out += "\\r";
    } else if (step.code_point == '\t') {
      out += "\\t";
    } else if (step.code_point < 0x100) {
      absl::StrAppendFormat(&out, "\\x%02x", step.code_point);
    } else {
      absl::StrAppendFormat(&out, "\\u{%04x}", step.code_point);
    }
    pos += step.length;
  }
  return out;
}

}  // namespace shardcast
