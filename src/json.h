// JSON in and out of HTTP handlers.
//
// RequestJson parses a request body with simdjson (one parser per thread,
// reused) into a checked object: unknown fields, wrong types and missing
// required fields become SPEC error Statuses before any transaction opens.
// JsonOut is a thin RapidJSON writer for responses and outbox bodies.
//
// Error codes: 400 "malformed_json" (not JSON, or not an object),
// 400 "unknown_field", 400 "wrong_type", 422 "missing_field",
// 422 "invalid_field" (from validators, with `field`).
//
// Thread-safety: instances are single-thread; the parser is thread_local.
#ifndef OFFBRAND_JSON_H_
#define OFFBRAND_JSON_H_

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <initializer_list>
#include <map>
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

// Streaming JSON writer. Key()/String() take UTF-8 text.
class JsonOut {
 public:
  JsonOut() : writer_(buffer_) {}
  JsonOut& BeginObject() { writer_.StartObject(); return *this; }
  JsonOut& EndObject() { writer_.EndObject(); return *this; }
  JsonOut& BeginArray() { writer_.StartArray(); return *this; }
  JsonOut& EndArray() { writer_.EndArray(); return *this; }
  JsonOut& Key(std::string_view k) {
    writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    return *this;
  }
  JsonOut& String(std::string_view s) {
    writer_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    return *this;
  }
  JsonOut& Int(int64_t v) { writer_.Int64(v); return *this; }
  JsonOut& Uint(uint64_t v) { writer_.Uint64(v); return *this; }
  JsonOut& Double(double v) { writer_.Double(v); return *this; }
  JsonOut& Bool(bool v) { writer_.Bool(v); return *this; }
  JsonOut& Null() { writer_.Null(); return *this; }
  // Key + string value; empty strings become null when `null_if_empty`.
  JsonOut& Field(std::string_view k, std::string_view v, bool null_if_empty = false) {
    Key(k);
    if (null_if_empty && v.empty()) return Null();
    return String(v);
  }
  // Inserts pre-serialized JSON (must be one complete value).
  JsonOut& Raw(std::string_view json) {
    writer_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    return *this;
  }
  std::string str() const { return std::string(buffer_.GetString(), buffer_.GetSize()); }

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

// {"error":{"code":..,"message":..,"field":..}}
std::string ErrorJson(const Status& s);

}  // namespace offbrand

#endif  // OFFBRAND_JSON_H_
