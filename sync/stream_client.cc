#include "stream_client.h"

#include <cassert>
#include <cerrno>
#include <cstdlib>

#include <curl/curl.h>

#include "jwt.h"

namespace offbrand {
namespace {

constexpr size_t kDetailBytesMax = 200;

std::string ResolveBaseUrl(const StreamClientOptions& options) {
  std::string url = options.base_url;
  if (!options.location.empty() && (url.empty() || url == kStreamDefaultBaseUrl)) {
    url = "https://" + options.location + "-api.stream-io-api.com/api/v1.0/";
  }
  if (url.empty()) url = std::string(kStreamDefaultBaseUrl);
  if (url.back() != '/') url += '/';
  return url;
}

bool IsUnreservedOrColon(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
}

// Parses a whole decimal header value; -1 when absent or malformed.
int64_t HeaderInt(const HttpResponse& response, const char* name) {
  const std::string value = response.Header(name);
  if (value.empty()) return -1;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  while (end != nullptr && (*end == ' ' || *end == '\t')) ++end;
  if (errno != 0 || end == value.c_str() || *end != '\0' || v < 0) return -1;
  return static_cast<int64_t>(v);
}

// Appends `text` as a JSON string literal.
void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out += '"';
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      *out += '\\';
      *out += ch;
    } else if (c < 0x20) {
      *out += "\\u00";
      *out += kHex[c >> 4];
      *out += kHex[c & 0xF];
    } else {
      *out += ch;
    }
  }
  *out += '"';
}

std::string Truncate(std::string_view s) {
  return std::string(s.substr(0, kDetailBytesMax));
}

// "{"<key>":[b1,b2,...]}" from stored compact JSON bodies.
std::string WrapBodies(std::string_view key, const std::vector<std::string_view>& bodies) {
  size_t size = key.size() + 8;
  for (const auto& b : bodies) size += b.size() + 1;
  std::string out;
  out.reserve(size);
  out += "{\"";
  out += key;
  out += "\":[";
  for (size_t i = 0; i < bodies.size(); ++i) {
    if (i != 0) out += ',';
    out += bodies[i];
  }
  out += "]}";
  return out;
}

}  // namespace

StreamClient::StreamClient(StreamClientOptions options)
    : options_(std::move(options)),
      base_url_(ResolveBaseUrl(options_)),
      user_claims_(ServerTokenClaims("*", "*", "*")),
      activity_claims_(ServerTokenClaims("activities", "*", "*")) {}

std::string StreamClient::EncodeSegment(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreservedOrColon(c)) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string StreamClient::FeedPath(std::string_view group, std::string_view feed_id) const {
  return "feed/" + EncodeSegment(group) + "/" + EncodeSegment(feed_id) + "/";
}

std::string StreamClient::FeedClaims(std::string_view group, std::string_view feed_id) const {
  std::string feed(group);
  feed += feed_id;
  return ServerTokenClaims("*", "*", feed);
}

std::string StreamClient::Query(std::string_view extra) const {
  std::string q = "?api_key=" + EncodeSegment(options_.api_key);
  if (!extra.empty()) {
    q += '&';
    q += extra;
  }
  return q;
}

std::string StreamClient::Token(const std::string& claims_json) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = token_cache_.find(claims_json);
  if (it != token_cache_.end()) return it->second;
  if (token_cache_.size() >= kTokenCacheEntriesMax) token_cache_.clear();
  std::string token = MakeJwt(options_.api_secret, claims_json);
  token_cache_.emplace(claims_json, token);
  return token;
}

std::string StreamClient::UserToken(std::string_view user_id) {
  return Token(UserTokenClaims(user_id));
}

std::string StreamClient::ReadOnlyFeedToken(std::string_view group, std::string_view feed_id) {
  std::string feed(group);
  feed += feed_id;
  return Token(ServerTokenClaims("*", "read", feed));
}

HttpRequest StreamClient::Make(const char* method, const std::string& path_and_query,
                               const std::string& claims_json, std::string body) {
  HttpRequest req;
  req.method = method;
  req.url = base_url_ + path_and_query;
  req.headers.reserve(4);
  req.headers.emplace_back("Authorization", Token(claims_json));
  req.headers.emplace_back("stream-auth-type", "jwt");
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  req.headers.emplace_back("X-Stream-Client", options_.client_name);
  req.body = std::move(body);
  return req;
}

