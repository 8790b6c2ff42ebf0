// The sync engine: a pipeline of scan -> compact -> batch -> mark -> send ->
// acknowledge (sync_engine.h has the overview).
//
// Durable knowledge that a record "never left": before a planned request may
// start, a commit adds 1 to `attempts` of every record it carries (its
// "mark"). A record with attempts == 0 has therefore certainly never been
// sent, so an add (or a follow, or a user add) with attempts == 0 followed by
// its remove (unfollow, user delete) is dropped with no request at all. When
// the add may have left (attempts > 0) only the remove is sent, and the add,
// its updates and the remove all leave the outbox when Stream acknowledges
// the remove. Marks run only a bounded number of requests ahead of the sends
// (mark_ahead: two pipeline depths, doubled while a slow fsync leaves the
// pipeline waiting for marks, up to kMarkedAheadRequestsMax, and back to the
// minimum when the plan is dropped), so when a plan is dropped unsent
// (Stream down, a pause, a rate hold) only those records carry an attempt
// they did not make: the cost is a missed compaction (a remove sent where
// nothing needed sending, which Stream answers as done), never a wrong one.
//
// Commits: one write transaction acknowledges the requests answered since the
// last one (sent records leave, stream_ids are stored, failures get their
// next attempt time, rejected records become dead letters) and marks the next
// planned requests. When the engine runs its own thread that transaction runs
// on a committer thread, so answers keep arriving and marked requests keep
// starting while it waits for its fsync; one commit is in flight at a time
// and the next gathers everything answered meanwhile. The scan that planned
// requests ran on a read snapshot taken before the commit that marks them;
// that is safe because only this engine ever changes or deletes outbox
// records (HTTP handlers only append, operators only touch dead letters), and
// an entity stays busy (unscanned) from planning until the acknowledgement of
// its request is durable, so no record a commit deletes is planned again.
//
// Everything else the engine knows in memory (planned requests, backoff,
// holds, isolation of records from a rejected batch, pause) is rebuilt from
// LMDB and Stream's answers after a restart.
#include "sync_engine.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "offbrand/log.h"
#include "offbrand/outbox.h"
#include "stream_client.h"

