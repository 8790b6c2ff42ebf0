// StreamDouble: an in-memory imitation of Stream Feeds v2 (CONTRACT.md) served
// over real HTTP by cpp-httplib on 127.0.0.1, for tests, the simulation's
// end-to-end checks and benchmarks. Prefix /api/v1.0/.
//
// What it implements (everything outbox.h sends, plus reads):
//   user/ (POST with get_or_create; GET, PUT, DELETE user/<id>/),
//   feed/<g>/<id>/ (POST one activity or {"activities":[...]}, GET with
//   limit and id_lt), enrich/feed/<g>/<id>/ (actor "SU:<id>" -> user object),
//   DELETE feed/<g>/<id>/<activity id or foreign id>/[?foreign_id=1],
//   activity/ (partial update {"changes":[...]}, all or nothing),
//   activities/ (GET ?foreign_ids=&timestamps= or ?ids=),
//   feed/<g>/<id>/following/ and .../follows/ (POST follow; DELETE
//   .../<tg>:<tid>/[?keep_history=1]), follow_many/ (POST
//   [{"source","target"}...] with ?activity_copy_limit=; all or nothing).
// Activities are stored once, keyed by foreign_id + time (an add with a known
// key replaces the fields and keeps the id; an add without time gets server
// time and is always new) and linked into feeds: the feed they were added to
// and, through follow edges (one level, like Stream's fan-out), its followers'
// feeds. Updates are therefore visible in every copy; a remove from a feed
// also removes the copies it caused.
//
// Every request is authenticated like Stream: `api_key` query (401 code 2),
// JWT in Authorization signed with the secret (401 code 3), and the token's
// scope (403 code 17): feed ops need feed_id "<group><id>" or "*" and a
// resource of "*" ("feed" / "follower" also accepted), activity/ and
// activities/ need resource "activities" or "*", user/ needs feed_id "*";
// tokens with action "read" may only GET. Errors use Stream's body
// {"code","detail","duration","exception","status_code"[,"exception_fields"]}.
// Statuses: adds, partial updates, follows, user create and update answer 201;
// get_or_create of an existing user, reads, removes and unfollows 200; a
// remove of an unknown foreign id 200 ({"removed":...}); GET/PUT/DELETE of a
// missing user 404 code 16 (a sync engine should count a 404 on a user delete
// as done). Unknown endpoints and paths without the trailing '/' are 404.
// Every /api/ answer carries X-Ratelimit-Limit/-Remaining/-Reset, counted per
// operation per calendar minute against Stream's published limits (add 1000,
// remove 300, update 250, others 1000) or, when `rate_limit_per_minute` is
// set, that figure for every operation (a plan with higher limits). The
// count is only reported, never enforced: a 429 comes only from the
// rate_limit fault.
//
// Faults (StreamDoubleFaults) are set from C++ or with POST /__control (JSON
// with any subset of the fault fields, plus "clear":true to reset them all
// first); GET /__state dumps the whole state as JSON; POST /__reset empties
// state and faults. The /__ endpoints are served on the main port and, when
// options.control_port >= 0, on a second port that stays up while `refuse`
// has the main port closed. Faults apply to /api/ requests only, in this order:
// refuse, hang, reject_credentials, fail_status, rate_limit, authentication,
// the operation itself, drop_after_processing, delay.
//
// The two slow modes differ in when the request takes effect:
//   hang_ms    the request waits before anything happens. Then, by default,
//              the connection is dropped and the request is NOT applied
//              (Stream never answers and nothing changes); with
//              hang_then_apply it is applied and answered after the wait:
//              a client that timed out meanwhile saw a failure for a request
//              that takes effect LATER ("late application").
//   delay_ms   the request is applied at once and the answer is sent this
//              much later: a client that times out saw a failure for a
//              request that already took effect (a lost acknowledgement).
//
// How a connection is dropped ("lost acknowledgement", and requests arriving
// on a kept-alive connection while refusing): cpp-httplib has no API for it,
// so the handler finds its own socket by scanning /proc/self/fd for the TCP
// socket whose local and peer ports are the request's, and shutdown(2)s it.
// The client sees the connection close with no answer (curl: "Empty reply
// from server"). httplib's later write fails with EPIPE, which is why the
// double ignores SIGPIPE process-wide (also needed when a client times out
// while a hang or delay runs). Linux only.
//
// Answers are "application/json; charset=utf-8" and never compressed (the
// charset keeps cpp-httplib from compressing; its brotli was the double's
// main CPU cost).
//
// Thread-safety: all public methods are thread-safe. Handlers run on a pool of
// `threads` workers per listener; state is guarded by one mutex, never held
// while sleeping, so hanging or delayed requests do not block the others.
// Sleeps end early when the double is destroyed.
#ifndef OFFBRAND_TESTS_STREAM_DOUBLE_H_
#define OFFBRAND_TESTS_STREAM_DOUBLE_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "offbrand/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace offbrand {

