// Follows: the follow rows in both directions, the outbox records they imply,
// the follower lists, the offline Timeline and Notifications feeds and the
// browser's Stream credentials.
//
// Rows: a user->user follow is kFollows[(follower, followed)] and
// kFollowers[(followed, follower)]; a user->collection follow is
// kCollectionFollows[(user, cid)] and kCollectionFollowers[(cid, user)]. Every
// row's value is the u64 creation time in ms.
//
// Feeds are k-way merges read in one snapshot: one cursor per followed
// collection (or followed author) positioned by SeekLE at the page's upper
// bound, a max-heap on the next id of each, newest first. Ids increase with
// creation, so id order is time order and the last id is the page cursor.
#include "follows.h"

#include <limits>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "activity_json.h"
#include "collections.h"
#include "http_server.h"
#include "jwt.h"
#include "json.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "users_db.h"

namespace offbrand {

namespace {

// Stream copies at most this many existing activities into the follower's
// feed on follow (CONTRACT.md: default 100, max 1000).
constexpr int kActivityCopyLimit = 100;
constexpr int kActorGravatarSize = 40;

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
    rec.body = body.str();
  }
  return EnqueueOutbox(txn, &rec);
}

// Writes both directions of an edge; *added is false when it already existed.
Status PutEdge(WriteTxn& txn, Db forward, Db reverse, uint64_t a, uint64_t b, bool* added) {
  *added = false;
  const std::string key = U64PairKey(a, b);
  if (txn.Has(forward, key)) return Status::Ok();
  const std::string created = U64Key(static_cast<uint64_t>(txn.now_ms()));
  Status s = txn.Put(forward, key, created);
  if (!s.ok()) return s;
  s = txn.Put(reverse, U64PairKey(b, a), created);
  if (!s.ok()) return s;
  *added = true;
  return Status::Ok();
}

// Deletes both directions of an edge; *removed is false when there was none.
Status DelEdge(WriteTxn& txn, Db forward, Db reverse, uint64_t a, uint64_t b, bool* removed) {
  *removed = false;
  Status s = txn.Del(forward, U64PairKey(a, b));
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return s;
  s = txn.Del(reverse, U64PairKey(b, a));
  if (!s.ok() && !s.IsNotFound()) return s;
  *removed = true;
  return Status::Ok();
}

// The second halves of every (first, x) key of `db`, ascending. The cursor is
// closed before returning, so callers may delete what they collected.
std::vector<uint64_t> SecondIds(const Txn& txn, Db db, uint64_t first) {
  std::vector<uint64_t> ids;
  Cursor c = txn.OpenCursor(db);
  for (bool ok = c.Seek(U64Key(first)); ok; ok = c.Next()) {
    if (c.key().size() < 16 || GetU64BE(c.key()) != first) break;
    ids.push_back(GetU64BE(c.key().substr(8)));
  }
  return ids;
}

uint64_t CountPrefix(const Txn& txn, Db db, uint64_t first) {
  uint64_t n = 0;
  Cursor c = txn.OpenCursor(db);
  for (bool ok = c.Seek(U64Key(first)); ok; ok = c.Next()) {
    if (c.key().size() < 16 || GetU64BE(c.key()) != first) break;
    ++n;
  }
  return n;
}

void SetChanged(bool* changed, bool value) {
  if (changed != nullptr) *changed = value;
}

}  // namespace

// ---- domain ------------------------------------------------------------------

Status FollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower, uint64_t followed,
                       bool* changed) {
  bool added = false;
  Status s = PutEdge(txn, Db::kFollows, Db::kFollowers, follower, followed, &added);
  SetChanged(changed, added);
  if (!s.ok() || !added) return s;
  return QueueFollow(txn, OutboxOp::kFollow, config.feed_notifications, follower,
                     FeedRef(config.feed_user, followed));
}

Status UnfollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower,
                         uint64_t followed, bool* changed) {
  bool removed = false;
  Status s = DelEdge(txn, Db::kFollows, Db::kFollowers, follower, followed, &removed);
  SetChanged(changed, removed);
  if (!s.ok() || !removed) return s;
  return QueueFollow(txn, OutboxOp::kUnfollow, config.feed_notifications, follower,
                     FeedRef(config.feed_user, followed));
}

Status FollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                             uint64_t collection_id, bool* changed) {
  bool added = false;
  Status s = PutEdge(txn, Db::kCollectionFollows, Db::kCollectionFollowers, user, collection_id,
                     &added);
  SetChanged(changed, added);
  if (!s.ok() || !added) return s;
  return QueueFollow(txn, OutboxOp::kFollow, config.feed_timeline, user,
                     FeedRef(config.feed_collections, collection_id));
}

Status UnfollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                               uint64_t collection_id, bool* changed) {
  bool removed = false;
  Status s = DelEdge(txn, Db::kCollectionFollows, Db::kCollectionFollowers, user, collection_id,
                     &removed);
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
  return Status::Ok();
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
  return Status::Ok();
}