namespace offbrand {

namespace {

// Records looked at per scan at most (those of busy or blocked entities
// included), and records held in planned, not yet started requests.
constexpr size_t kScanRecordsMax = 50'000;
constexpr size_t kPlanRecordsMax = 20'000;
// Records of one entity taken per scan (a long run of updates compacts in
// several passes).
constexpr size_t kEntityRecordsPerScanMax = 1'000;
// Backoff: first delay, and the floor under full jitter so a retry that
// draws ~0 ms does not spin.
constexpr int64_t kRetryDelayMsBase = 250;
constexpr int64_t kRetryDelayMsMin = 10;
// 429 without usable headers, and the longest a reset time may make us wait
// (a reset far away is a clock jump, not Stream's intent).
constexpr int64_t kRateLimitWaitMsDefault = 1000;
constexpr int64_t kRateLimitWaitMsMax = 15 * 60 * 1000;
// Late application grace after a maybe-delivered failure (file comment of
// sync_engine.h): OFFBRAND_STREAM_TIMEOUT_MS clamped to this range.
constexpr int64_t kLateGraceMsMin = 1'000;
constexpr int64_t kLateGraceMsMax = 60'000;
// Memory bounds of per-entity bookkeeping (cleared when exceeded: the cost is
// a lost hold or a resend, never an error).
constexpr size_t kIsolatedMax = 100'000;
constexpr size_t kHeldEntitiesMax = 100'000;
constexpr size_t kFailingEntitiesMax = 100'000;
constexpr size_t kStreakEntitiesMax = 8;
// Planned requests marked ahead of starting: at least this many pipeline
// depths, so a free slot rarely waits for a commit, and at most this many
// requests (a slow disk: fsyncs of seconds), so little is marked in vain
// when the plan is dropped (outage, pause).
constexpr size_t kMarkedAheadFactor = 2;
constexpr size_t kMarkedAheadRequestsMax = 4096;
// An idle engine scans at least this often (records from other processes).
constexpr int64_t kIdleRescanMs = 5'000;

constexpr const char* kCredentialsRejected = "Stream rejected our credentials";
constexpr const char* kNotConfigured = "Stream is not configured (no API key/secret)";

// Stream rate-limits each endpoint on its own; so do our holds.
enum RateClass : int {
  kRateUser = 0,
  kRateAdd,
  kRateUpdate,
  kRateRemove,
  kRateFollow,
  kRateUnfollow,
  kRateFollowMany,
  kRateClasses,
};
constexpr const char* kRateClassNames[kRateClasses] = {
    "user", "activity.add", "activity.update", "activity.remove", "follow", "unfollow",
    "follow_many"};

RateClass RateClassOf(OutboxOp op, bool many) {
  switch (op) {
    case OutboxOp::kUserAdd:
    case OutboxOp::kUserUpdate:
    case OutboxOp::kUserDelete: return kRateUser;
    case OutboxOp::kActivityAdd: return kRateAdd;
    case OutboxOp::kActivityUpdate: return kRateUpdate;
    case OutboxOp::kActivityRemove: return kRateRemove;
    case OutboxOp::kFollow: return many ? kRateFollowMany : kRateFollow;
    case OutboxOp::kUnfollow: return kRateUnfollow;
  }
  return kRateUser;
}

using JsonDoc = rapidjson::Document;

bool ParseObject(const std::string& text, JsonDoc* doc) {
  doc->Parse(text.data(), text.size());
  return !doc->HasParseError() && doc->IsObject();
}

std::string Serialize(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

void SetMember(rapidjson::Value& obj, const rapidjson::Value& name, const rapidjson::Value& value,
               rapidjson::Document::AllocatorType& alloc) {
  auto it = obj.FindMember(name);
  if (it != obj.MemberEnd()) {
    it->value.CopyFrom(value, alloc);
  } else {
    obj.AddMember(rapidjson::Value(name, alloc), rapidjson::Value(value, alloc), alloc);
  }
}

// Applies a partial-update change {"set":{..},"unset":[..]} to an activity
// body. False when either is not the JSON we produce.
bool MergeChangeIntoActivity(const std::string& activity, const std::string& change,
                             std::string* out) {
  JsonDoc a, c;
  if (!ParseObject(activity, &a) || !ParseObject(change, &c)) return false;
  auto& alloc = a.GetAllocator();
  auto set = c.FindMember("set");
  if (set != c.MemberEnd()) {
    if (!set->value.IsObject()) return false;
    for (auto& m : set->value.GetObject()) SetMember(a, m.name, m.value, alloc);
  }
  auto unset = c.FindMember("unset");
  if (unset != c.MemberEnd()) {
    if (!unset->value.IsArray()) return false;
    for (auto& name : unset->value.GetArray()) {
      if (!name.IsString()) return false;
      a.RemoveMember(name);
    }
  }
  *out = Serialize(a);
  return true;
}

// Merges a later change into an earlier one of the same activity: later
// `set` wins and cancels an earlier `unset` of the field, later `unset`
// removes an earlier `set`.
bool MergeChanges(const std::string& earlier, const std::string& later, std::string* out) {
  JsonDoc e, l;
  if (!ParseObject(earlier, &e) || !ParseObject(later, &l)) return false;
  auto& alloc = e.GetAllocator();
  if (!e.HasMember("set")) e.AddMember("set", rapidjson::Value(rapidjson::kObjectType), alloc);
  if (!e.HasMember("unset")) e.AddMember("unset", rapidjson::Value(rapidjson::kArrayType), alloc);
  rapidjson::Value& eset = e["set"];
  rapidjson::Value& eunset = e["unset"];
  if (!eset.IsObject() || !eunset.IsArray()) return false;
  auto remove_unset = [&](const rapidjson::Value& name) {
    for (auto it = eunset.Begin(); it != eunset.End();) {
      if (*it == name) {
        it = eunset.Erase(it);
      } else {
        ++it;
      }
    }
  };
  auto lset = l.FindMember("set");
  if (lset != l.MemberEnd()) {
    if (!lset->value.IsObject()) return false;
    for (auto& m : lset->value.GetObject()) {
      SetMember(eset, m.name, m.value, alloc);
      remove_unset(m.name);
    }
  }
  auto lunset = l.FindMember("unset");
  if (lunset != l.MemberEnd()) {
    if (!lunset->value.IsArray()) return false;
    for (auto& name : lunset->value.GetArray()) {
      if (!name.IsString()) return false;
      eset.RemoveMember(name);
      remove_unset(name);
      eunset.PushBack(rapidjson::Value(name, alloc), alloc);
    }
  }
  if (eunset.Empty()) e.RemoveMember("unset");
  *out = Serialize(e);
  return true;
}

bool IsRemoval(OutboxOp op) {
  return op == OutboxOp::kActivityRemove || op == OutboxOp::kUnfollow ||
         op == OutboxOp::kUserDelete;
}

// What became of one unit once its request was answered.
enum class Outcome {
  kPending,     // not answered yet
  kAcked,       // leaves the outbox
  kRetry,       // transient (network, 5xx): stays; its entity backs off
  kRetryHeld,   // 429 or credentials: stays untouched; a hold or the pause waits
  kRetryLater,  // 404 on an update: stays; its entity backs off
  kIsolate,     // rejected in company or merged: next time alone and unmerged
  kDead,        // rejected alone: the sent record moves to the dead letters
};

// A deadline valid for at most `longest` ms from now: a clock that jumped
// backwards cannot stretch the wait.
bool Waiting(int64_t now, int64_t until, int64_t longest) {
  return now < until && until - now <= longest;
}

}  // namespace

struct SyncEngine::Impl {
  // Records of one entity that are settled by one request (or by none: a
  // compaction that drops them all).
  struct Unit {
    std::vector<OutboxRecord> records;  // seq order; all leave on success
    OutboxRecord send;                  // what is sent (maybe a merged copy)
    bool drop = false;                  // compacted to nothing: no request
    bool merged = false;                // send.body combines several records
    Outcome outcome = Outcome::kPending;
    std::string error;                  // last_error for dead / retry
    std::string stream_id;              // adds: the activity id Stream gave
    const std::string& entity() const { return records.front().entity; }
  };
  struct Request {
    uint64_t tag = 0;
    OutboxOp op = OutboxOp::kActivityAdd;  // of the sent records
    bool many = false;                     // follow_many
    RateClass rate = kRateUser;
    uint64_t first_seq = 0;                // ordering of planned requests
    uint64_t records = 0;                  // outbox records it settles
    bool marking = false;                  // planned: its marks are being committed
    bool marked = false;                   // planned: marks durable, may start
    std::vector<Unit> units;
    HttpRequest http;
  };
  // What the answers of one step say about Stream as a whole.
  struct Signals {
    bool answered = false;  // an HTTP answer other than 5xx: Stream is up
    bool success = false;   // a 2xx (or equivalent)
    bool auth = false;      // 401/403
    bool down = false;      // Stream looks down
    std::string error;      // the last failure of the step
  };
  // Backoff and failure text of a unit, computed before the commit so the
  // transaction closure stays deterministic if the store runs it twice.
  struct Later {
    uint64_t seq;
    int64_t next_attempt_ms;
    std::string error;
  };
  // One write transaction and what it settles (MakeJob). Owned by one thread
  // at a time: the stepping thread, or the committer while it runs it.
  struct CommitJob {
    std::vector<Request> finished;    // judged requests: acknowledgements
    std::vector<Later> later;         // failed heads: next attempt times
    std::vector<uint64_t> mark_tags;  // planned requests being marked
    std::vector<uint64_t> mark_seqs;  // their records: attempts + 1
    std::vector<Unit> drops;          // compacted to nothing: deleted
    std::vector<uint64_t> quarantine; // undecodable: moved to the dead letters
    Status status;                    // of the write
    std::vector<std::string> sink_errors;
  };

  Impl(Store& store, const Config& config, Transport* transport, const Clock& clock,
       StreamIdSink sink)
      : store(store), config(config), transport(transport), clock(clock),
        sink(std::move(sink)), rng(std::random_device{}()) {
    if (transport != nullptr) {
      StreamClientOptions o;
      o.base_url = config.stream_base_url;
      o.api_key = config.stream_api_key;
      o.api_secret = config.stream_api_secret;
      o.location = config.stream_location;
      client = std::make_unique<StreamClient>(std::move(o));
    }
  }

  int64_t RetryMaxMs() const { return std::max<int64_t>(config.sync_retry_max_ms, 1); }
  int64_t LateGraceMs() const {
    return std::clamp<int64_t>(config.stream_timeout_ms, kLateGraceMsMin, kLateGraceMsMax);
  }
  size_t Capacity() const {
    const size_t cap = std::min(kRequestsInFlightMax, std::max<size_t>(1, transport->max_in_flight()));
    return probing ? 1 : cap;
  }

  // Full jitter: uniform in [floor, min(cap, base * 2^failures)].
  int64_t BackoffMs(uint32_t failures) {
    const int64_t cap = RetryMaxMs();
    int64_t ceiling = kRetryDelayMsBase;
    for (uint32_t i = 0; i < failures && ceiling < cap; ++i) ceiling *= 2;
    ceiling = std::min(ceiling, cap);
    const int64_t floor = std::min(kRetryDelayMsMin, ceiling);
    std::uniform_int_distribution<int64_t> d(floor, ceiling);
    return d(rng);
  }

