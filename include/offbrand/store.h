// Store: the LMDB environment, its named databases, transactions, cursors and
// the group-commit writer.
//
// What it is: one LMDB environment in the data directory, opened once per
// process with MDB_NOTLS, and every named database (Db below) opened once at
// start-up. Readers use ReadTxn; writers hand a closure to Store::Write, which
// runs it on the single writer thread inside a nested transaction of a shared
// batch transaction and returns only after the batch committed durably (one
// fsync for every request in the batch: group commit).
//
// Rules of use (the LMDB caveats, restated for our wrapper):
//  - A ReadTxn, WriteTxn or Cursor belongs to the thread that uses it; values
//    returned as string_view are valid only until the transaction ends or the
//    next write in it. Copy what must outlive the transaction.
//  - Write closures must do no I/O, no waiting and no network calls: they run
//    on the writer thread while other requests wait for the same fsync.
//  - A write closure may run more than once (after the map grew on
//    MDB_MAP_FULL it is retried once in a fresh transaction), so it must
//    assign, not accumulate, into anything it captured by reference.
//  - Keys that are scanned in order are big-endian (PutU64BE / U64Key).
//
// Failures: a closure's non-OK Status aborts only that closure's nested
// transaction and is returned to its caller; the rest of the batch commits.
// MDB_MAP_FULL grows the map (doubling, up to map_size_bytes_max) and retries
// once; still full -> kStorageFull (507). A failed commit (fsync/I/O error)
// leaves the durable state unknown: the store refuses every later write with
// kUnavailable until the process restarts (see failed()).
//
// Thread-safety: Store is thread-safe. Transactions and cursors are not.
#ifndef OFFBRAND_STORE_H_
#define OFFBRAND_STORE_H_

#include <lmdb.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>

#include "offbrand/status.h"

namespace offbrand {

// The named databases. Keys and values of each are described beside them;
// "u64" means an 8-byte big-endian integer. Row encodings live in model.h.
enum class Db : int {
  kMeta = 0,            // ascii name -> value ("schema_version", "next_id:<kind>")
  kUsers,               // u64 user id -> User
  kUsersByName,         // lowercased username -> u64 user id
  kUsersByEmail,        // lowercased email -> u64 user id
  kSessions,            // sha256(token) -> Session (cookies and API tokens)
  kUsedTokens,          // sha256(signed email token) -> u64 expiry ms (single use)
  kCollections,         // u64 collection id -> Collection
  kCollectionsByAuthor, // u64 author id + u64 collection id -> empty
  kItems,               // u64 item id -> Item
  kItemsByCollection,   // u64 collection id + u64 item id -> empty
  kItemUrls,            // u64 collection id + sha256(url) + u64 item id -> empty (collections.h)
  kFollows,             // u64 follower + u64 followed -> u64 created ms
  kFollowers,           // u64 followed + u64 follower -> u64 created ms
  kCollectionFollows,   // u64 user + u64 collection -> u64 created ms
  kCollectionFollowers, // u64 collection + u64 user -> u64 created ms
  kOutbox,              // u64 sequence -> OutboxRecord (outbox.h)
  kDead,                // u64 sequence -> OutboxRecord with last_error
  // Derived from the follow rows and the two id indexes above, in the same
  // transactions (follows.h). Feed heads: u8 feed + u64 owner + u64 head id
  // + u64 source -> empty, one per followed source (a collection for the
  // timeline, an author for notifications) that ever had an entry.
  kFeedHeads,
  kFeedSources,         // u8 feed + u64 source -> u64 newest id ever added
  kFollowCounts,        // u8 Db of a follow index + u64 first id -> u64 rows
  kCount,
};
const char* DbName(Db db);

// Big-endian fixed-width integers, so cursors scan in numeric order.
void PutU64BE(std::string* dst, uint64_t v);
uint64_t GetU64BE(std::string_view src);  // requires src.size() >= 8
std::string U64Key(uint64_t v);
std::string U64PairKey(uint64_t a, uint64_t b);

class Store;

// A cursor over one named database. Positioning functions return true when
// the cursor now rests on an entry; key()/value() are then valid until the
// cursor moves or its transaction ends.
class Cursor {
 public:
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  Cursor(Cursor&& other) noexcept;
  ~Cursor();

  bool First();
  bool Last();
  bool Next();
  bool Prev();
  // First entry with key >= `key`.
  bool Seek(std::string_view key);
  // Last entry with key <= `key`.
  bool SeekLE(std::string_view key);
  bool Valid() const { return valid_; }
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }

 private:
  friend class Txn;
  explicit Cursor(MDB_cursor* c) : cursor_(c) {}
  bool Op(MDB_cursor_op op, std::string_view key = {});
  MDB_cursor* cursor_ = nullptr;
  bool valid_ = false;
  std::string_view key_;
  std::string_view value_;
};

// Read access shared by ReadTxn and WriteTxn.
class Txn {
 public:
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  virtual ~Txn() = default;

  // OK and *value set when found; IsNotFound() when absent (value unchanged).
  Status Get(Db db, std::string_view key, std::string_view* value) const;
  bool Has(Db db, std::string_view key) const;
  Cursor OpenCursor(Db db) const;
  // Number of entries in `db`.
  uint64_t Count(Db db) const;
  MDB_txn* raw() const { return txn_; }

 protected:
  Txn(const Store* store, MDB_txn* txn) : store_(store), txn_(txn) {}
  const Store* store_;
  MDB_txn* txn_;
};

