// Proves the Store's promises on a real LMDB directory: a write closure
// commits all or nothing, committed values survive reopening, concurrent
// writes share fsyncs (group commit) yet each is durable when acknowledged,
// outbox sequences only grow, a full map grows or fails cleanly with 507,
// readers see a stable snapshot, and Backup produces an openable copy.
#define BOOST_TEST_MODULE store_test
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cerrno>
#include <ostream>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "test_support.h"

namespace offbrand {

// For BOOST_TEST messages; found by argument-dependent lookup.
std::ostream& operator<<(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}

namespace {

using test::TempDir;

std::unique_ptr<Store> OpenStore(const StoreOptions& options) {
  auto store = Store::Open(options);
  BOOST_REQUIRE_MESSAGE(store.ok(), "Store::Open: " << store.status().ToString());
  return std::move(*store);
}

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  StoreOptions options;
  options.dir = dir;
  options.map_size_bytes = 8ull << 20;
  return OpenStore(options);
}

// The value of `key` in `db`, or "<absent>".
std::string ReadValue(Store& store, Db db, const std::string& key) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::string_view v;
  Status s = (*txn)->Get(db, key, &v);
  if (s.IsNotFound()) return "<absent>";
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return std::string(v);
}

Status PutOne(Store& store, const std::string& key, const std::string& value) {
  return store.Write([&](WriteTxn& txn) { return txn.Put(Db::kMeta, key, value); });
}

OutboxRecord ActivityRecord(const std::string& foreign_id) {
  OutboxRecord rec;
  rec.op = OutboxOp::kActivityAdd;
  rec.feed_group = "User";
  rec.feed_id = "1";
  rec.foreign_id = foreign_id;
  rec.time = "2024-01-02T03:04:05.000000";
  rec.body = "{\"actor\":\"1\",\"verb\":\"post\",\"object\":\"" + foreign_id + "\"}";
  rec.entity = foreign_id;
  return rec;
}

BOOST_AUTO_TEST_CASE(WriteCommitsEveryPutOfTheClosure) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Status s = store->Write([](WriteTxn& txn) {
    Status a = txn.Put(Db::kMeta, "a", "1");
    if (!a.ok()) return a;
    return txn.Put(Db::kUsersByName, "ada", U64Key(7));
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(ReadValue(*store, Db::kMeta, "a") == "1");
  BOOST_TEST(ReadValue(*store, Db::kUsersByName, "ada") == U64Key(7));
  BOOST_TEST(store->writes() == 1u);
}

BOOST_AUTO_TEST_CASE(FailedClosureLeavesNothingAndReturnsItsStatus) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Status s = store->Write([](WriteTxn& txn) {
    Status a = txn.Put(Db::kMeta, "half", "written");
    if (!a.ok()) return a;
    Result<uint64_t> id = txn.NextId("thing");
    if (!id.ok()) return id.status();
    return Status::Conflict("taken", "username taken", "username");
  });
  BOOST_TEST(s.code() == Status::Code::kConflict);
  BOOST_TEST(s.error_code() == "taken");
  BOOST_TEST(ReadValue(*store, Db::kMeta, "half") == "<absent>");
  BOOST_TEST(ReadValue(*store, Db::kMeta, "next_id:thing") == "<absent>");
  BOOST_TEST(!store->failed());
}

BOOST_AUTO_TEST_CASE(ThrowingClosureIsAnInternalErrorAndLeavesNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Status s = store->Write([](WriteTxn& txn) -> Status {
    (void)txn.Put(Db::kMeta, "thrown", "x");
    throw std::runtime_error("boom");
  });
  BOOST_TEST(s.code() == Status::Code::kInternal);
  BOOST_TEST(ReadValue(*store, Db::kMeta, "thrown") == "<absent>");
  // The store still accepts writes afterwards.
  BOOST_REQUIRE(PutOne(*store, "after", "ok").ok());
  BOOST_TEST(ReadValue(*store, Db::kMeta, "after") == "ok");
}

