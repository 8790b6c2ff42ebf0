// Operations endpoints, served without the /api/v1 prefix: /healthz (the
// process answers), /readyz (the store is open and has not failed; sync state
// for people) and /metrics (Prometheus text exposition).
#include <cinttypes>
#include <cstdio>
#include <string>

#include "http_server.h"
#include "metrics.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "sync_engine.h"

namespace offbrand {

namespace {

void WriteSyncJson(JsonOut& out, const Services& svc) {
  out.Key("sync").BeginObject();
  if (svc.sync != nullptr) {
    SyncStatus st = svc.sync->GetStatus();
    out.Key("configured").Bool(st.configured);
    out.Field("paused_reason", st.paused_reason, /*null_if_empty=*/true);
  } else {
    out.Key("configured").Bool(svc.config != nullptr && svc.config->stream_configured());
    out.Key("paused_reason").Null();
  }
  out.EndObject();
}

Status Healthz(RequestContext& ctx) {
  ctx.SendJson(200, "{\"status\":\"ok\"}");
  return Status::Ok();
}

// Ready means: the store is open and no commit has failed. Writability is
// what failed() tracks (a failed fsync poisons the store); a probe write per
// request would cost an fsync for every load balancer poll.
Status Readyz(RequestContext& ctx) {
  const Services& svc = ctx.svc;
  JsonOut out;
  out.BeginObject();
  bool ready = svc.store != nullptr && !svc.store->failed();
  if (ready) {
    out.Field("status", "ok");
    // Still ready (people can work offline), but an operator must act.
    if (svc.sync != nullptr) {
      SyncStatus st = svc.sync->GetStatus();
      if (st.configured && !st.paused_reason.empty()) {
        out.Field("detail", "sync paused: " + st.paused_reason);
      }
    }
  } else {
    std::string detail =
        svc.store == nullptr ? "storage is not open" : "storage failed: " + svc.store->failure();
    out.Field("status", "failed");
    out.Field("detail", detail);
  }
  WriteSyncJson(out, svc);
  out.EndObject();
  ctx.SendJson(ready ? 200 : 503, out.str());
  return Status::Ok();
}

// Appends one gauge or counter sample with its HELP and TYPE lines.
void Series(std::string* out, const char* name, const char* type, const char* help,
            uint64_t value) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help,
                name, type, name, value);
  out->append(buf);
}

// Outbox depth, age of the oldest record and dead letters, read from LMDB
// so they are right with or without the sync thread.
void OutboxSeries(const Services& svc, std::string* out) {
  uint64_t depth = 0, dead = 0, oldest_age_s = 0;
  if (svc.store != nullptr) {
    auto txn = svc.store->BeginRead();
    if (txn.ok()) {
      depth = (*txn)->Count(Db::kOutbox);
      dead = (*txn)->Count(Db::kDead);
      Cursor c = (*txn)->OpenCursor(Db::kOutbox);
      if (c.First()) {
        Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
        int64_t now_ms = svc.clock != nullptr ? svc.clock->NowMs() : 0;
        if (rec.ok() && now_ms > rec->created_ms) {
          oldest_age_s = static_cast<uint64_t>((now_ms - rec->created_ms) / 1000);
        }
      }
    }
  }
  Series(out, "offbrand_outbox_depth", "gauge", "Records waiting in the outbox.", depth);
  Series(out, "offbrand_outbox_oldest_age_seconds", "gauge",
         "Age of the oldest outbox record (0 when empty).", oldest_age_s);
  Series(out, "offbrand_dead_letters", "gauge", "Records Stream refused, waiting for an operator.",
         dead);
}

void SyncSeries(const Services& svc, std::string* out) {
  SyncStatus st;
  if (svc.sync != nullptr) st = svc.sync->GetStatus();
  out->append(
      "# HELP offbrand_sync_sends_total Outbox records by send outcome since start.\n"
      "# TYPE offbrand_sync_sends_total counter\n");
  const struct {
    const char* outcome;
    uint64_t value;
  } rows[] = {{"ok", st.sent_ok}, {"retry", st.sent_retry}, {"dead", st.sent_dead},
              {"compacted", st.compacted}, {"quarantined", st.quarantined}};
  for (const auto& row : rows) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "offbrand_sync_sends_total{outcome=\"%s\"} %" PRIu64 "\n",
                  row.outcome, row.value);
    out->append(buf);
  }
  Series(out, "offbrand_sync_requests_total", "counter", "HTTP requests made to Stream.",
         st.requests);
  // Not configured is not paused: a separate gauge says so.
  Series(out, "offbrand_sync_configured", "gauge", "1 when Stream keys are configured.",
         svc.sync != nullptr && st.configured ? 1 : 0);
  Series(out, "offbrand_sync_paused", "gauge",
         "1 when sync is paused because Stream rejected our credentials (see /readyz).",
         st.credentials_rejected ? 1 : 0);
  Series(out, "offbrand_sync_stream_down", "gauge",
         "1 while sync backs off because Stream looks down.", st.stream_down ? 1 : 0);
}

void StoreSeries(const Services& svc, std::string* out) {
  uint64_t used = 0, size = 0, commits = 0, writes = 0;
  if (svc.store != nullptr) {
    svc.store->MapUse(&used, &size);
    commits = svc.store->commits();
    writes = svc.store->writes();
  }
  Series(out, "offbrand_lmdb_map_used_bytes", "gauge", "LMDB map bytes in use.", used);
  Series(out, "offbrand_lmdb_map_size_bytes", "gauge", "LMDB map size.", size);
  Series(out, "offbrand_store_commits_total", "counter", "Durable commits (fsyncs) since start.",
         commits);
  Series(out, "offbrand_store_writes_total", "counter", "Writes committed since start.", writes);
}

Status MetricsText(RequestContext& ctx) {
  std::string extra;
  OutboxSeries(ctx.svc, &extra);
  SyncSeries(ctx.svc, &extra);
  StoreSeries(ctx.svc, &extra);
  std::string body = ctx.svc.metrics != nullptr ? ctx.svc.metrics->Render(extra) : extra;
  ctx.res.status = 200;
  ctx.res.set_content(body, "text/plain; version=0.0.4; charset=utf-8");
  return Status::Ok();
}

}  // namespace

void RegisterOpsRoutes(HttpServer& server) {
  server.Route("GET", "/healthz", "ops.healthz", Healthz);
  server.Route("GET", "/readyz", "ops.readyz", Readyz);
  server.Route("GET", "/metrics", "ops.metrics", MetricsText);
}

}  // namespace offbrand
