// Request parsing with simdjson, the response writer and the SPEC error
// object.
#include "json.h"

#include <simdjson.h>

#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>

#include "offbrand/model.h"

namespace offbrand {

namespace {
simdjson::dom::parser& ThreadParser() {
  // One parser per thread, reused: its buffers grow to the largest body seen
  // (bounded by the 64 KiB request limit).
  thread_local simdjson::dom::parser parser;
  return parser;
}
}  // namespace

Status RequestJson::Parse(std::string_view body, std::initializer_list<const char*> allowed) {
  fields_.clear();
  simdjson::padded_string padded(body);
  simdjson::dom::element root;
  if (ThreadParser().parse(padded).get(root) != simdjson::SUCCESS) {
    return Status::BadRequest("malformed_json", "the request body is not valid JSON");
  }
  simdjson::dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    return Status::BadRequest("malformed_json", "the request body must be a JSON object");
  }
  for (auto field : obj) {
    std::string_view key = field.key;
    bool known = false;
    for (const char* a : allowed) {
      if (key == a) {
        known = true;
        break;
      }
    }
    if (!known) {
      return Status::BadRequest("unknown_field", "unknown field '" + std::string(key) + "'",
                                std::string(key));
    }
    if (fields_.count(key) != 0) {
      return Status::BadRequest("duplicate_field", "field '" + std::string(key) + "' appears twice",
                                std::string(key));
    }
    Field f;
    switch (field.value.type()) {
      case simdjson::dom::element_type::STRING: {
        std::string_view sv;
        if (field.value.get_string().get(sv) != simdjson::SUCCESS) sv = {};
        f.kind = Kind::kString;
        f.str.assign(sv);
        break;
      }
      case simdjson::dom::element_type::BOOL:
        f.kind = Kind::kBool;
        if (field.value.get_bool().get(f.b) != simdjson::SUCCESS) f.b = false;
        break;
      case simdjson::dom::element_type::NULL_VALUE:
        f.kind = Kind::kNull;
        break;
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE:
        f.kind = Kind::kNumber;
        break;
      default:
        f.kind = Kind::kOther;
        break;
    }
    fields_.emplace(std::string(key), std::move(f));
  }
  return Status::Ok();
}

Status RequestJson::String(const char* name, std::string* out, bool required) const {
  auto it = fields_.find(name);
  if (it == fields_.end() || (it->second.kind == Kind::kNull && !required)) {
    if (required) {
      return Status::Error(Status::Code::kInvalidField, "missing_field",
                           std::string("field '") + name + "' is required", name);
    }
    return Status::Ok();
  }
  if (it->second.kind != Kind::kString) {
    return Status::BadRequest("wrong_type", std::string("field '") + name + "' must be a string",
                              name);
  }
  *out = it->second.str;
  return Status::Ok();
}

Status RequestJson::Bool(const char* name, bool* out, bool required) const {
  auto it = fields_.find(name);
  if (it == fields_.end() || (it->second.kind == Kind::kNull && !required)) {
    if (required) {
      return Status::Error(Status::Code::kInvalidField, "missing_field",
                           std::string("field '") + name + "' is required", name);
    }
    return Status::Ok();
  }
  if (it->second.kind != Kind::kBool) {
    return Status::BadRequest("wrong_type", std::string("field '") + name + "' must be a boolean",
                              name);
  }
  *out = it->second.b;
  return Status::Ok();
}

bool RequestJson::IsNull(const char* name) const {
  auto it = fields_.find(name);
  return it != fields_.end() && it->second.kind == Kind::kNull;
}

// ---- JsonOut ------------------------------------------------------------------

namespace {

// What RapidJSON's writer puts after a backslash for each byte; 0 when the
// byte is copied as is.
constexpr char kEscapeNone = 0;
struct EscapeTable {
  char code[256] = {};
  constexpr EscapeTable() {
    for (int c = 0; c < 0x20; ++c) code[c] = 'u';
    code['\b'] = 'b';
    code['\t'] = 't';
    code['\n'] = 'n';
    code['\f'] = 'f';
    code['\r'] = 'r';
    code['"'] = '"';
    code['\\'] = '\\';
  }
};
constexpr EscapeTable kEscape;

}  // namespace

