// `offbrand check`: the store's invariants, verified in one read snapshot.
//
// Every row database is walked once and every index once, in both
// directions: a row must have its index entries, and an index entry must
// point to a row that points back. Follow rows must mirror follower rows and
// name existing users and collections; outbox and dead-letter records must
// decode and be self-consistent; the id counters must be ahead of every id in
// use. Each problem is one line of the report; a summary line ends it.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>

#include "collections.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "follows.h"
#include "ops.h"

namespace offbrand {

namespace {

// Report lines past this are counted but not written (a badly broken store
// would otherwise print one line per row).
constexpr uint64_t kReportLinesMax = 1000;

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string Printable(std::string_view key) {
  std::string out;
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

class Checker {
 public:
  Checker(const Txn& txn, std::string* report) : txn_(txn), report_(report) {}

  void Run() {
    CheckSchema();
    CheckUsers();
    CheckUserIndex(Db::kUsersByName, /*by_email=*/false);
    CheckUserIndex(Db::kUsersByEmail, /*by_email=*/true);
    CheckSessions();
    CheckCollections();
    CheckCollectionsByAuthor();
    CheckItems();
    CheckItemsByCollection();
    CheckItemUrls();
    CheckFollowPairs(Db::kFollows, Db::kFollowers, /*to_collection=*/false);
    CheckFollowPairs(Db::kCollectionFollows, Db::kCollectionFollowers, /*to_collection=*/true);
    CheckFollowIndexes(txn_, [this](const std::string& p) { Problem("%s", p.c_str()); });
    CheckOutbox(Db::kOutbox);
    CheckOutbox(Db::kDead);
    CheckCounters();
    Summary();
  }

  uint64_t problems() const { return problems_; }

 private:
  void Problem(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    ++problems_;
    if (problems_ > kReportLinesMax) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    report_->append(buf);
    report_->push_back('\n');
  }

  static unsigned long long U(uint64_t v) { return static_cast<unsigned long long>(v); }

  bool Exists(Db db, uint64_t id) const { return txn_.Has(db, U64Key(id)); }

  // ---- meta ----------------------------------------------------------------
  void CheckSchema() {
    uint64_t version = SchemaVersion(txn_);
    if (version > kSchemaVersion) {
      Problem("meta: schema version %llu is newer than this offbrand (%llu)", U(version),
              U(kSchemaVersion));
    } else if (version < kSchemaVersion && txn_.Count(Db::kUsers) > 0) {
      Problem("meta: schema version %llu, expected %llu (start `offbrand serve` once to migrate)",
              U(version), U(kSchemaVersion));
    }
  }

  // ---- users -----------------------------------------------------------------
  void CheckUsers() {
    Cursor c = txn_.OpenCursor(Db::kUsers);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      ++users_;
      User u;
      if (c.key().size() != 8 || !DecodeUser(c.value(), &u)) {
        Problem("users: row %s does not decode", Printable(c.key()).c_str());
        continue;
      }
      if (GetU64BE(c.key()) != u.id) {
        Problem("users: row key %llu holds user id %llu", U(GetU64BE(c.key())), U(u.id));
      }
      CheckUserIndexEntry(Db::kUsersByName, "users_by_name", ToLower(u.username), u.id);
      CheckUserIndexEntry(Db::kUsersByEmail, "users_by_email", ToLower(u.email), u.id);
    }
  }

  void CheckUserIndexEntry(Db db, const char* name, const std::string& key, uint64_t id) {
    std::string_view v;
    if (!txn_.Get(db, key, &v).ok()) {
      Problem("%s: missing entry \"%s\" for user %llu", name, Printable(key).c_str(), U(id));
    } else if (v.size() != 8 || GetU64BE(v) != id) {
      Problem("%s: entry \"%s\" points to %s instead of user %llu", name, Printable(key).c_str(),
              v.size() == 8 ? std::to_string(GetU64BE(v)).c_str() : "garbage", U(id));
    }
  }

  void CheckUserIndex(Db db, bool by_email) {
    const char* name = DbName(db);
    Cursor c = txn_.OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      std::string key(c.key());
      if (c.value().size() != 8) {
        Problem("%s: entry \"%s\" has a malformed value", name, Printable(key).c_str());
        continue;
      }
      uint64_t id = GetU64BE(c.value());
      std::string_view row;
      User u;
      if (!txn_.Get(Db::kUsers, U64Key(id), &row).ok()) {
        Problem("%s: entry \"%s\" points to missing user %llu", name, Printable(key).c_str(),
                U(id));
      } else if (DecodeUser(row, &u) && ToLower(by_email ? u.email : u.username) != key) {
        Problem("%s: entry \"%s\" points to user %llu whose %s is \"%s\"", name,
                Printable(key).c_str(), U(id), by_email ? "email" : "username",
                Printable(by_email ? u.email : u.username).c_str());
      }
    }
  }

