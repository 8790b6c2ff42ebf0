// HttpServer: routing, authentication, body checks and error replies.
#include "http_server.h"

#include <arpa/inet.h>
#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "accounts.h"
#include "crypto.h"
#include "metrics.h"
#include "offbrand/log.h"
#include "users_db.h"

namespace offbrand {

namespace {

constexpr int64_t kCursorBytes = 8;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string FullPattern(const std::string& pattern) {
  if (StartsWith(pattern, "/api/") || pattern == "/healthz" || pattern == "/readyz" ||
      pattern == "/metrics") {
    return pattern;
  }
  return "/api/v1" + pattern;
}

Status InvalidToken() {
  return Status::Error(Status::Code::kUnauthenticated, "invalid_token",
                       "the session or API token is invalid or expired");
}

// The credential of a request: the Authorization header (Bearer or Token) or
// the session cookie. *from_cookie says which.
std::string Credential(const httplib::Request& req, bool* from_cookie) {
  *from_cookie = false;
  const std::string auth = req.get_header_value("Authorization");
  if (!auth.empty()) {
    for (const char* scheme : {"Bearer ", "Token "}) {
      if (StartsWith(auth, scheme)) return auth.substr(strlen(scheme));
    }
    return auth;  // unknown scheme: fails lookup -> 401
  }
  const std::string cookies = req.get_header_value("Cookie");
  const std::string name = std::string(kSessionCookie) + "=";
  size_t pos = 0;
  while (pos < cookies.size()) {
    size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    std::string_view part(cookies.data() + pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (StartsWith(part, name)) {
      *from_cookie = true;
      return std::string(part.substr(name.size()));
    }
    pos = end + 1;
  }
  return {};
}

bool IsMutating(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

// The route of the request on this worker thread, set by Dispatch and read
// (then cleared) by the request logger; null for requests httplib answered
// without a route.
thread_local const char* t_route = nullptr;

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string Lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = LowerAscii(c);
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "a.b.c.d" or an IPv6 literal; IPv4-mapped IPv6 becomes plain IPv4.
bool CanonicalIp(std::string_view text, std::string* out) {
  std::string s(TrimSpace(text));
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  unsigned char buf[sizeof(in6_addr)];
  char printed[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    *out = s;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(buf, kMapped, sizeof(kMapped)) == 0) {
    inet_ntop(AF_INET, buf + 12, printed, sizeof(printed));
  } else {
    inet_ntop(AF_INET6, buf, printed, sizeof(printed));
  }
  *out = printed;
  return true;
}

// scheme://host[:port] of an origin or URL, lowercased, default port
// filled in. False when it is not an http(s) URL.
bool ParseOrigin(std::string_view url, std::string* scheme, std::string* host, int* port) {
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return false;
  *scheme = Lowered(url.substr(0, sep));
  if (*scheme != "http" && *scheme != "https") return false;
  std::string_view rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.find('@') != std::string_view::npos) return false;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return false;
    *host = Lowered(rest.substr(0, close + 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port_text = after.substr(1);
    }
  } else {
    const size_t colon = rest.rfind(':');
    *host = Lowered(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (host->empty()) return false;
  *port = *scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5) return false;
    int p = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return false;
      p = p * 10 + (c - '0');
    }
    if (p == 0 || p > 65535) return false;
    *port = p;
  }
  return true;
}

// RFC 6454 same-origin: scheme, host and port (with default ports) equal.
// Hosts are compared as written: localhost and 127.0.0.1 differ.
bool SameOrigin(std::string_view origin, std::string_view public_url) {
  std::string s1, h1, s2, h2;
  int p1 = 0, p2 = 0;
  return ParseOrigin(origin, &s1, &h1, &p1) && ParseOrigin(public_url, &s2, &h2, &p2) &&
         s1 == s2 && h1 == h2 && p1 == p2;
}

// Content-Type is application/json: type/subtype case-insensitive,
// parameters (charset=utf-8) allowed.
bool IsJsonMediaType(std::string_view content_type) {
  std::string_view type = TrimSpace(content_type.substr(0, content_type.find(';')));
  return Lowered(type) == "application/json";
}

}  // namespace

// ---- RequestContext ---------------------------------------------------------

Result<uint64_t> RequestContext::IdParam(int i) const {
  const std::string s = Match(i);
  // Canonical decimal only: "01" is not collection 1.
  if (s.empty() || s.size() > 19 || s[0] == '0') return Status::NotFound();
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Status::NotFound();
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0) return Status::NotFound();
  return v;
}

