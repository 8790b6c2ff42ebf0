// Follows: the follow rows in both directions, their counters and the feed
// heads (follows.h), the outbox records they imply, the follower lists, the
// offline Timeline and Notifications feeds and the browser's Stream
// credentials.
//
// Rows: a user->user follow is kFollows[(follower, followed)] and
// kFollowers[(followed, follower)]; a user->collection follow is
// kCollectionFollows[(user, cid)] and kCollectionFollowers[(cid, user)]. Every
// row's value is the u64 creation time in ms.
#include "follows.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "activity_json.h"
#include "collections.h"
#include "feeds.h"
#include "http_server.h"
#include "jwt.h"
#include "json.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "page_scan.h"
#include "users_db.h"

namespace offbrand {

namespace {

// Stream copies at most this many existing activities into the follower's
// feed on follow (CONTRACT.md: default 100, max 1000).
constexpr int kActivityCopyLimit = 100;
constexpr int kActorGravatarSize = 40;

// ---- keys --------------------------------------------------------------------------

// One merged feed: who follows what (`follows`: owner + source, `followers`:
// source + owner) and where a source's entries are (`entries`: source + id).
enum class Feed : uint8_t { kTimeline = 1, kNotifications = 2 };
struct FeedRelation {
  Feed feed;
  Db follows;
  Db followers;
  Db entries;
};
constexpr FeedRelation kTimelineFeed{Feed::kTimeline, Db::kCollectionFollows,
                                     Db::kCollectionFollowers, Db::kItemsByCollection};
constexpr FeedRelation kNotificationsFeed{Feed::kNotifications, Db::kFollows, Db::kFollowers,
                                          Db::kCollectionsByAuthor};

// A key of one tag byte and big-endian u64s, built on the stack.
template <size_t kWords>
class TagKey {
 public:
  TagKey(uint8_t tag, std::initializer_list<uint64_t> words) {
    bytes_[0] = static_cast<char>(tag);
    size_t at = 1;
    for (uint64_t w : words) {
      for (int i = 7; i >= 0; --i) bytes_[at++] = static_cast<char>(w >> (8 * i));
    }
  }
  std::string_view view() const { return std::string_view(bytes_, sizeof(bytes_)); }
  operator std::string_view() const { return view(); }

 private:
  char bytes_[1 + 8 * kWords];
};

// (a, b) as a 16-byte key on the stack.
class PairKey {
 public:
  PairKey(uint64_t a, uint64_t b) {
    for (int i = 0; i < 8; ++i) {
      bytes_[i] = static_cast<char>(a >> (8 * (7 - i)));
      bytes_[8 + i] = static_cast<char>(b >> (8 * (7 - i)));
    }
  }
  operator std::string_view() const { return std::string_view(bytes_, sizeof(bytes_)); }

