// Proves that `offbrand outbox status|list|retry ID|drop ID` report and change
// a real data dir: counts, JSON lines (quarantined records included), dead
// letters moved back with their attempts or dropped, clear errors for bad
// input; and that they work while the server runs against it, which then
// delivers a retried dead letter to the Stream double.
#define BOOST_TEST_MODULE outbox_cli_test
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <map>
#include <sstream>
#include <string>
#include <thread>
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

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '<') out.push_back(line);  // "<n>" lines are log output
  }
  return out;
}

// "pending 3\ndead 0\n..." -> the number after `key`.
int64_t Field(const std::string& status, const std::string& key) {
  for (const std::string& line : Lines(status)) {
    if (line.rfind(key + " ", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  BOOST_FAIL("no " << key << " in: " << status);
  return -1;
}

class DataDir {
 public:
  explicit DataDir(std::map<std::string, std::string> extra = {}) {
    env_ = {{"OFFBRAND_DATA_DIR", data_}, {"OFFBRAND_LOG_LEVEL", "warning"}};
    for (auto& [k, v] : extra) env_[k] = v;
  }
  // Runs `offbrand <args>`; returns the exit code and fills *out.
  int Cli(const std::vector<std::string>& args, std::string* out) {
    return test::RunCli(args, env_, out);
  }
  std::string CliOk(const std::vector<std::string>& args) {
    std::string out;
    const int rc = Cli(args, &out);
    BOOST_REQUIRE_MESSAGE(rc == 0, "offbrand " << args[0] << " " << (args.size() > 1 ? args[1] : "")
                                               << ": exit " << rc << ": " << out);
    return out;
  }
  void CreateUser(const std::string& name, bool admin) {
    std::vector<std::string> args = {"user", "create", "--username", name, "--email",
                                     name + "@example.com"};
    if (admin) args.push_back("--admin");
    std::string out;
    BOOST_REQUIRE_MESSAGE(test::RunCli(args, env_, &out, "password-" + name + "\n") == 0, out);
  }
  // Opens the store in this process (only while no server runs).
  std::unique_ptr<Store> Open() {
    StoreOptions o;
    o.dir = data_;
    auto store = Store::Open(o);
    BOOST_REQUIRE_MESSAGE(store.ok(), store.status().ToString());
    return std::move(*store);
  }
  const std::string& dir() const { return data_; }
  std::map<std::string, std::string>& env() { return env_; }

 private:
  test::TempDir tmp_;
  std::string data_ = tmp_.Sub("data");
  std::map<std::string, std::string> env_;
};

BOOST_AUTO_TEST_CASE(OutboxCommandsReportListRetryAndDropOnAStoppedDataDir) {
  DataDir d;
  d.CreateUser("admin", true);  // queues the Stream user and its self-follow
  d.CreateUser("bob", false);
  std::string status = d.CliOk({"outbox", "status"});
  const int64_t pending = Field(status, "pending");
  BOOST_TEST(pending >= 4);
  BOOST_TEST(Field(status, "dead") == 0);
  BOOST_TEST(Field(status, "oldest_pending_age_s") >= 0);

  std::vector<std::string> lines = Lines(d.CliOk({"outbox", "list"}));
  BOOST_REQUIRE_EQUAL(static_cast<int64_t>(lines.size()), pending);
  const uint64_t first = static_cast<uint64_t>(Json(lines[0]).at("seq").num());
  BOOST_TEST(Json(lines[0]).at("op").str() == "user.add");
  BOOST_TEST(Lines(d.CliOk({"outbox", "list", "--limit", "1"})).size() == 1u);
  BOOST_TEST(Lines(d.CliOk({"outbox", "list", "--dead"})).empty());

  // The first record fails for good (as the engine would record it).
  {
    auto store = d.Open();
    OutboxRecord rec = test::OutboxRecords(*store).front();
    rec.attempts = 3;
    rec.last_error = "400 InputException: rejected";
    BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, rec); }).ok());
  }
  status = d.CliOk({"outbox", "status"});
  BOOST_TEST(Field(status, "pending") == pending - 1);
  BOOST_TEST(Field(status, "dead") == 1);
  lines = Lines(d.CliOk({"outbox", "list", "--dead"}));
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  BOOST_TEST(Json(lines[0]).at("seq").num() == static_cast<int64_t>(first));
  BOOST_TEST(Json(lines[0]).at("last_error").str() == "400 InputException: rejected");

  // Retry: back under its own sequence, attempts kept, error cleared.
  const std::string id = std::to_string(first);
  BOOST_TEST(d.CliOk({"outbox", "retry", id}).find("requeued dead letter " + id) !=
             std::string::npos);
  status = d.CliOk({"outbox", "status"});
  BOOST_TEST(Field(status, "pending") == pending);
  BOOST_TEST(Field(status, "dead") == 0);
  Json back(Lines(d.CliOk({"outbox", "list", "--limit", "1"}))[0]);
  BOOST_TEST(back.at("seq").num() == static_cast<int64_t>(first));
  BOOST_TEST(back.at("attempts").num() == 3);
  BOOST_TEST(back.at("last_error").is_null());

  std::string out;
  BOOST_TEST(d.Cli({"outbox", "retry", id}, &out) != 0);
  BOOST_TEST(out.find("no dead letter " + id) != std::string::npos, out);

  // Drop: gone for good.
  {
    auto store = d.Open();
    OutboxRecord rec = test::OutboxRecords(*store).front();
    BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, rec); }).ok());
  }
  BOOST_TEST(d.CliOk({"outbox", "drop", id}).find("dropped dead letter " + id) != std::string::npos);
  BOOST_TEST(d.Cli({"outbox", "drop", id}, &out) != 0);
  BOOST_TEST(out.find("no dead letter") != std::string::npos, out);
  status = d.CliOk({"outbox", "status"});
  BOOST_TEST(Field(status, "pending") == pending - 1);
  BOOST_TEST(Field(status, "dead") == 0);

  // Bad input: clear errors, non-zero exit.
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"outbox"},
                                             {"outbox", "frobnicate"},
                                             {"outbox", "retry"},
                                             {"outbox", "retry", "abc"},
                                             {"outbox", "drop", "-1"},
                                             {"outbox", "list", "--limit"},
                                             {"outbox", "list", "--bogus"}}) {
    BOOST_TEST(d.Cli(args, &out) != 0, args.back());
    BOOST_TEST(out.find("outbox") != std::string::npos, out);
  }
}