// A failing closure aborts only its own nested transaction: the other writes
// of the same group commit are committed. Closures record store.commits() when
// they run, which is equal for closures of one batch.
BOOST_AUTO_TEST_CASE(FailedClosureDoesNotAbortTheOthersInItsBatch) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  constexpr int kWriters = 12;
  std::atomic<int> started{0};
  std::vector<uint64_t> batch_of(kWriters, 0);
  std::vector<Status> results(kWriters);

  // Holds the writer thread so the next closures queue up into one batch.
  Status blocker_result;
  std::thread blocker([&] {
    blocker_result = store->Write([&](WriteTxn&) {
      while (started.load() < kWriters) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return Status::Ok();
    });
  });
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      started++;
      results[i] = store->Write([&, i](WriteTxn& txn) {
        batch_of[i] = store->commits();
        Status s = txn.Put(Db::kMeta, "w" + std::to_string(i), "v");
        if (!s.ok()) return s;
        if (i % 3 == 0) return Status::Invalid("name", "odd one out");
        return Status::Ok();
      });
    });
  }
  for (auto& t : threads) t.join();
  blocker.join();
  BOOST_TEST(blocker_result.ok());

  bool failed_and_ok_shared_batch = false;
  for (int i = 0; i < kWriters; ++i) {
    const std::string key = "w" + std::to_string(i);
    if (i % 3 == 0) {
      BOOST_TEST(results[i].code() == Status::Code::kInvalidField);
      BOOST_TEST(ReadValue(*store, Db::kMeta, key) == "<absent>");
      for (int j = 0; j < kWriters; ++j) {
        if (j % 3 != 0 && batch_of[j] == batch_of[i]) failed_and_ok_shared_batch = true;
      }
    } else {
      BOOST_TEST(results[i].ok(), key << ": " << results[i].ToString());
      BOOST_TEST(ReadValue(*store, Db::kMeta, key) == "v");
    }
  }
  BOOST_TEST(failed_and_ok_shared_batch);
}

BOOST_AUTO_TEST_CASE(ValuesSurviveReopen) {
  TempDir dir;
  {
    auto store = OpenStore(dir.path());
    for (int i = 0; i < 50; ++i) {
      BOOST_REQUIRE(PutOne(*store, "key" + std::to_string(i), "value" + std::to_string(i)).ok());
    }
    BOOST_REQUIRE(store->Write([](WriteTxn& txn) { return txn.Del(Db::kMeta, "key7"); }).ok());
  }
  auto store = OpenStore(dir.path());
  for (int i = 0; i < 50; ++i) {
    const std::string want = i == 7 ? "<absent>" : "value" + std::to_string(i);
    BOOST_TEST(ReadValue(*store, Db::kMeta, "key" + std::to_string(i)) == want);
  }
}

BOOST_AUTO_TEST_CASE(WriteDirectCommitsAndFailsLikeWrite) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  BOOST_REQUIRE(store->WriteDirect([](WriteTxn& txn) { return txn.Put(Db::kMeta, "d", "1"); }).ok());
  Status bad = store->WriteDirect([](WriteTxn& txn) {
    (void)txn.Put(Db::kMeta, "e", "1");
    return Status::Forbidden();
  });
  BOOST_TEST(bad.code() == Status::Code::kForbidden);
  BOOST_TEST(ReadValue(*store, Db::kMeta, "d") == "1");
  BOOST_TEST(ReadValue(*store, Db::kMeta, "e") == "<absent>");
}