Status RequestContext::Authenticate() {
  if (authenticated_) return Status::Ok();
  authenticated_ = true;
  bool from_cookie = false;
  const std::string token = Credential(req, &from_cookie);
  if (token.empty()) return Status::Ok();
  if (token.size() > 256) return InvalidToken();
  auto txn = svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  std::string_view value;
  Session session;
  const std::string key = Sha256Hex(token);
  const int64_t now_us = svc.clock->NowUs();
  if (!(*txn)->Get(Db::kSessions, key, &value).ok() || !DecodeSession(value, &session) ||
      session.expires_ms <= now_us / 1000) {
    // A stale cookie makes the request anonymous (a browser keeps sending
    // it); a bad Authorization header is the client's error.
    return from_cookie ? Status::Ok() : InvalidToken();
  }
  Result<User> user = LoadUser(**txn, session.user_id);
  if (!user.ok()) return from_cookie ? Status::Ok() : InvalidToken();
  // CSRF: a cookie-authenticated write must come from our own origin. JSON
  // bodies already force a CORS preflight that we never approve; this covers
  // body-less writes (logout, resend, follow).
  if (from_cookie && IsMutating(req.method)) {
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && !SameOrigin(origin, svc.config->public_url)) {
      return Status::Forbidden("csrf_rejected", "cross-site request refused");
    }
  }
  viewer_.emplace();
  viewer_->user = std::move(*user);
  viewer_->session_key = key;
  if (svc.last_seen != nullptr) svc.last_seen->Touch(viewer_->user.id, now_us);
  return Status::Ok();
}

Status RequestContext::RequireLogin(bool allow_unconfirmed) {
  Status s = Authenticate();
  if (!s.ok()) return s;
  if (!viewer_) {
    return Status::Error(Status::Code::kUnauthenticated, "unauthenticated",
                         "log in or send an API token");
  }
  if (!allow_unconfirmed && !viewer_->user.confirmed) {
    return Status::Forbidden("unconfirmed", "confirm your account first");
  }
  return Status::Ok();
}

Status RequestContext::RequirePermission(uint32_t perm) {
  Status s = RequireLogin();
  if (!s.ok()) return s;
  if (!viewer_->user.Can(perm)) {
    return Status::Forbidden("forbidden", "your role does not allow this");
  }
  return Status::Ok();
}

Status RequestContext::ParseJson(RequestJson* out, std::initializer_list<const char*> allowed) {
  if (req.body.size() > kRequestBodyBytesMax) {
    return Status::Error(Status::Code::kTooLarge, "too_large", "the request body is over 64 KiB");
  }
  if (!IsJsonMediaType(req.get_header_value("Content-Type"))) {
    return Status::Error(Status::Code::kUnsupportedMedia, "unsupported_media_type",
                         "send the body as application/json");
  }
  if (req.body.find('\0') != std::string::npos) {
    return Status::BadRequest("malformed_json", "the body is not valid JSON (it holds a NUL byte)");
  }
  return out->Parse(req.body, allowed);
}

Status RequestContext::PageParams(int* limit, std::string* cursor) const {
  *limit = kPageLimitDefault;
  if (req.has_param("limit")) {
    const std::string s = req.get_param_value("limit");
    int v = 0;
    bool ok = !s.empty() && s.size() <= 3;
    for (char c : s) {
      if (c < '0' || c > '9') ok = false;
      else v = v * 10 + (c - '0');
    }
    if (!ok || v < 1 || v > kPageLimitMax) {
      return Status::Invalid("limit", "limit must be between 1 and 100");
    }
    *limit = v;
  }
  cursor->clear();
  if (req.has_param("cursor")) *cursor = req.get_param_value("cursor");
  return Status::Ok();
}