 private:
  char bytes_[16];
};

constexpr size_t kHeadPrefixBytes = 9;   // feed + owner
constexpr size_t kHeadKeyBytes = 25;     // feed + owner + head + source

TagKey<3> HeadKey(Feed feed, uint64_t owner, uint64_t head, uint64_t source) {
  return TagKey<3>(static_cast<uint8_t>(feed), {owner, head, source});
}
TagKey<1> SourceKey(Feed feed, uint64_t source) {
  return TagKey<1>(static_cast<uint8_t>(feed), {source});
}
TagKey<1> CountKey(Db index, uint64_t first) {
  return TagKey<1>(static_cast<uint8_t>(index), {first});
}

uint64_t U64Value(const Txn& txn, Db db, std::string_view key) {
  std::string_view v;
  if (!txn.Get(db, key, &v).ok() || v.size() != 8) return 0;
  return GetU64BE(v);
}

// The head of `source` in `feed`, 0 when it never had an entry.
uint64_t SourceHead(const Txn& txn, Feed feed, uint64_t source) {
  return U64Value(txn, Db::kFeedSources, SourceKey(feed, source));
}

// Rows under `first` in the follow index `db`, self-follows included.
uint64_t RowCount(const Txn& txn, Db db, uint64_t first) {
  return U64Value(txn, Db::kFollowCounts, CountKey(db, first));
}

Status AddToCount(WriteTxn& txn, Db db, uint64_t first, int delta) {
  const TagKey<1> key = CountKey(db, first);
  const uint64_t n = U64Value(txn, Db::kFollowCounts, key);
  if (delta < 0 && n == 0) return Status::Internal(std::string(DbName(db)) + " count below zero");
  const uint64_t next = delta < 0 ? n - 1 : n + 1;
  if (next == 0) {
    Status s = txn.Del(Db::kFollowCounts, key);
    return s.IsNotFound() ? Status::Ok() : s;
  }
  return txn.Put(Db::kFollowCounts, key, U64Key(next));
}

// ---- edges ---------------------------------------------------------------------------

std::string FeedRef(std::string_view group, uint64_t id) {
  std::string s(group);
  s += ':';
  s += std::to_string(id);
  return s;
}

// Queues a follow or unfollow of `target` by feed <group>:<feed_id>.
Status QueueFollow(WriteTxn& txn, OutboxOp op, const std::string& group, uint64_t feed_id,
                   const std::string& target) {
  OutboxRecord rec;
  rec.op = op;
  rec.feed_group = group;
  rec.feed_id = std::to_string(feed_id);
  rec.foreign_id = target;
  rec.entity = FollowEntity(rec.feed_group, rec.feed_id, target);
  if (op == OutboxOp::kFollow) {
    JsonOut body;
    body.BeginObject().Field("target", target).Key("activity_copy_limit").Int(kActivityCopyLimit);
    body.EndObject();
    rec.body = body.Release();
  }
  return EnqueueOutbox(txn, &rec);
}

// Writes both rows of owner -> source, its counts and its feed head;
// *added is false when it already existed.
Status PutEdge(WriteTxn& txn, const FeedRelation& rel, uint64_t owner, uint64_t source,
               bool* added) {
  *added = false;
  if (txn.Has(rel.follows, PairKey(owner, source))) return Status::Ok();
  const std::string created = U64Key(static_cast<uint64_t>(txn.now_ms()));
  if (Status s = txn.Put(rel.follows, PairKey(owner, source), created); !s.ok()) return s;
  if (Status s = txn.Put(rel.followers, PairKey(source, owner), created); !s.ok()) return s;
  if (Status s = AddToCount(txn, rel.follows, owner, +1); !s.ok()) return s;
  if (Status s = AddToCount(txn, rel.followers, source, +1); !s.ok()) return s;
  if (const uint64_t head = SourceHead(txn, rel.feed, source); head != 0) {
    if (Status s = txn.Put(Db::kFeedHeads, HeadKey(rel.feed, owner, head, source), {}); !s.ok()) {
      return s;
    }
  }
  *added = true;
  return Status::Ok();
}

// Deletes what PutEdge writes; *removed is false when there was no edge.
Status DelEdge(WriteTxn& txn, const FeedRelation& rel, uint64_t owner, uint64_t source,
               bool* removed) {
  *removed = false;
  Status s = txn.Del(rel.follows, PairKey(owner, source));
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return s;
  s = txn.Del(rel.followers, PairKey(source, owner));
  if (!s.ok() && !s.IsNotFound()) return s;
  if (s = AddToCount(txn, rel.follows, owner, -1); !s.ok()) return s;
  if (s = AddToCount(txn, rel.followers, source, -1); !s.ok()) return s;
  if (const uint64_t head = SourceHead(txn, rel.feed, source); head != 0) {
    s = txn.Del(Db::kFeedHeads, HeadKey(rel.feed, owner, head, source));
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  *removed = true;
  return Status::Ok();
}

// Raises the head of `source` to `head` and moves every follower's head row.
Status RaiseSourceHead(WriteTxn& txn, const FeedRelation& rel, uint64_t source, uint64_t head) {
  const uint64_t old = SourceHead(txn, rel.feed, source);
  if (head <= old) return Status::Ok();  // ids only grow; nothing to raise
  if (Status s = txn.Put(Db::kFeedSources, SourceKey(rel.feed, source), U64Key(head)); !s.ok()) {
    return s;
  }
  Cursor c = txn.OpenCursor(rel.followers);
  for (bool ok = c.Seek(PairKey(source, 0)); ok; ok = c.Next()) {
    if (c.key().size() != 16 || GetU64BE(c.key()) != source) break;
    const uint64_t owner = GetU64BE(c.key().substr(8));
    if (old != 0) {
      Status s = txn.Del(Db::kFeedHeads, HeadKey(rel.feed, owner, old, source));
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    if (Status s = txn.Put(Db::kFeedHeads, HeadKey(rel.feed, owner, head, source), {}); !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

Status DropSource(WriteTxn& txn, Feed feed, uint64_t source) {
  Status s = txn.Del(Db::kFeedSources, SourceKey(feed, source));
  return s.IsNotFound() ? Status::Ok() : s;
}

// The second halves of every (first, x) key of `db`, ascending. The cursor is
// closed before returning, so callers may delete what they collected.
std::vector<uint64_t> SecondIds(const Txn& txn, Db db, uint64_t first) {
  std::vector<uint64_t> ids;
  Cursor c = txn.OpenCursor(db);
  for (bool ok = c.Seek(PairKey(first, 0)); ok; ok = c.Next()) {
    if (c.key().size() < 16 || GetU64BE(c.key()) != first) break;
    ids.push_back(GetU64BE(c.key().substr(8)));
  }
  return ids;
}

void SetChanged(bool* changed, bool value) {
  if (changed != nullptr) *changed = value;
}

// Every key of `db`, for clearing it.
std::vector<std::string> AllKeys(const Txn& txn, Db db) {
  std::vector<std::string> keys;
  Cursor c = txn.OpenCursor(db);
  for (bool ok = c.First(); ok; ok = c.Next()) keys.emplace_back(c.key());
  return keys;
}

}  // namespace

// ---- domain ------------------------------------------------------------------

Status FollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower, uint64_t followed,
                       bool* changed) {
  bool added = false;
  Status s = PutEdge(txn, kNotificationsFeed, follower, followed, &added);
  SetChanged(changed, added);
  if (!s.ok() || !added) return s;
  return QueueFollow(txn, OutboxOp::kFollow, config.feed_notifications, follower,
                     FeedRef(config.feed_user, followed));
}

Status UnfollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower,
                         uint64_t followed, bool* changed) {
  bool removed = false;
  Status s = DelEdge(txn, kNotificationsFeed, follower, followed, &removed);
  SetChanged(changed, removed);
  if (!s.ok() || !removed) return s;
  return QueueFollow(txn, OutboxOp::kUnfollow, config.feed_notifications, follower,
                     FeedRef(config.feed_user, followed));
}

Status FollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                             uint64_t collection_id, bool* changed) {
  bool added = false;
  Status s = PutEdge(txn, kTimelineFeed, user, collection_id, &added);
  SetChanged(changed, added);
  if (!s.ok() || !added) return s;
  return QueueFollow(txn, OutboxOp::kFollow, config.feed_timeline, user,
                     FeedRef(config.feed_collections, collection_id));
}

Status UnfollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                               uint64_t collection_id, bool* changed) {
  bool removed = false;
  Status s = DelEdge(txn, kTimelineFeed, user, collection_id, &removed);
  SetChanged(changed, removed);
  if (!s.ok() || !removed) return s;
  return QueueFollow(txn, OutboxOp::kUnfollow, config.feed_timeline, user,
                     FeedRef(config.feed_collections, collection_id));
}

Status DropCollectionFollowersInTxn(WriteTxn& txn, const Config& config, uint64_t collection_id) {
  for (uint64_t user : SecondIds(txn, Db::kCollectionFollowers, collection_id)) {
    Status s = UnfollowCollectionInTxn(txn, config, user, collection_id);
    if (!s.ok()) return s;
  }
  return DropSource(txn, Feed::kTimeline, collection_id);
}

Status DropUserFollowsInTxn(WriteTxn& txn, const Config& config, uint64_t user_id) {
  for (uint64_t followed : SecondIds(txn, Db::kFollows, user_id)) {
    Status s = UnfollowUserInTxn(txn, config, user_id, followed);
    if (!s.ok()) return s;
  }
  for (uint64_t follower : SecondIds(txn, Db::kFollowers, user_id)) {
    Status s = UnfollowUserInTxn(txn, config, follower, user_id);
    if (!s.ok()) return s;
  }
  for (uint64_t cid : SecondIds(txn, Db::kCollectionFollows, user_id)) {
    Status s = UnfollowCollectionInTxn(txn, config, user_id, cid);
    if (!s.ok()) return s;
  }
  return DropSource(txn, Feed::kNotifications, user_id);
}

Status NoteItemAddedInTxn(WriteTxn& txn, uint64_t collection_id, uint64_t item_id) {
  return RaiseSourceHead(txn, kTimelineFeed, collection_id, item_id);
}

Status NoteCollectionCreatedInTxn(WriteTxn& txn, uint64_t author_id, uint64_t collection_id) {
  return RaiseSourceHead(txn, kNotificationsFeed, author_id, collection_id);
}

Status RebuildFollowIndexesInTxn(WriteTxn& txn) {
  for (Db db : {Db::kFeedHeads, Db::kFeedSources, Db::kFollowCounts}) {
    for (const std::string& key : AllKeys(txn, db)) {
      if (Status s = txn.Del(db, key); !s.ok()) return s;
    }
  }
  // Counts: rows per first id of each follow index.
  for (Db db : {Db::kFollows, Db::kFollowers, Db::kCollectionFollows, Db::kCollectionFollowers}) {
    uint64_t first = 0;
    uint64_t n = 0;
    auto flush = [&]() -> Status {
      if (n == 0) return Status::Ok();
      return txn.Put(Db::kFollowCounts, CountKey(db, first), U64Key(n));
    };
    Cursor c = txn.OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      if (c.key().size() != 16) continue;  // `offbrand check` reports it
      const uint64_t a = GetU64BE(c.key());
      if (a != first) {
        if (Status s = flush(); !s.ok()) return s;
        first = a;
        n = 0;
      }
      ++n;
    }
    if (Status s = flush(); !s.ok()) return s;
  }
  // Heads: each source's largest entry, then one row per follow of it.
  for (const FeedRelation* rel : {&kTimelineFeed, &kNotificationsFeed}) {
    std::unordered_map<uint64_t, uint64_t> heads;
    {
      Cursor c = txn.OpenCursor(rel->entries);
      for (bool ok = c.First(); ok; ok = c.Next()) {
        if (c.key().size() != 16) continue;
        uint64_t& head = heads[GetU64BE(c.key())];
        head = std::max(head, GetU64BE(c.key().substr(8)));
      }
    }
    for (const auto& [source, head] : heads) {
      Status s = txn.Put(Db::kFeedSources, SourceKey(rel->feed, source), U64Key(head));
      if (!s.ok()) return s;
    }
    Cursor c = txn.OpenCursor(rel->follows);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      if (c.key().size() != 16) continue;
      auto it = heads.find(GetU64BE(c.key().substr(8)));
      if (it == heads.end()) continue;
      Status s = txn.Put(Db::kFeedHeads, HeadKey(rel->feed, GetU64BE(c.key()), it->second,
                                                 it->first), {});
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

uint64_t CheckFollowIndexes(const Txn& txn,
                            const std::function<void(const std::string&)>& problem) {
  uint64_t problems = 0;
  auto report = [&](const std::string& text) {
    ++problems;
    problem(text);
  };
  auto id = [](uint64_t v) { return std::to_string(v); };
  // Counters against the rows they count.
  for (Db db : {Db::kFollows, Db::kFollowers, Db::kCollectionFollows, Db::kCollectionFollowers}) {
    std::unordered_map<uint64_t, uint64_t> rows;
    Cursor c = txn.OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      if (c.key().size() == 16) ++rows[GetU64BE(c.key())];
    }
    for (const auto& [first, n] : rows) {
      const uint64_t counted = RowCount(txn, db, first);
      if (counted != n) {
        report(std::string("follow_counts: ") + DbName(db) + " of " + id(first) + " says " +
               id(counted) + ", there are " + id(n) + " rows");
      }
    }
    Cursor counts = txn.OpenCursor(Db::kFollowCounts);
    const char tag = static_cast<char>(db);
    for (bool ok = counts.Seek(std::string_view(&tag, 1)); ok && counts.key()[0] == tag;
         ok = counts.Next()) {
      if (counts.key().size() != 9) {
        report("follow_counts: malformed key");
        continue;
      }
      if (rows.count(GetU64BE(counts.key().substr(1))) == 0) {
        report(std::string("follow_counts: ") + DbName(db) + " of " +
               id(GetU64BE(counts.key().substr(1))) + " counts rows that do not exist");
      }
    }
  }
  // Heads against the entries and the follows.
  for (const FeedRelation* rel : {&kTimelineFeed, &kNotificationsFeed}) {
    const std::string feed = rel == &kTimelineFeed ? "timeline" : "notifications";
    std::unordered_map<uint64_t, uint64_t> newest;
    {
      Cursor c = txn.OpenCursor(rel->entries);
      for (bool ok = c.First(); ok; ok = c.Next()) {
        if (c.key().size() != 16) continue;
        uint64_t& n = newest[GetU64BE(c.key())];
        n = std::max(n, GetU64BE(c.key().substr(8)));
      }
    }
    for (const auto& [source, n] : newest) {
      const uint64_t head = SourceHead(txn, rel->feed, source);
      if (head < n) {
        report("feed_sources: " + feed + " head of " + id(source) + " is " + id(head) +
               ", below its newest entry " + id(n) + " (entries would be hidden)");
      }
    }
    Cursor follows = txn.OpenCursor(rel->follows);
    for (bool ok = follows.First(); ok; ok = follows.Next()) {
      if (follows.key().size() != 16) continue;
      const uint64_t owner = GetU64BE(follows.key());
      const uint64_t source = GetU64BE(follows.key().substr(8));
      const uint64_t head = SourceHead(txn, rel->feed, source);
      if (head != 0 && !txn.Has(Db::kFeedHeads, HeadKey(rel->feed, owner, head, source))) {
        report("feed_heads: " + feed + " of " + id(owner) + " lacks source " + id(source));
      }
    }
    Cursor heads = txn.OpenCursor(Db::kFeedHeads);
    const char tag = static_cast<char>(rel->feed);
    for (bool ok = heads.Seek(std::string_view(&tag, 1)); ok && heads.key()[0] == tag;
         ok = heads.Next()) {
      if (heads.key().size() != kHeadKeyBytes) {
        report("feed_heads: malformed key");
        continue;
      }
      const uint64_t owner = GetU64BE(heads.key().substr(1));
      const uint64_t head = GetU64BE(heads.key().substr(kHeadPrefixBytes));
      const uint64_t source = GetU64BE(heads.key().substr(kHeadPrefixBytes + 8));
      if (!txn.Has(rel->follows, PairKey(owner, source))) {
        report("feed_heads: " + feed + " of " + id(owner) + " names " + id(source) +
               ", which it does not follow");
      } else if (SourceHead(txn, rel->feed, source) != head) {
        report("feed_heads: " + feed + " of " + id(owner) + " has head " + id(head) + " for " +
               id(source) + ", the source's is " + id(SourceHead(txn, rel->feed, source)));
      }
    }
  }
  return problems;
}

uint64_t CollectionFollowerCount(const Txn& txn, uint64_t collection_id, uint64_t author_id) {
  uint64_t n = RowCount(txn, Db::kCollectionFollowers, collection_id);
  if (n > 0 && txn.Has(Db::kCollectionFollowers, PairKey(collection_id, author_id))) --n;
  return n;
}

uint64_t UserFollowerCount(const Txn& txn, uint64_t user_id) {
  uint64_t n = RowCount(txn, Db::kFollowers, user_id);
  if (n > 0 && txn.Has(Db::kFollowers, PairKey(user_id, user_id))) --n;
  return n;
}

uint64_t UserFollowingCount(const Txn& txn, uint64_t user_id) {
  uint64_t n = RowCount(txn, Db::kFollows, user_id);
  if (n > 0 && txn.Has(Db::kFollows, PairKey(user_id, user_id))) --n;
  return n;
}

bool Follows(const Txn& txn, uint64_t follower, uint64_t followed) {
  return txn.Has(Db::kFollows, PairKey(follower, followed));
}

// ---- routes ------------------------------------------------------------------

namespace {

constexpr const char* kApi = "/api/v1";
constexpr const char* kUserPath = "/users/([^/]+)";
constexpr const char* kCollectionPath = "/collections/([^/]+)";

std::string ApiPath(const std::string& a, const char* b = "") {
  return std::string(kApi) + a + b;
}

// A confirmed user by name; unconfirmed users do not exist for others.
Result<User> FindConfirmedUser(const Txn& txn, const std::string& username) {
  Result<User> user = FindUserByName(txn, username);
  if (!user.ok()) return user;
  if (!user->confirmed) return Status::NotFound("no such user");
  return user;
}

std::string FollowStateJson(bool following, uint64_t follower_count) {
  JsonOut out;
  out.BeginObject().Key("following").Bool(following);
  out.Key("follower_count").Uint(follower_count).EndObject();
  return out.str();
}

Status SelfFollowRefused() {
  return Status::BadRequest("cannot_follow_self", "you always follow yourself");
}

// PUT/DELETE /users/<username>/follow.
Status ChangeUserFollow(RequestContext& ctx, bool follow) {
  Status s = ctx.RequirePermission(kPermFollow);
  if (!s.ok()) return s;
  const uint64_t me = ctx.viewer()->user.id;
  const std::string username = ctx.Match(1);
  const Config& config = *ctx.svc.config;
  uint64_t follower_count = 0;
  s = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> them = FindConfirmedUser(txn, username);
    if (!them.ok()) return them.status();
    if (them->id == me) return SelfFollowRefused();
    Status w = follow ? FollowUserInTxn(txn, config, me, them->id)
                      : UnfollowUserInTxn(txn, config, me, them->id);
    if (!w.ok()) return w;
    follower_count = UserFollowerCount(txn, them->id);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.SendJson(200, FollowStateJson(follow, follower_count));
  return Status::Ok();
}

// PUT/DELETE /collections/<id>/follow. The author always follows their own
// collection: PUT by them is a no-op (it restores the row should it be
// missing), DELETE by them is refused.
Status ChangeCollectionFollow(RequestContext& ctx, bool follow) {
  Status s = ctx.RequirePermission(kPermFollow);
  if (!s.ok()) return s;
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  const uint64_t me = ctx.viewer()->user.id;
  const Config& config = *ctx.svc.config;
  uint64_t follower_count = 0;
  s = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<Collection> c = LoadCollection(txn, *cid);
    if (!c.ok()) return c.status();
    if (!follow && c->author_id == me) {
      return Status::BadRequest("cannot_unfollow_own_collection",
                                "authors always follow their own collections");
    }
    Status w = follow ? FollowCollectionInTxn(txn, config, me, c->id)
                      : UnfollowCollectionInTxn(txn, config, me, c->id);
    if (!w.ok()) return w;
    follower_count = CollectionFollowerCount(txn, c->id, c->author_id);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.SendJson(200, FollowStateJson(follow, follower_count));
  return Status::Ok();
}

// One page of the (owner, other) rows of `db`, ascending by the other id,
// without `hidden` (the self-follow). {"items":[{id,username,gravatar,since}],
// "next", "count"}.
Status SendEdgePage(RequestContext& ctx, const Txn& txn, Db db, uint64_t owner, uint64_t hidden) {
  int limit = 0;
  std::string cursor;
  Status s = ctx.PageParams(&limit, &cursor);
  if (!s.ok()) return s;
  uint64_t after = 0;
  if (!cursor.empty()) {
    s = DecodeCursor(cursor, &after);
    if (!s.ok()) return s;
  }
  uint64_t count = RowCount(txn, db, owner);
  if (count > 0 && txn.Has(db, PairKey(owner, hidden))) --count;

  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  int written = 0;
  uint64_t last = 0;
  bool more = false;
  Cursor c = txn.OpenCursor(db);
  const PairKey start = after == std::numeric_limits<uint64_t>::max()
                                ? PairKey(owner + 1, 0)
                                : PairKey(owner, after + 1);
  for (bool ok = c.Seek(start); ok; ok = c.Next()) {
    if (c.key().size() < 16 || GetU64BE(c.key()) != owner) break;
    const uint64_t other = GetU64BE(c.key().substr(8));
    if (other == hidden) continue;
    if (written == limit) {
      more = true;
      break;
    }
    Result<User> user = LoadUser(txn, other);
    if (!user.ok()) continue;  // `offbrand check` reports dangling rows
    const int64_t since_ms = c.value().size() >= 8 ? static_cast<int64_t>(GetU64BE(c.value())) : 0;
    out.BeginObject().Key("id").Uint(user->id).Field("username", user->username);
    out.Field("gravatar", GravatarUrl(user->email, kActorGravatarSize));
    out.Field("since", FormatIsoTime(since_ms * 1000)).EndObject();
    ++written;
    last = other;
  }
  out.EndArray();
  WriteNextCursor(out, more, last);
  out.Key("count").Uint(count).EndObject();
  SendJsonOut(ctx, 200, out);
  return Status::Ok();
}

// GET /users/<username>/followers and /following.
Status ListUserEdges(RequestContext& ctx, Db db) {
  Result<std::unique_ptr<ReadTxn>> txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<User> user = FindConfirmedUser(**txn, ctx.Match(1));
  if (!user.ok()) return user.status();
  return SendEdgePage(ctx, **txn, db, user->id, user->id);
}

// GET /collections/<id>/followers.
Status ListCollectionFollowers(RequestContext& ctx) {
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  Result<std::unique_ptr<ReadTxn>> txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Collection> c = LoadCollection(**txn, *cid);
  if (!c.ok()) return c.status();
  return SendEdgePage(ctx, **txn, Db::kCollectionFollowers, c->id, c->author_id);
}

// ---- offline feeds -------------------------------------------------------------

// One page of a merged feed (follows.h): the entries of every source `owner`
// follows in `rel`, ids below `below`, newest first. Calls emit(source, id)
// for each candidate in order until it has accepted `limit` of them; emit
// returns false when the entry's row is gone (it is skipped). Returns the
// last accepted id; *more tells whether another entry exists below it.
//
// Candidates are kept in a max-heap on an id bound:
//  - kHead: `bound` is the source's head, below the page bound: its newest
//    entry, unless that was deleted (then emit declines it);
//  - kIndexed: `bound` is an entry found in the source's index;
//  - kBound: the source has nothing above `bound`; a seek finds its entry.
// A head row is taken from the owner's heads (newest first) only once it
// could beat the best candidate, and a kBound is resolved only once it is
// the best, so sources whose entries are older than the page cost nothing
// and the first page costs about two lookups per entry shown.
//
// All seeks go through one cursor: the followed sources of a page are
// often neighbours in the index, and LMDB answers a seek on the cursor's
// current page without descending from the root.
class FeedMerge {
 public:
  FeedMerge(const Txn& txn, const FeedRelation& rel, uint64_t owner, uint64_t below)
      : rel_(rel), owner_(owner), below_(below), heads_(txn.OpenCursor(Db::kFeedHeads)),
        entries_(txn.OpenCursor(rel.entries)) {}