// 32 threads write concurrently; every acknowledged write is there after
// reopening, and there were fewer commits (fsyncs) than writes.
BOOST_AUTO_TEST_CASE(GroupCommitSharesFsyncsAndEveryWriteIsDurable) {
  TempDir dir;
  constexpr int kThreads = 32;
  constexpr int kWritesEach = 20;
  uint64_t commits = 0, writes = 0;
  {
    auto store = OpenStore(dir.path());
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kWritesEach; ++i) {
          const std::string key = "g" + std::to_string(t) + ":" + std::to_string(i);
          if (!PutOne(*store, key, key).ok()) failures++;
        }
      });
    }
    for (auto& th : threads) th.join();
    BOOST_TEST(failures.load() == 0);
    commits = store->commits();
    writes = store->writes();
  }
  BOOST_TEST(writes == static_cast<uint64_t>(kThreads * kWritesEach));
  BOOST_TEST(commits < writes, "commits " << commits << " writes " << writes);
  BOOST_TEST(commits > 0u);
  auto store = OpenStore(dir.path());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  BOOST_TEST((*txn)->Count(Db::kMeta) == static_cast<uint64_t>(kThreads * kWritesEach));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kWritesEach; ++i) {
      const std::string key = "g" + std::to_string(t) + ":" + std::to_string(i);
      std::string_view v;
      BOOST_REQUIRE_MESSAGE((*txn)->Get(Db::kMeta, key, &v).ok(), key << " missing");
      BOOST_TEST(v == key);
    }
  }
}

BOOST_AUTO_TEST_CASE(NextIdCountsFromOnePerKindAndSurvivesReopen) {
  TempDir dir;
  std::vector<uint64_t> got;
  auto next = [&](Store& store, const std::string& kind) {
    uint64_t id = 0;
    Status s = store.Write([&](WriteTxn& txn) {
      Result<uint64_t> r = txn.NextId(kind);
      if (!r.ok()) return r.status();
      id = *r;  // assign: the closure may run twice
      return Status::Ok();
    });
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    return id;
  };
  {
    auto store = OpenStore(dir.path());
    BOOST_TEST(next(*store, "user") == 1u);
    BOOST_TEST(next(*store, "user") == 2u);
    BOOST_TEST(next(*store, "collection") == 1u);
    BOOST_TEST(next(*store, "user") == 3u);
  }
  auto store = OpenStore(dir.path());
  BOOST_TEST(next(*store, "user") == 4u);
  BOOST_TEST(next(*store, "collection") == 2u);
}

BOOST_AUTO_TEST_CASE(U64KeysScanInNumericOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  const std::vector<uint64_t> ids = {300, 1, 256, 65536, 2, 255, 1ull << 40};
  BOOST_REQUIRE(store
                    ->Write([&](WriteTxn& txn) {
                      for (uint64_t id : ids) {
                        Status s = txn.Put(Db::kItems, U64Key(id), std::to_string(id));
                        if (!s.ok()) return s;
                      }
                      return Status::Ok();
                    })
                    .ok());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::vector<uint64_t> scanned;
  Cursor c = (*txn)->OpenCursor(Db::kItems);
  for (bool ok = c.First(); ok; ok = c.Next()) scanned.push_back(GetU64BE(c.key()));
  std::vector<uint64_t> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  BOOST_TEST(scanned == sorted, boost::test_tools::per_element());

  BOOST_TEST(c.Seek(U64Key(257)));
  BOOST_TEST(GetU64BE(c.key()) == 300u);
  BOOST_TEST(c.SeekLE(U64Key(257)));
  BOOST_TEST(GetU64BE(c.key()) == 256u);
  BOOST_TEST(c.SeekLE(U64Key(255)));
  BOOST_TEST(GetU64BE(c.key()) == 255u);
  BOOST_TEST(!c.Seek(U64Key((1ull << 40) + 1)));
  BOOST_TEST(U64PairKey(1, 2) == U64Key(1) + U64Key(2));
}