BOOST_AUTO_TEST_CASE(QuarantinedDeadLetterIsListedAndCanOnlyBeDropped) {
  DataDir d;
  d.CreateUser("admin", true);
  {
    auto store = d.Open();
    BOOST_REQUIRE(store->Write([&](WriteTxn& txn) {
      return txn.Put(Db::kDead, U64Key(999), std::string("\x01\x04garbage", 9));
    }).ok());
  }
  std::vector<std::string> lines = Lines(d.CliOk({"outbox", "list", "--dead"}));
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  BOOST_TEST(Json(lines[0]).at("seq").num() == 999);
  BOOST_TEST(lines[0].find("corrupt") != std::string::npos, lines[0]);
  std::string out;
  BOOST_TEST(d.Cli({"outbox", "retry", "999"}, &out) != 0);
  BOOST_TEST(out.find("cannot be retried") != std::string::npos, out);
  d.CliOk({"outbox", "drop", "999"});
  BOOST_TEST(Field(d.CliOk({"outbox", "status"}), "dead") == 0);
}

BOOST_AUTO_TEST_CASE(OutboxCommandsWorkWhileTheServerRunsAndARetriedLetterIsDelivered) {
  StreamDouble stream;
  BOOST_REQUIRE(stream.Start().ok());
  DataDir d({{"OFFBRAND_STREAM_API_KEY", "testkey"},
             {"OFFBRAND_STREAM_API_SECRET", "testsecret"},
             {"OFFBRAND_STREAM_BASE_URL", stream.base_url()},
             {"OFFBRAND_SYNC_RETRY_MAX_MS", "300"}});
  d.CreateUser("admin", true);
  BOOST_REQUIRE(stream.SetRefuse(true).ok());
  test::ServerProcess server(d.dir(), d.env());
  server.Start();
  HttpReply login = server.api().Post(
      "/api/v1/auth/login", R"({"email":"admin@example.com","password":"password-admin"})");
  BOOST_REQUIRE_EQUAL(login.status, 200);
  const std::string token = login.json().at("token").str();
  auto sync_state = [&] { return server.api().Get("/api/v1/sync", token).json(); };
  auto wait = [&](int64_t pending, int64_t dead) {
    std::string last;
    for (int i = 0; i < 400; ++i) {  // the idle engine rescans every 5 s
      Json st = sync_state();
      last = st.dump();
      if (st.at("pending").num() == pending && st.at("dead").num() == dead &&
          st.at("in_flight").num() == 0) {
        return;
      }
      SleepMs(50);
    }
    BOOST_FAIL("sync did not reach pending " << pending << ", dead " << dead << ": " << last);
  };
  auto new_collection = [&](const std::string& name) {
    HttpReply r = server.api().Post("/api/v1/collections",
                                    "{\"name\":\"" + name + "\",\"description\":\"d\"}", token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  };

  const uint64_t poison = new_collection("poison");
  stream.SetPoisonForeignId(CollectionForeignId(poison));
  BOOST_REQUIRE(stream.SetRefuse(false).ok());
  wait(0, 1);

  // Read while the server runs.
  BOOST_TEST(Field(d.CliOk({"outbox", "status"}), "dead") == 1);
  std::vector<std::string> lines = Lines(d.CliOk({"outbox", "list", "--dead"}));
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  Json dead(lines[0]);
  BOOST_TEST(dead.at("foreign_id").str() == CollectionForeignId(poison));
  const std::string id = std::to_string(dead.at("seq").num());

  // Fixed at the source; retried from the command line; the server sends it.
  stream.SetPoisonForeignId("");
  d.CliOk({"outbox", "retry", id});
  wait(0, 0);
  BOOST_TEST(stream.StateJson().find("\"" + CollectionForeignId(poison) + "\"") !=
             std::string::npos);

  // Another poison record, dropped from the command line.
  stream.SetPoisonForeignId(CollectionForeignId(poison + 1));
  BOOST_REQUIRE_EQUAL(new_collection("poison too"), poison + 1);
  wait(0, 1);
  lines = Lines(d.CliOk({"outbox", "list", "--dead"}));
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  d.CliOk({"outbox", "drop", std::to_string(Json(lines[0]).at("seq").num())});
  wait(0, 0);
  server.Kill(SIGTERM);
  BOOST_TEST(server.Wait() == 0);
}

}  // namespace
}  // namespace offbrand
