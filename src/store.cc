// Store: LMDB environment, RAII transactions and the group-commit writer.
#include "offbrand/store.h"

#include <sys/stat.h>

#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>

#include "offbrand/log.h"

namespace offbrand {

namespace {

const char* const kDbNames[] = {
    "meta",       "users",          "users_by_name",     "users_by_email",
    "sessions",   "used_tokens",    "collections",       "collections_by_author",
    "items",      "items_by_collection", "item_urls",    "follows",
    "followers",  "collection_follows", "collection_followers", "outbox",
    "dead",       "feed_heads",     "feed_sources",      "follow_counts",
};
static_assert(sizeof(kDbNames) / sizeof(kDbNames[0]) == static_cast<int>(Db::kCount),
              "every Db has a name");

MDB_val Val(std::string_view s) {
  MDB_val v;
  v.mv_size = s.size();
  v.mv_data = const_cast<char*>(s.data());
  return v;
}

std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

Status LmdbError(int rc, const std::string& what) {
  if (rc == MDB_NOTFOUND) return Status::NotFound(what + ": not found");
  if (rc == MDB_MAP_FULL) {
    return Status::Error(Status::Code::kStorageFull, "storage_full",
                         "the database is full and cannot grow");
  }
  return Status::Internal(what + ": " + mdb_strerror(rc));
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const char* DbName(Db db) { return kDbNames[static_cast<int>(db)]; }

void PutU64BE(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 8);
}

uint64_t GetU64BE(std::string_view src) {
  assert(src.size() >= 8);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(src[i]);
  return v;
}

std::string U64Key(uint64_t v) {
  std::string s;
  s.reserve(8);
  PutU64BE(&s, v);
  return s;
}

std::string U64PairKey(uint64_t a, uint64_t b) {
  std::string s;
  s.reserve(16);
  PutU64BE(&s, a);
  PutU64BE(&s, b);
  return s;
}

// ---- Cursor ---------------------------------------------------------------

Cursor::Cursor(Cursor&& other) noexcept
    : cursor_(other.cursor_), valid_(other.valid_), key_(other.key_), value_(other.value_) {
  other.cursor_ = nullptr;
  other.valid_ = false;
}

Cursor::~Cursor() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

bool Cursor::Op(MDB_cursor_op op, std::string_view key) {
  if (cursor_ == nullptr) return valid_ = false;
  MDB_val k = Val(key), v{0, nullptr};
  int rc = mdb_cursor_get(cursor_, &k, &v, op);
  valid_ = (rc == 0);
  if (valid_) {
    key_ = View(k);
    value_ = View(v);
  } else {
    key_ = {};
    value_ = {};
  }
  return valid_;
}

bool Cursor::First() { return Op(MDB_FIRST); }
bool Cursor::Last() { return Op(MDB_LAST); }
bool Cursor::Next() { return Op(MDB_NEXT); }
bool Cursor::Prev() { return Op(MDB_PREV); }
bool Cursor::Seek(std::string_view key) { return Op(MDB_SET_RANGE, key); }
bool Cursor::SeekLE(std::string_view key) {
  if (Op(MDB_SET_RANGE, key)) {
    if (key_ == key) return true;
    return Prev();
  }
  return Last();
}

// ---- Txn ------------------------------------------------------------------

Status Txn::Get(Db db, std::string_view key, std::string_view* value) const {
  MDB_val k = Val(key), v;
  int rc = mdb_get(txn_, store_->dbi(db), &k, &v);
  if (rc != 0) return LmdbError(rc, std::string("get ") + DbName(db));
  *value = View(v);
  return Status::Ok();
}

bool Txn::Has(Db db, std::string_view key) const {
  std::string_view v;
  return Get(db, key, &v).ok();
}

Cursor Txn::OpenCursor(Db db) const {
  MDB_cursor* c = nullptr;
  if (mdb_cursor_open(txn_, store_->dbi(db), &c) != 0) c = nullptr;
  return Cursor(c);
}

uint64_t Txn::Count(Db db) const {
  MDB_stat st;
  if (mdb_stat(txn_, store_->dbi(db), &st) != 0) return 0;
  return st.ms_entries;
}

ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Status WriteTxn::Check(int rc, const char* what) {
  if (rc == 0) return Status::Ok();
  if (rc == MDB_MAP_FULL) map_full_ = true;
  return LmdbError(rc, what);
}

Status WriteTxn::Put(Db db, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  return Check(mdb_put(txn_, store_->dbi(db), &k, &v, 0), "put");
}

Status WriteTxn::Append(Db db, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  return Check(mdb_put(txn_, store_->dbi(db), &k, &v, MDB_APPEND), "append");
}

Status WriteTxn::Del(Db db, std::string_view key) {
  MDB_val k = Val(key);
  int rc = mdb_del(txn_, store_->dbi(db), &k, nullptr);
  if (rc == MDB_NOTFOUND) return Status::NotFound();
  return Check(rc, "del");
}

Result<uint64_t> WriteTxn::NextId(std::string_view kind) {
  std::string key = "next_id:";
  key.append(kind);
  std::string_view v;
  uint64_t next = 1;
  if (Get(Db::kMeta, key, &v).ok() && v.size() == 8) next = GetU64BE(v);
  Status s = Put(Db::kMeta, key, U64Key(next + 1));
  if (!s.ok()) return s;
  return next;
}

// ---- Store ----------------------------------------------------------------

struct Store::Pending {
  WriteFn fn;
  std::promise<Status> done;
  bool retried = false;
};

Store::Store(const StoreOptions& options) : options_(options) {}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store(options));
  Status s = store->OpenEnv();
  if (!s.ok()) return s;
  if (!options.read_only) store->writer_ = std::thread(&Store::WriterLoop, store.get());
  return store;
}