// Sequences are strictly increasing in commit order and never reused, even
// after the newest records were deleted and the store reopened.
BOOST_AUTO_TEST_CASE(OutboxSequencesIncreaseAndAreNeverReused) {
  TempDir dir;
  std::vector<uint64_t> seqs;
  auto enqueue = [&](Store& store, const std::string& foreign_id) {
    OutboxRecord rec;
    Status s = store.Write([&](WriteTxn& txn) {
      rec = ActivityRecord(foreign_id);
      return EnqueueOutbox(txn, &rec);
    });
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    seqs.push_back(rec.seq);
    return rec.seq;
  };
  {
    auto store = OpenStore(dir.path());
    for (int i = 0; i < 5; ++i) enqueue(*store, "Collection:" + std::to_string(i));
    // Delete the newest two, as the sender does after delivery.
    BOOST_REQUIRE(store
                      ->Write([&](WriteTxn& txn) {
                        Status s = txn.Del(Db::kOutbox, U64Key(seqs[4]));
                        if (!s.ok()) return s;
                        return txn.Del(Db::kOutbox, U64Key(seqs[3]));
                      })
                      .ok());
    enqueue(*store, "Collection:5");
  }
  auto store = OpenStore(dir.path());
  enqueue(*store, "Collection:6");
  for (size_t i = 1; i < seqs.size(); ++i) {
    BOOST_TEST(seqs[i] > seqs[i - 1], "seq " << seqs[i] << " after " << seqs[i - 1]);
  }
  std::vector<OutboxRecord> recs = test::OutboxRecords(*store);
  std::vector<std::string> ids;
  for (const auto& r : recs) ids.push_back(r.foreign_id);
  std::vector<std::string> want = {"Collection:0", "Collection:1", "Collection:2", "Collection:5",
                                   "Collection:6"};
  BOOST_TEST(ids == want, boost::test_tools::per_element());
  for (size_t i = 1; i < recs.size(); ++i) BOOST_TEST(recs[i].seq > recs[i - 1].seq);
}

// Concurrent enqueues from many threads: each record gets a distinct sequence
// and the records of the outbox are in sequence order.
BOOST_AUTO_TEST_CASE(ConcurrentEnqueuesGetDistinctSequences) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  constexpr int kThreads = 16, kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Status s = store->Write([&](WriteTxn& txn) {
          OutboxRecord rec = ActivityRecord("C:" + std::to_string(t) + ":" + std::to_string(i));
          return EnqueueOutbox(txn, &rec);
        });
        if (!s.ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  BOOST_TEST(failures.load() == 0);
  std::vector<OutboxRecord> recs = test::OutboxRecords(*store);
  BOOST_REQUIRE(recs.size() == static_cast<size_t>(kThreads * kEach));
  std::set<uint64_t> seen;
  for (size_t i = 0; i < recs.size(); ++i) {
    seen.insert(recs[i].seq);
    if (i > 0) BOOST_TEST(recs[i].seq > recs[i - 1].seq);
  }
  BOOST_TEST(seen.size() == recs.size());
}

// A map of 1 MiB holds several MiB after growing on demand.
BOOST_AUTO_TEST_CASE(MapGrowsWhenFull) {
  TempDir dir;
  StoreOptions options;
  options.dir = dir.path();
  options.map_size_bytes = 1ull << 20;
  options.map_size_bytes_max = 64ull << 20;
  auto store = OpenStore(options);
  uint64_t used = 0, map_before = 0, map_after = 0;
  store->MapUse(&used, &map_before);
  const std::string big(64 * 1024, 'x');
  constexpr int kThreads = 4, kEach = 24;  // 6 MiB in total
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Status s = PutOne(*store, "big" + std::to_string(t) + ":" + std::to_string(i), big);
        if (!s.ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  BOOST_TEST(failures.load() == 0);
  store->MapUse(&used, &map_after);
  BOOST_TEST(map_after > map_before, "map " << map_before << " -> " << map_after);
  BOOST_TEST(used > (4ull << 20));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      BOOST_TEST(ReadValue(*store, Db::kMeta, "big" + std::to_string(t) + ":" + std::to_string(i)) ==
                 big);
    }
  }
  // The grown environment reopens with its data.
  store.reset();
  store = OpenStore(options);
  BOOST_TEST(ReadValue(*store, Db::kMeta, "big0:0") == big);
}