namespace stream_double_internal {  // defined in stream_double.cc
struct Activity;
struct User;
struct Route;
struct Reply;
class Listener;
}  // namespace stream_double_internal

struct StreamDoubleOptions {
  std::string host = "127.0.0.1";
  int port = 0;           // 0: any free port (kept across refuse/restart)
  int control_port = -1;  // -1: no control listener; 0: any free port
  std::string api_key = "testkey";
  std::string api_secret = "testsecret";
  // Worker threads per listener (>= 16). cpp-httplib keeps a kept-alive
  // connection on one worker, so this must be at least the number of
  // connections a client keeps open (the sync engine: kRequestsInFlightMax).
  int threads = 80;
};

// The injectable faults. "count" fields: the next N /api/ requests; -1 means
// every request until cleared; 0 means off.
struct StreamDoubleFaults {
  bool refuse = false;               // main port closed: connections refused
  int64_t hang_ms = 0;               // every request waits this long before anything, then:
  bool hang_then_apply = false;      // false: dropped unapplied; true: applied and answered late
  int64_t delay_ms = 0;              // every answer is sent this much later (after processing)
  int fail_status = 500;             // status of injected failures (500 or 503 ...)
  int64_t fail_count = 0;            // requests answered fail_status, unprocessed
  int64_t rate_limit_count = 0;      // requests answered 429, unprocessed
  int64_t rate_limit_reset_s = 2;    // X-Ratelimit-Reset = now + this; Retry-After = this
  int64_t drop_after_processing = 0; // requests processed, then the connection dropped
  std::string poison_foreign_id;     // adds/updates naming it: 400 InputException
  bool reject_credentials = false;   // every request: 401 ApiKeyException
  int64_t rate_limit_per_minute = 0; // > 0: X-Ratelimit-Limit of every operation
};

// One stored activity as the double holds it.
struct DoubleActivity {
  std::string id;
  std::string foreign_id;
  std::string time;
  std::string json;  // the whole activity object, with "id"
};

class StreamDouble {
 public:
  explicit StreamDouble(StreamDoubleOptions options = {});
  // Stops the listeners, ends sleeps early and waits for every handler.
  ~StreamDouble();
  StreamDouble(const StreamDouble&) = delete;
  StreamDouble& operator=(const StreamDouble&) = delete;

  // Binds the listener(s) and starts serving; connections are accepted as
  // soon as this returns OK. kUnavailable when a port cannot be bound.
  Status Start();

  // Valid after a successful Start (the main port is kept across refuse).
  int port() const { return port_; }
  int control_port() const { return control_port_; }  // -1 without a control listener
  // "http://127.0.0.1:<port>/api/v1.0/"
  std::string base_url() const;

  // ---- faults -------------------------------------------------------------
  // Replaces every fault at once (refuse included; see SetRefuse for its failure).
  Status SetFaults(const StreamDoubleFaults& faults);
  StreamDoubleFaults faults() const;
  void ClearFaults();
  // Closes (true) or reopens (false) the main port. Reopening binds the same
  // port again; kUnavailable if that fails.
  Status SetRefuse(bool refuse);
  // hang_ms = ms and hang_then_apply = then_apply (see the file comment).
  void SetHangMs(int64_t ms, bool then_apply = false);
  void SetDelayMs(int64_t ms);
  void FailNext(int status, int64_t count);
  void RateLimitNext(int64_t count, int64_t reset_s);
  void DropNext(int64_t count);
  void SetPoisonForeignId(std::string foreign_id);
  void SetRejectCredentials(bool reject);
  // Applies a /__control JSON body. kInvalidArgument for malformed JSON or
  // fields of the wrong type (nothing is applied then).
  Status ApplyControlJson(std::string_view json);

