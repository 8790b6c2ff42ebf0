// The sync engine: rounds of read window -> compact -> mark -> send -> acknowledge.
//
// Durable knowledge that a record "never left": before a round sends
// anything, one write transaction adds 1 to `attempts` of every record that
// goes out (and deletes what compaction dropped). A record with attempts == 0
// has therefore certainly never been sent, so an add (or a follow, or a user
// add) with attempts == 0 followed by its remove (unfollow, user delete) is
// dropped with no request at all. When the add may have left (attempts > 0)
// only the remove is sent, and the add, its updates and the remove all leave
// the outbox when Stream acknowledges the remove.
//
// Everything else the engine knows in memory (backoff, isolation of records
// from a rejected batch, pause) is rebuilt from LMDB and Stream's answers
// after a restart.
#include "sync_engine.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
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

// Records considered per round (those of entities that may send now).
constexpr size_t kWindowRecordsMax = 2000;
// Records scanned per round at most, counting those of blocked entities.
constexpr size_t kScanRecordsMax = 50'000;
// HTTP requests per round (the transport runs them concurrently).
constexpr size_t kRequestsPerRoundMax = 32;
// Backoff: first delay, and the floor under full jitter so a round that
// draws ~0 ms does not spin.
constexpr int64_t kRetryDelayMsBase = 250;
constexpr int64_t kRetryDelayMsMin = 10;
// 429 without usable headers, and the longest a reset time may make us wait
// (a reset far away is a clock jump, not Stream's intent).
constexpr int64_t kRateLimitWaitMsDefault = 1000;
constexpr int64_t kRateLimitWaitMsMax = 15 * 60 * 1000;
// Head seqs remembered as "send alone" after a rejected batch.
constexpr size_t kIsolatedMax = 100'000;

constexpr const char* kCredentialsRejected = "Stream rejected our credentials";
constexpr const char* kNotConfigured = "Stream is not configured (no API key/secret)";

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

// What became of one unit after its request was answered.
enum class Outcome {
  kNotSent,     // not part of this round's requests
  kAcked,       // leaves the outbox
  kRetry,       // transient (network, 5xx, 429, paused): stays, global backoff
  kRetryLater,  // 404 on an update: stays, this entity backs off
  kIsolate,     // rejected in company: next round it goes alone, unmerged
  kDead,        // rejected alone: the sent record moves to the dead letters
};

}  // namespace

struct SyncEngine::Impl {
  // A group of records of one entity that is settled by one request (or by
  // none: a compaction that drops them all).
  struct Unit {
    std::vector<OutboxRecord> records;  // seq order; all leave on success
    OutboxRecord send;                  // what is sent (maybe a merged copy)
    bool drop = false;                  // compacted to nothing: no request
    Outcome outcome = Outcome::kNotSent;
    std::string error;                  // last_error for dead / retry-later
    std::string stream_id;              // adds: the activity id Stream gave
  };
  struct Request {
    HttpRequest http;
    std::vector<size_t> units;
    OutboxOp op;
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

  // A deadline set when the clock read `set_at`, valid for at most
  // `longest` ms: a clock that jumped backwards cannot stretch the wait.
  static bool Waiting(int64_t now, int64_t until, int64_t longest) {
    return now < until && until - now <= longest;
  }

  int64_t RunOnce();
  // Reads the window; returns the units of this round and the earliest
  // time a blocked record becomes due (or INT64_MAX).
  Status ReadWindow(int64_t now, std::vector<Unit>* units, int64_t* next_due);
  Unit FormUnit(const std::vector<OutboxRecord>& queue);
  void BuildRequests(std::vector<Unit>& units, std::vector<Request>* requests);
  Status MarkSending(const std::vector<Unit>& units, const std::vector<Request>& requests);
  void Judge(std::vector<Unit>& units, const Request& req, const HttpResponse& res, int64_t now);
  Status Acknowledge(const std::vector<Unit>& units, int64_t now);