// With growth capped, a write that does not fit fails with 507 and leaves
// nothing of itself; earlier writes stay, and the store is not "failed".
BOOST_AUTO_TEST_CASE(MapAtItsMaximumAnswersStorageFullAndWritesNothing) {
  TempDir dir;
  StoreOptions options;
  options.dir = dir.path();
  options.map_size_bytes = 1ull << 20;
  options.map_size_bytes_max = 2ull << 20;
  auto store = OpenStore(options);
  const std::string chunk(192 * 1024, 'y');
  Status last;
  int written = 0;
  for (int i = 0; i < 64; ++i) {
    last = store->Write([&](WriteTxn& txn) {
      Status s = txn.Put(Db::kMeta, "marker" + std::to_string(i), "m");
      if (!s.ok()) return s;
      OutboxRecord rec = ActivityRecord("Collection:" + std::to_string(i));
      s = EnqueueOutbox(txn, &rec);
      if (!s.ok()) return s;
      return txn.Put(Db::kMeta, "chunk" + std::to_string(i), chunk);
    });
    if (!last.ok()) break;
    written++;
  }
  BOOST_REQUIRE_MESSAGE(!last.ok(), "64 writes of 192 KiB fit in a 2 MiB map?");
  BOOST_TEST(last.code() == Status::Code::kStorageFull, last.ToString());
  BOOST_TEST(last.http_status() == 507);
  BOOST_TEST(written >= 4);  // it did grow from 1 MiB before giving up
  BOOST_TEST(!store->failed());
  const std::string n = std::to_string(written);
  BOOST_TEST(ReadValue(*store, Db::kMeta, "marker" + n) == "<absent>");
  BOOST_TEST(ReadValue(*store, Db::kMeta, "chunk" + n) == "<absent>");
  BOOST_TEST(test::OutboxRecords(*store).size() == static_cast<size_t>(written));
  for (int i = 0; i < written; ++i) {
    BOOST_TEST(ReadValue(*store, Db::kMeta, "marker" + std::to_string(i)) == "m");
  }
  uint64_t used = 0, map = 0;
  store->MapUse(&used, &map);
  BOOST_TEST(map <= options.map_size_bytes_max);
  // Freeing space makes writes possible again (507 is not a failed store).
  Status freed = store->Write([](WriteTxn& txn) {
    for (int i = 0; i < 4; ++i) {
      Status s = txn.Del(Db::kMeta, "chunk" + std::to_string(i));
      if (!s.ok()) return s;
    }
    return Status::Ok();
  });
  BOOST_TEST(freed.ok(), freed.ToString());
  BOOST_TEST(PutOne(*store, "small", "fits").ok());
}

// A read transaction keeps seeing the snapshot it started with.
BOOST_AUTO_TEST_CASE(FailedCommitRefusesEveryLaterWriteUntilReopen) {
  TempDir dir;
  std::atomic<int> fault{0};
  {
    StoreOptions options;
    options.dir = dir.path();
    options.map_size_bytes = 8ull << 20;
    options.commit_fault_for_test = [&fault] { return fault.load(); };
    auto store = OpenStore(options);
    BOOST_REQUIRE(PutOne(*store, "before", "1").ok());
    fault = EIO;  // the next fsync "fails"
    Status s = PutOne(*store, "lost", "1");
    BOOST_TEST(s.code() == Status::Code::kUnavailable);
    BOOST_TEST(s.http_status() == 503);
    BOOST_TEST(store->failed());
    BOOST_TEST(store->failure().find("commit failed") != std::string::npos);
    fault = 0;  // even once the disk "recovers", the state is unknown: refuse
    s = PutOne(*store, "after", "1");
    BOOST_TEST(s.code() == Status::Code::kUnavailable);
    BOOST_TEST(store->WriteDirect([](WriteTxn& txn) {
                 return txn.Put(Db::kMeta, "direct", "1");
               }).code() == Status::Code::kUnavailable);
    // Reads still answer from the last good state.
    BOOST_TEST(ReadValue(*store, Db::kMeta, "before") == "1");
    BOOST_TEST(ReadValue(*store, Db::kMeta, "lost") == "<absent>");
  }
  auto reopened = OpenStore(dir.path());  // a restart clears the failed state
  BOOST_TEST(!reopened->failed());
  BOOST_TEST(ReadValue(*reopened, Db::kMeta, "lost") == "<absent>");
  BOOST_TEST(ReadValue(*reopened, Db::kMeta, "after") == "<absent>");
  BOOST_REQUIRE(PutOne(*reopened, "after", "2").ok());
}