  template <typename Emit>
  uint64_t Run(int limit, bool* more, Emit&& emit) {
    *more = false;
    if (below_ == 0) return 0;
    const uint64_t kMax = std::numeric_limits<uint64_t>::max();
    bool have_head =
        heads_.SeekLE(HeadKey(rel_.feed, owner_, kMax, kMax)) && HeadValid();
    int accepted = 0;
    uint64_t last = 0;
    for (;;) {
      if (have_head && (heap_.empty() || HeadBound() >= heap_.top().bound)) {
        const uint64_t head = GetU64BE(heads_.key().substr(kHeadPrefixBytes));
        sources_.push_back(GetU64BE(heads_.key().substr(kHeadPrefixBytes + 8)));
        const uint32_t index = static_cast<uint32_t>(sources_.size() - 1);
        heap_.push(head < below_ ? Candidate{head, index, Kind::kHead}
                                 : Candidate{below_ - 1, index, Kind::kBound});
        have_head = heads_.Prev() && HeadValid();
        continue;
      }
      if (heap_.empty()) break;
      const Candidate top = heap_.top();
      // Past the page, only an entry seen in an index proves there is more.
      if (top.kind == Kind::kBound || (accepted == limit && top.kind == Kind::kHead)) {
        heap_.pop();
        Seek(top);
        continue;
      }
      if (accepted == limit) {
        *more = true;
        break;
      }
      heap_.pop();
      if (emit(sources_[top.source], top.bound)) {
        ++accepted;
        last = top.bound;
      }
      StepBelow(top);
    }
    return last;
  }