  int64_t Step();
  bool MaySend(int64_t now) const;
  bool RateHeld(RateClass c, int64_t now) const {
    return Waiting(now, rate_until_ms[c], kRateLimitWaitMsMax);
  }
  // Judging answers.
  void Judge(Request& req, const HttpResponse& res, int64_t now, Signals* sig);
  void ReadRateLimit(RateClass c, const HttpResponse& res, int64_t now);
  void ApplySignals(const Signals& sig, int64_t now);
  // Planning.
  void Scan(int64_t now);
  Unit FormUnit(std::vector<OutboxRecord>& queue);
  void Plan(std::vector<Unit> units);
  void AddPlanned(std::vector<Request> requests);
  void ClearPlanned();
  void DropPlanned(RateClass c);
  size_t StartablePlanned(int64_t now) const;
  bool HeadHeld(OutboxOp op, int64_t now, int64_t* until) const;
  void StartMarked(int64_t now);
  // Commits.
  std::unique_ptr<CommitJob> MakeJob(int64_t now);
  void RunCommit(CommitJob& job);
  void CollectCommit(int64_t now);
  void ApplyCommit(std::unique_ptr<CommitJob> job, int64_t now);
  void CommitterLoop();
  int64_t Due(int64_t now) const;
  bool ScanDue(int64_t now) const;
  void NoteAnswers(const Signals& sig, int64_t now);
  void PublishStatus(int64_t now);

  // Constant after construction.
  Store& store;
  const Config& config;
  Transport* const transport;
  const Clock& clock;
  const StreamIdSink sink;
  std::unique_ptr<StreamClient> client;

  // Used by the stepping thread only (or the simulation).
  std::mt19937_64 rng;
  uint64_t next_tag = 1;
  std::vector<Transport::Completion> completions;  // filled by Poll
  std::vector<Request> planned;                    // by first_seq; not started
  size_t planned_records = 0;
  std::unordered_map<uint64_t, Request> in_flight;  // by tag
  std::unordered_set<std::string> busy;            // entities planned or in flight
  std::vector<Request> judged;                     // answered; acknowledged by the next commit
  uint64_t requests_started = 0;
  std::vector<Unit> drops;                         // compacted to nothing; deleted at commit
  std::vector<uint64_t> quarantine;                // undecodable records; moved at commit
  std::unordered_set<uint64_t> isolated;           // head seqs to send alone, unmerged
  std::unordered_map<std::string, int64_t> held;   // entity -> late-apply grace end
  std::unordered_set<std::string> failing;         // entities waiting for a retry
  int64_t next_due_ms = INT64_MAX;                 // earliest blocked record due (scan)
  int64_t last_scan_ms = 0;
  size_t mark_ahead = 0;          // planned requests to keep marked (see the file comment)
  bool starved = false;           // a slot waited for marks during the current commit
  uint32_t failures = 0;                           // global backoffs in a row
  int64_t backoff_until_ms = 0;
  int64_t backoff_ms = 0;                          // length of the current backoff
  bool down = false;                               // backing off: Stream looks down
  bool probing = false;                            // one request at a time until an answer
  int streak = 0;                                  // transient failures in a row
  std::set<std::string> streak_entities;
  bool paused = false;
  int64_t paused_until_ms = 0;
  std::array<int64_t, kRateClasses> rate_until_ms{};
  std::array<RateLimitState, kRateClasses> rate_state{};

  // Shared with other threads.
  std::atomic<bool> need_scan{true};
  std::atomic<bool> stopping_flag{false};
  std::atomic<uint64_t> in_flight_records{0};
  std::atomic<uint64_t> in_flight_requests{0};
  std::atomic<int64_t> last_loop{0};

  // The committer thread (only while the engine runs its own thread; the
  // simulation commits inline). commit_running is the stepping thread's.
  bool async_commit = false;
  bool commit_running = false;
  std::mutex commit_mu;
  std::condition_variable commit_cv;
  std::unique_ptr<CommitJob> commit_in;   // guarded by commit_mu
  std::unique_ptr<CommitJob> commit_out;  // guarded by commit_mu
  bool commit_stop = false;               // guarded by commit_mu
  std::thread committer;

