// Proves, end to end with the real `offbrand` binary and the Stream double on
// loopback, that what people do while Stream is down, slow, rate limiting,
// rejecting a record or our credentials, losing acknowledgements, hanging, or
// not configured at all, and across a SIGKILL or a SIGTERM, ends up on Stream
// exactly once: after convergence every local collection and item has one
// activity (with its stream_id stored on the row) and Stream's follow edges
// equal the local follow rows; /sync, /readyz, /metrics and the log say what
// is going on meanwhile.
#define BOOST_TEST_MODULE sync_e2e_test
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "stream_double.h"
#include "test_support.h"

namespace offbrand {
namespace {

using test::HttpReply;
using test::Json;

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The double, a data dir with two confirmed users (created by the CLI, so
// their Stream user adds and self-follows are queued) and the server.
class E2e {
 public:
  E2e() {
    BOOST_REQUIRE(stream_.Start().ok());
    env_ = {{"OFFBRAND_DATA_DIR", data_},
            {"OFFBRAND_STREAM_API_KEY", "testkey"},
            {"OFFBRAND_STREAM_API_SECRET", "testsecret"},
            {"OFFBRAND_STREAM_BASE_URL", stream_.base_url()},
            {"OFFBRAND_STREAM_TIMEOUT_MS", "3000"},
            {"OFFBRAND_SYNC_RETRY_MAX_MS", "300"},
            {"OFFBRAND_LOG_LEVEL", "info"}};
    CreateUser("admin", true);
    CreateUser("bob", false);
  }
  ~E2e() { server_.reset(); }

  StreamDouble& stream() { return stream_; }
  // Environment of the next Start (e.g. keys removed or wrong).
  void SetEnv(const std::string& k, const std::string& v) { env_[k] = v; }
  void UnsetEnv(const std::string& k) { env_.erase(k); }
  std::string Log() const { return server_->log(); }
  test::TestApi api() const { return server_->api(); }
  const std::string& admin() const { return admin_; }
  const std::string& bob() const { return bob_; }
  const std::string& data_dir() const { return data_; }

  void Start() {
    server_ = std::make_unique<test::ServerProcess>(data_, env_);
    server_->Start();
    admin_ = Login("admin");
    bob_ = Login("bob");
  }
  void Kill() {
    server_->Kill(SIGKILL);
    server_->Wait();
  }
  // SIGTERM; returns how long the process took to exit.
  int64_t Stop() {
    const auto start = std::chrono::steady_clock::now();
    server_->Kill(SIGTERM);
    const int rc = server_->Wait();
    BOOST_TEST(rc == 0, "exit status " << rc << "; log:\n" << LogTail());
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  }
  // The value of one sample in /metrics ("" when absent).
  std::string Metric(const std::string& name) {
    HttpReply r = api().Get("/metrics");
    BOOST_REQUIRE_EQUAL(r.status, 200);
    const std::string line_start = "\n" + name + " ";
    const size_t at = ("\n" + r.body).find(line_start);
    if (at == std::string::npos) return "";
    const size_t from = at + line_start.size() - 1;
    return r.body.substr(from, r.body.find('\n', from) - from);
  }
  // Polls GET /sync until `done` holds for it; fails the test after the timeout.
  template <typename Pred>
  Json WaitSyncState(Pred done, const std::string& what, int64_t timeout_ms = 20'000) {
    std::string last;
    for (int64_t waited = 0; waited < timeout_ms; waited += 50) {
      HttpReply r = api().Get("/api/v1/sync", admin_);
      last = r.body;
      if (r.status == 200 && done(r.json())) return r.json();
      SleepMs(50);
    }
    BOOST_FAIL("waiting for " << what << ": " << last << "\nlog:\n" << LogTail());
    return Json("{}");
  }
  std::string LogTail() const {
    std::string log = server_->log();
    return log.size() > 3000 ? log.substr(log.size() - 3000) : log;
  }

  // ---- what people do -----------------------------------------------------
  uint64_t NewCollection(const std::string& token, const std::string& name) {
    HttpReply r = api().Post("/api/v1/collections",
                             "{\"name\":\"" + name + "\",\"description\":\"about " + name + "\"}",
                             token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  uint64_t NewItem(const std::string& token, uint64_t cid, const std::string& title) {
    HttpReply r = api().Post("/api/v1/collections/" + std::to_string(cid) + "/items",
                             "{\"url\":\"https://example.com/" + title + "\",\"title\":\"" + title +
                                 "\",\"description\":\"d\"}",
                             token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  void Rename(const std::string& token, uint64_t cid, const std::string& name) {
    HttpReply r = api().Patch("/api/v1/collections/" + std::to_string(cid),
                              "{\"name\":\"" + name + "\"}", token);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
  }
  void Delete(const std::string& token, const std::string& path) {
    HttpReply r = api().Delete(path, token);
    BOOST_REQUIRE_MESSAGE(r.status == 200 || r.status == 204, path << ": " << r.status << " " << r.body);
  }
  void Put(const std::string& token, const std::string& path) {
    HttpReply r = api().Put(path, "{}", token);
    BOOST_REQUIRE_MESSAGE(r.status == 200 || r.status == 204, path << ": " << r.status << " " << r.body);
  }

  // A burst of creating, editing, deleting and following by two people.
  void Workload(int collections, int items_each) {
    std::vector<uint64_t> mine;
    for (int c = 0; c < collections; ++c) {
      const std::string& who = c % 2 ? bob_ : admin_;
      const uint64_t cid = NewCollection(who, "c" + std::to_string(c));
      mine.push_back(cid);
      std::vector<uint64_t> items;
      for (int i = 0; i < items_each; ++i) {
        items.push_back(NewItem(who, cid, "t" + std::to_string(c) + "x" + std::to_string(i)));
      }
      if (c % 3 == 0) Rename(who, cid, "renamed" + std::to_string(c));
      if (!items.empty() && c % 2 == 0) Delete(who, "/api/v1/items/" + std::to_string(items[0]));
      if (c % 2 == 1) Put(admin_, "/api/v1/collections/" + std::to_string(cid) + "/follow");
    }
    Put(admin_, "/api/v1/users/bob/follow");
    Put(bob_, "/api/v1/users/admin/follow");
    Delete(bob_, "/api/v1/users/admin/follow");
    if (mine.size() > 2) {
      Delete(admin_, "/api/v1/collections/" + std::to_string(mine[2]));  // with its items
    }
  }

  Json SyncState() {
    HttpReply r = api().Get("/api/v1/sync", admin_);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    return r.json();
  }
  // Polls GET /sync until nothing is pending or in flight (and `dead` dead
  // letters remain).
  void WaitSynced(int64_t timeout_ms = 30'000, int64_t dead = 0) {
    std::string last;
    for (int64_t waited = 0; waited < timeout_ms; waited += 50) {
      HttpReply r = api().Get("/api/v1/sync", admin_);
      last = r.body;
      if (r.status == 200) {
        Json j = r.json();
        if (j.at("pending").num() == 0 && j.at("in_flight").num() == 0 &&
            j.at("dead").num() == dead) {
          return;
        }
      }
      SleepMs(50);
    }
    BOOST_FAIL("sync did not converge: " << last << "\nlog:\n" << LogTail());
  }

  // After Stop(): LMDB (read-only) against the double's state.
  void CheckConverged() {
    StoreOptions o;
    o.dir = data_;
    o.read_only = true;
    auto store = Store::Open(o);
    BOOST_REQUIRE_MESSAGE(store.ok(), store.status().ToString());
    auto txn = (*store)->BeginRead();
    BOOST_REQUIRE(txn.ok());
    struct Row {
      std::string group, feed_id, field, value, stream_id;
    };
    std::map<std::string, Row> rows;  // by foreign id
    std::set<std::pair<std::string, std::string>> edges;
    {
      Cursor c = (*txn)->OpenCursor(Db::kCollections);
      for (bool on = c.First(); on; on = c.Next()) {
        Collection col;
        BOOST_REQUIRE(DecodeCollection(c.value(), &col));
        rows[CollectionForeignId(col.id)] = {"User", std::to_string(col.author_id), "name",
                                             col.name, col.stream_id};
      }
    }
    {
      Cursor c = (*txn)->OpenCursor(Db::kItems);
      for (bool on = c.First(); on; on = c.Next()) {
        Item item;
        BOOST_REQUIRE(DecodeItem(c.value(), &item));
        rows[ItemForeignId(item.id)] = {"Collections", std::to_string(item.collection_id), "post",
                                        item.title, item.stream_id};
      }
    }
    auto pairs = [&](Db db, const char* source, const char* target) {
      Cursor c = (*txn)->OpenCursor(db);
      for (bool on = c.First(); on; on = c.Next()) {
        const uint64_t a = GetU64BE(c.key()), b = GetU64BE(c.key().substr(8));
        edges.insert({std::string(source) + ":" + std::to_string(a),
                      std::string(target) + ":" + std::to_string(b)});
      }
    };
    pairs(Db::kFollows, "Notifications", "User");
    pairs(Db::kCollectionFollows, "Timeline", "Collections");
    BOOST_TEST((*txn)->Count(Db::kOutbox) == 0u);

    Json state(stream_.StateJson());
    BOOST_TEST(static_cast<size_t>(state.at("activity_count").num()) == rows.size(),
               "Stream holds " << state.at("activity_count").num() << " activities, local rows "
                               << rows.size());
    for (const auto& [fid, row] : rows) {
      int found = 0;
      for (const DoubleActivity& a : stream_.FeedActivities(row.group, row.feed_id)) {
        if (a.foreign_id != fid) continue;
        ++found;
        BOOST_TEST(a.id == row.stream_id, fid << " stream_id on the row");
        Json act(a.json);
        BOOST_TEST(act.at(row.field).str() == row.value, fid << " " << row.field);
      }
      BOOST_TEST(found == 1, fid << " appears " << found << " times in " << row.group << ":"
                                 << row.feed_id);
    }
    std::set<std::pair<std::string, std::string>> stream_edges;
    Json follows = state.at("follows");
    for (size_t i = 0; i < follows.size(); ++i) {
      stream_edges.insert({follows.at(i).at("source").str(), follows.at(i).at("target").str()});
    }
    BOOST_TEST((stream_edges == edges), "follow graph differs: Stream " << stream_edges.size()
                                                                       << " edges, local "
                                                                       << edges.size());
    BOOST_TEST(state.at("users").size() == 2u);
  }

 private:
  void CreateUser(const std::string& name, bool admin) {
    std::vector<std::string> args = {"user", "create", "--username", name, "--email",
                                     name + "@example.com"};
    if (admin) args.push_back("--admin");
    std::string out;
    const int rc = test::RunCli(args, env_, &out, "password-" + name + "\n");
    BOOST_REQUIRE_MESSAGE(rc == 0, "user create: " << out);
  }
  std::string Login(const std::string& name) {
    HttpReply r = api().Post("/api/v1/auth/login", "{\"email\":\"" + name +
                                                      "@example.com\",\"password\":\"password-" +
                                                      name + "\"}");
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    return r.json().at("token").str();
  }

  test::TempDir dir_;
  std::string data_ = dir_.Sub("data");
  StreamDouble stream_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<test::ServerProcess> server_;
  std::string admin_, bob_;
};

BOOST_AUTO_TEST_CASE(StreamDownWhilePeopleWorkThenConvergesWithoutDuplicates) {
  E2e e;
  BOOST_REQUIRE(e.stream().SetRefuse(true).ok());
  e.Start();
  e.Workload(8, 3);
  SleepMs(500);
  Json st = e.SyncState();
  BOOST_TEST(st.at("pending").num() > 0);
  BOOST_TEST(st.at("configured").boolean());
  BOOST_TEST(st.at("last_error").str().rfind("network", 0) == 0, st.at("last_error").str());
  BOOST_TEST(e.api().Get("/api/v1/sync", e.bob()).status == 403);
  BOOST_REQUIRE(e.stream().SetRefuse(false).ok());
  e.WaitSynced();
  st = e.SyncState();
  BOOST_TEST(st.at("last_success_ms").num() > 0);
  BOOST_TEST(st.at("last_error").is_null(), st.dump());  // recovered
  BOOST_TEST(!st.at("stream_down").boolean());
  // What Stream's X-Ratelimit-* headers said, per endpoint.
  bool adds = false;
  for (size_t i = 0; i < st.at("rate_limits").size(); ++i) {
    Json r = st.at("rate_limits").at(i);
    if (r.at("operation").str() != "activity.add") continue;
    adds = true;
    BOOST_TEST(r.at("limit").num() == 1000);
    BOOST_TEST(r.at("remaining").num() >= 0);
    BOOST_TEST(r.at("reset").num() > 1'600'000'000);
    BOOST_TEST(r.at("held_until_ms").num() == 0);
  }
  BOOST_TEST(adds, st.dump());
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(KilledMidSyncRestartsAndConverges) {
  E2e e;
  e.stream().SetDelayMs(150);
  e.Start();
  e.Workload(6, 15);
  for (int i = 0; i < 100 && e.stream().TotalRequests() == 0; ++i) SleepMs(20);
  BOOST_TEST(e.SyncState().at("pending").num() > 0);
  e.Kill();
  e.stream().SetDelayMs(0);
  e.Start();
  e.WaitSynced();
  e.Stop();
  e.CheckConverged();
}

// The double's request counters grouped by the endpoint Stream limits (and
// the engine holds) separately: user.add/update/delete are one.
std::map<std::string, int64_t> CountsByEndpoint(const StreamDouble& s) {
  std::map<std::string, int64_t> out;
  for (const char* op : {"user.add", "user.update", "user.delete"}) out["user"] += s.RequestCount(op);
  for (const char* op : {"activity.add", "activity.update", "activity.remove", "follow", "unfollow",
                         "follow_many"}) {
    out[op] = s.RequestCount(op);
  }
  return out;
}

BOOST_AUTO_TEST_CASE(RateLimitStormIsRespected) {
  E2e e;
  e.stream().RateLimitNext(-1, 3);  // every request: 429, reset in 3 s
  e.Start();
  e.NewCollection(e.admin(), "first");
  // Catch the first requests; once answered 429, their endpoints must wait
  // >= 2 s (X-Ratelimit-Reset is whole seconds, Retry-After says 3). Stream
  // limits each endpoint on its own, so an endpoint not yet limited may be
  // tried once.
  const int64_t before = e.stream().TotalRequests();
  for (int i = 0; i < 500 && e.stream().TotalRequests() == before; ++i) SleepMs(10);
  BOOST_REQUIRE(e.stream().TotalRequests() > before);
  SleepMs(300);
  const std::map<std::string, int64_t> after_round = CountsByEndpoint(e.stream());
  e.NewCollection(e.admin(), "second");  // a commit wakes the engine: it must still wait
  SleepMs(1400);
  for (const auto& [endpoint, count] : CountsByEndpoint(e.stream())) {
    const int64_t was = after_round.at(endpoint);
    if (was > 0) {
      BOOST_TEST(count == was, endpoint << " was called again during its hold\n" << e.LogTail());
    } else {
      BOOST_TEST(count <= 1, endpoint << " called " << count << " times, at most once expected");
    }
  }
  BOOST_TEST(e.SyncState().at("last_error").str().rfind("429", 0) == 0);
  e.stream().ClearFaults();
  e.WaitSynced();
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(PoisonRecordGoesToDeadLettersWhileOthersFlowAndRetryWorks) {
  E2e e;
  BOOST_REQUIRE(e.stream().SetRefuse(true).ok());
  e.Start();
  const uint64_t poison = e.NewCollection(e.admin(), "poison");
  e.stream().SetPoisonForeignId(CollectionForeignId(poison));
  e.Workload(4, 2);
  e.Rename(e.admin(), poison, "poison2");  // waits behind the dead letter
  BOOST_REQUIRE(e.stream().SetRefuse(false).ok());
  // Everything but the poison's entity flows: its add is dead, its update waits.
  std::string last;
  bool settled = false;
  for (int i = 0; i < 600 && !settled; ++i) {
    Json st = e.SyncState();
    last = st.dump();
    settled = st.at("dead").num() == 1 && st.at("pending").num() == 1 &&
              st.at("in_flight").num() == 0;
    if (!settled) SleepMs(50);
  }
  BOOST_REQUIRE_MESSAGE(settled, last);
  HttpReply dead = e.api().Get("/api/v1/sync/dead", e.admin());
  BOOST_REQUIRE_EQUAL(dead.status, 200);
  Json items = dead.json().at("items");
  BOOST_REQUIRE_EQUAL(items.size(), 1u);
  BOOST_TEST(items.at(0).at("foreign_id").str() == CollectionForeignId(poison));
  BOOST_TEST(items.at(0).at("last_error").str().rfind("400 InputException", 0) == 0,
             items.at(0).at("last_error").str());
  const int64_t seq = items.at(0).at("seq").num();
  BOOST_TEST(e.api().Post("/api/v1/sync/dead/999999/retry", "{}", e.admin()).status == 404);
  BOOST_TEST(e.api().Post("/api/v1/sync/dead/" + std::to_string(seq) + "/retry", "{}", e.bob())
                 .status == 403);
  // Fixed at the source; an admin retries.
  e.stream().SetPoisonForeignId("");
  HttpReply retry =
      e.api().Post("/api/v1/sync/dead/" + std::to_string(seq) + "/retry", "{}", e.admin());
  BOOST_TEST(retry.status == 204, retry.body);
  e.WaitSynced();
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(LostAcknowledgementsCauseNoDuplicates) {
  E2e e;
  e.stream().DropNext(8);  // processed, then the connection dropped
  e.Start();
  e.Workload(6, 4);
  e.WaitSynced();
  BOOST_TEST(e.stream().faults().drop_after_processing == 0);  // all were used
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(WithoutKeysTheOutboxAccumulatesAndARestartWithKeysDrainsIt) {
  E2e e;
  e.UnsetEnv("OFFBRAND_STREAM_API_KEY");
  e.UnsetEnv("OFFBRAND_STREAM_API_SECRET");
  e.Start();
  e.Workload(4, 2);
  SleepMs(300);
  Json st = e.SyncState();
  BOOST_TEST(!st.at("configured").boolean());
  BOOST_TEST(st.at("paused_reason").str() == "Stream is not configured (no API key/secret)");
  BOOST_TEST(!st.at("credentials_rejected").boolean());
  BOOST_TEST(st.at("pending").num() > 10);
  BOOST_TEST(e.stream().TotalRequests() == 0);
  // Not configured is not "paused" (the alert is for rejected credentials).
  BOOST_TEST(e.Metric("offbrand_sync_configured") == "0");
  BOOST_TEST(e.Metric("offbrand_sync_paused") == "0");
  e.Stop();

  e.SetEnv("OFFBRAND_STREAM_API_KEY", "testkey");
  e.SetEnv("OFFBRAND_STREAM_API_SECRET", "testsecret");
  e.Start();
  e.WaitSynced();
  BOOST_TEST(e.SyncState().at("configured").boolean());
  BOOST_TEST(e.Metric("offbrand_sync_configured") == "1");
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(RejectedCredentialsPauseSyncVisiblyUntilFixedKeysAreConfigured) {
  E2e e;
  e.SetEnv("OFFBRAND_STREAM_API_SECRET", "not-the-secret");  // Stream answers 401
  e.Start();
  e.NewCollection(e.admin(), "while paused");
  Json st = e.WaitSyncState(
      [](const Json& j) { return j.has("paused_reason") && !j.at("paused_reason").is_null(); },
      "the pause");
  BOOST_TEST(st.at("paused_reason").str() == "Stream rejected our credentials");
  BOOST_TEST(st.at("credentials_rejected").boolean());
  BOOST_TEST(st.at("last_error").str().rfind("401", 0) == 0, st.at("last_error").str());
  BOOST_TEST(st.at("pending").num() > 0);
  HttpReply ready = e.api().Get("/readyz");
  BOOST_TEST(ready.status == 200);  // people can still work
  BOOST_TEST(ready.json().at("detail").str() == "sync paused: Stream rejected our credentials");
  BOOST_TEST(e.Metric("offbrand_sync_paused") == "1");
  BOOST_TEST(e.Log().find("Stream rejected our credentials") != std::string::npos);
  // Paused: one probe per OFFBRAND_SYNC_RETRY_MAX_MS (300 ms here), no hammering.
  const int64_t requests = e.stream().TotalRequests();
  SleepMs(900);
  BOOST_TEST(e.stream().TotalRequests() <= requests + 4);
  e.Stop();

  e.SetEnv("OFFBRAND_STREAM_API_SECRET", "testsecret");
  e.Start();
  e.WaitSynced();
  BOOST_TEST(e.SyncState().at("paused_reason").is_null());
  BOOST_TEST(e.Metric("offbrand_sync_paused") == "0");
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(SigtermWhileARequestHangsExitsPromptlyAndTheRecordIsDeliveredAfterRestart) {
  E2e e;
  e.SetEnv("OFFBRAND_STREAM_TIMEOUT_MS", "60000");  // far longer than any shutdown may take
  e.Start();
  e.WaitSynced();  // the accounts' records
  e.stream().SetHangMs(60'000);  // Stream takes the request and never answers
  const int64_t before = e.stream().TotalRequests();
  const uint64_t cid = e.NewCollection(e.admin(), "hanging");
  for (int i = 0; i < 200 && e.stream().TotalRequests() == before; ++i) SleepMs(10);
  BOOST_REQUIRE(e.stream().TotalRequests() > before);
  BOOST_TEST(e.SyncState().at("in_flight").num() > 0);
  const int64_t exit_ms = e.Stop();
  BOOST_TEST(exit_ms < 3'000, "SIGTERM took " << exit_ms << " ms");
  {
    StoreOptions o;
    o.dir = e.data_dir();
    o.read_only = true;
    auto store = Store::Open(o);
    BOOST_REQUIRE(store.ok());
    bool kept = false;
    for (const OutboxRecord& r : test::OutboxRecords(**store)) {
      kept = kept || r.foreign_id == CollectionForeignId(cid);
    }
    BOOST_TEST(kept, "the unanswered record stays in the outbox");
  }
  e.stream().SetHangMs(0);
  e.Start();
  e.WaitSynced();
  e.Stop();
  e.CheckConverged();
}

BOOST_AUTO_TEST_CASE(DroppingADeadLetterForgetsIt) {
  E2e e;
  BOOST_REQUIRE(e.stream().SetRefuse(true).ok());
  e.Start();
  const uint64_t poison = e.NewCollection(e.admin(), "poison");
  e.stream().SetPoisonForeignId(CollectionForeignId(poison));
  BOOST_REQUIRE(e.stream().SetRefuse(false).ok());
  e.WaitSynced(30'000, /*dead=*/1);
  HttpReply dead = e.api().Get("/api/v1/sync/dead?limit=1", e.admin());
  BOOST_REQUIRE_EQUAL(dead.status, 200);
  const int64_t seq = dead.json().at("items").at(0).at("seq").num();
  BOOST_TEST(e.api().Delete("/api/v1/sync/dead/" + std::to_string(seq), e.admin()).status == 204);
  BOOST_TEST(e.api().Delete("/api/v1/sync/dead/" + std::to_string(seq), e.admin()).status == 404);
  BOOST_TEST(e.SyncState().at("dead").num() == 0);
}

}  // namespace
}  // namespace offbrand