// A read-only snapshot. Holds the store's resize lock in shared mode for its
// lifetime, so keep it short.
class ReadTxn : public Txn {
 public:
  ReadTxn(ReadTxn&&) = delete;
  ~ReadTxn() override;

 private:
  friend class Store;
  ReadTxn(const Store* store, MDB_txn* txn, std::shared_lock<std::shared_mutex> lock)
      : Txn(store, txn), lock_(std::move(lock)) {}
  std::shared_lock<std::shared_mutex> lock_;
};

// A write transaction, only ever given to a Store::Write closure.
class WriteTxn : public Txn {
 public:
  Status Put(Db db, std::string_view key, std::string_view value);
  // Appends at the end of an integer-keyed database (MDB_APPEND); the key
  // must be greater than every existing key.
  Status Append(Db db, std::string_view key, std::string_view value);
  // OK when deleted; IsNotFound() when there was nothing to delete.
  Status Del(Db db, std::string_view key);
  // Next value of the named counter in kMeta ("next_id:<kind>"), from 1.
  Result<uint64_t> NextId(std::string_view kind);
  // Wall-clock now in ms, fixed for the batch (the closure's "now").
  int64_t now_ms() const { return now_ms_; }
  bool map_full() const { return map_full_; }

 private:
  friend class Store;
  WriteTxn(const Store* store, MDB_txn* txn, int64_t now_ms)
      : Txn(store, txn), now_ms_(now_ms) {}
  Status Check(int rc, const char* what);
  int64_t now_ms_;
  bool map_full_ = false;
};

struct StoreOptions {
  std::string dir;                            // created if missing
  uint64_t map_size_bytes = 64ull << 20;      // initial map size
  uint64_t map_size_bytes_max = 16ull << 30;  // growth stops here -> 507
  unsigned readers_max = 126;                 // LMDB reader slots
  size_t batch_writes_max = 256;              // closures per group commit
  bool read_only = false;                     // CLI inspection
  // When false the env is opened with MDB_NOSYNC: for the benchmark's
  // one-fsync-per-write baseline only, never in production.
  bool durable = true;
  // Tests only: called before each group commit; a non-zero return is
  // treated as the commit's error code (the batch is aborted, as a failed
  // fsync would leave it), so the failed-store path can be exercised.
  std::function<int()> commit_fault_for_test;
};

class Store {
 public:
  using WriteFn = std::function<Status(WriteTxn&)>;

  // Opens (creating if needed) the environment and every named database and
  // starts the writer thread (unless read_only). Fails with a message naming
  // the directory and LMDB's error.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  // Stops the writer after draining queued writes, then closes the env.
  ~Store();

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Begins a read snapshot. Fails only if LMDB cannot (reader table full).
  Result<std::unique_ptr<ReadTxn>> BeginRead() const;

  // Runs `fn` in the next group commit and returns its Status once the batch
  // is durable (or the reason it is not: kUnavailable when the store has
  // failed or is shutting down, kStorageFull when the map cannot grow).
  Status Write(WriteFn fn);

  // Runs `fn` in its own transaction with its own commit, bypassing the
  // group-commit queue: the one-commit-per-write baseline of the benchmark
  // and the CLI (a short-lived process with one write).
  Status WriteDirect(const WriteFn& fn);

  // True once a commit failed; writes are refused until restart.
  bool failed() const { return failed_.load(); }
  std::string failure() const;
  // Copies the environment with compaction into `dest_dir` (created 0700 if
  // missing, must not hold a data.mdb); consistent while writers run. The
  // copy is mode 0600. Sets the process umask for the copy: for the CLI.
  Status Backup(const std::string& dest_dir) const;
  // Map bytes in use and the current map size, for /metrics.
  void MapUse(uint64_t* used_bytes, uint64_t* map_bytes) const;
  // Counters since start: commits (fsyncs) and writes committed.
  uint64_t commits() const { return commits_.load(); }
  uint64_t writes() const { return writes_.load(); }
  // Wall time (ms) at which the writer began the batch it is running, 0 when
  // it is idle: for the watchdog (a batch running for seconds is stuck).
  int64_t batch_started_ms() const { return batch_started_ms_.load(); }
  const std::string& dir() const { return options_.dir; }

  MDB_dbi dbi(Db db) const { return dbis_[static_cast<int>(db)]; }
  // Called by the writer after each durable batch (used to wake the sync
  // thread). Thread-safe; the hook runs on the writer thread after each durable
  // batch and must be cheap (it delays the next batch).
  void SetAfterCommitHook(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(hook_mu_);
    after_commit_ = std::move(hook);
  }

 private:
  struct Pending;
  explicit Store(const StoreOptions& options);
  Status OpenEnv();
  void WriterLoop();
  void RunBatch(std::deque<std::shared_ptr<Pending>>* batch);
  bool GrowMap();
  Status HandleResized(int rc) const;

  // Constant after Open.
  StoreOptions options_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbis_[static_cast<int>(Db::kCount)] = {};

  std::mutex hook_mu_;
  std::function<void()> after_commit_;  // guarded by hook_mu_

  // Readers hold this shared; map growth holds it exclusively, because
  // mdb_env_set_mapsize needs no transaction open in this process.
  mutable std::shared_mutex resize_mu_;

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool stopping_ = false;
  std::string failure_;

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> map_size_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<int64_t> batch_started_ms_{0};
  std::thread writer_;
};

}  // namespace offbrand

#endif  // OFFBRAND_STORE_H_
