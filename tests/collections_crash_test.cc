// Proves that a collection and its outbox record are committed together: the
// real binary takes a burst of concurrent creates from several threads and is
// SIGKILLed mid-burst (twice); afterwards every collection that got a 201
// exists with its name and its Stream add record, and no collection row exists
// without its record nor a record without its row, both in the data dir
// (opened read-only) and through the restarted server. Creation times (the
// Stream `time`) strictly increase with ids across the crashes and restarts.
#define BOOST_TEST_MODULE collections_crash_test
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "ops.h"
#include "test_support.h"

namespace offbrand::test {
namespace {

constexpr int kWriterThreads = 4;
constexpr int kWritersPerRound = 2;  // users per round, shared by the threads
constexpr int kAcksBeforeKill = 40;
constexpr int kAckWaitMs = 30'000;

struct Created {
  uint64_t id = 0;
  std::string name;
};

// What a burst left: the 201s, and any reply that was neither a 201 nor a
// dropped connection (checked on the main thread: Boost.Test assertions are
// not thread-safe).
struct BurstResult {
  std::vector<Created> created;
  std::vector<std::string> unexpected;
};

// Creates collections from kWriterThreads threads until the server dies;
// SIGKILLs it once kAcksBeforeKill creates were acknowledged.
BurstResult BurstAndKill(ServerProcess& proc, const std::vector<std::string>& tokens, int round) {
  BurstResult result;
  std::mutex mu;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriterThreads; ++t) {
    threads.emplace_back([&, t] {
      TestApi api = proc.api();
      const std::string& token = tokens[static_cast<size_t>(t) % tokens.size()];
      for (int n = 0;; ++n) {
        const std::string name =
            "r" + std::to_string(round) + "-t" + std::to_string(t) + "-" + std::to_string(n);
        HttpReply r = api.Post("/api/v1/collections",
                               R"({"name":")" + name + R"(","description":"burst"})", token);
        if (r.status == 0) return;  // the server is gone
        std::lock_guard<std::mutex> lock(mu);
        if (r.status == 201) {
          result.created.push_back({static_cast<uint64_t>(r.json().at("id").num()), name});
          ++acked;
        } else {
          result.unexpected.push_back(std::to_string(r.status) + " " + r.body);
          return;
        }
      }
    });
  }
  for (int waited = 0; acked.load() < kAcksBeforeKill && waited < kAckWaitMs; waited += 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  proc.Kill(SIGKILL);
  const int status = proc.Wait();
  for (std::thread& t : threads) t.join();
  BOOST_TEST(status == 128 + SIGKILL);
  return result;
}

// The collection rows (id -> name) and the ids of Collection:<id> add
// records in the data dir.
void ReadDataDir(const std::string& dir, std::map<uint64_t, std::string>* rows,
                 std::multiset<uint64_t>* adds) {
  StoreOptions options;
  options.dir = dir;
  options.read_only = true;
  auto store = Store::Open(options);
  BOOST_REQUIRE_MESSAGE(store.ok(), "Store::Open: " << store.status().ToString());
  {
    auto txn = (*store)->BeginRead();
    BOOST_REQUIRE(txn.ok());
    Cursor c = (*txn)->OpenCursor(Db::kCollections);
    int64_t previous_us = 0;  // rows come in id order
    for (bool ok = c.First(); ok; ok = c.Next()) {
      Collection coll;
      BOOST_REQUIRE(DecodeCollection(c.value(), &coll));
      BOOST_TEST(coll.id == GetU64BE(c.key()));
      BOOST_TEST(coll.created_us > previous_us, "collection " << coll.id << " is not newer");
      previous_us = coll.created_us;
      (*rows)[coll.id] = coll.name;
    }
  }
  std::string report;
  Status check = CheckInvariants(**store, &report);
  BOOST_TEST(check.ok(), check.ToString() << "\n" << report);
  for (const OutboxRecord& rec : OutboxRecords(**store)) {
    const std::string prefix = "Collection:";
    if (rec.op != OutboxOp::kActivityAdd || rec.foreign_id.rfind(prefix, 0) != 0) continue;
    adds->insert(std::stoull(rec.foreign_id.substr(prefix.size())));
  }
}

BOOST_AUTO_TEST_CASE(EveryAcknowledgedCreateSurvivesSigkillWithItsOutboxRecord) {
  TempDir dir;
  std::vector<std::string> tokens;
  {
    // Accounts are made in-process (mail is captured there); their API
    // tokens live in the data dir and work in the child process.
    TestServer server(dir.path());
    for (int i = 0; i < kWritersPerRound; ++i) {
      tokens.push_back(server.SignUp("writer" + std::to_string(i)));
    }
  }

  std::vector<Created> created;
  for (int round = 0; round < 2; ++round) {
    ServerProcess proc(dir.path());
    proc.Start();
    BurstResult burst = BurstAndKill(proc, tokens, round);
    for (const std::string& u : burst.unexpected) BOOST_ERROR("unexpected reply: " << u);
    BOOST_TEST(burst.created.size() >= static_cast<size_t>(kAcksBeforeKill),
               "only " << burst.created.size() << " creates acknowledged; log:\n"
                       << proc.log().substr(0, 4000));
    created.insert(created.end(), burst.created.begin(), burst.created.end());
  }

  std::map<uint64_t, std::string> rows;
  std::multiset<uint64_t> adds;
  ReadDataDir(dir.path(), &rows, &adds);
  BOOST_TEST_MESSAGE(created.size() << " creates acknowledged, " << rows.size()
                                    << " collections and " << adds.size()
                                    << " add records on disk");
  BOOST_TEST(rows.size() >= created.size());
  for (const Created& c : created) {
    auto row = rows.find(c.id);
    BOOST_TEST((row != rows.end()), "acknowledged collection " << c.id << " lost");
    if (row != rows.end()) BOOST_TEST(row->second == c.name);
    BOOST_TEST(adds.count(c.id) == 1u, "acknowledged collection " << c.id << " has "
                                                                   << adds.count(c.id)
                                                                   << " add records");
  }
  // Never one without the other, acknowledged or not.
  for (const auto& [id, name] : rows) {
    BOOST_TEST(adds.count(id) == 1u, "row " << id << " has " << adds.count(id) << " add records");
  }
  for (uint64_t id : adds) {
    BOOST_TEST(rows.count(id) == 1u, "add record for missing collection " << id);
  }

  // The restarted server serves them all and keeps allocating fresh ids.
  ServerProcess proc(dir.path());
  proc.Start();
  TestApi api = proc.api();
  for (const Created& c : created) {
    HttpReply r = api.Get("/api/v1/collections/" + std::to_string(c.id));
    BOOST_TEST(r.status == 200, c.id << ": " << r.status);
    if (r.status == 200) BOOST_TEST(r.json().at("name").str() == c.name);
  }
  HttpReply more =
      api.Post("/api/v1/collections", R"({"name":"after","description":"restart"})", tokens[0]);
  BOOST_REQUIRE_EQUAL(more.status, 201);
  const uint64_t new_id = static_cast<uint64_t>(more.json().at("id").num());
  BOOST_TEST((rows.empty() || new_id > rows.rbegin()->first));
}

}  // namespace
}  // namespace offbrand::test
