// HttpServer: routing, authentication, body checks and error replies.
#include "http_server.h"

#include <sodium.h>

#include <chrono>

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

}  // namespace

// ---- RequestContext ---------------------------------------------------------

Result<uint64_t> RequestContext::IdParam(int i) const {
  const std::string s = Match(i);
  if (s.empty() || s.size() > 19) return Status::NotFound();
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
    if (!origin.empty() && origin != svc.config->public_url) {
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
  const std::string type = req.get_header_value("Content-Type");
  if (!StartsWith(type, "application/json")) {
    return Status::Error(Status::Code::kUnsupportedMedia, "unsupported_media_type",
                         "send the body as application/json");
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

std::string RequestContext::ClientAddress() const { return req.remote_addr; }

// ---- cursors ------------------------------------------------------------------

std::string EncodeCursor(uint64_t last) {
  const std::string raw = U64Key(last);
  char out[32];
  sodium_bin2base64(out, sizeof(out), reinterpret_cast<const unsigned char*>(raw.data()),
                    raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
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

HttpServer::HttpServer(Services& svc) : svc_(svc) {
  const int threads = svc.config->http_threads;
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_payload_max_length(kRequestBodyBytesMax);
  // Slow or idle clients are timed out instead of holding a worker.
  server_.set_read_timeout(10, 0);
  server_.set_write_timeout(10, 0);
  server_.set_keep_alive_timeout(5);
  // Rotate long keep-alive connections so queued ones get a worker.
  server_.set_keep_alive_max_count(1'000);
  server_.set_tcp_nodelay(true);
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    Status s;
    switch (res.status) {
      case 404: s = Status::NotFound("no such endpoint"); break;
      case 405: s = Status::Error(Status::Code::kInvalidArgument, "method_not_allowed",
                                  "method not allowed"); break;
      case 413: s = Status::Error(Status::Code::kTooLarge, "too_large",
                                  "the request body is over 64 KiB"); break;
      case 414: s = Status::BadRequest("uri_too_long", "the request URI is too long"); break;
      case 400: s = Status::BadRequest("bad_request", "malformed HTTP request"); break;
      default: s = Status::Error(Status::Code::kInternal, "error", "request failed"); break;
    }
    res.set_content(ErrorJson(s), "application/json");
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
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const char* method, const std::string& pattern, const char* name,
                       RouteHandler handler) {
  auto fn = [this, name, handler = std::move(handler)](const httplib::Request& req,
                                                       httplib::Response& res) {
    Dispatch(name, handler, req, res);
  };
  const std::string full = FullPattern(pattern);
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
  const auto start = std::chrono::steady_clock::now();
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
    res.set_content(ErrorJson(s), "application/json");
  } else if (res.status == -1) {
    res.status = 200;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (svc_.metrics != nullptr) svc_.metrics->RecordRequest(name, res.status, seconds);
  OB_LOG(kInfo, "http: %s %s %d %.2fms", req.method.c_str(), req.path.c_str(), res.status,
         seconds * 1000);
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
  return Status::Ok();
}

bool HttpServer::Listen() { return server_.listen_after_bind(); }

void HttpServer::Stop() {
  if (server_.is_running()) server_.stop();
}

}  // namespace offbrand
