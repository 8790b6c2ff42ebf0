// App: assembles and runs the server.
#include "app.h"

#include <httplib.h>

#include <chrono>

#include "accounts.h"
#include "collections.h"
#include "crypto.h"
#include "curl_transport.h"
#include "mailer.h"
#include "metrics.h"
#include "offbrand/log.h"
#include "offbrand/outbox.h"
#include "ops.h"
#include "sync_engine.h"
#include "throttle.h"

namespace offbrand {

namespace {
constexpr int64_t kLastSeenFlushIntervalMs = 60'000;
constexpr int64_t kStatusIntervalMs = 10'000;
constexpr int64_t kPurgeIntervalMs = 3'600'000;
constexpr size_t kPurgeRowsMax = 10'000;  // per pass, to keep one write short
// The watchdog's liveness checks. A group commit that has run this long is
// stuck (a batch is milliseconds, a map growth well under a second).
constexpr int64_t kWriterBatchMsMax = 20'000;
constexpr int kProbeTimeoutMs = 2'000;

// True when the server answers GET /healthz on its own socket: proves the
// accept loop and a worker thread are alive, not just a flag.
bool ProbeHealthz(const std::string& host, int port) {
  std::string target = host;
  if (target.empty() || target == "0.0.0.0") target = "127.0.0.1";
  if (target == "::" || target == "[::]") target = "::1";
  httplib::Client cli(target, port);
  cli.set_connection_timeout(0, kProbeTimeoutMs * 1000);
  cli.set_read_timeout(0, kProbeTimeoutMs * 1000);
  cli.set_write_timeout(0, kProbeTimeoutMs * 1000);
  cli.set_keep_alive(false);
  auto res = cli.Get("/healthz", {{"User-Agent", kWatchdogUserAgent}});
  return res && res->status == 200;
}

// Deletes expired sessions and used-token marks (both carry an expiry).
Status PurgeExpired(Store& store, int64_t now_ms) {
  return store.Write([now_ms](WriteTxn& txn) {
    std::vector<std::string> doomed;
    {
      Cursor c = txn.OpenCursor(Db::kSessions);
      for (bool ok = c.First(); ok && doomed.size() < kPurgeRowsMax; ok = c.Next()) {
        Session s;
        if (!DecodeSession(c.value(), &s) || s.expires_ms <= now_ms) doomed.emplace_back(c.key());
      }
    }
    for (const auto& k : doomed) {
      Status s = txn.Del(Db::kSessions, k);
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    doomed.clear();
    {
      Cursor c = txn.OpenCursor(Db::kUsedTokens);
      for (bool ok = c.First(); ok && doomed.size() < kPurgeRowsMax; ok = c.Next()) {
        if (c.value().size() != 8 || static_cast<int64_t>(GetU64BE(c.value())) <= now_ms) {
          doomed.emplace_back(c.key());
        }
      }
    }
    for (const auto& k : doomed) {
      Status s = txn.Del(Db::kUsedTokens, k);
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    return Status::Ok();
  });
}
}  // namespace

Result<std::unique_ptr<App>> App::Open(Config config) {
  if (!SetLogLevel(config.log_level.c_str())) {
    return Status::BadRequest("bad_config", "OFFBRAND_LOG_LEVEL must be debug, info, warning or error");
  }
  if (!CryptoInit()) return Status::Internal("libsodium failed to initialise");
  Status s = EnsureSecretKey(&config);
  if (!s.ok()) return s;

  std::unique_ptr<App> app(new App());
  app->config_ = std::move(config);
  const Config& cfg = app->config_;

  StoreOptions options;
  options.dir = cfg.data_dir;
  options.map_size_bytes = cfg.map_size_bytes;
  // Reader slots: every HTTP worker, the sync thread, housekeeping and the
  // CLI processes that may inspect the store while we run.
  options.readers_max = static_cast<unsigned>(cfg.http_threads) + 32;
  options.commit_fault_for_test = cfg.commit_fault_for_test;
  auto store = Store::Open(options);
  if (!store.ok()) return store.status();
  app->store_ = std::move(*store);
  s = CheckAndMigrateSchema(*app->store_);
  if (!s.ok()) return s;

  app->metrics_ = std::make_unique<Metrics>();
  app->mailer_ = std::make_unique<Mailer>(cfg);
  app->hasher_ = std::make_unique<PasswordHasher>(cfg.password_hashes_max);
  app->throttle_ = std::make_unique<Throttle>();
  app->last_seen_ = std::make_unique<LastSeen>();
  if (cfg.stream_configured()) {
    CurlTransportOptions topts;
    topts.timeout_ms = cfg.stream_timeout_ms;
    topts.connect_timeout_ms = std::min<int64_t>(cfg.stream_timeout_ms, 5'000);
    topts.max_in_flight = kRequestsInFlightMax;  // the engine's pipeline depth
    app->transport_ = std::make_unique<CurlTransport>(topts);
  }
  app->sync_ = std::make_unique<SyncEngine>(*app->store_, cfg, app->transport_.get(),
                                            SystemClock::Instance(), SetStreamIdInTxn);

  Services& svc = app->services_;
  svc.config = &app->config_;
  svc.store = app->store_.get();
  svc.metrics = app->metrics_.get();
  svc.mailer = app->mailer_.get();
  svc.hasher = app->hasher_.get();
  svc.throttle = app->throttle_.get();
  svc.last_seen = app->last_seen_.get();
  svc.sync = app->sync_.get();
  svc.clock = &SystemClock::Instance();

  app->server_ = std::make_unique<HttpServer>(svc);
  // cpp-httplib tries a method's patterns in registration order, so the
  // feed reads, every page's requests, go first (no two patterns overlap).
  RegisterFeedRoutes(*app->server_);
  RegisterFollowRoutes(*app->server_);
  RegisterOpsRoutes(*app->server_);
  RegisterAuthRoutes(*app->server_);
  RegisterUserRoutes(*app->server_);
  RegisterCollectionRoutes(*app->server_);
  RegisterSyncRoutes(*app->server_);
  RegisterLinkPages(*app->server_);
  s = app->server_->Bind(cfg.listen_host, cfg.listen_port);
  if (!s.ok()) return s;
  return app;
}

App::~App() { Stop(); }

Status App::Start() {
  SyncEngine* sync = sync_.get();
  store_->SetAfterCommitHook([sync] { sync->Wake(); });
  mailer_->Start();
  sync_->Start();
  serve_thread_ = std::thread([this] {
    if (!server_->Listen()) OB_LOG(kError, "http: listener stopped with an error");
  });
  // Listen() flips running() once it accepts; Stop() before that would be lost.
  for (int i = 0; i < 5000 && !server_->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server_->running()) return Status::Internal("the HTTP listener did not start");
  housekeeping_thread_ = std::thread(&App::Housekeeping, this);
  OB_LOG(kInfo, "offbrand %s listening on %s:%d, data in %s, Stream %s", OFFBRAND_VERSION,
         config_.listen_host.c_str(), port(), config_.data_dir.c_str(),
         config_.stream_configured() ? "configured" : "not configured (offline: the outbox waits)");
  NotifyReady();
  return Status::Ok();
}

void App::Housekeeping() {
  const uint64_t watchdog_us = WatchdogIntervalUs();
  const int64_t tick_ms = watchdog_us > 0
                              ? std::max<int64_t>(100, static_cast<int64_t>(watchdog_us / 2000))
                              : 1000;
  int64_t last_flush = 0, last_status = 0, last_purge = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(tick_ms));
    if (stopping_) break;
    lock.unlock();
    const int64_t now = SystemClock::Instance().NowMs();
    // Ping the watchdog only while every loop is alive: the HTTP server
    // answers on its socket, the writer is not stuck in a batch, the sync
    // loop went round recently (it waits at most kLoopWaitMsMax between
    // rounds, plus one request timeout), and the store has not failed (a
    // restart is the documented way out of a failed commit).
    if (watchdog_us > 0) {
      const int64_t sync_stall_ms_max = 2 * config_.stream_timeout_ms + 10 * kLoopWaitMsMax;
      const bool sync_alive = now - sync_->last_loop_ms() < sync_stall_ms_max;
      const int64_t batch_started = store_->batch_started_ms();
      const bool writer_alive = batch_started == 0 || now - batch_started < kWriterBatchMsMax;
      const bool http_alive = ProbeHealthz(config_.listen_host, port());
      if (http_alive && sync_alive && writer_alive && !store_->failed()) {
        NotifyWatchdog();
      } else {
        OB_LOG(kWarning, "watchdog: not pinging (http %s, sync loop %s, writer %s, store %s)",
               http_alive ? "ok" : "not answering", sync_alive ? "ok" : "stalled",
               writer_alive ? "ok" : "stuck", store_->failed() ? "failed" : "ok");
      }
    }
    if (now - last_status >= kStatusIntervalMs) {
      last_status = now;
      SyncStatus st = sync_->GetStatus();
      NotifyStatus("outbox " + std::to_string(st.pending) + " pending, " +
                   std::to_string(st.dead) + " dead" +
                   (st.paused_reason.empty() ? "" : "; sync paused: " + st.paused_reason));
    }
    if (now - last_flush >= kLastSeenFlushIntervalMs) {
      last_flush = now;
      Status s = last_seen_->Flush(*store_);
      if (!s.ok()) OB_LOG(kWarning, "last_seen flush failed: %s", s.ToString().c_str());
    }
    if (now - last_purge >= kPurgeIntervalMs) {
      last_purge = now;
      Status s = PurgeExpired(*store_, now);
      if (!s.ok()) OB_LOG(kWarning, "purge of expired sessions failed: %s", s.ToString().c_str());
    }
    lock.lock();
  }
}

void App::Wait() {
  if (serve_thread_.joinable()) serve_thread_.join();
}

void App::Stop() {
  if (stopped_.exchange(true)) return;
  NotifyStopping();
  OB_LOG(kInfo, "stopping: finishing in-flight requests");
  // Stop accepting; cpp-httplib's pool finishes the requests it holds before
  // Listen() returns, so every acknowledged write was answered.
  if (server_) server_->Stop();
  if (serve_thread_.joinable()) serve_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (housekeeping_thread_.joinable()) housekeeping_thread_.join();
  if (sync_) sync_->Stop();
  if (mailer_) mailer_->Stop();
  if (last_seen_ && store_) {
    Status s = last_seen_->Flush(*store_);
    if (!s.ok()) OB_LOG(kWarning, "last_seen flush failed: %s", s.ToString().c_str());
  }
  // Destroying the store drains queued writes and closes LMDB.
  if (store_) store_->SetAfterCommitHook(nullptr);
  server_.reset();
  sync_.reset();
  transport_.reset();
  store_.reset();
  OB_LOG(kInfo, "stopped");
}

}  // namespace offbrand
