// JSON in and out of HTTP handlers.
//
// RequestJson parses a request body with simdjson (one parser per thread,
// reused) into a checked object: unknown fields, wrong types and missing
// required fields become SPEC error Statuses before any transaction opens.
// JsonOut writes responses and outbox bodies.
//
// Error codes: 400 "malformed_json" (not JSON, or not an object),
// 400 "unknown_field", 400 "wrong_type", 422 "missing_field",
// 422 "invalid_field" (from validators, with `field`).
//
// Thread-safety: instances are single-thread; the parser is thread_local.
#ifndef OFFBRAND_JSON_H_
#define OFFBRAND_JSON_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "offbrand/status.h"

namespace offbrand {

// A parsed request object. Values are copied out at Parse time.
class RequestJson {
 public:
  // Parses `body`; fails with 400 malformed_json. Every top-level field must
  // be in `allowed` (else 400 unknown_field naming it).
  Status Parse(std::string_view body, std::initializer_list<const char*> allowed);

  bool Has(const char* name) const { return fields_.count(name) != 0; }
  // Strings: 400 wrong_type when present but not a string; 422 missing_field
  // when required and absent. JSON null counts as absent for optional fields.
  Status String(const char* name, std::string* out, bool required) const;
  Status Bool(const char* name, bool* out, bool required) const;
  // Present and explicitly null.
  bool IsNull(const char* name) const;

 private:
  enum class Kind { kString, kBool, kNull, kNumber, kOther };
  struct Field {
    Kind kind;
    std::string str;
    bool b = false;
  };
  std::map<std::string, Field, std::less<>> fields_;
};

namespace json_internal {

// True when one of the 8 bytes of `w` is below 0x20, '"' or '\\' (the
// classic "has a byte less than n" and "has a zero byte" tricks; false
// positives are possible, false negatives are not).
inline bool WordNeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  const uint64_t control = (w - kOnes * 0x20) & ~w;
  const uint64_t q = w ^ (kOnes * '"');
  const uint64_t quote = (q - kOnes) & ~q;
  const uint64_t b = w ^ (kOnes * '\\');
  const uint64_t backslash = (b - kOnes) & ~b;
  return ((control | quote | backslash) & kHighs) != 0;
}

// The 0 < n < 8 bytes at p in the low bytes of a word (the order memcpy
// loads them in on a little-endian machine), the rest 'a'; built in
// registers, so no store-to-load forwarding stall.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "SmallWord assumes little-endian");
inline uint64_t SmallWord(const char* p, size_t n) {
  uint64_t w;
  if (n >= 4) {
    uint32_t lo;
    uint32_t hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);  // overlaps lo by 8 - n bytes: the same bytes
    w = uint64_t{lo} | (uint64_t{hi} << (8 * (n - 4)));
  } else {
    w = static_cast<unsigned char>(p[0]);
    if (n > 1) w |= uint64_t{static_cast<unsigned char>(p[1])} << 8;
    if (n > 2) w |= uint64_t{static_cast<unsigned char>(p[2])} << 16;
  }
  const uint64_t keep = (uint64_t{1} << (8 * n)) - 1;
  return (w & keep) | (0x6161616161616161ull & ~keep);
}

}  // namespace json_internal

// Streaming JSON writer into one std::string, for responses and outbox
// bodies. Output is byte-for-byte what RapidJSON's Writer<StringBuffer>
// writes for the same calls (compact, no spaces; '"', '\\' and control
// characters escaped, \b \t \n \f \r short, others as \u00XX; every other
// byte, UTF-8 or not, copied as is), which json_test proves; it is written
// here because the feed reads spend most of their time serializing and a
// plain append loop is several times faster than RapidJSON's per-character
// writer.
//
// Calls must form one well-formed value (keys only directly inside objects,
// each followed by exactly one value); misuse is a programmer error, checked
// by assertions in debug builds only. Key()/String() take UTF-8 text.
class JsonOut {
 public:
  JsonOut() = default;
  // Pre-allocates room for `bytes` of output (a hint; output may grow past).
  explicit JsonOut(size_t bytes) { Grow(bytes); }
  JsonOut(const JsonOut&) = delete;
  JsonOut& operator=(const JsonOut&) = delete;