uint64_t CollectionFollowerCount(const Txn& txn, uint64_t collection_id, uint64_t author_id) {
  uint64_t n = CountPrefix(txn, Db::kCollectionFollowers, collection_id);
  if (n > 0 && txn.Has(Db::kCollectionFollowers, U64PairKey(collection_id, author_id))) --n;
  return n;
}

uint64_t UserFollowerCount(const Txn& txn, uint64_t user_id) {
  uint64_t n = CountPrefix(txn, Db::kFollowers, user_id);
  if (n > 0 && txn.Has(Db::kFollowers, U64PairKey(user_id, user_id))) --n;
  return n;
}

uint64_t UserFollowingCount(const Txn& txn, uint64_t user_id) {
  uint64_t n = CountPrefix(txn, Db::kFollows, user_id);
  if (n > 0 && txn.Has(Db::kFollows, U64PairKey(user_id, user_id))) --n;
  return n;
}

bool Follows(const Txn& txn, uint64_t follower, uint64_t followed) {
  return txn.Has(Db::kFollows, U64PairKey(follower, followed));
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
  uint64_t count = CountPrefix(txn, db, owner);
  if (count > 0 && txn.Has(db, U64PairKey(owner, hidden))) --count;

  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  int written = 0;
  uint64_t last = 0;
  bool more = false;
  Cursor c = txn.OpenCursor(db);
  const std::string start = after == std::numeric_limits<uint64_t>::max()
                                ? U64PairKey(owner + 1, 0)
                                : U64PairKey(owner, after + 1);
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
  out.EndArray().Key("next");
  if (more) {
    out.String(EncodeCursor(last));
  } else {
    out.Null();
  }
  out.Key("count").Uint(count).EndObject();
  ctx.SendJson(200, out.str());
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

// Actor objects of one request, each user loaded and serialized once.
class ActorCache {
 public:
  explicit ActorCache(const Txn& txn) : txn_(txn) {}
  // The actor JSON {id, username, gravatar}; "" when the user row is gone
  // (the activity then shows the plain "SU:<id>" reference).
  std::string_view Get(uint64_t user_id) {
    auto it = cache_.find(user_id);
    if (it == cache_.end()) {
      std::string json;
      Result<User> user = LoadUser(txn_, user_id);
      if (user.ok()) {
        JsonOut out;
        WriteActorJson(out, *user);
        json = out.str();
      }
      it = cache_.emplace(user_id, std::move(json)).first;
    }
    return it->second;
  }

 private:
  const Txn& txn_;
  std::unordered_map<uint64_t, std::string> cache_;
};

// One source of a merged feed: a cursor over the (owner, id) keys of `db`,
// walking ids downwards.
struct FeedSource {
  uint64_t owner;
  Cursor cursor;
  // The id under the cursor, or 0 when the source is exhausted.
  uint64_t Current() const {
    if (!cursor.Valid() || cursor.key().size() < 16 || GetU64BE(cursor.key()) != owner) return 0;
    return GetU64BE(cursor.key().substr(8));
  }
};

// Merges the (owner, id) rows of `db` for every owner in `owners`, ids below
// `below`, newest first, calling emit(owner_index, id) until it has accepted
// `limit` entries. Returns the last accepted id and sets *more when entries
// remain.
template <typename Emit>
uint64_t MergeNewestFirst(const Txn& txn, Db db, const std::vector<uint64_t>& owners,
                          uint64_t below, int limit, bool* more, Emit emit) {
  *more = false;
  if (below == 0) return 0;
  std::vector<FeedSource> sources;
  sources.reserve(owners.size());
  using Head = std::pair<uint64_t, size_t>;  // (id, source index): max-heap on id
  std::vector<Head> heap_storage;
  heap_storage.reserve(owners.size());
  std::priority_queue<Head, std::vector<Head>> heap(std::less<Head>(), std::move(heap_storage));
  for (uint64_t owner : owners) {
    sources.push_back(FeedSource{owner, txn.OpenCursor(db)});
    FeedSource& src = sources.back();
    src.cursor.SeekLE(U64PairKey(owner, below - 1));
    if (uint64_t id = src.Current(); id != 0) heap.emplace(id, sources.size() - 1);
  }
  int accepted = 0;
  uint64_t last = 0;
  while (!heap.empty()) {
    if (accepted == limit) {
      *more = true;
      break;
    }
    const auto [id, index] = heap.top();
    heap.pop();
    if (emit(index, id)) {
      ++accepted;
      last = id;
    }
    FeedSource& src = sources[index];
    src.cursor.Prev();
    if (uint64_t next = src.Current(); next != 0) heap.emplace(next, index);
  }
  return last;
}

// Parses ?limit= and ?cursor= for a feed: `*below` is the exclusive upper id.
Status FeedPageParams(RequestContext& ctx, int* limit, uint64_t* below) {
  std::string cursor;
  Status s = ctx.PageParams(limit, &cursor);
  if (!s.ok()) return s;
  *below = std::numeric_limits<uint64_t>::max();
  if (!cursor.empty()) return DecodeCursor(cursor, below);
  return Status::Ok();
}

void FinishFeed(RequestContext& ctx, JsonOut& out, bool more, uint64_t last) {
  out.EndArray().Key("next");
  if (more) {
    out.String(EncodeCursor(last));
  } else {
    out.Null();
  }
  out.EndObject();
  ctx.SendJson(200, out.str());
}

// Reads and decodes a row into *row (reused across calls, so its strings
// keep their capacity). NotFound when absent.
template <typename Row, typename Decode>
Status LoadRow(const Txn& txn, Db db, uint64_t id, Row* row, Decode decode) {
  std::string_view bytes;
  Status s = txn.Get(db, U64Key(id), &bytes);
  if (!s.ok()) return s;
  if (!decode(bytes, row)) return Status::Internal("row " + std::to_string(id) + " does not decode");
  return Status::Ok();
}

// GET /feeds/timeline: items of every collection the viewer follows.
Status TimelineFeed(RequestContext& ctx) {
  Status s = ctx.RequireLogin();
  if (!s.ok()) return s;
  int limit = 0;
  uint64_t below = 0;
  s = FeedPageParams(ctx, &limit, &below);
  if (!s.ok()) return s;
  Result<std::unique_ptr<ReadTxn>> rtxn = ctx.svc.store->BeginRead();
  if (!rtxn.ok()) return rtxn.status();
  const Txn& txn = **rtxn;

  const std::vector<uint64_t> cids =
      SecondIds(txn, Db::kCollectionFollows, ctx.viewer()->user.id);
  // Collections are loaded when their first item is shown (a page touches
  // few of them).
  std::vector<std::optional<Collection>> collections(cids.size());
  ActorCache actors(txn);
  Item item;
  Status failure;
  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  bool more = false;
  const uint64_t last = MergeNewestFirst(
      txn, Db::kItemsByCollection, cids, below, limit, &more, [&](size_t index, uint64_t id) {
        if (!collections[index]) {
          Collection c;
          Status r = LoadRow(txn, Db::kCollections, cids[index], &c, DecodeCollection);
          if (!r.ok()) {
            if (!r.IsNotFound()) failure = r;
            return false;
          }
          collections[index] = std::move(c);
        }
        Status r = LoadRow(txn, Db::kItems, id, &item, DecodeItem);
        if (!r.ok()) {
          if (!r.IsNotFound()) failure = r;  // an index without its row: `offbrand check`
          return false;
        }
        out.BeginObject().Field("id", item.stream_id, /*null_if_empty=*/true);
        WriteItemActivityFields(out, item, *collections[index], actors.Get(item.author_id));
        out.EndObject();
        return true;
      });
  if (!failure.ok()) return failure;
  FinishFeed(ctx, out, more, last);
  return Status::Ok();
}

// GET /feeds/notifications: collections created by the users the viewer
// follows, themselves included.
Status NotificationsFeed(RequestContext& ctx) {
  Status s = ctx.RequireLogin();
  if (!s.ok()) return s;
  int limit = 0;
  uint64_t below = 0;
  s = FeedPageParams(ctx, &limit, &below);
  if (!s.ok()) return s;
  Result<std::unique_ptr<ReadTxn>> rtxn = ctx.svc.store->BeginRead();
  if (!rtxn.ok()) return rtxn.status();
  const Txn& txn = **rtxn;

  const std::vector<uint64_t> authors = SecondIds(txn, Db::kFollows, ctx.viewer()->user.id);
  ActorCache actors(txn);
  Collection c;
  Status failure;
  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  bool more = false;
  const uint64_t last = MergeNewestFirst(
      txn, Db::kCollectionsByAuthor, authors, below, limit, &more,
      [&](size_t index, uint64_t id) {
        Status r = LoadRow(txn, Db::kCollections, id, &c, DecodeCollection);
        if (!r.ok()) {
          if (!r.IsNotFound()) failure = r;
          return false;
        }
        out.BeginObject().Field("id", c.stream_id, /*null_if_empty=*/true);
        WriteCollectionActivityFields(out, c, actors.Get(authors[index]));
        out.EndObject();
        return true;
      });
  if (!failure.ok()) return failure;
  FinishFeed(ctx, out, more, last);
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
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

}  // namespace

void RegisterFollowRoutes(HttpServer& server) {
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
  server.Route("GET", ApiPath("/feeds/timeline"), "feeds.timeline", TimelineFeed);
  server.Route("GET", ApiPath("/feeds/notifications"), "feeds.notifications",
               NotificationsFeed);
  server.Route("GET", ApiPath("/stream/credentials"), "stream.credentials", StreamCredentials);
}

}  // namespace offbrand