void JsonOut::Grow(size_t n) {
  size_t cap = cap_ < 256 ? 256 : cap_;
  while (cap - len_ < n) cap *= 2;
  std::unique_ptr<char[]> bigger(new char[cap]);
  if (len_ > 0) std::memcpy(bigger.get(), buf_.get(), len_);
  buf_ = std::move(bigger);
  cap_ = cap;
}

void JsonOut::AppendQuotedSlow(std::string_view s, char suffix) {
  // Worst case: a comma, quotes, the suffix and every byte as \u00XX; plus
  // slack for the 8-byte stores below, which may run 7 bytes past the text.
  char* out = Reserve(s.size() * 6 + 16);
  if (comma_) *out++ = ',';
  *out++ = '"';
  const char* const p = s.data();
  const size_t n = s.size();
  // Most strings need no escape at all: copy them 8 bytes at a time while
  // checking. The last word overlaps the one before (strings of 8 bytes or
  // more) or is gathered in a register, padded with a harmless byte.
  size_t i = 0;
  if (n >= 8) {
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (json_internal::WordNeedsEscape(w)) break;
      std::memcpy(out + i, &w, 8);
    }
    if (i + 8 > n && i < n) {
      uint64_t w;
      std::memcpy(&w, p + n - 8, 8);
      if (!json_internal::WordNeedsEscape(w)) {
        std::memcpy(out + n - 8, &w, 8);
        i = n;
      }
    }
  } else if (n > 0) {
    const uint64_t w = json_internal::SmallWord(p, n);
    if (!json_internal::WordNeedsEscape(w)) {
      std::memcpy(out, &w, 8);
      i = n;
    }
  }
  out += i;
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    const char code = kEscape.code[c];
    if (code == kEscapeNone) {
      *out++ = static_cast<char>(c);
      continue;
    }
    *out++ = '\\';
    *out++ = code;
    if (code == 'u') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      *out++ = '0';
      *out++ = '0';
      *out++ = kHex[c >> 4];
      *out++ = kHex[c & 0xF];
    }
  }
  *out++ = '"';
  if (suffix != 0) *out++ = suffix;
  len_ = static_cast<size_t>(out - buf_.get());
}

JsonOut& JsonOut::Literal(std::string_view text) {
  char* out = Reserve(text.size() + 1);
  if (comma_) *out++ = ',';
  std::memcpy(out, text.data(), text.size());
  len_ = static_cast<size_t>(out + text.size() - buf_.get());
  comma_ = true;
  return *this;
}

JsonOut& JsonOut::Close(char c) {
  assert(depth_ > 0 && "JsonOut: End without Begin");
  --depth_;
  *Reserve(1) = c;
  ++len_;
  comma_ = true;
  return *this;
}

JsonOut& JsonOut::Int(int64_t v) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof(digits), v);
  return Literal(std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
}

JsonOut& JsonOut::Uint(uint64_t v) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof(digits), v);
  return Literal(std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
}

JsonOut& JsonOut::Double(double v) {
  if (!std::isfinite(v)) return Null();
  char digits[32];
  const auto r = std::to_chars(digits, digits + sizeof(digits), v);
  return Literal(std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
}

// ---- errors -----------------------------------------------------------------------

std::string ErrorJson(const Status& s) {
  JsonOut out;
  out.BeginObject().Key("error").BeginObject();
  out.Field("code", s.error_code());
  // Messages are for people and never carry secrets; keep them clean text.
  out.Field("message", IsCleanText(s.message()) ? s.message() : "invalid request");
  if (!s.field().empty()) out.Field("field", s.field());
  out.EndObject().EndObject();
  return out.Release();
}

}  // namespace offbrand