  JsonOut& BeginObject() { return Open('{'); }
  JsonOut& EndObject() { return Close('}'); }
  JsonOut& BeginArray() { return Open('['); }
  JsonOut& EndArray() { return Close(']'); }
  JsonOut& Key(std::string_view k) {
    AppendQuoted(k, ':');
    comma_ = false;
    return *this;
  }
  JsonOut& String(std::string_view s) {
    AppendQuoted(s, 0);
    comma_ = true;
    return *this;
  }
  JsonOut& Int(int64_t v);
  JsonOut& Uint(uint64_t v);
  // Shortest text that reads back as `v`; null for NaN and infinities
  // (which JSON cannot express).
  JsonOut& Double(double v);
  JsonOut& Bool(bool v) { return Literal(v ? std::string_view("true") : std::string_view("false")); }
  JsonOut& Null() { return Literal("null"); }
  // Key + string value; empty strings become null when `null_if_empty`.
  JsonOut& Field(std::string_view k, std::string_view v, bool null_if_empty = false) {
    Key(k);
    if (null_if_empty && v.empty()) return Null();
    return String(v);
  }
  // Inserts pre-serialized JSON (must be one complete value).
  JsonOut& Raw(std::string_view json) { return Literal(json); }

  // The text so far.
  std::string str() const { return std::string(buf_.get(), len_); }
  std::string_view view() const { return std::string_view(buf_.get(), len_); }
  // Returns the text and empties the writer (keeping its buffer).
  std::string Release() {
    std::string out(buf_.get(), len_);
    len_ = 0;
    comma_ = false;
    depth_ = 0;
    return out;
  }

 private:
  // Room for `n` more bytes; returns where they go. The caller adds what it
  // wrote to len_.
  char* Reserve(size_t n) {
    if (n > cap_ - len_) Grow(n);
    return buf_.get() + len_;
  }
  void Grow(size_t n);
  JsonOut& Open(char c) {
    char* p = Reserve(2);
    if (comma_) *p++ = ',';
    *p++ = c;
    len_ = static_cast<size_t>(p - buf_.get());
    comma_ = false;
    ++depth_;
    return *this;
  }
  JsonOut& Close(char c);
  JsonOut& Literal(std::string_view text);
  // Appends [,]"s" escaped, then `suffix` unless it is 0. Short strings
  // that need no escape (most keys) take the inline path.
  void AppendQuoted(std::string_view s, char suffix) {
    const size_t n = s.size();
    if (n - 1 < 7 && cap_ - len_ >= 16) {  // 1 <= n <= 7, room for the 8-byte store
      const uint64_t w = json_internal::SmallWord(s.data(), n);
      if (!json_internal::WordNeedsEscape(w)) {
        char* out = buf_.get() + len_;
        if (comma_) *out++ = ',';
        *out++ = '"';
        std::memcpy(out, &w, 8);
        out += n;
        *out++ = '"';
        if (suffix != 0) *out++ = suffix;
        len_ = static_cast<size_t>(out - buf_.get());
        return;
      }
    }
    AppendQuotedSlow(s, suffix);
  }
  void AppendQuotedSlow(std::string_view s, char suffix);

  // The first len_ of cap_ bytes are the text; room is reserved ahead of
  // each write, so writes need no per-byte capacity checks.
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t len_ = 0;
  bool comma_ = false;  // a value was written at this level: next one needs ','
  int depth_ = 0;       // open objects and arrays (debug checks)
};

// {"error":{"code":..,"message":..,"field":..}}
std::string ErrorJson(const Status& s);

}  // namespace offbrand

#endif  // OFFBRAND_JSON_H_