  // ---- state --------------------------------------------------------------
  // Empties users, activities, follows and counters, and clears faults.
  void Reset();
  // The /__state document:
  // {"users":{<id>:{id,data,created_at,updated_at}},
  //  "feeds":{"<g>:<id>":[activity, ...newest first]},
  //  "follows":[{"source","target"}], "activity_count":N,
  //  "requests":{"<op>":N}, "total_requests":N, "faults":{...}}
  std::string StateJson() const;
  // The activities of feed <group>:<feed_id>, newest first.
  std::vector<DoubleActivity> FeedActivities(std::string_view group,
                                             std::string_view feed_id) const;
  bool HasUser(std::string_view user_id) const;
  // The user's stored "data" object as JSON, or "" when there is no such user.
  std::string UserData(std::string_view user_id) const;
  bool IsFollowing(std::string_view source_feed, std::string_view target_feed) const;
  // /api/ requests received for `op` (e.g. "activity.add", "activity.update",
  // "activity.remove", "user.add", "user.update", "user.delete", "user.get",
  // "follow", "unfollow", "feed.get", "activities.get"), counted on arrival
  // whatever their outcome; "unknown" for unrouted paths.
  int64_t RequestCount(std::string_view op) const;
  int64_t TotalRequests() const;

 private:
  using Activity = stream_double_internal::Activity;
  using User = stream_double_internal::User;
  using Route = stream_double_internal::Route;
  using Reply = stream_double_internal::Reply;
  using Listener = stream_double_internal::Listener;

  // HTTP plumbing.
  void HandleApi(const httplib::Request& req, httplib::Response& res);
  void HandleAdmin(const httplib::Request& req, httplib::Response& res);
  std::unique_ptr<Listener> MakeListener(bool api, int port, Status* status);
  bool SleepMs(int64_t ms);  // false when interrupted by shutdown

  // Request processing, under mu_.
  Reply Authenticate(const httplib::Request& req, const Route& route) const;
  Reply Dispatch(const httplib::Request& req, const Route& route);
  Reply AddActivities(const std::string& feed, std::string_view body);
  Reply UpdateActivities(std::string_view body);
  Reply RemoveActivity(const std::string& feed, const std::string& key, bool by_foreign_id);
  Reply Follow(const std::string& feed, std::string_view body);
  Reply FollowMany(const httplib::Request& req);
  // Follow of `target` by `feed` (both "<slug>:<id>"), arguments validated.
  Reply FollowChecked(const std::string& feed, const std::string& target, int64_t copy_limit);
  Reply Unfollow(const std::string& feed, const std::string& target, bool keep_history);
  Reply ReadFeed(const httplib::Request& req, const std::string& feed, bool enrich) const;
  Reply GetActivities(const httplib::Request& req) const;
  Reply UserOp(const httplib::Request& req, const Route& route);

  // Feed membership: `via` is "" for a direct add, else the followed feed the
  // copy came from. An activity held by no feed is deleted.
  void LinkActivity(const std::string& feed, const std::string& id, const std::string& via);
  void UnlinkVia(const std::string& feed, const std::string& id, const std::string& via);
  void DropFromFeed(const std::string& feed, const std::string& id);
  void ReleaseActivity(const std::string& id);
  std::vector<std::string> SortedFeed(const std::string& feed) const;
  std::string ActivityJson(const Activity& a, bool enrich) const;
  std::string UserJson(const User& u) const;
  std::string StateJsonLocked() const;
  std::string FaultsJsonLocked() const;

  // Constant after construction.
  const StreamDoubleOptions options_;

  // Listener lifecycle, guarded by life_mu_.
  mutable std::mutex life_mu_;
  std::unique_ptr<Listener> api_;
  std::unique_ptr<Listener> control_;
  std::vector<std::unique_ptr<Listener>> retired_;  // stopped, joined at destruction
  int port_ = 0;
  int control_port_ = -1;

  // Everything below is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable sleep_cv_;
  bool stopping_ = false;
  StreamDoubleFaults faults_;
  std::map<std::string, std::unique_ptr<User>> users_;
  std::map<std::string, std::unique_ptr<Activity>> activities_;  // by id
  std::map<std::pair<std::string, std::string>, std::string> by_key_;  // (foreign_id, time) -> id
  // feed "<g>:<id>" -> activity id -> why it is there ("" = added directly,
  // else the followed feed it was copied from).
  std::map<std::string, std::map<std::string, std::set<std::string>>> feeds_;
  std::map<std::string, std::set<std::string>> following_;  // source -> targets
  std::map<std::string, std::set<std::string>> followers_;  // target -> sources
  std::map<std::string, int64_t, std::less<>> request_counts_;
  int64_t total_requests_ = 0;
  int64_t insert_seq_ = 0;
  int64_t last_server_time_us_ = 0;  // server-made times are strictly increasing
  std::map<std::pair<std::string, int64_t>, int64_t> rate_windows_;  // (op, minute) -> count
};

}  // namespace offbrand

#endif  // OFFBRAND_TESTS_STREAM_DOUBLE_H_