Status Store::OpenEnv() {
  const std::string& dir = options_.dir;
  if (!options_.read_only && mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create data directory " + dir + ": " + strerror(errno));
  }
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbError(rc, "mdb_env_create");
  mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(Db::kCount) + 2);
  mdb_env_set_maxreaders(env_, options_.readers_max);
  // The map size is a high-water mark of address space, not of disk; an
  // existing larger environment keeps its size (LMDB adopts it on open).
  mdb_env_set_mapsize(env_, options_.map_size_bytes);
  // MDB_NOTLS: read transactions are not tied to threads (request threads
  // come from a pool). Durability: without MDB_NOSYNC every commit fsyncs,
  // which is what lets a reply promise durability.
  unsigned flags = MDB_NOTLS;
  if (options_.read_only) flags |= MDB_RDONLY;
  if (!options_.durable) flags |= MDB_NOSYNC;
  rc = mdb_env_open(env_, dir.c_str(), flags, 0600);
  if (rc != 0) {
    mdb_env_close(env_);
    env_ = nullptr;
    return Status::Internal("cannot open LMDB environment in " + dir + ": " + mdb_strerror(rc));
  }
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  map_size_ = info.me_mapsize;

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, options_.read_only ? MDB_RDONLY : 0, &txn);
  if (rc != 0) return LmdbError(rc, "open databases");
  for (int i = 0; i < static_cast<int>(Db::kCount); ++i) {
    rc = mdb_dbi_open(txn, kDbNames[i], options_.read_only ? 0 : MDB_CREATE, &dbis_[i]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      if (rc == MDB_NOTFOUND) {
        return Status::Internal(std::string("database ") + kDbNames[i] + " missing in " + dir +
                                " (not an offbrand data directory, or never started)");
      }
      return LmdbError(rc, std::string("open database ") + kDbNames[i]);
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return LmdbError(rc, "open databases");
  return Status::Ok();
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (env_ != nullptr) mdb_env_close(env_);
}

Status Store::HandleResized(int rc) const {
  // Another process grew the map: adopt its size.
  if (rc == MDB_MAP_RESIZED) {
    std::unique_lock<std::shared_mutex> lock(resize_mu_);
    mdb_env_set_mapsize(env_, 0);
    return Status::Ok();
  }
  return LmdbError(rc, "begin transaction");
}

Result<std::unique_ptr<ReadTxn>> Store::BeginRead() const {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_lock<std::shared_mutex> lock(resize_mu_);
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc == 0) return std::unique_ptr<ReadTxn>(new ReadTxn(this, txn, std::move(lock)));
    lock.unlock();
    Status s = HandleResized(rc);
    if (!s.ok()) return s;
  }
  return Status::Internal("begin read: map resized twice");
}

