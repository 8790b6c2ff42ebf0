// The admin API over the outbox (SPEC section 3, "GET /sync ..."): the sync
// state, the dead letters, and retrying or dropping one of them. Admin only.
#include <string>

#include "http_server.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "sync_engine.h"

namespace offbrand {

namespace {

// GET /api/v1/sync: {configured, paused_reason, credentials_rejected,
// stream_down, pending, oldest_pending_age_ms, in_flight, requests_in_flight,
// dead, last_success_ms, last_success, last_error, next_attempt_ms,
// rate_limits:[{operation, limit, remaining, reset, held_until_ms}] (what
// Stream's X-Ratelimit-* headers last said per endpoint; -1 = not reported),
// counters:{sent_ok, sent_retry, sent_dead, compacted, quarantined, requests}}.
Status GetSync(RequestContext& ctx) {
  if (Status s = ctx.RequireAdmin(); !s.ok()) return s;
  SyncStatus st;
  if (ctx.svc.sync != nullptr) {
    st = ctx.svc.sync->GetStatus();
  } else {
    // No engine (e.g. a tool-built server): the outbox alone.
    auto txn = ctx.svc.store->BeginRead();
    if (!txn.ok()) return txn.status();
    st.pending = (*txn)->Count(Db::kOutbox);
    st.dead = (*txn)->Count(Db::kDead);
    st.configured = ctx.svc.config != nullptr && ctx.svc.config->stream_configured();
    st.paused_reason = "sync is not running";
  }
  JsonOut out;
  out.BeginObject();
  out.Key("configured").Bool(st.configured);
  out.Field("paused_reason", st.paused_reason, /*null_if_empty=*/true);
  out.Key("credentials_rejected").Bool(st.credentials_rejected);
  out.Key("stream_down").Bool(st.stream_down);
  out.Key("pending").Uint(st.pending);
  out.Key("oldest_pending_age_ms").Int(st.oldest_pending_age_ms);
  out.Key("in_flight").Uint(st.in_flight);
  out.Key("requests_in_flight").Uint(st.requests_in_flight);
  out.Key("dead").Uint(st.dead);
  out.Key("last_success_ms").Int(st.last_success_ms);
  out.Field("last_success", st.last_success_ms > 0 ? FormatIsoTime(st.last_success_ms * 1000) : "",
            true);
  out.Field("last_error", st.last_error, true);
  out.Key("next_attempt_ms").Int(st.next_attempt_ms);
  out.Key("rate_limits").BeginArray();
  for (const RateLimitState& r : st.rate_limits) {
    out.BeginObject();
    out.Field("operation", r.operation);
    out.Key("limit").Int(r.limit);
    out.Key("remaining").Int(r.remaining);
    out.Key("reset").Int(r.reset_unix_s);
    out.Key("held_until_ms").Int(r.held_until_ms);
    out.EndObject();
  }
  out.EndArray();
  out.Key("counters").BeginObject();
  out.Key("sent_ok").Uint(st.sent_ok);
  out.Key("sent_retry").Uint(st.sent_retry);
  out.Key("sent_dead").Uint(st.sent_dead);
  out.Key("compacted").Uint(st.compacted);
  out.Key("quarantined").Uint(st.quarantined);
  out.Key("requests").Uint(st.requests);
  out.EndObject();
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

// GET /api/v1/sync/dead?limit=&cursor=: dead letters in sequence order,
// {"items":[OutboxRecordJson...],"next":cursor|null}; a quarantined record
// that does not decode is listed as CorruptRecordJson.
Status ListDead(RequestContext& ctx) {
  if (Status s = ctx.RequireAdmin(); !s.ok()) return s;
  int limit = 0;
  std::string cursor;
  if (Status s = ctx.PageParams(&limit, &cursor); !s.ok()) return s;
  uint64_t after = 0;
  if (!cursor.empty()) {
    if (Status s = DecodeCursor(cursor, &after); !s.ok()) return s;
  }
  auto txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  JsonOut out;
  out.BeginObject();
  out.Key("items").BeginArray();
  Cursor c = (*txn)->OpenCursor(Db::kDead);
  int n = 0;
  uint64_t last = 0;
  bool more = false;
  for (bool on = c.Seek(U64Key(after + 1)); on; on = c.Next()) {
    if (n == limit) {
      more = true;
      break;
    }
    Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
    out.Raw(rec.ok() ? OutboxRecordJson(*rec) : CorruptRecordJson(c.key(), c.value(), rec.status()));
    last = GetU64BE(c.key());
    ++n;
  }
  out.EndArray();
  WriteNextCursor(out, more, last);
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

// POST /api/v1/sync/dead/<seq>/retry: back into the outbox under its
// sequence number (so its entity's order holds), then a sync round. 204.
Status RetryDeadLetter(RequestContext& ctx) {
  if (Status s = ctx.RequireAdmin(); !s.ok()) return s;
  Result<uint64_t> seq = ctx.IdParam(1);
  if (!seq.ok()) return seq.status();
  const uint64_t id = *seq;
  Status s = ctx.svc.store->Write([id](WriteTxn& txn) { return RetryDead(txn, id); });
  if (!s.ok()) return s;
  if (ctx.svc.sync != nullptr) ctx.svc.sync->Wake();
  ctx.SendNoContent();
  return Status::Ok();
}

// DELETE /api/v1/sync/dead/<seq>: forget a dead letter (Stream never gets
// it; later records of its entity flow again). 204.
Status DropDeadLetter(RequestContext& ctx) {
  if (Status s = ctx.RequireAdmin(); !s.ok()) return s;
  Result<uint64_t> seq = ctx.IdParam(1);
  if (!seq.ok()) return seq.status();
  const uint64_t id = *seq;
  Status s = ctx.svc.store->Write([id](WriteTxn& txn) { return DropDead(txn, id); });
  if (!s.ok()) return s;
  if (ctx.svc.sync != nullptr) ctx.svc.sync->Wake();
  ctx.SendNoContent();
  return Status::Ok();
}

}  // namespace

void RegisterSyncRoutes(HttpServer& server) {
  const std::string dead = "/api/v1/sync/dead";
  server.Route("GET", "/api/v1/sync", "sync.status", GetSync);
  server.Route("GET", dead, "sync.dead.list", ListDead);
  server.Route("POST", dead + "/([^/]+)/retry", "sync.dead.retry", RetryDeadLetter);
  server.Route("DELETE", dead + "/([^/]+)", "sync.dead.drop", DropDeadLetter);
}

}  // namespace offbrand