  // Constant after construction.
  Store& store;
  const Config& config;
  Transport* const transport;
  const Clock& clock;
  const StreamIdSink sink;
  std::unique_ptr<StreamClient> client;

  // Used by the round only (one thread, or the simulation).
  std::mt19937_64 rng;
  std::unordered_set<uint64_t> isolated;  // head seqs to send alone
  uint32_t failures = 0;                  // consecutive failed rounds
  int64_t backoff_until_ms = 0;
  int64_t backoff_ms = 0;                 // length of the current backoff
  int64_t rate_limited_until_ms = 0;
  int64_t paused_until_ms = 0;
  bool paused = false;
  // Round outcomes, reset per round.
  bool round_ok = false, round_transient = false, round_auth = false, round_rate = false;
  int64_t round_rate_until = 0;

  // Thread control, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool woken = false;
  std::thread thread;

  // Status, guarded by mu (in_flight and last_loop are atomics).
  SyncStatus status;
  std::atomic<uint64_t> in_flight{0};
  std::atomic<int64_t> last_loop{0};
};

// ---- the round ----------------------------------------------------------------

int64_t SyncEngine::Impl::RunOnce() {
  const int64_t now = clock.NowMs();
  if (transport == nullptr) return now + kLoopWaitMsMax;
  if (paused && Waiting(now, paused_until_ms, RetryMaxMs())) return paused_until_ms;
  if (Waiting(now, rate_limited_until_ms, kRateLimitWaitMsMax)) return rate_limited_until_ms;
  if (Waiting(now, backoff_until_ms, backoff_ms)) return backoff_until_ms;

  std::vector<Unit> units;
  int64_t next_due = INT64_MAX;
  Status s = ReadWindow(now, &units, &next_due);
  if (!s.ok()) {
    OB_LOG(kError, "sync: reading the outbox failed: %s", s.ToString().c_str());
    return now + kLoopWaitMsMax;
  }
  if (units.empty()) return std::min(next_due, now + kLoopWaitMsMax);

  std::vector<Request> requests;
  BuildRequests(units, &requests);
  s = MarkSending(units, requests);
  if (!s.ok()) {
    // Nothing was sent; the store refuses writes or is full. Back off.
    OB_LOG(kError, "sync: marking records failed: %s", s.ToString().c_str());
    backoff_ms = BackoffMs(failures++);
    backoff_until_ms = now + backoff_ms;
    std::lock_guard<std::mutex> lock(mu);
    status.last_error = "storage: " + s.ToString();
    status.next_attempt_ms = backoff_until_ms;
    return backoff_until_ms;
  }
  uint64_t compacted = 0;
  for (const Unit& u : units) {
    if (u.drop) compacted += u.records.size();
  }

  std::vector<HttpResponse> responses;
  if (!requests.empty()) {
    std::vector<HttpRequest> http;
    http.reserve(requests.size());
    uint64_t records = 0;
    for (const Request& r : requests) {
      http.push_back(r.http);
      for (size_t i : r.units) records += units[i].records.size();
    }
    in_flight = records;
    transport->Perform(http, &responses);
    in_flight = 0;
    responses.resize(requests.size());
  }

  const int64_t after = clock.NowMs();
  round_ok = round_transient = round_auth = round_rate = false;
  round_rate_until = 0;
  std::string round_error;
  for (size_t i = 0; i < requests.size(); ++i) {
    Judge(units, requests[i], responses[i], after);
    // A 404 on a remove is success, not an error to show.
    if (units[requests[i].units[0]].outcome != Outcome::kAcked) {
      round_error = client->DescribeFailure(responses[i]);
    }
  }

  s = Acknowledge(units, after);
  if (!s.ok()) {
    // Stream has the records but we could not record it: they are resent
    // later (every write is keyed, so that is harmless).
    OB_LOG(kError, "sync: acknowledging failed: %s", s.ToString().c_str());
    round_transient = true;
    round_error = "storage: " + s.ToString();
  }

  uint64_t ok = 0, retry = 0, dead = 0;
  for (const Unit& u : units) {
    if (u.drop) continue;
    switch (u.outcome) {
      case Outcome::kAcked: ok += u.records.size(); break;
      case Outcome::kDead: dead += 1; break;
      case Outcome::kRetry:
      case Outcome::kRetryLater:
      case Outcome::kIsolate: retry += u.records.size(); break;
      case Outcome::kNotSent: break;
    }
  }
  if (!s.ok()) {
    retry += ok + dead;
    ok = dead = 0;
  }

  // Global state for the next round.
  int64_t due = after;  // more work may wait: go round again at once
  if (round_auth) {
    if (!paused) OB_LOG(kError, "sync: %s; sync is paused", kCredentialsRejected);
    paused = true;
    paused_until_ms = after + RetryMaxMs();
    due = paused_until_ms;
  } else if (round_ok && paused) {
    OB_LOG(kInfo, "sync: Stream accepts our credentials again; sync resumes");
    paused = false;
  }
  if (round_rate) {
    int64_t wait = round_rate_until > after ? round_rate_until - after : kRateLimitWaitMsDefault;
    wait = std::min(wait, kRateLimitWaitMsMax);
    rate_limited_until_ms = after + wait;
    due = std::max(due, rate_limited_until_ms);
    OB_LOG(kWarning, "sync: rate limited by Stream; waiting %lld ms", static_cast<long long>(wait));
  }
  if (round_transient) {
    backoff_ms = BackoffMs(failures++);
    backoff_until_ms = after + backoff_ms;
    due = std::max(due, backoff_until_ms);
    if (failures == 1) {
      OB_LOG(kWarning, "sync: Stream unreachable or failing: %s", round_error.c_str());
    }
  } else if (round_ok) {
    if (failures > 0) OB_LOG(kInfo, "sync: Stream reachable again");
    failures = 0;
  }

  std::lock_guard<std::mutex> lock(mu);
  status.sent_ok += ok;
  status.sent_retry += retry;
  status.sent_dead += dead;
  status.compacted += compacted;
  status.requests += requests.size();
  if (round_ok) status.last_success_ms = after;
  if (!round_error.empty()) status.last_error = round_error;
  status.paused_reason = paused ? kCredentialsRejected : "";
  status.next_attempt_ms = due > after ? due : 0;
  return due;
}

Status SyncEngine::Impl::ReadWindow(int64_t now, std::vector<Unit>* units, int64_t* next_due) {
  Result<std::unique_ptr<ReadTxn>> txn = store.BeginRead();
  if (!txn.ok()) return txn.status();

  // Entities with a dead letter wait (outbox.h EntityIsDead; read once here
  // rather than scanning kDead per entity).
  std::unordered_set<std::string> dead;
  if ((*txn)->Count(Db::kDead) > 0) {
    Cursor c = (*txn)->OpenCursor(Db::kDead);
    for (bool on = c.First(); on; on = c.Next()) {
      Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
      if (rec.ok()) dead.insert(rec->entity);
    }
  }

  std::unordered_set<std::string> blocked;
  std::unordered_map<std::string, size_t> index;  // entity -> queues position
  std::vector<std::vector<OutboxRecord>> queues;
  size_t taken = 0, scanned = 0;
  Cursor c = (*txn)->OpenCursor(Db::kOutbox);
  for (bool on = c.First(); on && taken < kWindowRecordsMax && scanned < kScanRecordsMax;
       on = c.Next(), ++scanned) {
    Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
    if (!rec.ok()) {
      OB_LOG(kError, "sync: skipping outbox record: %s", rec.status().ToString().c_str());
      continue;
    }
    if (blocked.count(rec->entity) != 0) continue;
    auto it = index.find(rec->entity);
    if (it == index.end()) {
      // The entity's head record: may it go now?
      if (dead.count(rec->entity) != 0) {
        blocked.insert(rec->entity);
        continue;
      }
      if (Waiting(now, rec->next_attempt_ms, RetryMaxMs())) {
        *next_due = std::min(*next_due, rec->next_attempt_ms);
        blocked.insert(rec->entity);
        continue;
      }
      index.emplace(rec->entity, queues.size());
      queues.emplace_back();
      queues.back().push_back(std::move(*rec));
    } else {
      queues[it->second].push_back(std::move(*rec));
    }
    ++taken;
  }
  units->reserve(queues.size());
  for (const auto& q : queues) units->push_back(FormUnit(q));
  return Status::Ok();
}

// The head of an entity's queue, with what compaction folds into it.
SyncEngine::Impl::Unit SyncEngine::Impl::FormUnit(const std::vector<OutboxRecord>& q) {
  Unit u;
  const OutboxRecord& h = q[0];
  auto take = [&](size_t n) { u.records.assign(q.begin(), q.begin() + n); };
  take(1);
  u.send = h;
  if (isolated.count(h.seq) != 0) return u;
  const size_t n = q.size();
  auto run_of = [&](OutboxOp op) {
    size_t j = 1;
    while (j < n && q[j].op == op) ++j;
    return j;
  };
  auto same_feed = [&](const OutboxRecord& a, const OutboxRecord& b) {
    return a.feed_group == b.feed_group && a.feed_id == b.feed_id;
  };
  switch (h.op) {
    case OutboxOp::kActivityAdd: {
      const size_t j = run_of(OutboxOp::kActivityUpdate);
      if (j < n && q[j].op == OutboxOp::kActivityRemove && same_feed(h, q[j])) {
        take(j + 1);
        u.drop = h.attempts == 0;
        u.send = q[j];
        return u;
      }
      std::string body = h.body;
      size_t merged = 1;
      for (; merged < j; ++merged) {
        std::string next;
        if (!MergeChangeIntoActivity(body, q[merged].body, &next)) break;
        body = std::move(next);
      }
      take(merged);
      u.send.body = std::move(body);
      return u;
    }
    case OutboxOp::kActivityUpdate: {
      const size_t j = run_of(OutboxOp::kActivityUpdate);
      if (j < n && q[j].op == OutboxOp::kActivityRemove) {
        // The remove makes the updates moot.
        take(j + 1);
        u.send = q[j];
        return u;
      }
      std::string body = h.body;
      size_t merged = 1;
      for (; merged < j; ++merged) {
        std::string next;
        if (!MergeChanges(body, q[merged].body, &next)) break;
        body = std::move(next);
      }
      take(merged);
      u.send.body = std::move(body);
      return u;
    }
    case OutboxOp::kUserAdd: {
      // get_or_create leaves an existing user unchanged, so updates are never
      // folded into an add that may have landed: they follow it.
      const size_t j = run_of(OutboxOp::kUserUpdate);
      if (j < n && q[j].op == OutboxOp::kUserDelete) {
        take(j + 1);
        u.drop = h.attempts == 0;
        u.send = q[j];
      }
      return u;
    }
    case OutboxOp::kUserUpdate: {
      // Each update carries the whole `data`: the last one wins.
      const size_t j = run_of(OutboxOp::kUserUpdate);
      if (j < n && q[j].op == OutboxOp::kUserDelete) {
        take(j + 1);
        u.send = q[j];
      } else {
        take(j);
        u.send.body = q[j - 1].body;
      }
      return u;
    }
    case OutboxOp::kFollow:
      if (n > 1 && q[1].op == OutboxOp::kUnfollow) {
        take(2);
        u.drop = h.attempts == 0;
        u.send = q[1];
      }
      return u;
    default:
      return u;
  }
}

void SyncEngine::Impl::BuildRequests(std::vector<Unit>& units, std::vector<Request>* requests) {
  // Adds grouped by feed, updates together, the rest alone; isolated units
  // (from a rejected batch) alone.
  std::map<std::pair<std::string, std::string>, std::vector<size_t>> adds;
  std::vector<size_t> updates;
  std::vector<Request> singles;
  std::vector<std::pair<std::string, std::string>> feed_order;
  for (size_t i = 0; i < units.size(); ++i) {
    const Unit& u = units[i];
    if (u.drop) continue;
    const bool alone = isolated.count(u.records[0].seq) != 0;
    if (!alone && u.send.op == OutboxOp::kActivityAdd) {
      auto key = std::make_pair(u.send.feed_group, u.send.feed_id);
      auto [it, fresh] = adds.try_emplace(key);
      if (fresh) feed_order.push_back(key);
      it->second.push_back(i);
    } else if (!alone && u.send.op == OutboxOp::kActivityUpdate) {
      updates.push_back(i);
    } else {
      Request r;
      r.op = u.send.op;
      r.units = {i};
      singles.push_back(std::move(r));
    }
  }
  // Order: batches first (they carry the most records), then singles, up to
  // kRequestsPerRoundMax; units left out wait for the next round.
  auto full = [&] { return requests->size() >= kRequestsPerRoundMax; };
  for (const auto& key : feed_order) {
    const std::vector<size_t>& idx = adds[key];
    for (size_t b = 0; b < idx.size() && !full(); b += kBatchActivitiesMax) {
      Request r;
      r.op = OutboxOp::kActivityAdd;
      std::vector<const OutboxRecord*> recs;
      for (size_t k = b; k < std::min(idx.size(), b + kBatchActivitiesMax); ++k) {
        r.units.push_back(idx[k]);
        recs.push_back(&units[idx[k]].send);
      }
      r.http = client->BuildAddBatch(key.first, key.second, recs);
      requests->push_back(std::move(r));
    }
  }
  for (size_t b = 0; b < updates.size() && !full(); b += kBatchChangesMax) {
    Request r;
    r.op = OutboxOp::kActivityUpdate;
    std::vector<const OutboxRecord*> recs;
    for (size_t k = b; k < std::min(updates.size(), b + kBatchChangesMax); ++k) {
      r.units.push_back(updates[k]);
      recs.push_back(&units[updates[k]].send);
    }
    r.http = client->BuildUpdateBatch(recs);
    requests->push_back(std::move(r));
  }
  for (Request& r : singles) {
    if (full()) break;
    const OutboxRecord& rec = units[r.units[0]].send;
    if (rec.op == OutboxOp::kActivityAdd) {
      r.http = client->BuildAddBatch(rec.feed_group, rec.feed_id, {&rec});
    } else {
      r.http = client->BuildSingle(rec);
    }
    requests->push_back(std::move(r));
  }
}

// One durable write before anything leaves: attempts + 1 on every record
// about to be sent, and compacted units deleted.
Status SyncEngine::Impl::MarkSending(const std::vector<Unit>& units,
                                     const std::vector<Request>& requests) {
  std::vector<uint64_t> sending, dropping;
  for (const Request& r : requests) {
    for (size_t i : r.units) {
      for (const OutboxRecord& rec : units[i].records) sending.push_back(rec.seq);
    }
  }
  for (const Unit& u : units) {
    if (!u.drop) continue;
    for (const OutboxRecord& rec : u.records) dropping.push_back(rec.seq);
  }
  if (sending.empty() && dropping.empty()) return Status::Ok();
  return store.Write([&](WriteTxn& txn) -> Status {
    for (uint64_t seq : sending) {
      const std::string key = U64Key(seq);
      std::string_view value;
      Status s = txn.Get(Db::kOutbox, key, &value);
      if (s.IsNotFound()) continue;  // dropped by an operator meanwhile
      if (!s.ok()) return s;
      Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
      if (!rec.ok()) return rec.status();
      rec->attempts += 1;
      s = txn.Put(Db::kOutbox, key, EncodeOutboxRecord(*rec));
      if (!s.ok()) return s;
    }
    for (uint64_t seq : dropping) {
      Status s = txn.Del(Db::kOutbox, U64Key(seq));
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    return Status::Ok();
  });
}

// Turns one answer into the outcome of each unit it carried, and the
// round's global signals (auth, rate limit, transient failure).
void SyncEngine::Impl::Judge(std::vector<Unit>& units, const Request& req,
                             const HttpResponse& res, int64_t now) {
  const int st = res.status;
  auto all = [&](Outcome o, const std::string& error = {}) {
    for (size_t i : req.units) {
      units[i].outcome = o;
      units[i].error = error;
    }
  };
  if (st >= 200 && st < 300) {
    round_ok = true;
    all(Outcome::kAcked);
    if (req.op == OutboxOp::kActivityAdd) {
      std::vector<std::pair<std::string, std::string>> ids;
      Status s = client->ParseAddResponse(res, &ids);
      if (!s.ok()) OB_LOG(kWarning, "sync: %s", s.ToString().c_str());
      std::unordered_map<std::string, std::string> by_fid(ids.begin(), ids.end());
      for (size_t i : req.units) {
        auto it = by_fid.find(units[i].send.foreign_id);
        if (it != by_fid.end()) units[i].stream_id = it->second;
      }
    }
    return;
  }
  if (st == 404 && IsRemoval(req.op)) {
    round_ok = true;
    all(Outcome::kAcked);  // already gone: the goal is reached
    return;
  }
  if (st == 409 && req.op == OutboxOp::kUserAdd) {
    round_ok = true;
    all(Outcome::kAcked);  // the user exists (get_or_create avoids this)
    return;
  }
  const std::string error = client->DescribeFailure(res);
  if (st == 404 && (req.op == OutboxOp::kActivityUpdate || req.op == OutboxOp::kUserUpdate)) {
    // What it updates has not landed yet. In a batch we cannot tell which
    // change is unknown (Stream applies all or none): split it.
    all(req.units.size() > 1 ? Outcome::kIsolate : Outcome::kRetryLater, error);
    return;
  }
  if (st == 401 || st == 403) {
    round_auth = true;
    all(Outcome::kRetry, error);
    return;
  }
  if (st == 429) {
    round_rate = true;
    const RateLimit rl = StreamClient::ParseRateLimit(res);
    int64_t until = 0;
    if (rl.retry_after_s >= 0) until = now + rl.retry_after_s * 1000;
    if (rl.reset_unix_s >= 0) until = std::max(until, rl.reset_unix_s * 1000);
    round_rate_until = std::max(round_rate_until, until);
    all(Outcome::kRetry, error);
    return;
  }
  const bool rejected = st >= 400 && st < 500 && st != 404 && st != 408;
  if (!rejected) {
    // No answer, timeout, 5xx, an unexpected 404 (a wrong base URL must not
    // dead-letter everything), anything else: transient.
    round_transient = true;
    all(Outcome::kRetry, error);
    return;
  }
  // 400/409/413/422...: the record at fault goes to the dead letters; a
  // batch or a merged unit is split first to find it.
  for (size_t i : req.units) {
    Unit& u = units[i];
    const bool alone = req.units.size() == 1 && isolated.count(u.records[0].seq) != 0;
    const bool single = req.units.size() == 1 && u.records.size() == 1;
    u.outcome = (alone || single) ? Outcome::kDead : Outcome::kIsolate;
    u.error = error;
  }
}

// One write for the whole round: acknowledged records leave (with the
// stream_id of adds), rejected ones become dead letters, 404-on-update ones
// back off on their own.
Status SyncEngine::Impl::Acknowledge(const std::vector<Unit>& units, int64_t now) {
  struct Later {
    uint64_t seq;
    int64_t next_attempt_ms;
    std::string error;
  };
  std::vector<Later> later;
  bool any = false;
  for (const Unit& u : units) {
    if (u.outcome == Outcome::kRetryLater) {
      const uint32_t attempts = u.records[0].attempts + 1;
      later.push_back({u.records[0].seq, now + BackoffMs(attempts), u.error});
    }
    if (u.outcome == Outcome::kAcked || u.outcome == Outcome::kDead ||
        u.outcome == Outcome::kRetryLater) {
      any = true;
    }
  }
  for (const Unit& u : units) {
    const uint64_t head = u.records[0].seq;
    if (u.outcome == Outcome::kIsolate) {
      if (isolated.size() >= kIsolatedMax) isolated.clear();
      isolated.insert(head);
    } else if (u.outcome == Outcome::kAcked || u.outcome == Outcome::kDead) {
      isolated.erase(head);
    }
  }
  if (!any) return Status::Ok();
  std::vector<std::string> sink_errors;
  Status s = store.Write([&](WriteTxn& txn) -> Status {
    sink_errors.clear();
    for (const Unit& u : units) {
      if (u.outcome == Outcome::kAcked) {
        for (const OutboxRecord& rec : u.records) {
          Status d = txn.Del(Db::kOutbox, U64Key(rec.seq));
          if (!d.ok() && !d.IsNotFound()) return d;
        }
        if (u.send.op == OutboxOp::kActivityAdd && !u.stream_id.empty() && sink) {
          Status k = sink(txn, u.send.foreign_id, u.stream_id);
          if (!k.ok()) sink_errors.push_back(u.send.foreign_id + ": " + k.ToString());
        }
      } else if (u.outcome == Outcome::kDead) {
        // The record that was sent is the one at fault; for a compaction
        // that sends only a remove that is the remove, and what it would
        // have removed waits behind it.
        const std::string key = U64Key(u.send.seq);
        std::string_view value;
        Status g = txn.Get(Db::kOutbox, key, &value);
        if (g.IsNotFound()) continue;
        if (!g.ok()) return g;
        Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
        if (!rec.ok()) return rec.status();
        rec->last_error = u.error;
        Status m = MoveToDead(txn, *rec);
        if (!m.ok()) return m;
      }
    }
    for (const Later& l : later) {
      const std::string key = U64Key(l.seq);
      std::string_view value;
      Status g = txn.Get(Db::kOutbox, key, &value);
      if (g.IsNotFound()) continue;
      if (!g.ok()) return g;
      Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
      if (!rec.ok()) return rec.status();
      rec->next_attempt_ms = l.next_attempt_ms;
      rec->last_error = l.error;
      Status p = txn.Put(Db::kOutbox, key, EncodeOutboxRecord(*rec));
      if (!p.ok()) return p;
    }
    return Status::Ok();
  });
  for (const std::string& e : sink_errors) {
    OB_LOG(kWarning, "sync: storing stream_id failed for %s", e.c_str());
  }
  if (s.ok()) {
    for (const Unit& u : units) {
      if (u.outcome == Outcome::kDead) {
        OB_LOG(kWarning, "sync: record %llu (%s %s) moved to dead letters: %s",
               static_cast<unsigned long long>(u.send.seq), OutboxOpName(u.send.op),
               u.send.foreign_id.c_str(), u.error.c_str());
      }
    }
  }
  return s;
}

// ---- SyncEngine -----------------------------------------------------------------

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

void SyncEngine::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping) return;
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
        due = RunOnce();
      } catch (const std::exception& e) {
        // Library exceptions stop here (STYLE: the top of the sync loop).
        OB_LOG(kError, "sync: round failed: %s", e.what());
        due = m.clock.NowMs() + kLoopWaitMsMax;
      }
      const int64_t wait = std::clamp<int64_t>(due - m.clock.NowMs(), 0, kLoopWaitMsMax);
      std::unique_lock<std::mutex> l(m.mu);
      if (wait > 0) {
        m.cv.wait_for(l, std::chrono::milliseconds(wait), [&] { return m.stopping || m.woken; });
      }
    }
  });
}

void SyncEngine::Stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    t = std::move(impl_->thread);
  }
  impl_->cv.notify_all();
  if (impl_->transport != nullptr) impl_->transport->Cancel();
  if (t.joinable()) t.join();
}

void SyncEngine::Wake() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->woken = true;
  }
  impl_->cv.notify_one();
}

SyncStatus SyncEngine::GetStatus() const {
  SyncStatus out;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    out = impl_->status;
  }
  out.in_flight = impl_->in_flight.load();
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

int64_t SyncEngine::RunOnce() { return impl_->RunOnce(); }

}  // namespace offbrand