std::string Store::failure() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

Status Store::Write(WriteFn fn) {
  if (failed_.load()) {
    return Status::Error(Status::Code::kUnavailable, "storage_failed",
                         "storage failed; writes are refused until restart");
  }
  auto pending = std::make_shared<Pending>();
  pending->fn = std::move(fn);
  std::future<Status> done = pending->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      return Status::Error(Status::Code::kUnavailable, "shutting_down", "the server is stopping");
    }
    queue_.push_back(pending);
  }
  cv_.notify_one();
  return done.get();
}

Status Store::WriteDirect(const WriteFn& fn) {
  if (failed_.load()) {
    return Status::Error(Status::Code::kUnavailable, "storage_failed",
                         "storage failed; writes are refused until restart");
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_lock<std::shared_mutex> lock(resize_mu_);
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
    if (rc != 0) {
      lock.unlock();
      Status s = HandleResized(rc);
      if (!s.ok()) return s;
      continue;
    }
    WriteTxn txn(this, raw, WallMs());
    Status s = fn(txn);
    if (!s.ok()) {
      mdb_txn_abort(raw);
      if (txn.map_full() && attempt == 0) {
        lock.unlock();
        if (GrowMap()) continue;
      }
      return s;
    }
    rc = mdb_txn_commit(raw);  // frees raw even on failure
    if (rc == MDB_MAP_FULL && attempt == 0) {
      lock.unlock();
      if (GrowMap()) continue;
    }
    if (rc != 0) return LmdbError(rc, "commit");
    commits_++;
    writes_++;
    return Status::Ok();
  }
  return LmdbError(MDB_MAP_FULL, "commit");
}

bool Store::GrowMap() {
  std::unique_lock<std::shared_mutex> lock(resize_mu_);
  uint64_t current = map_size_.load();
  if (current >= options_.map_size_bytes_max) return false;
  uint64_t next = std::min<uint64_t>(current * 2, options_.map_size_bytes_max);
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != 0) {
    OB_LOG(kWarning, "store: cannot grow map to %llu bytes: %s",
           static_cast<unsigned long long>(next), mdb_strerror(rc));
    return false;
  }
  map_size_ = next;
  OB_LOG(kInfo, "store: map grown to %llu MiB", static_cast<unsigned long long>(next >> 20));
  return true;
}

void Store::WriterLoop() {
  for (;;) {
    std::deque<std::shared_ptr<Pending>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left
      while (!queue_.empty() && batch.size() < options_.batch_writes_max) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    batch_started_ms_ = WallMs();
    RunBatch(&batch);
    batch_started_ms_ = 0;
  }
}

