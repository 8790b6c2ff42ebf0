// HttpServer: cpp-httplib behind our conventions. Routes are registered by
// each module (Register*Routes below) and answered through RequestContext,
// which resolves the viewer, parses bodies and turns a non-OK Status into the
// SPEC error object with the right HTTP status.
//
// Limits: request bodies over kRequestBodyBytesMax are refused (413) before
// they are read; non-JSON bodies on writes get 415; a request without
// Content-Length has no body, and Transfer-Encoding is refused (411).
// Connections wait for complete requests without holding a worker, under a
// deadline (ConnectionServer).
//
// Every reply, also those httplib gives before routing (404 unknown path,
// 400 malformed, 413), is request-logged ("http: METHOD PATH STATUS
// DURATIONms", the path without its query) and counted in /metrics under its
// route name, or "unmatched" (404/405 without a route) or "rejected".
//
// Thread-safety: handlers run concurrently on the worker pool. Routes must be
// registered before Listen().
#ifndef OFFBRAND_HTTP_SERVER_H_
#define OFFBRAND_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_connections.h"
#include "json.h"
#include "offbrand/clock.h"
#include "offbrand/config.h"
#include "offbrand/model.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

// The User-Agent of the watchdog's own /healthz probe (App): its requests
// are request-logged at debug level only, not every few seconds at info.
inline constexpr char kWatchdogUserAgent[] = "offbrand-watchdog";

class Metrics;
class Mailer;
class PasswordHasher;
class Throttle;
class LastSeen;
class SyncEngine;

constexpr size_t kRequestBodyBytesMax = 64 * 1024;
// Each write of a reply; request deadline and idle timeout are in Config.
constexpr int64_t kWriteTimeoutMs = 10'000;
// Pending connects the kernel queues for accept (capped by somaxconn).
constexpr int kListenBacklog = 256;
constexpr int kPageLimitDefault = 20;
constexpr int kPageLimitMax = 100;
constexpr const char* kSessionCookie = "offbrand_session";

// Everything a handler may use. Owned by App (app.h); outlives the server.
struct Services {
  const Config* config = nullptr;
  Store* store = nullptr;
  Metrics* metrics = nullptr;
  Mailer* mailer = nullptr;
  PasswordHasher* hasher = nullptr;
  Throttle* throttle = nullptr;
  LastSeen* last_seen = nullptr;
  SyncEngine* sync = nullptr;  // null when sync is not running
  const Clock* clock = nullptr;
};

// The viewer of a request once authenticated.
struct Viewer {
  User user;
  std::string session_key;  // kSessions key (hash of the token)
};

class RequestContext {
 public:
  RequestContext(const httplib::Request& req, httplib::Response& res, Services& svc)
      : req(req), res(res), svc(svc) {}

  const httplib::Request& req;
  httplib::Response& res;
  Services& svc;

  // Regex capture i (1-based) of the route pattern.
  std::string Match(int i) const { return req.matches[i].str(); }
  // Capture i as a positive integer id in canonical decimal (no sign, no
  // leading zeros: "01" is not 1); anything else is 404 not_found.
  Result<uint64_t> IdParam(int i) const;

  // Resolves the session cookie or Authorization: Bearer/Token header.
  // Absent credentials are not an error (viewer() stays null); a token that
  // is unknown or expired is 401 invalid_token. A cookie-authenticated
  // POST/PUT/PATCH/DELETE with an Origin header that is not the public URL's
  // origin (scheme, host, port; default ports normalized; hosts compared as
  // written, so localhost is not 127.0.0.1) is 403 csrf_rejected.
  Status Authenticate();
  const Viewer* viewer() const { return viewer_ ? &*viewer_ : nullptr; }
  // 401 unauthenticated without a viewer; 403 unconfirmed for unconfirmed
  // users unless `allow_unconfirmed` (the auth endpoints).
  Status RequireLogin(bool allow_unconfirmed = false);
  // RequireLogin + the permission bits (403 forbidden).
  Status RequirePermission(uint32_t perm);
  Status RequireAdmin() { return RequirePermission(kPermAdmin); }

  // Checks Content-Type application/json (415), size (413) and parses.
  Status ParseJson(RequestJson* out, std::initializer_list<const char*> allowed);
  // ?limit= (default 20, 1..100, else 422) and ?cursor= (opaque; decoded by
  // DecodeCursor).
  Status PageParams(int* limit, std::string* cursor) const;

  void SendJson(int status, const std::string& body);
  void SendNoContent();
  // Sets the session cookie (HttpOnly, SameSite=Lax, Secure on https public
  // URL). max_age_s <= 0 makes a browser-session cookie (no Max-Age); the
  // server-side session expires on its own either way.
  void SetSessionCookie(const std::string& token, int64_t max_age_s);
  void ClearSessionCookie();
  // The client's address: the peer, or, when the peer is one of
  // OFFBRAND_TRUSTED_PROXIES, the last X-Forwarded-For hop (if it is an IP
  // address). Used for throttling and the fail2ban log line.
  std::string ClientAddress() const;

 private:
  std::optional<Viewer> viewer_;
  bool authenticated_ = false;
};

using RouteHandler = std::function<Status(RequestContext&)>;

// Opaque cursors: base64url of a u64 (the last id seen). Bad cursor -> 422.
std::string EncodeCursor(uint64_t last);
// Writes the "next" member of a list page: the cursor after `last`, or null
// when `more` is false (the page is the last one).
void WriteNextCursor(JsonOut& out, bool more, uint64_t last);
Status DecodeCursor(const std::string& cursor, uint64_t* last);

class HttpServer {
 public:
  explicit HttpServer(Services& svc);
  ~HttpServer();

  // `name` labels the route in metrics and logs ("collections.get").
  // `pattern` is a cpp-httplib regex relative to /api/v1 ("/collections/(\\d+)")
  // unless it already starts with "/api/" or is a root-level operations path
  // (/healthz, /readyz, /metrics), which are used as given.
  void Route(const char* method, const std::string& pattern, const char* name,
             RouteHandler handler);
  // The same for a page outside the API, at `pattern` as given ("/confirm").
  void RouteAtRoot(const char* method, const std::string& pattern, const char* name,
                   RouteHandler handler);

  // Binds the listening socket (port 0 picks one). Fails with a message.
  Status Bind(const std::string& host, int port);
  int port() const { return port_; }
  // Serves until Stop(); in-flight requests finish before it returns.
  bool Listen();
  void Stop();
  bool running() const { return server_.is_running(); }
  uint64_t in_flight() const { return in_flight_.load(); }
  ConnectionServer::Stats connection_stats() const { return server_.stats(); }

 private:
  void Dispatch(const char* name, const RouteHandler& handler, const httplib::Request& req,
                httplib::Response& res);
  Services& svc_;
  ConnectionServer server_;
  int port_ = 0;
  std::atomic<uint64_t> in_flight_{0};
};

// Route registration, one per module.
void RegisterAuthRoutes(HttpServer& server);        // auth_routes.cc
void RegisterUserRoutes(HttpServer& server);        // user_routes.cc
void RegisterCollectionRoutes(HttpServer& server);  // collections.cc
void RegisterFeedRoutes(HttpServer& server);        // feeds.cc
void RegisterFollowRoutes(HttpServer& server);      // follows.cc
void RegisterSyncRoutes(HttpServer& server);        // sync_routes.cc
void RegisterOpsRoutes(HttpServer& server);         // ops_routes.cc
void RegisterLinkPages(HttpServer& server);         // link_pages.cc

}  // namespace offbrand

#endif  // OFFBRAND_HTTP_SERVER_H_