  // Thread control, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool woken = false;
  std::thread thread;
  SyncStatus status;  // guarded by mu (counts from LMDB are added on read)
};

// ---- the step -------------------------------------------------------------------

int64_t SyncEngine::Impl::Step() {
  const int64_t now = clock.NowMs();
  if (transport == nullptr) return now + kLoopWaitMsMax;
  const bool stop = stopping_flag.load();
  CollectCommit(now);

  // 1. What finished. While stopping, answers are not judged: the records
  // stay as they are (the thread is about to exit).
  transport->Poll(0, &completions);
  Signals sig;
  for (Transport::Completion& c : completions) {
    auto it = in_flight.find(c.tag);
    if (it == in_flight.end()) continue;
    Request req = std::move(it->second);
    in_flight.erase(it);
    if (stop) {
      for (const Unit& u : req.units) busy.erase(u.entity());
      continue;
    }
    Judge(req, c.response, now, &sig);
    judged.push_back(std::move(req));
  }
  completions.clear();
  ApplySignals(sig, now);
  NoteAnswers(sig, now);

  // 2. Plan; the judged entities still count as busy until their
  // acknowledgement is durable (see the file comment).
  if (!stop && MaySend(now) && StartablePlanned(now) < Capacity() && ScanDue(now)) Scan(now);
  // 3. Start what is planned and durably marked.
  if (!stop && MaySend(now)) StartMarked(now);
  // 4. Commit acknowledgements and the next marks (on the committer thread
  // when the engine runs its own thread, so answers keep flowing meanwhile).
  if (!stop && !commit_running) {
    std::unique_ptr<CommitJob> job = MakeJob(now);
    if (job != nullptr) {
      if (async_commit) {
        commit_running = true;
        {
          std::lock_guard<std::mutex> l(commit_mu);
          commit_in = std::move(job);
        }
        commit_cv.notify_one();
      } else {
        RunCommit(*job);
        ApplyCommit(std::move(job), now);
        if (MaySend(now)) StartMarked(now);
      }
    }
  }

  uint64_t records = 0;
  for (const auto& [tag, r] : in_flight) records += r.records;
  in_flight_records = records;
  in_flight_requests = in_flight.size();
  PublishStatus(now);
  return Due(now);
}

bool SyncEngine::Impl::MaySend(int64_t now) const {
  if (paused && Waiting(now, paused_until_ms, RetryMaxMs())) return false;
  if (Waiting(now, backoff_until_ms, backoff_ms)) return false;
  return in_flight.size() < Capacity();
}

int64_t SyncEngine::Impl::Due(int64_t now) const {
  if (paused && Waiting(now, paused_until_ms, RetryMaxMs())) return paused_until_ms;
  if (Waiting(now, backoff_until_ms, backoff_ms)) return backoff_until_ms;
  int64_t due = INT64_MAX;
  if (!judged.empty() && !commit_running) return now;
  if (in_flight.size() < Capacity()) {
    if (StartablePlanned(now) < Capacity()) {
      if (ScanDue(now)) return now;
      if (next_due_ms != INT64_MAX) due = std::max(now, next_due_ms);
      due = std::min(due, last_scan_ms + kIdleRescanMs);
    }
    for (const Request& r : planned) {
      if (RateHeld(r.rate, now)) {
        due = std::min(due, rate_until_ms[r.rate]);
      } else if (r.marked || !commit_running) {
        return now;  // startable now, or a commit to mark it can run now
      }
    }
  }
  // Nothing specific: look again after a while (answers, the committer and
  // Wake come sooner).
  if (due == INT64_MAX || !in_flight.empty() || commit_running) {
    due = std::min(due, now + kLoopWaitMsMax);
  }
  return due;
}

bool SyncEngine::Impl::ScanDue(int64_t now) const {
  if (need_scan.load()) return true;
  // Records written by another process (the CLI's `outbox retry`) wake no
  // one: look again now and then.
  if (!Waiting(now, last_scan_ms + kIdleRescanMs, kIdleRescanMs)) return true;
  // A blocked record became due, or the clock jumped back past its wait.
  return next_due_ms != INT64_MAX &&
         !Waiting(now, next_due_ms, std::max({RetryMaxMs(), LateGraceMs(), kRateLimitWaitMsMax}));
}

// ---- judging --------------------------------------------------------------------------

void SyncEngine::Impl::ReadRateLimit(RateClass c, const HttpResponse& res, int64_t now) {
  const RateLimit rl = StreamClient::ParseRateLimit(res);
  RateLimitState& st = rate_state[c];
  st.operation = kRateClassNames[c];
  if (rl.limit >= 0) st.limit = rl.limit;
  if (rl.remaining >= 0) st.remaining = rl.remaining;
  if (rl.reset_unix_s >= 0) st.reset_unix_s = rl.reset_unix_s;
  int64_t until = 0;
  if (res.status == 429) {
    if (rl.retry_after_s >= 0) until = now + rl.retry_after_s * 1000;
    if (rl.retry_at_unix_s >= 0) until = std::max(until, rl.retry_at_unix_s * 1000);
    if (rl.reset_unix_s >= 0) until = std::max(until, rl.reset_unix_s * 1000);
    if (until <= now) until = now + kRateLimitWaitMsDefault;
  } else if (rl.remaining == 0 && rl.reset_unix_s >= 0 && rl.reset_unix_s * 1000 > now) {
    until = rl.reset_unix_s * 1000;  // the last call of the window: the next would be a 429
  }
  if (until <= now) return;
  until = std::min(until, now + kRateLimitWaitMsMax);
  if (!RateHeld(c, now)) {
    OB_LOG(kWarning, "sync: Stream rate limit on %s (%s); holding it for %lld ms",
           kRateClassNames[c], res.status == 429 ? "429" : "remaining 0",
           static_cast<long long>(until - now));
    rate_until_ms[c] = until;
  } else {
    rate_until_ms[c] = std::max(rate_until_ms[c], until);
  }
  st.held_until_ms = rate_until_ms[c];
  // Planned requests of that endpoint would only sit in the queue (and keep
  // the scan from planning others): forget them; the scan skips the
  // endpoint's records until the hold ends.
  DropPlanned(c);
}

// Turns one answer into the outcome of each unit it carried, and into what
// it says about Stream as a whole.
void SyncEngine::Impl::Judge(Request& req, const HttpResponse& res, int64_t now, Signals* sig) {
  const int st = res.status;
  auto all = [&](Outcome o, const std::string& error = {}) {
    for (Unit& u : req.units) {
      u.outcome = o;
      u.error = error;
    }
  };
  if (st != 0) ReadRateLimit(req.rate, res, now);
  const bool ok = (st >= 200 && st < 300) || (st == 404 && IsRemoval(req.op)) ||
                  (st == 409 && req.op == OutboxOp::kUserAdd);
  if (ok) {
    // 404 on a remove: already gone, the goal is reached; 409 on a user add:
    // the user exists (get_or_create avoids it anyway).
    sig->answered = sig->success = true;
    all(Outcome::kAcked);
    if (req.op == OutboxOp::kActivityAdd && st < 300) {
      std::vector<std::pair<std::string, std::string>> ids;
      Status s = client->ParseAddResponse(res, &ids);
      if (!s.ok()) OB_LOG(kWarning, "sync: %s", s.ToString().c_str());
      std::unordered_map<std::string, std::string> by_fid(ids.begin(), ids.end());
      for (Unit& u : req.units) {
        auto it = by_fid.find(u.send.foreign_id);
        if (it != by_fid.end()) u.stream_id = it->second;
      }
    }
    return;
  }
  const std::string error = client->DescribeFailure(res);
  sig->error = error;
  if (st == 404 && (req.op == OutboxOp::kActivityUpdate || req.op == OutboxOp::kUserUpdate)) {
    // What it updates has not landed yet. In a batch we cannot tell which
    // change is unknown (Stream applies all or none): split it.
    sig->answered = true;
    all(req.units.size() > 1 ? Outcome::kIsolate : Outcome::kRetryLater, error);
    return;
  }
  if (st == 401 || st == 403) {
    sig->answered = sig->auth = true;
    all(Outcome::kRetryHeld, error);
    return;
  }
  if (st == 429) {
    sig->answered = true;
    all(Outcome::kRetryHeld, error);
    return;
  }
  const bool rejected = st >= 400 && st < 500 && st != 404 && st != 408;
  if (rejected) {
    // 400/409/413/422...: the record at fault goes to the dead letters. A
    // batch, or a unit whose body was merged, is split first to find it.
    sig->answered = true;
    const bool alone = req.units.size() == 1;
    for (Unit& u : req.units) {
      u.outcome = alone && !u.merged ? Outcome::kDead : Outcome::kIsolate;
      u.error = error;
    }
    return;
  }
  // No answer, timeout, 5xx, an unexpected 404 (a wrong base URL must not
  // dead-letter everything), anything else: transient, for these entities.
  all(Outcome::kRetry, error);
  if (st == 0 && res.maybe_delivered) {
    if (held.size() >= kHeldEntitiesMax) held.clear();
    for (const Unit& u : req.units) held[u.entity()] = now + LateGraceMs();
  }
  ++streak;
  if (streak_entities.size() < kStreakEntitiesMax) streak_entities.insert(req.units[0].entity());
  // A connection that cannot even be made says Stream (or the way to it) is
  // down; otherwise a run of failures over several entities does.
  if ((st == 0 && !res.maybe_delivered) ||
      (streak >= kDownStreakMin && streak_entities.size() >= 2)) {
    sig->down = true;
  }
}

void SyncEngine::Impl::ApplySignals(const Signals& sig, int64_t now) {
  if (sig.answered) {
    streak = 0;
    streak_entities.clear();
  }
  if (sig.auth) {
    if (!paused) OB_LOG(kError, "sync: %s (%s); sync is paused", kCredentialsRejected, sig.error.c_str());
    paused = true;
    paused_until_ms = now + RetryMaxMs();
    probing = true;
    ClearPlanned();
    return;
  }
  if (sig.down) {
    backoff_ms = BackoffMs(failures++);
    backoff_until_ms = now + backoff_ms;
    if (!down) OB_LOG(kWarning, "sync: Stream unreachable or failing: %s", sig.error.c_str());
    down = true;
    probing = true;
    ClearPlanned();
    return;
  }
  if (sig.answered) {
    if (paused && sig.success) {
      OB_LOG(kInfo, "sync: Stream accepts our credentials again; sync resumes");
      paused = false;
    }
    if (down) OB_LOG(kInfo, "sync: Stream reachable again");
    down = false;
    failures = 0;
    if (!paused) probing = false;
  }
}

// ---- planning ---------------------------------------------------------------------------

void SyncEngine::Impl::DropPlanned(RateClass c) {
  std::vector<Request> keep;
  for (Request& r : planned) {
    if (r.rate != c) {
      keep.push_back(std::move(r));
      continue;
    }
    planned_records -= r.records;
    for (const Unit& u : r.units) busy.erase(u.entity());
  }
  planned = std::move(keep);
  need_scan = true;
}

size_t SyncEngine::Impl::StartablePlanned(int64_t now) const {
  size_t n = 0;
  for (const Request& r : planned) n += RateHeld(r.rate, now) ? 0 : 1;
  return n;
}

// True when every endpoint a unit headed by `op` may go to is rate-held
// (approximate: the scan's shortcut; TakeStartable enforces holds exactly).
bool SyncEngine::Impl::HeadHeld(OutboxOp op, int64_t now, int64_t* until) const {
  RateClass a = RateClassOf(op, false);
  RateClass b = op == OutboxOp::kFollow ? kRateFollowMany : a;
  if (!RateHeld(a, now) || !RateHeld(b, now)) return false;
  *until = std::min(rate_until_ms[a], rate_until_ms[b]);
  return true;
}

void SyncEngine::Impl::ClearPlanned() {
  for (const Request& r : planned) {
    for (const Unit& u : r.units) busy.erase(u.entity());
  }
  planned.clear();
  planned_records = 0;
  mark_ahead = 0;
  need_scan = true;
}

void SyncEngine::Impl::Scan(int64_t now) {
  need_scan = false;  // a Wake during the scan sets it again
  last_scan_ms = now;
  next_due_ms = INT64_MAX;
  Result<std::unique_ptr<ReadTxn>> txn = store.BeginRead();
  if (!txn.ok()) {
    OB_LOG(kError, "sync: reading the outbox failed: %s", txn.status().ToString().c_str());
    next_due_ms = now + kLoopWaitMsMax;
    return;
  }
  // Entities with a dead letter wait (read once here rather than per entity).
  std::unordered_set<std::string> dead;
  if ((*txn)->Count(Db::kDead) > 0) {
    Cursor c = (*txn)->OpenCursor(Db::kDead);
    for (bool on = c.First(); on; on = c.Next()) {
      std::string_view e;
      if (PeekOutboxEntity(c.value(), &e)) dead.emplace(e);
    }
  }
  for (auto it = held.begin(); it != held.end();) {
    if (now >= it->second) {
      it = held.erase(it);
      continue;
    }
    // The clock went back: the time already waited is unknown, so wait a
    // whole grace period again rather than none.
    if (it->second - now > LateGraceMs()) it->second = now + LateGraceMs();
    ++it;
  }

  std::unordered_set<std::string> blocked;
  std::unordered_map<std::string, size_t> index;  // entity -> queues position
  std::vector<std::vector<OutboxRecord>> queues;
  const size_t budget = planned_records < kPlanRecordsMax ? kPlanRecordsMax - planned_records : 0;
  size_t taken = 0, scanned = 0;
  Cursor c = (*txn)->OpenCursor(Db::kOutbox);
  for (bool on = c.First(); on && taken < budget && scanned < kScanRecordsMax;
       on = c.Next(), ++scanned) {
    std::string_view peeked;
    const bool attributed = PeekOutboxEntity(c.value(), &peeked);
    std::string entity(attributed ? peeked : std::string_view());
    if (attributed && (blocked.count(entity) != 0 || busy.count(entity) != 0 ||
                       dead.count(entity) != 0)) {
      blocked.insert(std::move(entity));
      continue;
    }
    Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
    if (!rec.ok()) {
      // Quarantined once (moved to the dead letters at this step's commit);
      // its entity then waits like behind any dead letter.
      const uint64_t seq = c.key().size() == 8 ? GetU64BE(c.key()) : 0;
      OB_LOG(kError, "sync: outbox record %llu does not decode (%s); moving it to the dead "
             "letters%s", static_cast<unsigned long long>(seq), rec.status().ToString().c_str(),
             attributed ? "" : " (its entity is unknown: later records of it are not held back)");
      if (c.key().size() == 8) quarantine.push_back(seq);
      if (attributed) blocked.insert(std::move(entity));
      continue;
    }
    auto it = index.find(entity);
    if (it == index.end()) {
      // The entity's head record: may it go now?
      auto h = held.find(entity);
      int64_t until = std::max(h == held.end() ? 0 : h->second,
                               Waiting(now, rec->next_attempt_ms, RetryMaxMs())
                                   ? rec->next_attempt_ms : 0);
      int64_t rate_until = 0;
      if (HeadHeld(rec->op, now, &rate_until)) until = std::max(until, rate_until);
      if (until > now) {
        next_due_ms = std::min(next_due_ms, until);
        blocked.insert(std::move(entity));
        continue;
      }
      it = index.emplace(entity, queues.size()).first;
      queues.emplace_back();
    }
    std::vector<OutboxRecord>& q = queues[it->second];
    q.push_back(std::move(*rec));
    ++taken;
    if (q.size() >= kEntityRecordsPerScanMax) blocked.insert(std::move(entity));
  }
  std::vector<Unit> units;
  units.reserve(queues.size());
  for (auto& q : queues) units.push_back(FormUnit(q));
  Plan(std::move(units));
}

// The head of an entity's queue, with what compaction folds into it.
SyncEngine::Impl::Unit SyncEngine::Impl::FormUnit(std::vector<OutboxRecord>& q) {
  Unit u;
  const OutboxRecord& h = q[0];
  const size_t n = q.size();
  auto take = [&](size_t k) { u.records.assign(q.begin(), q.begin() + k); };
  auto run_of = [&](OutboxOp op) {
    size_t j = 1;
    while (j < n && q[j].op == op) ++j;
    return j;
  };
  // A removal after the head settles everything before it; the removal is
  // sent as stored (so it is never "merged") and is what a rejection
  // dead-letters. Isolation does not undo this: resending an add whose
  // remove is already queued would publish deleted content again.
  auto removal = [&](size_t j, bool may_drop) {
    take(j + 1);
    u.send = q[j];
    u.drop = may_drop && h.attempts == 0;
    return u;
  };
  const bool alone = isolated.count(h.seq) != 0;
  take(1);
  u.send = h;
  switch (h.op) {
    case OutboxOp::kActivityAdd: {
      const size_t j = run_of(OutboxOp::kActivityUpdate);
      if (j < n && q[j].op == OutboxOp::kActivityRemove && q[j].feed_group == h.feed_group &&
          q[j].feed_id == h.feed_id) {
        return removal(j, true);
      }
      if (alone) return u;
      std::string body = h.body;
      size_t merged = 1;
      for (; merged < j; ++merged) {
        std::string next;
        if (!MergeChangeIntoActivity(body, q[merged].body, &next)) break;
        body = std::move(next);
      }
      take(merged);
      u.send.body = std::move(body);
      u.merged = merged > 1;
      return u;
    }
    case OutboxOp::kActivityUpdate: {
      const size_t j = run_of(OutboxOp::kActivityUpdate);
      if (j < n && q[j].op == OutboxOp::kActivityRemove) return removal(j, false);
      if (alone) return u;
      std::string body = h.body;
      size_t merged = 1;
      for (; merged < j; ++merged) {
        std::string next;
        if (!MergeChanges(body, q[merged].body, &next)) break;
        body = std::move(next);
      }
      take(merged);
      u.send.body = std::move(body);
      u.merged = merged > 1;
      return u;
    }
    case OutboxOp::kUserAdd: {
      // get_or_create leaves an existing user unchanged, so updates are never
      // folded into an add that may have landed: they follow it.
      const size_t j = run_of(OutboxOp::kUserUpdate);
      if (j < n && q[j].op == OutboxOp::kUserDelete) return removal(j, true);
      return u;
    }
    case OutboxOp::kUserUpdate: {
      // Each update carries the whole `data`: the last one wins.
      const size_t j = run_of(OutboxOp::kUserUpdate);
      if (j < n && q[j].op == OutboxOp::kUserDelete) return removal(j, false);
      if (alone) return u;
      take(j);
      u.send.body = q[j - 1].body;
      u.merged = j > 1;
      return u;
    }
    case OutboxOp::kFollow:
      if (n > 1 && q[1].op == OutboxOp::kUnfollow) return removal(1, true);
      return u;
    default:
      return u;
  }
}

// Groups the units of a scan into requests and queues them by sequence.
void SyncEngine::Impl::Plan(std::vector<Unit> units) {
  std::map<std::pair<std::string, std::string>, std::vector<Unit*>> adds;  // by feed
  std::map<int64_t, std::vector<Unit*>> follows;                          // by copy limit
  std::vector<Unit*> updates, singles;
  for (Unit& u : units) {
    busy.insert(u.entity());
    if (u.drop) continue;
    const bool alone = isolated.count(u.records[0].seq) != 0;
    if (alone) {
      singles.push_back(&u);
    } else if (u.send.op == OutboxOp::kActivityAdd) {
      adds[{u.send.feed_group, u.send.feed_id}].push_back(&u);
    } else if (u.send.op == OutboxOp::kActivityUpdate) {
      updates.push_back(&u);
    } else if (u.send.op == OutboxOp::kFollow) {
      const int64_t limit = client->FollowCopyLimit(u.send);
      if (limit >= 0) {
        follows[limit].push_back(&u);
      } else {
        singles.push_back(&u);
      }
    } else {
      singles.push_back(&u);
    }
  }
  std::vector<Request> out;
  auto make = [&](OutboxOp op, bool many, const std::vector<Unit*>& group, size_t b, size_t e) {
    Request r;
    r.tag = next_tag++;
    r.op = op;
    r.many = many;
    r.rate = RateClassOf(op, many);
    r.first_seq = UINT64_MAX;
    std::vector<const OutboxRecord*> sends;
    for (size_t k = b; k < e; ++k) {
      r.first_seq = std::min(r.first_seq, group[k]->records[0].seq);
      r.records += group[k]->records.size();
      r.units.push_back(std::move(*group[k]));
    }
    for (const Unit& u : r.units) sends.push_back(&u.send);
    if (op == OutboxOp::kActivityAdd) {
      r.http = client->BuildAddBatch(sends[0]->feed_group, sends[0]->feed_id, sends);
    } else if (op == OutboxOp::kActivityUpdate) {
      r.http = client->BuildUpdateBatch(sends);
    } else if (many) {
      r.http = client->BuildFollowMany(sends);
    } else {
      r.http = client->BuildSingle(*sends[0]);
    }
    out.push_back(std::move(r));
  };
  for (auto& [feed, group] : adds) {
    for (size_t b = 0; b < group.size(); b += kBatchActivitiesMax) {
      make(OutboxOp::kActivityAdd, false, group, b, std::min(group.size(), b + kBatchActivitiesMax));
    }
  }
  for (size_t b = 0; b < updates.size(); b += kBatchChangesMax) {
    make(OutboxOp::kActivityUpdate, false, updates, b, std::min(updates.size(), b + kBatchChangesMax));
  }
  for (auto& [limit, group] : follows) {
    for (size_t b = 0; b < group.size(); b += kBatchFollowsMax) {
      const size_t e = std::min(group.size(), b + kBatchFollowsMax);
      make(OutboxOp::kFollow, e - b > 1, group, b, e);  // one follow: the plain endpoint
    }
  }
  for (size_t i = 0; i < singles.size(); ++i) make(singles[i]->send.op, false, singles, i, i + 1);
  for (Unit& u : units) {
    if (u.drop) drops.push_back(std::move(u));
  }
  AddPlanned(std::move(out));
}

void SyncEngine::Impl::AddPlanned(std::vector<Request> requests) {
  for (const Request& r : requests) planned_records += r.records;
  auto by_seq = [](const Request& a, const Request& b) { return a.first_seq < b.first_seq; };
  std::sort(requests.begin(), requests.end(), by_seq);
  std::vector<Request> merged;
  merged.reserve(planned.size() + requests.size());
  std::merge(std::make_move_iterator(planned.begin()), std::make_move_iterator(planned.end()),
             std::make_move_iterator(requests.begin()), std::make_move_iterator(requests.end()),
             std::back_inserter(merged), by_seq);
  planned = std::move(merged);
}

// Starts the oldest planned requests that are durably marked and not rate
// limited, up to the free slots; the others wait in place.
void SyncEngine::Impl::StartMarked(int64_t now) {
  const size_t cap = Capacity();
  std::vector<Request> keep;
  for (Request& r : planned) {
    if (!r.marked && commit_running && in_flight.size() < cap && !RateHeld(r.rate, now)) {
      starved = true;  // it could go but for its marks
    }
    if (r.marked && in_flight.size() < cap && !RateHeld(r.rate, now)) {
      planned_records -= r.records;
      const uint64_t tag = r.tag;
      HttpRequest http = std::move(r.http);
      in_flight.emplace(tag, std::move(r));
      transport->Start(tag, std::move(http));
      requests_started += 1;
    } else {
      keep.push_back(std::move(r));
    }
  }
  planned = std::move(keep);
}

// ---- the commit -------------------------------------------------------------------------

// Gathers what the next commit writes: the acknowledgements of the judged
// requests (with the backoff of failed ones, drawn here so the transaction
// closure stays deterministic if the store runs it twice), the marks of the
// next planned requests (attempts + 1 before they may start; at most
// mark_ahead requests ahead, so few marks are wasted when the plan is
// dropped), compactions and quarantines. Null when there is nothing to write.
std::unique_ptr<SyncEngine::Impl::CommitJob> SyncEngine::Impl::MakeJob(int64_t now) {
  auto job = std::make_unique<CommitJob>();
  size_t ahead = 0;
  for (const Request& r : planned) ahead += r.marked ? 1 : 0;
  const size_t target = std::max(mark_ahead, kMarkedAheadFactor * Capacity());
  for (Request& r : planned) {
    if (ahead >= target) break;
    if (r.marked || RateHeld(r.rate, now)) continue;
    r.marking = true;
    job->mark_tags.push_back(r.tag);
    for (const Unit& u : r.units) {
      for (const OutboxRecord& rec : u.records) job->mark_seqs.push_back(rec.seq);
    }
    ++ahead;
  }
  for (Request& r : judged) {
    for (Unit& u : r.units) {
      const uint64_t head = u.records[0].seq;
      if (u.outcome == Outcome::kRetry || u.outcome == Outcome::kRetryLater) {
        const uint32_t attempts = u.records[0].attempts + 1;
        job->later.push_back({head, now + BackoffMs(attempts), u.error});
      }
      if (u.outcome == Outcome::kIsolate) {
        if (isolated.size() >= kIsolatedMax) isolated.clear();
        isolated.insert(head);
      } else if (u.outcome == Outcome::kAcked || u.outcome == Outcome::kDead) {
        isolated.erase(head);
      }
    }
  }
  job->finished = std::move(judged);
  judged.clear();
  job->drops = std::move(drops);
  drops.clear();
  job->quarantine = std::move(quarantine);
  quarantine.clear();
  if (job->finished.empty() && job->mark_seqs.empty() && job->drops.empty() &&
      job->quarantine.empty()) {
    return nullptr;
  }
  return job;
}

// The one write transaction of a job (any thread; touches only the job).
void SyncEngine::Impl::RunCommit(CommitJob& job) {
  auto update = [&](WriteTxn& txn, uint64_t seq, auto&& change) -> Status {
    const std::string key = U64Key(seq);
    std::string_view value;
    Status g = txn.Get(Db::kOutbox, key, &value);
    if (g.IsNotFound()) return Status::Ok();  // gone meanwhile
    if (!g.ok()) return g;
    Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
    if (!rec.ok()) return Status::Ok();  // quarantined by a later scan
    change(*rec);
    return txn.Put(Db::kOutbox, key, EncodeOutboxRecord(*rec));
  };
  job.status = store.Write([&](WriteTxn& txn) -> Status {
    job.sink_errors.clear();
    for (const Request& r : job.finished) {
      for (const Unit& u : r.units) {
        if (u.outcome == Outcome::kAcked) {
          for (const OutboxRecord& rec : u.records) {
            Status d = txn.Del(Db::kOutbox, U64Key(rec.seq));
            if (!d.ok() && !d.IsNotFound()) return d;
          }
          if (u.send.op == OutboxOp::kActivityAdd && !u.stream_id.empty() && sink) {
            Status k = sink(txn, u.send.foreign_id, u.stream_id);
            if (!k.ok()) job.sink_errors.push_back(u.send.foreign_id + ": " + k.ToString());
          }
        } else if (u.outcome == Outcome::kDead) {
          // The record that was sent as stored is the one at fault; for a
          // compaction that sends only a removal that is the removal, and
          // what it would have removed waits behind it.
          const std::string key = U64Key(u.send.seq);
          std::string_view value;
          Status g = txn.Get(Db::kOutbox, key, &value);
          if (g.IsNotFound()) continue;
          if (!g.ok()) return g;
          Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
          if (!rec.ok()) continue;
          rec->last_error = u.error;
          Status m = MoveToDead(txn, *rec);
          if (!m.ok()) return m;
        }
      }
    }
    for (const Later& l : job.later) {
      Status p = update(txn, l.seq, [&](OutboxRecord& rec) {
        rec.next_attempt_ms = l.next_attempt_ms;
        rec.last_error = l.error;
      });
      if (!p.ok()) return p;
    }
    for (uint64_t seq : job.mark_seqs) {
      Status p = update(txn, seq, [](OutboxRecord& rec) { rec.attempts += 1; });
      if (!p.ok()) return p;
    }
    for (const Unit& u : job.drops) {
      for (const OutboxRecord& rec : u.records) {
        Status d = txn.Del(Db::kOutbox, U64Key(rec.seq));
        if (!d.ok() && !d.IsNotFound()) return d;
      }
    }
    for (uint64_t seq : job.quarantine) {
      Status q = QuarantineOutbox(txn, seq);
      if (!q.ok() && !q.IsNotFound()) return q;
    }
    return Status::Ok();
  });
}

// Takes the result of a finished job from the committer thread, if any.
void SyncEngine::Impl::CollectCommit(int64_t now) {
  if (!commit_running) return;
  std::unique_ptr<CommitJob> job;
  {
    std::lock_guard<std::mutex> l(commit_mu);
    job = std::move(commit_out);
  }
  if (job == nullptr) return;
  commit_running = false;
  ApplyCommit(std::move(job), now);
}

// What a durable (or failed) job means for memory: entities are released,
// marked requests may start, counters move.
void SyncEngine::Impl::ApplyCommit(std::unique_ptr<CommitJob> job, int64_t now) {
  const bool ok = job->status.ok();
  // A commit so slow that the pipeline ran out of marks: keep more ahead.
  if (starved && !job->mark_tags.empty()) {
    mark_ahead = std::min(kMarkedAheadRequestsMax,
                          std::max(mark_ahead, kMarkedAheadFactor * Capacity()) * 2);
  }
  starved = false;
  std::unordered_set<uint64_t> marked_tags(job->mark_tags.begin(), job->mark_tags.end());
  for (Request& r : planned) {
    if (marked_tags.count(r.tag) == 0) continue;
    r.marking = false;
    r.marked = ok;
  }
  uint64_t acked = 0, retry = 0, dead = 0, compacted = 0;
  for (const Request& r : job->finished) {
    for (const Unit& u : r.units) {
      busy.erase(u.entity());
      const uint64_t n = u.records.size();
      if (!ok) {
        retry += n;
      } else if (u.outcome == Outcome::kAcked) {
        acked += n;
      } else if (u.outcome == Outcome::kDead) {
        dead += 1;
        OB_LOG(kWarning, "sync: record %llu (%s %s) moved to dead letters: %s",
               static_cast<unsigned long long>(u.send.seq), OutboxOpName(u.send.op),
               u.send.foreign_id.c_str(), u.error.c_str());
      } else {
        retry += n;
      }
    }
  }
  for (const Unit& u : job->drops) {
    busy.erase(u.entity());
    compacted += u.records.size();
  }
  if (!job->finished.empty() || !job->drops.empty()) need_scan = true;
  for (const std::string& e : job->sink_errors) {
    OB_LOG(kWarning, "sync: storing stream_id failed for %s", e.c_str());
  }
  std::string error;
  if (!ok) {
    // Acknowledgements are lost (Stream has the records; they are resent
    // later, which every keyed write tolerates); nothing newly marked starts.
    OB_LOG(kError, "sync: writing the outbox failed: %s", job->status.ToString().c_str());
    error = "storage: " + job->status.ToString();
    backoff_ms = BackoffMs(failures++);
    backoff_until_ms = now + backoff_ms;
    need_scan = true;
  }
  std::lock_guard<std::mutex> lock(mu);
  status.sent_ok += acked;
  status.sent_retry += retry;
  status.sent_dead += dead;
  if (ok) {
    status.compacted += compacted;
    status.quarantined += job->quarantine.size();
  } else {
    status.last_error = error;
  }
}

// ---- status -----------------------------------------------------------------------------

// Failures and successes of this step's answers, for GET /sync.
void SyncEngine::Impl::NoteAnswers(const Signals& sig, int64_t now) {
  bool any_ok = false;
  for (const Request& r : judged) {
    for (const Unit& u : r.units) {
      if (u.outcome == Outcome::kAcked || u.outcome == Outcome::kDead) {
        any_ok = any_ok || u.outcome == Outcome::kAcked;
        failing.erase(u.entity());
      } else if (u.outcome == Outcome::kRetry || u.outcome == Outcome::kRetryLater) {
        if (failing.size() >= kFailingEntitiesMax) failing.clear();
        failing.insert(u.entity());
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu);
  if (any_ok) status.last_success_ms = now;
  if (!sig.error.empty()) {
    status.last_error = sig.error;
  } else if (any_ok && failing.empty() && !down && !paused) {
    status.last_error.clear();  // recovered
  }
}

void SyncEngine::Impl::PublishStatus(int64_t now) {
  std::lock_guard<std::mutex> lock(mu);
  status.requests = requests_started;
  status.credentials_rejected = paused;
  status.paused_reason = paused ? kCredentialsRejected : "";
  status.stream_down = down;
  status.next_attempt_ms = Waiting(now, backoff_until_ms, backoff_ms)       ? backoff_until_ms
                           : paused && Waiting(now, paused_until_ms, RetryMaxMs()) ? paused_until_ms
                                                                                   : 0;
  status.rate_limits.clear();
  for (int c = 0; c < kRateClasses; ++c) {
    if (rate_state[c].operation.empty()) continue;
    RateLimitState st = rate_state[c];
    st.held_until_ms = RateHeld(static_cast<RateClass>(c), now) ? rate_until_ms[c] : 0;
    status.rate_limits.push_back(std::move(st));
  }
}

// ---- SyncEngine -------------------------------------------------------------------------

SyncEngine::SyncEngine(Store& store, const Config& config, Transport* transport,
                       const Clock& clock, StreamIdSink sink)
    : impl_(new Impl(store, config, transport, clock, std::move(sink))) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->status.configured = transport != nullptr;
}

SyncEngine::~SyncEngine() {
  Stop();
  delete impl_;
}

void SyncEngine::SetRandomSeed(uint64_t seed) { impl_->rng.seed(seed); }

void SyncEngine::Impl::CommitterLoop() {
  std::unique_lock<std::mutex> l(commit_mu);
  for (;;) {
    commit_cv.wait(l, [&] { return commit_stop || commit_in != nullptr; });
    if (commit_in == nullptr) return;  // stopping with nothing left
    std::unique_ptr<CommitJob> job = std::move(commit_in);
    l.unlock();
    RunCommit(*job);
    l.lock();
    commit_out = std::move(job);
    l.unlock();
    {
      std::lock_guard<std::mutex> g(mu);
      woken = true;
    }
    cv.notify_one();
    if (transport != nullptr) transport->Interrupt();
    l.lock();
  }
}

void SyncEngine::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->async_commit = true;
  impl_->committer = std::thread([this] { impl_->CommitterLoop(); });
  impl_->thread = std::thread([this] {
    Impl& m = *impl_;
    for (;;) {
      {
        std::lock_guard<std::mutex> l(m.mu);
        if (m.stopping) break;
        m.woken = false;
      }
      m.last_loop = m.clock.NowMs();
      int64_t due;
      try {
        due = m.Step();
      } catch (const std::exception& e) {
        // Library exceptions stop here (STYLE: the top of the sync loop).
        OB_LOG(kError, "sync: step failed: %s", e.what());
        due = m.clock.NowMs() + kLoopWaitMsMax;
      }
      const int64_t wait = std::clamp<int64_t>(due - m.clock.NowMs(), 0, kLoopWaitMsMax);
      if (wait == 0) continue;
      if (m.transport != nullptr && m.transport->in_flight() > 0) {
        // Wait for an answer; a Wake interrupts the poll.
        {
          std::lock_guard<std::mutex> l(m.mu);
          if (m.stopping || m.woken) continue;
        }
        m.transport->Poll(wait, &m.completions);
      } else {
        std::unique_lock<std::mutex> l(m.mu);
        m.cv.wait_for(l, std::chrono::milliseconds(wait), [&] { return m.stopping || m.woken; });
      }
    }
  });
}

void SyncEngine::Stop() {
  std::thread t, committer;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    impl_->stopping_flag = true;
    t = std::move(impl_->thread);
    committer = std::move(impl_->committer);
  }
  impl_->cv.notify_all();
  if (impl_->transport != nullptr) impl_->transport->Cancel();
  if (t.joinable()) t.join();
  // A commit under way finishes (its writes are all harmless to keep).
  {
    std::lock_guard<std::mutex> lock(impl_->commit_mu);
    impl_->commit_stop = true;
  }
  impl_->commit_cv.notify_all();
  if (committer.joinable()) committer.join();
}

void SyncEngine::Wake() {
  impl_->need_scan = true;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->woken = true;
  }
  impl_->cv.notify_one();
  if (impl_->transport != nullptr) impl_->transport->Interrupt();
}

SyncStatus SyncEngine::GetStatus() const {
  SyncStatus out;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    out = impl_->status;
  }
  out.in_flight = impl_->in_flight_records.load();
  out.requests_in_flight = impl_->in_flight_requests.load();
  if (!out.configured) out.paused_reason = kNotConfigured;
  const int64_t now = impl_->clock.NowMs();
  Result<std::unique_ptr<ReadTxn>> txn = impl_->store.BeginRead();
  if (txn.ok()) {
    out.pending = (*txn)->Count(Db::kOutbox);
    out.dead = (*txn)->Count(Db::kDead);
    Cursor c = (*txn)->OpenCursor(Db::kOutbox);
    if (c.First()) {
      Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
      if (rec.ok()) out.oldest_pending_age_ms = std::max<int64_t>(0, now - rec->created_ms);
    }
  }
  return out;
}

int64_t SyncEngine::last_loop_ms() const { return impl_->last_loop.load(); }

int64_t SyncEngine::RunOnce() { return impl_->Step(); }

}  // namespace offbrand
