// StreamClient: turns outbox records into Stream Feeds v2 HTTP requests and
// reads Stream's answers (CONTRACT.md; golden-requests.json is the reference
// for every request built here).
//
// It does no I/O: Build* return HttpRequests for a Transport to perform, and
// Parse* interpret the HttpResponses that come back. What to retry, when, and
// what to do with a failure is the sync engine's business.
//
// Requests: `<base_url><path>?api_key=<key>[&...]` where every path ends in
// '/'; headers `Authorization: <jwt>` (no "Bearer"), `stream-auth-type: jwt`,
// `X-Stream-Client: <client_name>` and, only when there is a body,
// `Content-Type: application/json`. Each request carries a server token
// scoped as the official SDKs scope it:
//   feed ops (add, remove, follow, unfollow, reads)
//                      {"resource":"*","action":"*","feed_id":"<group><id>"}
//   user/, follow_many/
//                      {"resource":"*","action":"*","feed_id":"*"}
//   activity/, activities/
//                      {"resource":"activities","action":"*","feed_id":"*"}
// Tokens have no exp, so each distinct token is signed once and cached.
//
// Path segments taken from data (feed ids, user ids, foreign ids, follow
// targets) are percent-encoded: RFC 3986 unreserved characters
// (A-Z a-z 0-9 - . _ ~) and ':' stay literal, every other byte becomes %XX.
// ':' is kept because Stream's ids and the golden requests use it literally
// ("Collection:7", "user:42") and it is legal in a path segment; '/', '?',
// '#', ' ', '%' and the rest are encoded, which the SDKs fail to do. Feed
// group names come from configuration and are encoded the same way.
// Query values use the same encoding.
//
// Thread-safety: a StreamClient is thread-safe (the token cache and the JSON
// parser are guarded by a mutex), so HTTP handlers may mint user tokens while
// the sync thread builds requests.
#ifndef OFFBRAND_SYNC_STREAM_CLIENT_H_
#define OFFBRAND_SYNC_STREAM_CLIENT_H_

#include <simdjson.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offbrand/outbox.h"
#include "offbrand/status.h"
#include "offbrand/transport.h"

#ifndef OFFBRAND_VERSION
#define OFFBRAND_VERSION "dev"
#endif

namespace offbrand {

// Stream's default API endpoint (Config::stream_base_url's default).
inline constexpr std::string_view kStreamDefaultBaseUrl = "https://api.stream-io-api.com/api/v1.0/";

struct StreamClientOptions {
  // Prefix of every request URL, e.g. "https://api.stream-io-api.com/api/v1.0/"
  // or "http://127.0.0.1:PORT/api/v1.0/". A missing trailing '/' is added.
  std::string base_url = std::string(kStreamDefaultBaseUrl);
  std::string api_key;
  std::string api_secret;  // never logged, never put in a request
  // Stream region ("us-east", "dublin", ...). It only selects the host: when
  // non-empty and base_url is the default (or empty), the base URL becomes
  // "https://<location>-api.stream-io-api.com/api/v1.0/". An explicitly
  // configured base_url wins. Never sent as a query parameter.
  std::string location;
  std::string client_name = "offbrand-" OFFBRAND_VERSION;  // X-Stream-Client
};

// A Stream error answer (CONTRACT.md "Errors"). For a non-JSON body `code` is
// 0, `exception` empty and `detail` holds the start of the body; for a
// network failure (status 0) `detail` holds the transport's error.
struct StreamError {
  int http_status = 0;
  int code = 0;
  std::string exception;
  std::string detail;
};

// Rate-limit headers of a response; -1 where a header is absent or
// malformed. Retry-After comes in two forms (RFC 9110): delta seconds
// (`retry_after_s`) or an HTTP date (`retry_at_unix_s`); at most one is set.
struct RateLimit {
  int64_t limit = -1;
  int64_t remaining = -1;
  int64_t reset_unix_s = -1;
  int64_t retry_after_s = -1;
  int64_t retry_at_unix_s = -1;
};

class StreamClient {
 public:
  // Most activities Stream accepts in one add request (undocumented beyond
  // this; SPEC section 5 batches at most this many) and changes per update.
  static constexpr size_t kBatchActivitiesMax = 100;
  // Distinct tokens kept; the cache is emptied when it would grow past this.
  static constexpr size_t kTokenCacheEntriesMax = 4096;

  explicit StreamClient(StreamClientOptions options);
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // The effective base URL (after applying `location`), ending in '/'.
  const std::string& base_url() const { return base_url_; }

  // ---- writes -------------------------------------------------------------
  // The request for one record of any op (outbox.h lists them):
  //   kUserAdd        POST   user/?get_or_create=true     body = record.body
  //   kUserUpdate     PUT    user/<foreign_id>/           body = record.body
  //   kUserDelete     DELETE user/<foreign_id>/
  //   kActivityAdd    POST   feed/<group>/<feed_id>/      body = record.body (one activity)
  //   kActivityUpdate POST   activity/                    body {"changes":[record.body]}
  //   kActivityRemove DELETE feed/<group>/<feed_id>/<foreign_id>/?foreign_id=1
  //   kFollow         POST   feed/<group>/<feed_id>/following/  body = record.body
  //   kUnfollow       DELETE feed/<group>/<feed_id>/following/<foreign_id>/
  // The record must satisfy CheckOutboxRecord (bodies are compact JSON
  // objects); that is asserted in debug builds, not reported.
  HttpRequest BuildSingle(const OutboxRecord& record);