void RequestContext::SendJson(int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void RequestContext::SendNoContent() { res.status = 204; }

void RequestContext::SetSessionCookie(const std::string& token, int64_t max_age_s) {
  std::string cookie = std::string(kSessionCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Lax";
  if (max_age_s > 0) cookie += "; Max-Age=" + std::to_string(max_age_s);
  if (StartsWith(svc.config->public_url, "https://")) cookie += "; Secure";
  res.set_header("Set-Cookie", cookie);
}

void RequestContext::ClearSessionCookie() {
  res.set_header("Set-Cookie",
                 std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
}

std::string RequestContext::ClientAddress() const {
  std::string peer;
  if (!CanonicalIp(req.remote_addr, &peer)) peer = req.remote_addr;
  const auto& proxies = svc.config->trusted_proxies;
  if (proxies.empty() || std::find(proxies.begin(), proxies.end(), peer) == proxies.end()) {
    return peer;
  }
  // The hop our trusted proxy added is the last one; earlier ones are
  // whatever the client sent.
  const size_t n = req.get_header_value_count("X-Forwarded-For");
  if (n == 0) return peer;
  const std::string last_header = req.get_header_value("X-Forwarded-For", n - 1);
  const size_t comma = last_header.rfind(',');
  std::string client;
  const std::string hop = comma == std::string::npos ? last_header : last_header.substr(comma + 1);
  return CanonicalIp(hop, &client) ? client : peer;
}

// ---- cursors ------------------------------------------------------------------

std::string EncodeCursor(uint64_t last) {
  const std::string raw = U64Key(last);
  char out[32];
  sodium_bin2base64(out, sizeof(out), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

void WriteNextCursor(JsonOut& out, bool more, uint64_t last) {
  out.Key("next");
  if (more) {
    out.String(EncodeCursor(last));
  } else {
    out.Null();
  }
}

Status DecodeCursor(const std::string& cursor, uint64_t* last) {
  unsigned char raw[16];
  size_t len = 0;
  if (cursor.size() > 16 ||
      sodium_base642bin(raw, sizeof(raw), cursor.data(), cursor.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      len != kCursorBytes) {
    return Status::Invalid("cursor", "the cursor is not one this server gave out");
  }
  *last = GetU64BE(std::string_view(reinterpret_cast<const char*>(raw), len));
  return Status::Ok();
}

// ---- HttpServer ---------------------------------------------------------------

namespace {

ConnectionOptions ConnectionOptionsOf(const Config& config, Metrics* metrics) {
  ConnectionOptions o;
  o.threads = config.http_threads;
  o.request_deadline_ms = config.http_request_deadline_ms;
  o.idle_timeout_ms = config.http_idle_timeout_ms;
  o.requests_per_connection_max = config.http_requests_per_connection_max;
  o.connections_per_address_max = config.http_connections_per_address_max;
  o.write_timeout_ms = kWriteTimeoutMs;
  o.body_bytes_max = kRequestBodyBytesMax;
  o.unlimited_addresses = config.trusted_proxies;
  o.on_rejected = [metrics](const std::string& address, int status) {
    if (metrics != nullptr) metrics->RecordRequest("rejected", status, 0);
    OB_LOG(kInfo, "http: - - %d 0.00ms from %s", status, address.c_str());
  };
  return o;
}

Status HttpError(int status) {
  switch (status) {
    case 404: return Status::NotFound("no such endpoint");
    case 405: return Status::Error(Status::Code::kInvalidArgument, "method_not_allowed",
                                   "method not allowed");
    case 411: return Status::BadRequest("length_required",
                                        "send the body with a Content-Length header");
    case 413: return Status::Error(Status::Code::kTooLarge, "too_large",
                                   "the request body is over 64 KiB");
    case 414: return Status::BadRequest("uri_too_long", "the request URI is too long");
    case 400: return Status::BadRequest("bad_request", "malformed HTTP request");
    default: return Status::Error(Status::Code::kInternal, "error", "request failed");
  }
}

// Request framing checks before httplib reads a body (RFC 9112 section 6):
// no Content-Length and no Transfer-Encoding means no body (httplib would
// read until the client closes); Transfer-Encoding is refused with 411 (we
// cannot bound a chunked body); a malformed or conflicting Content-Length is
// 400 and one over the limit 413, without reading the body. Refusals close
// the connection, whose unread body cannot be skipped safely.
httplib::Server::HandlerResponse CheckFraming(const httplib::Request& req,
                                              httplib::Response& res) {
  int refuse = 0;
  const size_t lengths = req.get_header_value_count("Content-Length");
  if (req.has_header("Transfer-Encoding")) {
    refuse = 411;
  } else if (lengths == 0) {
    // Safe: the Request is not const in httplib; handlers see it as const.
    const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
  } else {
    const std::string first = req.get_header_value("Content-Length");
    bool digits = !first.empty() && first.size() <= 18 &&
                  std::all_of(first.begin(), first.end(), [](char c) { return c >= '0' && c <= '9'; });
    for (size_t i = 1; i < lengths && digits; ++i) {
      digits = req.get_header_value("Content-Length", i) == first;
    }
    if (!digits) refuse = 400;
    else if (std::stoull(first) > kRequestBodyBytesMax) refuse = 413;
  }
  if (refuse == 0) return httplib::Server::HandlerResponse::Unhandled;
  res.status = refuse;
  res.set_header("Connection", "close");
  ConnectionServer::CloseAfterCurrentRequest();
  return httplib::Server::HandlerResponse::Handled;
}

}  // namespace

HttpServer::HttpServer(Services& svc)
    : svc_(svc), server_(ConnectionOptionsOf(*svc.config, svc.metrics)) {
  server_.set_payload_max_length(kRequestBodyBytesMax);
  server_.set_tcp_nodelay(true);
  server_.set_pre_routing_handler(CheckFraming);
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 400) {
      // A malformed request: what follows it on the connection cannot be
      // trusted to start a request.
      res.set_header("Connection", "close");
      ConnectionServer::CloseAfterCurrentRequest();
    }
    res.set_content(ErrorJson(HttpError(res.status)), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        OB_LOG(kError, "http: %s %s raised: %s", req.method.c_str(), req.path.c_str(),
               what.c_str());
        res.status = 500;
        res.set_content(ErrorJson(Status::Internal("internal error")), "application/json");
      });
  // Every reply httplib writes, routed or not (404, 400, 413...), is counted
  // and logged here, after it was sent.
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const char* name = t_route;
    t_route = nullptr;
    if (name == nullptr) name = (res.status == 404 || res.status == 405) ? "unmatched" : "rejected";
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() -
                               ConnectionServer::CurrentRequestStart())
                               .count();
    if (svc_.metrics != nullptr) svc_.metrics->RecordRequest(name, res.status, seconds);
    // The path without its query (tokens may travel in queries); both cut
    // short so a hostile request cannot fill the log.
    const char* method = req.method.empty() ? "-" : req.method.c_str();
    const char* path = req.path.empty() ? "-" : req.path.c_str();
    if (req.get_header_value("User-Agent") == kWatchdogUserAgent) {
      OB_LOG(kDebug, "http: %.16s %.512s %d %.2fms", method, path, res.status, seconds * 1000);
    } else {
      OB_LOG(kInfo, "http: %.16s %.512s %d %.2fms", method, path, res.status, seconds * 1000);
    }
  });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const char* method, const std::string& pattern, const char* name,
                       RouteHandler handler) {
  RouteAtRoot(method, FullPattern(pattern), name, std::move(handler));
}

void HttpServer::RouteAtRoot(const char* method, const std::string& full, const char* name,
                             RouteHandler handler) {
  auto fn = [this, name, handler = std::move(handler)](const httplib::Request& req,
                                                       httplib::Response& res) {
    Dispatch(name, handler, req, res);
  };
  const std::string m = method;
  if (m == "GET") server_.Get(full, fn);
  else if (m == "POST") server_.Post(full, fn);
  else if (m == "PUT") server_.Put(full, fn);
  else if (m == "PATCH") server_.Patch(full, fn);
  else if (m == "DELETE") server_.Delete(full, fn);
  else OB_LOG(kError, "http: unsupported method %s for %s", method, full.c_str());
}

void HttpServer::Dispatch(const char* name, const RouteHandler& handler,
                          const httplib::Request& req, httplib::Response& res) {
  in_flight_++;
  RequestContext ctx(req, res, svc_);
  Status s;
  try {
    s = ctx.Authenticate();
    if (s.ok()) s = handler(ctx);
  } catch (const std::exception& e) {
    OB_LOG(kError, "http: %s %s raised: %s", req.method.c_str(), req.path.c_str(), e.what());
    s = Status::Internal("internal error");
  }
  if (!s.ok()) {
    if (s.code() == Status::Code::kInternal) {
      OB_LOG(kError, "http: %s %s failed: %s", req.method.c_str(), req.path.c_str(),
             s.message().c_str());
      s = Status::Internal("internal error");  // details stay in the log
    }
    res.status = s.http_status();
    if (s.error_code() == "busy") res.set_header("Retry-After", std::to_string(kBusyRetryAfterS));
    res.set_content(ErrorJson(s), "application/json");
  } else if (res.status == -1) {
    res.status = 200;
  }
  t_route = name;  // the logger counts and logs the reply once it is sent
  in_flight_--;
}

Status HttpServer::Bind(const std::string& host, int port) {
  if (port == 0) {
    port_ = server_.bind_to_any_port(host);
    if (port_ <= 0) return Status::Internal("cannot bind " + host + ": no free port");
  } else {
    if (!server_.bind_to_port(host, port)) {
      return Status::Internal("cannot listen on " + host + ":" + std::to_string(port) +
                              " (in use, or not allowed)");
    }
    port_ = port;
  }
  if (!server_.SetListenBacklog(kListenBacklog)) {
    OB_LOG(kWarning, "http: cannot raise the listen backlog: %s", strerror(errno));
  }
  return Status::Ok();
}

bool HttpServer::Listen() { return server_.listen_after_bind(); }

void HttpServer::Stop() {
  if (!server_.is_running()) return;
  server_.StopAccepting();
  server_.stop();
}

}  // namespace offbrand