 private:
  enum class Kind : uint8_t { kBound, kHead, kIndexed };
  struct Candidate {
    uint64_t bound;
    uint32_t source;
    Kind kind;
    // On equal bounds a known entry goes first: it may spare the seek.
    bool operator<(const Candidate& o) const {
      if (bound != o.bound) return bound < o.bound;
      return (kind != Kind::kBound) < (o.kind != Kind::kBound);
    }
  };

  bool HeadValid() const {
    const std::string_view key = heads_.key();
    return key.size() == kHeadKeyBytes && key[0] == static_cast<char>(rel_.feed) &&
           GetU64BE(key.substr(1)) == owner_;
  }
  uint64_t HeadBound() const {
    return std::min(GetU64BE(heads_.key().substr(kHeadPrefixBytes)), below_ - 1);
  }

  // Pushes the source's entry at id <= c.bound, if any.
  void Seek(const Candidate& c) {
    if (entries_.SeekLE(PairKey(sources_[c.source], c.bound))) PushIndexed(c.source);
  }

  // Pushes the source's next candidate below c.bound, once c was taken: a
  // step back when the cursor still sits on c, else a bound to seek later.
  void StepBelow(const Candidate& c) {
    const uint64_t source = sources_[c.source];
    if (c.kind == Kind::kIndexed && entries_.Valid() && entries_.key().size() == 16 &&
        GetU64BE(entries_.key()) == source && GetU64BE(entries_.key().substr(8)) == c.bound) {
      if (entries_.Prev()) PushIndexed(c.source);
      return;
    }
    if (c.bound > 1) heap_.push(Candidate{c.bound - 1, c.source, Kind::kBound});
  }