// Runs one group commit: each closure in a nested transaction of one batch
// transaction, one commit (one fsync) for all of them, then every caller is
// answered. Closures that hit MDB_MAP_FULL are retried once after growing.
void Store::RunBatch(std::deque<std::shared_ptr<Pending>>* batch) {
  auto fail_all = [](std::deque<std::shared_ptr<Pending>>* items, const Status& s) {
    for (auto& p : *items) p->done.set_value(s);
    items->clear();
  };
  if (failed_.load()) {
    fail_all(batch, Status::Error(Status::Code::kUnavailable, "storage_failed",
                                  "storage failed; writes are refused until restart"));
    return;
  }
  while (!batch->empty()) {
    std::deque<std::shared_ptr<Pending>> retry;
    std::vector<std::pair<std::shared_ptr<Pending>, Status>> results;
    results.reserve(batch->size());
    {
      std::shared_lock<std::shared_mutex> lock(resize_mu_);
      MDB_txn* parent = nullptr;
      int rc = mdb_txn_begin(env_, nullptr, 0, &parent);
      if (rc == MDB_MAP_RESIZED) {
        lock.unlock();
        (void)HandleResized(rc);
        continue;
      }
      if (rc != 0) {
        fail_all(batch, LmdbError(rc, "begin write"));
        return;
      }
      const int64_t now_ms = WallMs();
      for (auto& p : *batch) {
        MDB_txn* child = nullptr;
        rc = mdb_txn_begin(env_, parent, 0, &child);
        if (rc != 0) {
          results.emplace_back(p, LmdbError(rc, "begin nested"));
          continue;
        }
        WriteTxn txn(this, child, now_ms);
        Status s;
        try {
          s = p->fn(txn);
        } catch (const std::exception& e) {
          s = Status::Internal(std::string("write failed: ") + e.what());
        }
        if (s.ok()) {
          rc = mdb_txn_commit(child);
          if (rc != 0) {
            if (rc == MDB_MAP_FULL) txn.map_full_ = true;
            s = LmdbError(rc, "commit nested");
          }
        } else {
          mdb_txn_abort(child);
        }
        if (!s.ok() && txn.map_full() && !p->retried) {
          p->retried = true;
          retry.push_back(p);
        } else {
          results.emplace_back(p, s);
        }
      }
      if (options_.commit_fault_for_test && (rc = options_.commit_fault_for_test()) != 0) {
        mdb_txn_abort(parent);
      } else {
        rc = mdb_txn_commit(parent);  // frees parent even when it fails
      }
      if (rc == MDB_MAP_FULL) {
        // Nothing of this batch is on disk; run its good writes again once
        // the map has grown (each at most once more).
        lock.unlock();
        const bool grown = GrowMap();
        std::deque<std::shared_ptr<Pending>> next;
        for (auto& [p, s] : results) {
          if (!s.ok()) {
            p->done.set_value(s);
          } else if (grown && !p->retried) {
            p->retried = true;
            next.push_back(p);
          } else {
            p->done.set_value(LmdbError(MDB_MAP_FULL, "commit"));
          }
        }
        for (auto& p : retry) {
          if (grown) {
            next.push_back(p);
          } else {
            p->done.set_value(LmdbError(MDB_MAP_FULL, "commit"));
          }
        }
        *batch = std::move(next);
        continue;
      }
      if (rc != 0) {
        // The durable state is unknown: refuse every later write (LevelDB's
        // background error). Readers still see the last good snapshot.
        {
          std::lock_guard<std::mutex> guard(mu_);
          failure_ = std::string("commit failed: ") + mdb_strerror(rc);
        }
        failed_ = true;
        OB_LOG(kError, "store: commit failed (%s); refusing writes until restart",
               mdb_strerror(rc));
        for (auto& [p, s] : results) {
          p->done.set_value(Status::Error(Status::Code::kUnavailable, "storage_failed",
                                          "storage failed; writes are refused until restart"));
        }
        fail_all(&retry, Status::Error(Status::Code::kUnavailable, "storage_failed",
                                       "storage failed; writes are refused until restart"));
        batch->clear();
        return;
      }
    }
    commits_++;
    for (auto& [p, s] : results) {
      if (s.ok()) writes_++;
      p->done.set_value(s);
    }
    {
      // Under hook_mu_: SetAfterCommitHook may run on another thread (App
      // start and stop) while this writer finishes a batch.
      std::lock_guard<std::mutex> hook_lock(hook_mu_);
      if (after_commit_) after_commit_();
    }
    if (!retry.empty() && !GrowMap()) {
      fail_all(&retry, LmdbError(MDB_MAP_FULL, "write"));
    }
    *batch = std::move(retry);
  }
}

Status Store::Backup(const std::string& dest_dir) const {
  if (mkdir(dest_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create " + dest_dir + ": " + strerror(errno));
  }
  // LMDB creates the copy with mode 0666 & ~umask: the copy holds password
  // hashes and session hashes, so it gets the data file's own 0600.
  const mode_t old_mask = umask(077);
  int rc = mdb_env_copy2(env_, dest_dir.c_str(), MDB_CP_COMPACT);
  umask(old_mask);
  if (rc != 0) return Status::Internal("backup to " + dest_dir + " failed: " + mdb_strerror(rc));
  return Status::Ok();
}

void Store::MapUse(uint64_t* used_bytes, uint64_t* map_bytes) const {
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &st);
  *used_bytes = static_cast<uint64_t>(info.me_last_pgno + 1) * st.ms_psize;
  *map_bytes = info.me_mapsize;
}

}  // namespace offbrand