BOOST_AUTO_TEST_CASE(ReadTxnSeesAStableSnapshot) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  BOOST_REQUIRE(PutOne(*store, "k", "old").ok());
  {
    auto before = store->BeginRead();
    BOOST_REQUIRE(before.ok());
    BOOST_REQUIRE(store
                      ->Write([](WriteTxn& txn) {
                        Status s = txn.Put(Db::kMeta, "k", "new");
                        if (!s.ok()) return s;
                        return txn.Put(Db::kMeta, "k2", "added");
                      })
                      .ok());
    std::string_view v;
    BOOST_REQUIRE((*before)->Get(Db::kMeta, "k", &v).ok());
    BOOST_TEST(v == "old");
    BOOST_TEST(!(*before)->Has(Db::kMeta, "k2"));
    BOOST_TEST((*before)->Count(Db::kMeta) == 1u);
  }
  BOOST_TEST(ReadValue(*store, Db::kMeta, "k") == "new");
  BOOST_TEST(ReadValue(*store, Db::kMeta, "k2") == "added");
}

BOOST_AUTO_TEST_CASE(GetOfAMissingKeyIsNotFoundAndLeavesTheValue) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::string_view v = "unchanged";
  Status s = (*txn)->Get(Db::kUsers, U64Key(1), &v);
  BOOST_TEST(s.IsNotFound());
  BOOST_TEST(v == "unchanged");
  BOOST_TEST(!(*txn)->Has(Db::kUsers, U64Key(1)));
}

BOOST_AUTO_TEST_CASE(DeletingAMissingKeyIsNotFound) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  Status s = store->Write([](WriteTxn& txn) { return txn.Del(Db::kMeta, "nothing"); });
  BOOST_TEST(s.IsNotFound());
}

BOOST_AUTO_TEST_CASE(BackupProducesAnOpenableCopyWhileWritersRun) {
  TempDir dir;
  auto store = OpenStore(dir.Sub("data"));
  for (int i = 0; i < 100; ++i) BOOST_REQUIRE(PutOne(*store, "b" + std::to_string(i), "v").ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) (void)PutOne(*store, "during" + std::to_string(i), "v");
  });
  Status s = store->Backup(dir.Sub("backup"));
  stop = true;
  writer.join();
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());

  StoreOptions options;
  options.dir = dir.Sub("backup");
  options.read_only = true;
  auto copy = OpenStore(options);
  for (int i = 0; i < 100; ++i) {
    BOOST_TEST(ReadValue(*copy, Db::kMeta, "b" + std::to_string(i)) == "v");
  }
  // The copy is a consistent snapshot: its "during" keys have no gaps.
  auto txn = copy->BeginRead();
  BOOST_REQUIRE(txn.ok());
  uint64_t during = (*txn)->Count(Db::kMeta) - 100;
  for (uint64_t i = 0; i < during; ++i) {
    BOOST_TEST((*txn)->Has(Db::kMeta, "during" + std::to_string(i)));
  }
}

BOOST_AUTO_TEST_CASE(ReadOnlyOpenOfAMissingDirectoryFailsWithItsName) {
  TempDir dir;
  StoreOptions options;
  options.dir = dir.Sub("nothing-here");
  options.read_only = true;
  auto store = Store::Open(options);
  BOOST_TEST(!store.ok());
  BOOST_TEST(store.status().message().find("nothing-here") != std::string::npos,
             store.status().message());
}

}  // namespace
}  // namespace offbrand
