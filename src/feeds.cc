// The offline feed reads of a user's collections and of a collection's links,
// served from LMDB in one read transaction, with the activities rebuilt from
// the rows by the same writers that build the outbox bodies (activity_json.h)
// and the actor enriched like Stream's enriched reads; plus the shared
// ActorCache and FeedPageCache (feeds.h). The timeline and notifications
// feeds live with the follows.
#include "feeds.h"

#include <lmdb.h>

#include <memory>
#include <string>
#include <utility>

#include "activity_json.h"
#include "collections.h"
#include "http_server.h"
#include "page_scan.h"
#include "users_db.h"

namespace offbrand {

namespace {

// Per-thread memo of actor serializations (feeds.h).
struct ActorMemoEntry {
  uint64_t id = 0;
  std::string username;
  std::string email;
  std::string json;
};
struct ActorMemo {
  ActorMemoEntry entries[ActorCache::kActorMemoEntries];
  size_t next = 0;  // the entry to overwrite on a miss (the oldest)
};

}  // namespace

std::string ActorCache::ActorJson(const User& user) {
  thread_local ActorMemo memo;
  for (const ActorMemoEntry& e : memo.entries) {
    if (e.id == user.id && e.id != 0 && e.username == user.username && e.email == user.email) {
      return e.json;
    }
  }
  JsonOut out;
  WriteActorJson(out, user);
  ActorMemoEntry& e = memo.entries[memo.next];
  memo.next = (memo.next + 1) % kActorMemoEntries;
  e.id = user.id;
  e.username = user.username;
  e.email = user.email;
  e.json = out.Release();
  return e.json;
}

std::string_view ActorCache::Get(uint64_t user_id) {
  for (const auto& [id, json] : actors_) {
    if (id == user_id) return json;
  }
  Result<User> user = LoadUser(txn_, user_id);
  actors_.emplace_back(user_id, user.ok() ? ActorJson(*user) : std::string());
  return actors_.back().second;
}

// ---- FeedPageCache ------------------------------------------------------------

std::shared_ptr<const std::string> FeedPageCache::Find(const std::string& key, uint64_t snapshot) {
  std::lock_guard<std::mutex> lock(mu_);
  if (snapshot != snapshot_) return nullptr;
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second;
}

void FeedPageCache::Insert(const std::string& key, uint64_t snapshot,
                           std::shared_ptr<const std::string> body) {
  if (body == nullptr || body->size() > kEntryBytesMax) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (snapshot < snapshot_) return;
  if (snapshot > snapshot_) {
    entries_.clear();
    order_.clear();
    bytes_ = 0;
    snapshot_ = snapshot;
  }
  if (entries_.count(key) != 0) return;
  while (!order_.empty() && bytes_ + body->size() > kCacheBytesMax) {
    auto oldest = entries_.find(order_.front());
    bytes_ -= oldest->second->size();
    entries_.erase(oldest);
    order_.pop_front();
  }
  bytes_ += body->size();
  order_.push_back(key);
  entries_.emplace(key, std::move(body));
}

size_t FeedPageCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

size_t FeedPageCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

uint64_t SnapshotId(const Txn& txn) { return mdb_txn_id(txn.raw()); }

std::string FeedPageKey(char route, std::string_view subject, int limit, uint64_t before) {
  std::string key(1, route);
  key += '|';
  key += subject;
  key += '|';
  key += std::to_string(limit);
  key += '|';
  key += std::to_string(before);
  return key;
}

namespace {

void WriteStreamId(JsonOut& out, const std::string& stream_id) {
  out.Field("id", stream_id, /*null_if_empty=*/true);
}

// Writes {"items":[...],"next":...}; `scan` fills the array and *next. The
// page is kept in `cache` as `key` of `snapshot`.
template <typename Scan>
Status SendFeedPage(RequestContext& ctx, FeedPageCache& cache, const std::string& key,
                    uint64_t snapshot, int limit, Scan&& scan) {
  JsonOut out(FeedPageBytesHint(limit));
  out.BeginObject().Key("items").BeginArray();
  uint64_t next = 0;
  if (Status s = scan(out, &next); !s.ok()) return s;
  out.EndArray();
  WriteNextCursor(out, next != 0, next);
  out.EndObject();
  auto body = std::make_shared<const std::string>(out.Release());
  cache.Insert(key, snapshot, body);
  SendCachedJson(ctx, *body);
  return Status::Ok();
}

// GET /feeds/user/<username>: the user's collection activities, newest first.
Status UserFeed(RequestContext& ctx, FeedPageCache& cache) {
  int limit = 0;
  uint64_t before = 0;
  if (Status s = NewestFirstPageParams(ctx, &limit, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;
  const std::string username = ctx.Match(1);
  const uint64_t snapshot = SnapshotId(txn);
  const std::string key = FeedPageKey('u', username, limit, before);
  if (auto body = cache.Find(key, snapshot)) {
    SendCachedJson(ctx, *body);
    return Status::Ok();
  }
  Result<User> user = FindUserByName(txn, username);
  if (!user.ok()) return user.status();
  const std::string actor = ActorCache::ActorJson(*user);
  const std::string prefix = U64Key(user->id);

  Collection c;  // reused: decoding assigns into its strings' capacity
  return SendFeedPage(ctx, cache, key, snapshot, limit, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(
        txn, Db::kCollectionsByAuthor, prefix, before, limit, next,
        [&](uint64_t id, std::string_view) -> Status {
          std::string_view row;
          Status s = txn.Get(Db::kCollections, PageIdKey(id), &row);
          if (s.IsNotFound()) return Status::Ok();  // index without row: `offbrand check` reports it
          if (!s.ok()) return s;
          if (!DecodeCollection(row, &c)) {
            return Status::Internal("collection " + std::to_string(id) + " does not decode");
          }
          out.BeginObject();
          WriteStreamId(out, c.stream_id);
          WriteCollectionActivityFields(out, c, actor);
          out.EndObject();
          return Status::Ok();
        });
  });
}

// GET /feeds/collection/<id>: the collection's link activities, newest first.
Status CollectionFeed(RequestContext& ctx, FeedPageCache& cache) {
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  int limit = 0;
  uint64_t before = 0;
  if (Status s = NewestFirstPageParams(ctx, &limit, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;
  const uint64_t snapshot = SnapshotId(txn);
  const std::string key = FeedPageKey('c', std::to_string(*cid), limit, before);
  if (auto body = cache.Find(key, snapshot)) {
    SendCachedJson(ctx, *body);
    return Status::Ok();
  }
  Result<Collection> c = LoadCollection(txn, *cid);
  if (!c.ok()) return c.status();
  const std::string prefix = U64Key(c->id);

  ActorCache actors(txn);
  Item item;  // reused across rows
  return SendFeedPage(ctx, cache, key, snapshot, limit, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(
        txn, Db::kItemsByCollection, prefix, before, limit, next,
        [&](uint64_t id, std::string_view) -> Status {
          std::string_view row;
          Status s = txn.Get(Db::kItems, PageIdKey(id), &row);
          if (s.IsNotFound()) return Status::Ok();
          if (!s.ok()) return s;
          if (!DecodeItem(row, &item)) {
            return Status::Internal("item " + std::to_string(id) + " does not decode");
          }
          out.BeginObject();
          WriteStreamId(out, item.stream_id);
          WriteItemActivityFields(out, item, *c, actors.Get(item.author_id));
          out.EndObject();
          return Status::Ok();
        });
  });
}

}  // namespace

void RegisterFeedRoutes(HttpServer& server) {
  // One cache per server, so per store: snapshot ids are only comparable
  // within one LMDB environment.
  auto cache = std::make_shared<FeedPageCache>();
  server.Route("GET", "/api/v1/feeds/user/([^/]+)", "feeds.user",
               [cache](RequestContext& ctx) { return UserFeed(ctx, *cache); });
  server.Route("GET", "/api/v1/feeds/collection/([^/]+)", "feeds.collection",
               [cache](RequestContext& ctx) { return CollectionFeed(ctx, *cache); });
}

}  // namespace offbrand