  void CheckSessions() {
    Cursor c = txn_.OpenCursor(Db::kSessions);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      Session s;
      if (!DecodeSession(c.value(), &s)) {
        Problem("sessions: a session row does not decode");
      }
    }
  }

  // ---- collections and items -----------------------------------------------
  void CheckCollections() {
    Cursor c = txn_.OpenCursor(Db::kCollections);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      ++collections_;
      Collection col;
      if (c.key().size() != 8 || !DecodeCollection(c.value(), &col)) {
        Problem("collections: row %s does not decode", Printable(c.key()).c_str());
        continue;
      }
      if (GetU64BE(c.key()) != col.id) {
        Problem("collections: row key %llu holds collection id %llu", U(GetU64BE(c.key())),
                U(col.id));
      }
      if (!Exists(Db::kUsers, col.author_id)) {
        Problem("collections: collection %llu has missing author %llu", U(col.id),
                U(col.author_id));
      }
      if (!txn_.Has(Db::kCollectionsByAuthor, U64PairKey(col.author_id, col.id))) {
        Problem("collections_by_author: missing entry for collection %llu of author %llu",
                U(col.id), U(col.author_id));
      }
    }
  }

  void CheckCollectionsByAuthor() {
    Cursor c = txn_.OpenCursor(Db::kCollectionsByAuthor);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      if (c.key().size() != 16) {
        Problem("collections_by_author: malformed key %s", Printable(c.key()).c_str());
        continue;
      }
      uint64_t author = GetU64BE(c.key());
      uint64_t id = GetU64BE(c.key().substr(8));
      std::string_view row;
      Collection col;
      if (!txn_.Get(Db::kCollections, U64Key(id), &row).ok()) {
        Problem("collections_by_author: entry (%llu, %llu) points to missing collection %llu",
                U(author), U(id), U(id));
      } else if (DecodeCollection(row, &col) && col.author_id != author) {
        Problem("collections_by_author: entry (%llu, %llu) but collection %llu has author %llu",
                U(author), U(id), U(id), U(col.author_id));
      }
    }
  }

  void CheckItems() {
    Cursor c = txn_.OpenCursor(Db::kItems);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      ++items_;
      Item item;
      if (c.key().size() != 8 || !DecodeItem(c.value(), &item)) {
        Problem("items: row %s does not decode", Printable(c.key()).c_str());
        continue;
      }
      if (GetU64BE(c.key()) != item.id) {
        Problem("items: row key %llu holds item id %llu", U(GetU64BE(c.key())), U(item.id));
      }
      if (!Exists(Db::kCollections, item.collection_id)) {
        Problem("items: item %llu belongs to missing collection %llu", U(item.id),
                U(item.collection_id));
      }
      if (!txn_.Has(Db::kItemsByCollection, U64PairKey(item.collection_id, item.id))) {
        Problem("items_by_collection: missing entry for item %llu of collection %llu",
                U(item.id), U(item.collection_id));
      }
      if (!txn_.Has(Db::kItemUrls, ItemUrlKey(item.collection_id, item.url, item.id))) {
        Problem("item_urls: missing entry for item %llu (%s)", U(item.id),
                Printable(item.url).c_str());
      } else if (FindItemByUrl(txn_, item.collection_id, item.url) != item.id) {
        Problem("item_urls: item %llu has the url %s of another item of collection %llu",
                U(item.id), Printable(item.url).c_str(), U(item.collection_id));
      }
    }
  }

  void CheckItemsByCollection() {
    Cursor c = txn_.OpenCursor(Db::kItemsByCollection);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      if (c.key().size() != 16) {
        Problem("items_by_collection: malformed key %s", Printable(c.key()).c_str());
        continue;
      }
      uint64_t cid = GetU64BE(c.key());
      uint64_t id = GetU64BE(c.key().substr(8));
      std::string_view row;
      Item item;
      if (!txn_.Get(Db::kItems, U64Key(id), &row).ok()) {
        Problem("items_by_collection: entry (%llu, %llu) points to missing item %llu", U(cid),
                U(id), U(id));
      } else if (DecodeItem(row, &item) && item.collection_id != cid) {
        Problem("items_by_collection: entry (%llu, %llu) but item %llu is in collection %llu",
                U(cid), U(id), U(id), U(item.collection_id));
      }
    }
  }

  void CheckItemUrls() {
    Cursor c = txn_.OpenCursor(Db::kItemUrls);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      // Key: collection id + SHA-256(url) + item id (collections.h).
      if (c.key().size() != kItemUrlKeyBytes || !c.value().empty()) {
        Problem("item_urls: malformed entry %s", Printable(c.key()).c_str());
        continue;
      }
      uint64_t cid = GetU64BE(c.key());
      uint64_t id = GetU64BE(c.key().substr(kItemUrlPrefixBytes));
      std::string_view row;
      Item item;
      if (!txn_.Get(Db::kItems, U64Key(id), &row).ok()) {
        Problem("item_urls: entry in collection %llu points to missing item %llu", U(cid), U(id));
      } else if (DecodeItem(row, &item) &&
                 (item.collection_id != cid || ItemUrlKey(cid, item.url, id) != c.key())) {
        Problem("item_urls: entry in collection %llu points to item %llu with another url",
                U(cid), U(id));
      }
    }
  }

  // ---- follows -----------------------------------------------------------------
  // `forward` rows are (a, b); `mirror` rows are (b, a). a is always a user;
  // b is a user, or a collection when `to_collection`.
  void CheckFollowPairs(Db forward, Db mirror, bool to_collection) {
    const char* fname = DbName(forward);
    const char* mname = DbName(mirror);
    Db target = to_collection ? Db::kCollections : Db::kUsers;
    const char* target_kind = to_collection ? "collection" : "user";
    Cursor c = txn_.OpenCursor(forward);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      ++follows_;
      if (c.key().size() != 16) {
        Problem("%s: malformed key %s", fname, Printable(c.key()).c_str());
        continue;
      }
      uint64_t a = GetU64BE(c.key());
      uint64_t b = GetU64BE(c.key().substr(8));
      if (!Exists(Db::kUsers, a)) {
        Problem("%s: (%llu, %llu) names missing user %llu", fname, U(a), U(b), U(a));
      }
      if (!Exists(target, b)) {
        Problem("%s: (%llu, %llu) names missing %s %llu", fname, U(a), U(b), target_kind, U(b));
      }
      if (!txn_.Has(mirror, U64PairKey(b, a))) {
        Problem("%s: missing mirror (%llu, %llu) of %s (%llu, %llu)", mname, U(b), U(a), fname,
                U(a), U(b));
      }
    }
    Cursor m = txn_.OpenCursor(mirror);
    for (bool ok = m.First(); ok; ok = m.Next()) {
      if (m.key().size() != 16) {
        Problem("%s: malformed key %s", mname, Printable(m.key()).c_str());
        continue;
      }
      uint64_t b = GetU64BE(m.key());
      uint64_t a = GetU64BE(m.key().substr(8));
      if (!txn_.Has(forward, U64PairKey(a, b))) {
        Problem("%s: (%llu, %llu) has no %s row (%llu, %llu)", mname, U(b), U(a), fname, U(a),
                U(b));
      }
    }
  }

  // ---- outbox and dead letters -------------------------------------------------
  void CheckOutbox(Db db) {
    const char* name = DbName(db);
    Cursor c = txn_.OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      ++(db == Db::kOutbox ? outbox_ : dead_);
      if (c.key().size() != 8) {
        Problem("%s: malformed key %s", name, Printable(c.key()).c_str());
        continue;
      }
      uint64_t seq = GetU64BE(c.key());
      Result<OutboxRecord> rec = DecodeOutboxRecord(c.key(), c.value());
      if (!rec.ok()) {
        Problem("%s: record %llu does not decode: %s", name, U(seq),
                rec.status().message().c_str());
        continue;
      }
      if (rec->seq != seq) {
        Problem("%s: record key %llu holds sequence %llu", name, U(seq), U(rec->seq));
      }
      std::string why = OutboxRecordProblem(*rec);
      if (why.empty()) why = NeverAllocated(*rec);
      if (!why.empty()) {
        Problem("%s: record %llu (%s): %s", name, U(seq), OutboxOpName(rec->op), why.c_str());
      }
      if (db == Db::kDead && txn_.Has(Db::kOutbox, c.key())) {
        Problem("dead: record %llu is also in the outbox", U(seq));
      }
    }
  }

  // What is not sensible about a record that decoded, or "".
  static std::string OutboxRecordProblem(const OutboxRecord& rec) {
    if (rec.entity.empty()) return "no entity";
    switch (rec.op) {
      case OutboxOp::kUserAdd:
      case OutboxOp::kUserUpdate:
      case OutboxOp::kUserDelete:
        if (!IsDigits(rec.foreign_id)) {
          return "user id \"" + rec.foreign_id + "\" is not a number";
        }
        if (rec.entity != UserEntity(rec.foreign_id)) {
          return "entity \"" + rec.entity + "\" is not the user's";
        }
        return "";
      case OutboxOp::kActivityAdd:
      case OutboxOp::kActivityUpdate:
      case OutboxOp::kActivityRemove: {
        std::string_view f = rec.foreign_id;
        bool known = (f.rfind("Collection:", 0) == 0 && IsDigits(f.substr(11))) ||
                     (f.rfind("Content:", 0) == 0 && IsDigits(f.substr(8)));
        if (!known) return "foreign_id \"" + rec.foreign_id + "\" names no collection or link";
        if (rec.entity != rec.foreign_id) {
          return "entity \"" + rec.entity + "\" is not the foreign_id";
        }
        bool has_feed = !rec.feed_group.empty() && !rec.feed_id.empty();
        if (rec.op != OutboxOp::kActivityUpdate && !has_feed) {
          return "no feed";
        }
        return "";
      }
      case OutboxOp::kFollow:
      case OutboxOp::kUnfollow:
        if (rec.feed_group.empty() || rec.feed_id.empty()) return "no feed";
        if (rec.foreign_id.find(':') == std::string::npos) {
          return "target \"" + rec.foreign_id + "\" is not a feed";
        }
        if (rec.entity != FollowEntity(rec.feed_group, rec.feed_id, rec.foreign_id)) {
          return "entity \"" + rec.entity + "\" is not the follow edge's";
        }
        return "";
    }
    return "unknown operation";
  }

  // A record naming an id its counter never handed out ("" when none): a
  // deleted row's records are fine, an id from nowhere is not.
  std::string NeverAllocated(const OutboxRecord& rec) const {
    auto beyond = [this](std::string_view digits, std::initializer_list<const char*> kinds) {
      uint64_t next = 0;
      std::string name;
      if (!IsDigits(digits) || digits.size() > 19 || !Counter(kinds, &next, &name)) return false;
      return std::stoull(std::string(digits)) >= next;
    };
    std::string_view f = rec.foreign_id;
    switch (rec.op) {
      case OutboxOp::kUserAdd:
      case OutboxOp::kUserUpdate:
      case OutboxOp::kUserDelete:
        if (beyond(f, {"user", "users"})) return "user " + rec.foreign_id + " was never created";
        return "";
      case OutboxOp::kActivityAdd:
      case OutboxOp::kActivityUpdate:
      case OutboxOp::kActivityRemove:
        if (f.rfind("Collection:", 0) == 0 && beyond(f.substr(11), {"collection", "collections"})) {
          return rec.foreign_id + " was never created";
        }
        if (f.rfind("Content:", 0) == 0 && beyond(f.substr(8), {"item", "items", "content"})) {
          return rec.foreign_id + " was never created";
        }
        return "";
      case OutboxOp::kFollow:
      case OutboxOp::kUnfollow:
        if (beyond(rec.feed_id, {"user", "users"})) {
          return "follower " + rec.feed_id + " was never created";
        }
        return "";
    }
    return "";
  }

  // ---- counters ------------------------------------------------------------------
  // The largest key of an integer-keyed database (0 when empty).
  uint64_t MaxId(Db db) const {
    Cursor c = txn_.OpenCursor(db);
    if (!c.Last() || c.key().size() != 8) return 0;
    return GetU64BE(c.key());
  }

  // The counter "next_id:<kind>" under any of `kinds` (producers name them
  // singular or plural); false when none exists.
  bool Counter(std::initializer_list<const char*> kinds, uint64_t* next, std::string* name) const {
    for (const char* kind : kinds) {
      std::string key = std::string("next_id:") + kind;
      std::string_view v;
      if (txn_.Get(Db::kMeta, key, &v).ok()) {
        *next = v.size() == 8 ? GetU64BE(v) : 0;
        *name = key;
        return true;
      }
    }
    return false;
  }

  void CheckCounter(const char* what, uint64_t max_id, std::initializer_list<const char*> kinds) {
    uint64_t next = 0;
    std::string name;
    if (!Counter(kinds, &next, &name)) {
      if (max_id > 0) Problem("meta: no id counter for %s (largest id %llu)", what, U(max_id));
      return;
    }
    if (next <= max_id) {
      Problem("meta: %s is %llu but %s id %llu exists (ids would be reused)", name.c_str(),
              U(next), what, U(max_id));
    }
  }

  void CheckCounters() {
    CheckCounter("users", MaxId(Db::kUsers), {"user", "users"});
    CheckCounter("collections", MaxId(Db::kCollections), {"collection", "collections"});
    CheckCounter("items", MaxId(Db::kItems), {"item", "items", "content"});
    uint64_t seq_max = std::max(MaxId(Db::kOutbox), MaxId(Db::kDead));
    CheckCounter("outbox", seq_max, {"outbox"});
  }

  void Summary() {
    if (problems_ > kReportLinesMax) {
      report_->append("... and " + std::to_string(problems_ - kReportLinesMax) +
                      " more problems\n");
    }
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "checked %llu users, %llu collections, %llu links, %llu follows, "
                  "%llu outbox records, %llu dead letters: %llu problem%s\n",
                  U(users_), U(collections_), U(items_), U(follows_), U(outbox_), U(dead_),
                  U(problems_), problems_ == 1 ? "" : "s");
    report_->append(buf);
  }

  const Txn& txn_;
  std::string* report_;
  uint64_t problems_ = 0;
  uint64_t users_ = 0, collections_ = 0, items_ = 0, follows_ = 0, outbox_ = 0, dead_ = 0;
};

}  // namespace

Status CheckInvariants(Store& store, std::string* report) {
  auto txn = store.BeginRead();
  if (!txn.ok()) return txn.status();
  Checker checker(**txn, report);
  checker.Run();
  if (checker.problems() == 0) return Status::Ok();
  return Status::Error(Status::Code::kInternal, "check_failed",
                       std::to_string(checker.problems()) + " invariant problem" +
                           (checker.problems() == 1 ? "" : "s") + " in " + store.dir());
}

}  // namespace offbrand