  // Pushes the entry under the cursor when it belongs to the source.
  void PushIndexed(uint32_t index) {
    const std::string_view key = entries_.key();
    if (key.size() != 16 || GetU64BE(key) != sources_[index]) return;  // source exhausted
    heap_.push(Candidate{GetU64BE(key.substr(8)), index, Kind::kIndexed});
  }

  const FeedRelation& rel_;
  const uint64_t owner_;
  const uint64_t below_;
  Cursor heads_;
  Cursor entries_;
  std::vector<uint64_t> sources_;  // source ids, by the index candidates carry
  std::priority_queue<Candidate> heap_;
};

// Closes the page, keeps it in `cache` and sends it.
void FinishFeed(RequestContext& ctx, JsonOut& out, bool more, uint64_t last,
                FeedPageCache& cache, const std::string& key, uint64_t snapshot) {
  out.EndArray();
  WriteNextCursor(out, more, last);
  out.EndObject();
  auto body = std::make_shared<const std::string>(out.Release());
  cache.Insert(key, snapshot, body);
  SendCachedJson(ctx, *body);
}

// Sends the page `key` of this snapshot when `cache` has it.
bool SendFromCache(RequestContext& ctx, FeedPageCache& cache, const std::string& key,
                   uint64_t snapshot) {
  auto body = cache.Find(key, snapshot);
  if (body == nullptr) return false;
  SendCachedJson(ctx, *body);
  return true;
}

// Reads and decodes a row into *row (reused across calls, so its strings
// keep their capacity). NotFound when absent.
template <typename Row, typename Decode>
Status LoadRow(RowReader& rows, uint64_t id, Row* row, Decode decode) {
  std::string_view bytes;
  Status s = rows.Get(id, &bytes);
  if (!s.ok()) return s;
  if (!decode(bytes, row)) return Status::Internal("row " + std::to_string(id) + " does not decode");
  return Status::Ok();
}

// GET /feeds/timeline: items of every collection the viewer follows.
Status TimelineFeed(RequestContext& ctx, FeedPageCache& cache) {
  Status s = ctx.RequireLogin();
  if (!s.ok()) return s;
  int limit = 0;
  uint64_t below = 0;
  s = NewestFirstPageParams(ctx, &limit, &below);
  if (!s.ok()) return s;
  Result<std::unique_ptr<ReadTxn>> rtxn = ctx.svc.store->BeginRead();
  if (!rtxn.ok()) return rtxn.status();
  const Txn& txn = **rtxn;
  const uint64_t snapshot = SnapshotId(txn);
  const std::string key =
      FeedPageKey('t', std::to_string(ctx.viewer()->user.id), limit, below);
  if (SendFromCache(ctx, cache, key, snapshot)) return Status::Ok();

  // Collections are loaded when their first item is shown.
  std::unordered_map<uint64_t, Collection> collections;
  RowReader item_rows(txn, Db::kItems);
  RowReader collection_rows(txn, Db::kCollections);
  ActorCache actors(txn);
  Item item;
  Status failure;
  JsonOut out(FeedPageBytesHint(limit));
  out.BeginObject().Key("items").BeginArray();
  bool more = false;
  FeedMerge merge(txn, kTimelineFeed, ctx.viewer()->user.id, below);
  const uint64_t last = merge.Run(limit, &more, [&](uint64_t cid, uint64_t id) {
    Status r = LoadRow(item_rows, id, &item, DecodeItem);
    if (!r.ok() || item.collection_id != cid) {
      if (!r.ok() && !r.IsNotFound()) failure = r;
      return false;  // deleted since it became the head, or an index without its row
    }
    auto it = collections.find(cid);
    if (it == collections.end()) {
      Collection c;
      r = LoadRow(collection_rows, cid, &c, DecodeCollection);
      if (!r.ok()) {
        if (!r.IsNotFound()) failure = r;
        return false;
      }
      it = collections.emplace(cid, std::move(c)).first;
    }
    out.BeginObject().Field("id", item.stream_id, /*null_if_empty=*/true);
    WriteItemActivityFields(out, item, it->second, actors.Get(item.author_id));
    out.EndObject();
    return true;
  });
  if (!failure.ok()) return failure;
  FinishFeed(ctx, out, more, last, cache, key, snapshot);
  return Status::Ok();
}

// GET /feeds/notifications: collections created by the users the viewer
// follows, themselves included.
Status NotificationsFeed(RequestContext& ctx, FeedPageCache& cache) {
  Status s = ctx.RequireLogin();
  if (!s.ok()) return s;
  int limit = 0;
  uint64_t below = 0;
  s = NewestFirstPageParams(ctx, &limit, &below);
  if (!s.ok()) return s;
  Result<std::unique_ptr<ReadTxn>> rtxn = ctx.svc.store->BeginRead();
  if (!rtxn.ok()) return rtxn.status();
  const Txn& txn = **rtxn;
  const uint64_t snapshot = SnapshotId(txn);
  const std::string key =
      FeedPageKey('n', std::to_string(ctx.viewer()->user.id), limit, below);
  if (SendFromCache(ctx, cache, key, snapshot)) return Status::Ok();

  ActorCache actors(txn);
  RowReader collection_rows(txn, Db::kCollections);
  Collection c;
  Status failure;
  JsonOut out(FeedPageBytesHint(limit));
  out.BeginObject().Key("items").BeginArray();
  bool more = false;
  FeedMerge merge(txn, kNotificationsFeed, ctx.viewer()->user.id, below);
  const uint64_t last = merge.Run(limit, &more, [&](uint64_t author, uint64_t id) {
    Status r = LoadRow(collection_rows, id, &c, DecodeCollection);
    if (!r.ok() || c.author_id != author) {
      if (!r.ok() && !r.IsNotFound()) failure = r;
      return false;
    }
    out.BeginObject().Field("id", c.stream_id, /*null_if_empty=*/true);
    WriteCollectionActivityFields(out, c, actors.Get(author));
    out.EndObject();
    return true;
  });
  if (!failure.ok()) return failure;
  FinishFeed(ctx, out, more, last, cache, key, snapshot);
  return Status::Ok();
}

// GET /stream/credentials: what a page script needs to read its feeds from
// Stream. The API secret only signs the token; it is never sent.
Status StreamCredentials(RequestContext& ctx) {
  Status s = ctx.RequireLogin();
  if (!s.ok()) return s;
  const Config& config = *ctx.svc.config;
  if (!config.stream_configured()) {
    return Status::Error(Status::Code::kUnavailable, "stream_not_configured",
                         "this server has no Stream API keys");
  }
  const uint64_t me = ctx.viewer()->user.id;
  JsonOut out;
  out.BeginObject();
  out.Field("api_key", config.stream_api_key);
  out.Field("app_id", config.stream_app_id);
  out.Field("base_url", config.stream_base_url);
  out.Field("user_token",
            MakeJwt(config.stream_api_secret, UserTokenClaims(std::to_string(me))));
  out.Key("feeds").BeginObject();
  out.Field("timeline", FeedRef(config.feed_timeline, me));
  out.Field("notifications", FeedRef(config.feed_notifications, me));
  out.Field("user", FeedRef(config.feed_user, me));
  out.EndObject().EndObject();
  SendJsonOut(ctx, 200, out);
  return Status::Ok();
}

}  // namespace

void RegisterFollowRoutes(HttpServer& server) {
  // The feeds first: cpp-httplib tries patterns in order (app.cc). One page
  // cache per server, so per store (snapshot ids are per environment).
  auto cache = std::make_shared<FeedPageCache>();
  server.Route("GET", ApiPath("/feeds/timeline"), "feeds.timeline",
               [cache](RequestContext& ctx) { return TimelineFeed(ctx, *cache); });
  server.Route("GET", ApiPath("/feeds/notifications"), "feeds.notifications",
               [cache](RequestContext& ctx) { return NotificationsFeed(ctx, *cache); });
  server.Route("PUT", ApiPath(kUserPath, "/follow"), "users.follow",
               [](RequestContext& ctx) { return ChangeUserFollow(ctx, true); });
  server.Route("DELETE", ApiPath(kUserPath, "/follow"), "users.unfollow",
               [](RequestContext& ctx) { return ChangeUserFollow(ctx, false); });
  server.Route("GET", ApiPath(kUserPath, "/followers"), "users.followers",
               [](RequestContext& ctx) { return ListUserEdges(ctx, Db::kFollowers); });
  server.Route("GET", ApiPath(kUserPath, "/following"), "users.following",
               [](RequestContext& ctx) { return ListUserEdges(ctx, Db::kFollows); });
  server.Route("PUT", ApiPath(kCollectionPath, "/follow"), "collections.follow",
               [](RequestContext& ctx) { return ChangeCollectionFollow(ctx, true); });
  server.Route("DELETE", ApiPath(kCollectionPath, "/follow"), "collections.unfollow",
               [](RequestContext& ctx) { return ChangeCollectionFollow(ctx, false); });
  server.Route("GET", ApiPath(kCollectionPath, "/followers"), "collections.followers",
               ListCollectionFollowers);
  server.Route("GET", ApiPath("/stream/credentials"), "stream.credentials", StreamCredentials);
}

}  // namespace offbrand
