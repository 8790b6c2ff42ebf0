// Schema versioning: the "schema_version" key in kMeta and the table of
// migration steps that brings an older store up to kSchemaVersion.
//
// How a version is decided:
//  - no version and no data at all: a new store, stamped kSchemaVersion;
//  - no version but data: a store written before versions existed (v0),
//    migrated from 0 like any older store;
//  - older than kSchemaVersion: every step from its version up runs, in
//    order, in ONE write transaction together with the new stamp, so a crash
//    leaves either the old store or the fully migrated one;
//  - newer: refused, nothing is written.
#include <string>
#include <string_view>
#include <vector>

#include "collections.h"
#include "follows.h"
#include "offbrand/log.h"
#include "offbrand/model.h"
#include "ops.h"

namespace offbrand {

namespace {

constexpr std::string_view kSchemaVersionKey = "schema_version";

// One migration: rewrites a store of version `from` into version `from + 1`
// inside the caller's write transaction. Steps must be idempotent in effect
// (the closure that runs them may be retried after the map grew).
struct MigrationStep {
  uint64_t from;
  const char* what;  // for the log
  Status (*apply)(WriteTxn& txn);
};

// v0 -> v1: stores written before the version key existed have the v1 layout
// already; the step only exists so the stamp is written by the same path as
// every later migration.
Status MigrateV0ToV1(WriteTxn&) { return Status::Ok(); }

// The duplicate-url index was keyed by collection id + the raw url in v1,
// which LMDB's 511-byte key limit broke for long urls; v2 keys it by
// collection id + SHA-256(url) + item id (collections.h). The index is
// derived data: drop every entry and rebuild it from the item rows.
Status RebuildItemUrlIndex(WriteTxn& txn) {
  std::vector<std::string> old_keys;
  {
    Cursor c = txn.OpenCursor(Db::kItemUrls);
    for (bool ok = c.First(); ok; ok = c.Next()) old_keys.emplace_back(c.key());
  }
  for (const std::string& k : old_keys) {
    Status s = txn.Del(Db::kItemUrls, k);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  std::vector<std::string> new_keys;
  {
    Cursor c = txn.OpenCursor(Db::kItems);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      Item item;
      if (!DecodeItem(c.value(), &item)) {
        return Status::Internal("item row " + std::to_string(GetU64BE(c.key())) +
                                " does not decode");
      }
      new_keys.push_back(ItemUrlKey(item.collection_id, item.url, item.id));
    }
  }
  for (const std::string& k : new_keys) {
    Status s = txn.Put(Db::kItemUrls, k, {});
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// v1 -> v2: the duplicate-url index in its hashed layout, and the follow
// counters and feed heads (follows.h), all derived from the rows.
Status MigrateV1ToV2(WriteTxn& txn) {
  if (Status s = RebuildItemUrlIndex(txn); !s.ok()) return s;
  return RebuildFollowIndexesInTxn(txn);
}

// The steps in order; steps[i].from == i. Add a step here (and bump
// kSchemaVersion in ops.h) whenever the stored layout changes.
constexpr MigrationStep kMigrationSteps[] = {
    {0, "stamp the schema version of a store written before versions existed", MigrateV0ToV1},
    {1, "re-key the duplicate-url index by SHA-256 of the url; derive follow counts and feed heads",
     MigrateV1ToV2},
};
static_assert(sizeof(kMigrationSteps) / sizeof(kMigrationSteps[0]) == kSchemaVersion,
              "one migration step per schema version");

// True when any database other than kMeta holds an entry, or kMeta holds
// anything besides the version (a counter means rows were written once).
bool HasData(const Txn& txn) {
  for (int i = 0; i < static_cast<int>(Db::kCount); ++i) {
    Db db = static_cast<Db>(i);
    if (db == Db::kMeta) continue;
    if (txn.Count(db) > 0) return true;
  }
  Cursor c = txn.OpenCursor(Db::kMeta);
  for (bool ok = c.First(); ok; ok = c.Next()) {
    if (c.key() != kSchemaVersionKey) return true;
  }
  return false;
}

Status TooNew(const Store& store, uint64_t version) {
  return Status::Error(Status::Code::kUnavailable, "schema_too_new",
                       "data dir " + store.dir() + " has schema " + std::to_string(version) +
                           ", this offbrand supports up to " + std::to_string(kSchemaVersion) +
                           ": upgrade offbrand");
}

}  // namespace

uint64_t SchemaVersion(const Txn& txn) {
  std::string_view v;
  if (!txn.Get(Db::kMeta, kSchemaVersionKey, &v).ok() || v.size() != 8) return 0;
  return GetU64BE(v);
}

Status CheckSchemaReadable(const Store& store) {
  auto txn = store.BeginRead();
  if (!txn.ok()) return txn.status();
  const uint64_t found = SchemaVersion(**txn);
  return found > kSchemaVersion ? TooNew(store, found) : Status::Ok();
}

Status CheckAndMigrateSchema(Store& store) {
  uint64_t found = 0;
  {
    auto txn = store.BeginRead();
    if (!txn.ok()) return txn.status();
    found = SchemaVersion(**txn);
  }
  if (found == kSchemaVersion) return Status::Ok();
  if (found > kSchemaVersion) return TooNew(store, found);

  // Decided again inside the transaction: another process (a CLI command
  // next to the server) may have migrated the store meanwhile.
  uint64_t migrated_from = 0;
  bool fresh = false;
  Status s = store.Write([&](WriteTxn& txn) -> Status {
    uint64_t version = SchemaVersion(txn);
    migrated_from = version;
    fresh = false;
    if (version == kSchemaVersion) return Status::Ok();
    if (version > kSchemaVersion) return TooNew(store, version);
    if (version == 0 && !HasData(txn)) {
      fresh = true;
    } else {
      for (uint64_t v = version; v < kSchemaVersion; ++v) {
        const MigrationStep& step = kMigrationSteps[v];
        Status st = step.apply(txn);
        if (!st.ok()) {
          return Status::Internal("schema migration " + std::to_string(v) + " -> " +
                                  std::to_string(v + 1) + " failed: " + st.message());
        }
      }
    }
    return txn.Put(Db::kMeta, kSchemaVersionKey, U64Key(kSchemaVersion));
  });
  if (!s.ok()) return s;
  if (fresh) {
    OB_LOG(kInfo, "new data dir %s: schema version %llu", store.dir().c_str(),
           static_cast<unsigned long long>(kSchemaVersion));
  } else if (migrated_from != kSchemaVersion) {
    for (uint64_t v = migrated_from; v < kSchemaVersion; ++v) {
      OB_LOG(kInfo, "migrated schema %llu -> %llu: %s", static_cast<unsigned long long>(v),
             static_cast<unsigned long long>(v + 1), kMigrationSteps[v].what);
    }
  }
  return Status::Ok();
}

}  // namespace offbrand