  // One add request for kActivityAdd records of the feed <group>/<feed_id>
  // (1..kBatchActivitiesMax of them, in the order given). Several records give
  // body {"activities":[b1,b2,...]} (Stream answers {"activities":[...]});
  // a single record gives the same request as BuildSingle (a plain activity
  // body, answered with the plain activity). ParseAddResponse reads both.
  HttpRequest BuildAddBatch(std::string_view group, std::string_view feed_id,
                            const std::vector<const OutboxRecord*>& records);

  // One follow_many request for kFollow records (1..kBatchActivitiesMax) that
  // share one activity_copy_limit (FollowCopyLimit): POST
  // follow_many/?activity_copy_limit=N body [{"source":"<group>:<feed_id>",
  // "target":<foreign_id>},...], token feed_id "*" (golden "followMany").
  // Stream answers 201 for the whole batch or fails it as a whole.
  HttpRequest BuildFollowMany(const std::vector<const OutboxRecord*>& records);
  // The activity_copy_limit of a kFollow record's body, or -1 when the body
  // has none or is not the JSON object we produce.
  int64_t FollowCopyLimit(const OutboxRecord& record);

  // One partial-update request for kActivityUpdate records (1..kBatchActivitiesMax):
  // POST activity/ body {"changes":[c1,c2,...]}. Stream applies all or none:
  // one unknown activity fails the whole request with 404.
  HttpRequest BuildUpdateBatch(const std::vector<const OutboxRecord*>& records);

  // ---- reads (tests, diagnostics) ----------------------------------------
  // GET feed/<group>/<feed_id>/?limit=<limit>[&id_lt=<id_lt>], or
  // enrich/feed/... when `enriched`. limit <= 0 leaves Stream's default.
  HttpRequest BuildGetFeed(std::string_view group, std::string_view feed_id, int limit,
                           std::string_view id_lt, bool enriched);
  // GET activities/?foreign_ids=a,b&timestamps=t1,t2 (pairs in order).
  HttpRequest BuildGetActivities(
      const std::vector<std::pair<std::string, std::string>>& foreign_id_times);
  // GET user/<user_id>/
  HttpRequest BuildGetUser(std::string_view user_id);

  // ---- tokens -------------------------------------------------------------
  // A token for any claims object (cached).
  std::string Token(const std::string& claims_json);
  // The browser token {"user_id":<id>} (SPEC /stream/credentials).
  std::string UserToken(std::string_view user_id);
  // {"resource":"*","action":"read","feed_id":"<group><id>"}.
  std::string ReadOnlyFeedToken(std::string_view group, std::string_view feed_id);

  // ---- responses ----------------------------------------------------------
  // Reads Stream's error body (any status). Never fails; see StreamError.
  StreamError ParseError(const HttpResponse& response);
  // "<http status> <exception>: <detail>" (or "network: <error>" for status 0),
  // the outbox's last_error format. Detail is cut to 200 bytes.
  std::string DescribeFailure(const HttpResponse& response);
  // Reads X-Ratelimit-Limit/-Remaining/-Reset and Retry-After (both forms).
  static RateLimit ParseRateLimit(const HttpResponse& response);
  // Reads an add response: a single stored activity ({"id","foreign_id",...})
  // or {"activities":[...]}. Appends (foreign_id, id) for every activity that
  // has both to *foreign_id_to_activity_id, in response order. Fails with
  // kInternal ("stream_bad_response") when the body is not such JSON; the
  // output then holds whatever was appended before the fault (nothing for
  // unparseable bodies). Does not look at the HTTP status.
  Status ParseAddResponse(const HttpResponse& response,
                          std::vector<std::pair<std::string, std::string>>* foreign_id_to_activity_id);

  // Percent-encodes one path segment or query value (see the file comment).
  static std::string EncodeSegment(std::string_view text);

 private:
  HttpRequest Make(const char* method, const std::string& path_and_query,
                   const std::string& claims_json, std::string body);
  std::string FeedPath(std::string_view group, std::string_view feed_id) const;
  std::string FeedClaims(std::string_view group, std::string_view feed_id) const;
  std::string Query(std::string_view extra) const;

  // Constant after construction.
  const StreamClientOptions options_;
  const std::string base_url_;
  const std::string user_claims_;      // feed_id "*"
  const std::string activity_claims_;  // resource "activities"

  std::mutex mu_;
  std::map<std::string, std::string> token_cache_;  // guarded by mu_: claims -> jwt
  simdjson::dom::parser parser_;                    // guarded by mu_
};

}  // namespace offbrand

#endif  // OFFBRAND_SYNC_STREAM_CLIENT_H_