HttpRequest StreamClient::BuildSingle(const OutboxRecord& r) {
  switch (r.op) {
    case OutboxOp::kUserAdd:
      return Make("POST", "user/" + Query("get_or_create=true"), user_claims_, r.body);
    case OutboxOp::kUserUpdate:
      return Make("PUT", "user/" + EncodeSegment(r.foreign_id) + "/" + Query({}), user_claims_,
                  r.body);
    case OutboxOp::kUserDelete:
      return Make("DELETE", "user/" + EncodeSegment(r.foreign_id) + "/" + Query({}),
                  user_claims_, {});
    case OutboxOp::kActivityAdd:
      return Make("POST", FeedPath(r.feed_group, r.feed_id) + Query({}),
                  FeedClaims(r.feed_group, r.feed_id), r.body);
    case OutboxOp::kActivityUpdate:
      return Make("POST", "activity/" + Query({}), activity_claims_,
                  WrapBodies("changes", {r.body}));
    case OutboxOp::kActivityRemove:
      return Make("DELETE",
                  FeedPath(r.feed_group, r.feed_id) + EncodeSegment(r.foreign_id) + "/" +
                      Query("foreign_id=1"),
                  FeedClaims(r.feed_group, r.feed_id), {});
    case OutboxOp::kFollow:
      return Make("POST", FeedPath(r.feed_group, r.feed_id) + "following/" + Query({}),
                  FeedClaims(r.feed_group, r.feed_id), r.body);
    case OutboxOp::kUnfollow:
      return Make("DELETE",
                  FeedPath(r.feed_group, r.feed_id) + "following/" +
                      EncodeSegment(r.foreign_id) + "/" + Query({}),
                  FeedClaims(r.feed_group, r.feed_id), {});
  }
  assert(false && "unknown outbox op");
  return {};
}

HttpRequest StreamClient::BuildAddBatch(std::string_view group, std::string_view feed_id,
                                        const std::vector<const OutboxRecord*>& records) {
  assert(!records.empty() && records.size() <= kBatchActivitiesMax);
  if (records.size() == 1) return BuildSingle(*records.front());
  std::vector<std::string_view> bodies;
  bodies.reserve(records.size());
  for (const OutboxRecord* r : records) {
    assert(r->op == OutboxOp::kActivityAdd && r->feed_group == group && r->feed_id == feed_id);
    bodies.push_back(r->body);
  }
  return Make("POST", FeedPath(group, feed_id) + Query({}), FeedClaims(group, feed_id),
              WrapBodies("activities", bodies));
}

HttpRequest StreamClient::BuildFollowMany(const std::vector<const OutboxRecord*>& records) {
  assert(!records.empty() && records.size() <= kBatchActivitiesMax);
  const int64_t copy_limit = FollowCopyLimit(*records.front());
  std::string body = "[";
  for (const OutboxRecord* r : records) {
    assert(r->op == OutboxOp::kFollow);
    if (body.size() > 1) body += ',';
    body += "{\"source\":";
    AppendJsonString(r->feed_group + ":" + r->feed_id, &body);
    body += ",\"target\":";
    AppendJsonString(r->foreign_id, &body);
    body += '}';
  }
  body += ']';
  std::string extra;
  if (copy_limit >= 0) extra = "activity_copy_limit=" + std::to_string(copy_limit);
  return Make("POST", "follow_many/" + Query(extra), user_claims_, std::move(body));
}

int64_t StreamClient::FollowCopyLimit(const OutboxRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  simdjson::dom::object obj;
  int64_t limit = -1;
  if (parser_.parse(record.body).get(obj) != simdjson::SUCCESS ||
      obj["activity_copy_limit"].get(limit) != simdjson::SUCCESS || limit < 0) {
    return -1;
  }
  return limit;
}

HttpRequest StreamClient::BuildUpdateBatch(const std::vector<const OutboxRecord*>& records) {
  assert(!records.empty() && records.size() <= kBatchActivitiesMax);
  std::vector<std::string_view> bodies;
  bodies.reserve(records.size());
  for (const OutboxRecord* r : records) {
    assert(r->op == OutboxOp::kActivityUpdate);
    bodies.push_back(r->body);
  }
  return Make("POST", "activity/" + Query({}), activity_claims_, WrapBodies("changes", bodies));
}

HttpRequest StreamClient::BuildGetFeed(std::string_view group, std::string_view feed_id,
                                       int limit, std::string_view id_lt, bool enriched) {
  std::string extra;
  if (limit > 0) extra = "limit=" + std::to_string(limit);
  if (!id_lt.empty()) {
    if (!extra.empty()) extra += '&';
    extra += "id_lt=" + EncodeSegment(id_lt);
  }
  return Make("GET", (enriched ? "enrich/" : "") + FeedPath(group, feed_id) + Query(extra),
              FeedClaims(group, feed_id), {});
}

