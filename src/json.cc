// Request parsing with simdjson and the SPEC error object.
#include "json.h"

#include <simdjson.h>

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

std::string ErrorJson(const Status& s) {
  JsonOut out;
  out.BeginObject().Key("error").BeginObject();
  out.Field("code", s.error_code());
  // Messages are for people and never carry secrets; keep them clean text.
  out.Field("message", IsCleanText(s.message()) ? s.message() : "invalid request");
  if (!s.field().empty()) out.Field("field", s.field());
  out.EndObject().EndObject();
  return out.str();
}

}  // namespace offbrand
