// Proves crash safety of the store: a child process writing rows with their
// outbox records from several threads is killed with SIGKILL in the middle of
// the burst; after reopening, every write it acknowledged is present with its
// outbox record, and no row exists without its record (nothing half-written).
// Repeated on one data directory with different kill delays, so recovery after
// a crash is itself crashed into.
#define BOOST_TEST_MODULE crash_test
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "test_support.h"

namespace offbrand {
namespace {

using test::TempDir;

constexpr int kWriterThreads = 6;
constexpr const char* kRowPrefix = "crash:";
constexpr int kAckWaitMs = 20'000;

StoreOptions CrashStoreOptions(const std::string& dir) {
  StoreOptions options;
  options.dir = dir;
  // Small, so the burst also crosses map growth now and then.
  options.map_size_bytes = 1ull << 20;
  return options;
}

// The child: writes forever until killed. Each write puts a row
// "crash:<round>:<thread>:<i>" -> outbox seq and enqueues the outbox record
// naming the row, in one closure. Only after Write returned OK is the key
// written to `ack_fd` (one write(2) per line: atomic below PIPE_BUF).
[[noreturn]] void ChildWriter(const std::string& dir, int round, int ack_fd) {
  auto opened = Store::Open(CrashStoreOptions(dir));
  if (!opened.ok()) _exit(2);
  std::unique_ptr<Store> store = std::move(*opened);
  const std::string padding(512 + 97 * round, 'p');
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriterThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0;; ++i) {
        const std::string key = std::string(kRowPrefix) + std::to_string(round) + ":" +
                                std::to_string(t) + ":" + std::to_string(i);
        Status s = store->Write([&](WriteTxn& txn) {
          OutboxRecord rec;
          rec.op = OutboxOp::kActivityAdd;
          rec.feed_group = "User";
          rec.feed_id = std::to_string(t);
          rec.foreign_id = key;
          rec.time = "2024-01-01T00:00:00.000000";
          rec.body = "{\"foreign_id\":\"" + key + "\",\"pad\":\"" + padding + "\"}";
          rec.entity = key;
          Status e = EnqueueOutbox(txn, &rec);
          if (!e.ok()) return e;
          return txn.Put(Db::kMeta, key, U64Key(rec.seq));
        });
        if (!s.ok()) _exit(3);
        const std::string line = key + "\n";
        if (write(ack_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          _exit(4);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

// Reads acknowledged keys from `fd` until EOF; the kill happens `kill_ms`
// after the first acknowledgement arrived.
std::vector<std::string> ReadAcksAndKill(int fd, pid_t pid, int kill_ms) {
  std::string buffer;
  bool first_seen = false;
  bool killed = false;
  auto start = std::chrono::steady_clock::now();
  auto kill_at = start + std::chrono::milliseconds(kAckWaitMs);
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (!killed && now >= kill_at) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{fd, POLLIN, 0};
    int wait_ms = killed ? 1000
                         : static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                kill_at - now)
                                                .count()) +
                               1;
    int rc = poll(&p, 1, wait_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child (and its threads) are gone
    buffer.append(buf, static_cast<size_t>(n));
    if (!first_seen) {
      first_seen = true;
      kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_ms);
    }
  }
  if (!killed) kill(pid, SIGKILL);
  std::vector<std::string> keys;
  size_t pos = 0;
  for (size_t nl; (nl = buffer.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    keys.push_back(buffer.substr(pos, nl - pos));
  }
  BOOST_TEST(pos == buffer.size(), "a torn acknowledgement line");
  return keys;
}

struct RoundResult {
  std::vector<std::string> acked;
  int wait_status = 0;
};

RoundResult RunKilledChild(const std::string& dir, int round, int kill_ms) {
  int fds[2];
  BOOST_REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    ChildWriter(dir, round, fds[1]);
  }
  close(fds[1]);
  RoundResult result;
  result.acked = ReadAcksAndKill(fds[0], pid, kill_ms);
  close(fds[0]);
  while (waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

// Every row has its outbox record and every record its row; returns the rows.
std::set<std::string> CheckConsistent(Store& store) {
  std::set<std::string> rows;
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::map<uint64_t, std::string> row_seq;  // seq -> row key
  Cursor c = (*txn)->OpenCursor(Db::kMeta);
  for (bool ok = c.Seek(kRowPrefix); ok && c.key().substr(0, strlen(kRowPrefix)) == kRowPrefix;
       ok = c.Next()) {
    BOOST_REQUIRE(c.value().size() == 8u);
    rows.insert(std::string(c.key()));
    row_seq[GetU64BE(c.value())] = std::string(c.key());
  }
  std::vector<OutboxRecord> recs = test::OutboxRecords(store);  // decodes and checks each
  BOOST_TEST(recs.size() == rows.size(), "outbox records " << recs.size() << ", rows "
                                                           << rows.size());
  for (const OutboxRecord& rec : recs) {
    auto it = row_seq.find(rec.seq);
    BOOST_TEST((it != row_seq.end()), "outbox record " << rec.seq << " has no row");
    if (it != row_seq.end()) BOOST_TEST(it->second == rec.foreign_id);
  }
  for (size_t i = 1; i < recs.size(); ++i) BOOST_TEST(recs[i].seq > recs[i - 1].seq);
  return rows;
}

BOOST_AUTO_TEST_CASE(SigkillMidBurstKeepsEveryAcknowledgedWriteAndHalfOfNone) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  const std::vector<int> kill_delays_ms = {0, 20, 75, 200, 450};
  size_t total_acked = 0;
  std::set<std::string> all_acked;
  for (size_t round = 0; round < kill_delays_ms.size(); ++round) {
    BOOST_TEST_CONTEXT("round " << round << ", kill after " << kill_delays_ms[round] << " ms") {
      RoundResult r = RunKilledChild(dir, static_cast<int>(round), kill_delays_ms[round]);
      BOOST_TEST(WIFSIGNALED(r.wait_status), "child exited on its own: " << r.wait_status);
      if (WIFSIGNALED(r.wait_status)) BOOST_TEST(WTERMSIG(r.wait_status) == SIGKILL);
      BOOST_TEST(!r.acked.empty());
      total_acked += r.acked.size();
      all_acked.insert(r.acked.begin(), r.acked.end());

      auto opened = Store::Open(CrashStoreOptions(dir));
      BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
      std::set<std::string> rows = CheckConsistent(**opened);
      size_t missing = 0;
      for (const std::string& key : all_acked) {
        if (!rows.count(key)) {
          if (++missing <= 5) BOOST_ERROR("acknowledged write lost: " << key);
        }
      }
      BOOST_TEST(missing == 0u);
      // The reopened store accepts writes (and is closed before the next round).
      Status s = (*opened)->Write(
          [](WriteTxn& txn) { return txn.Put(Db::kMeta, "reopened", "yes"); });
      BOOST_TEST(s.ok(), s.ToString());
      BOOST_TEST_MESSAGE("round " << round << ": " << r.acked.size() << " acknowledged, "
                                  << rows.size() << " rows in total");
    }
  }
  BOOST_TEST(all_acked.size() == total_acked);  // keys are unique per round
}

}  // namespace
}  // namespace offbrand