HttpRequest StreamClient::BuildGetActivities(
    const std::vector<std::pair<std::string, std::string>>& foreign_id_times) {
  std::string ids;
  std::string times;
  for (const auto& [fid, time] : foreign_id_times) {
    if (!ids.empty()) {
      ids += ',';
      times += ',';
    }
    ids += EncodeSegment(fid);
    times += EncodeSegment(time);
  }
  return Make("GET", "activities/" + Query("foreign_ids=" + ids + "&timestamps=" + times),
              activity_claims_, {});
}

HttpRequest StreamClient::BuildGetUser(std::string_view user_id) {
  return Make("GET", "user/" + EncodeSegment(user_id) + "/" + Query({}), user_claims_, {});
}

StreamError StreamClient::ParseError(const HttpResponse& response) {
  StreamError e;
  e.http_status = response.status;
  if (response.status == 0) {
    e.detail = response.error;
    return e;
  }
  std::lock_guard<std::mutex> lock(mu_);
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser_.parse(response.body).get(doc) != simdjson::SUCCESS ||
      doc.get(obj) != simdjson::SUCCESS) {
    e.detail = Truncate(response.body);
    return e;
  }
  int64_t code = 0;
  if (obj["code"].get(code) == simdjson::SUCCESS) e.code = static_cast<int>(code);
  std::string_view text;
  if (obj["exception"].get(text) == simdjson::SUCCESS) e.exception = std::string(text);
  if (obj["detail"].get(text) == simdjson::SUCCESS) e.detail = std::string(text);
  return e;
}

std::string StreamClient::DescribeFailure(const HttpResponse& response) {
  const StreamError e = ParseError(response);
  if (response.status == 0) return "network: " + Truncate(e.detail);
  std::string out = std::to_string(response.status);
  out += ' ';
  out += e.exception.empty() ? "error" : e.exception;
  out += ": ";
  out += Truncate(e.detail);
  return out;
}

RateLimit StreamClient::ParseRateLimit(const HttpResponse& response) {
  RateLimit r;
  r.limit = HeaderInt(response, "x-ratelimit-limit");
  r.remaining = HeaderInt(response, "x-ratelimit-remaining");
  r.reset_unix_s = HeaderInt(response, "x-ratelimit-reset");
  r.retry_after_s = HeaderInt(response, "retry-after");
  if (r.retry_after_s < 0) {
    // The HTTP-date form ("Wed, 21 Oct 2015 07:28:00 GMT"); curl_getdate
    // reads RFC 1123, RFC 850 and asctime dates.
    const std::string value = response.Header("retry-after");
    if (!value.empty()) {
      const time_t at = curl_getdate(value.c_str(), nullptr);
      if (at > 0) r.retry_at_unix_s = static_cast<int64_t>(at);
    }
  }
  return r;
}

Status StreamClient::ParseAddResponse(
    const HttpResponse& response,
    std::vector<std::pair<std::string, std::string>>* foreign_id_to_activity_id) {
  auto bad = [](std::string what) {
    return Status::Error(Status::Code::kInternal, "stream_bad_response",
                         "unexpected add response: " + what);
  };
  std::lock_guard<std::mutex> lock(mu_);
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser_.parse(response.body).get(doc) != simdjson::SUCCESS ||
      doc.get(obj) != simdjson::SUCCESS) {
    return bad("not a JSON object");
  }
  auto take = [&](simdjson::dom::element activity) -> bool {
    simdjson::dom::object a;
    if (activity.get(a) != simdjson::SUCCESS) return false;
    std::string_view id;
    std::string_view foreign_id;
    if (a["id"].get(id) != simdjson::SUCCESS) return false;
    if (a["foreign_id"].get(foreign_id) == simdjson::SUCCESS && !foreign_id.empty()) {
      foreign_id_to_activity_id->emplace_back(std::string(foreign_id), std::string(id));
    }
    return true;
  };
  simdjson::dom::array activities;
  if (obj["activities"].get(activities) == simdjson::SUCCESS) {
    for (simdjson::dom::element activity : activities) {
      if (!take(activity)) return bad("an activity without a string id");
    }
    return Status::Ok();
  }
  if (!take(doc)) return bad("no \"id\" and no \"activities\"");
  return Status::Ok();
}

}  // namespace offbrand
