// The offline feed reads of a user's collections and of a collection's links,
// served from LMDB in one read transaction, with the activities rebuilt from
// the rows by the same writers that build the outbox bodies (activity_json.h)
// and the actor enriched like Stream's enriched reads. The timeline and
// notifications feeds live with the follows.
#include <string>
#include <utility>
#include <vector>

#include "activity_json.h"
#include "collections.h"
#include "http_server.h"
#include "page_scan.h"
#include "users_db.h"

namespace offbrand {

namespace {

// Enriched actors seen in this request: a feed page usually has one or two
// authors, so a short list beats a map.
class ActorCache {
 public:
  explicit ActorCache(const Txn& txn) : txn_(txn) {}
  // The {id, username, gravatar} JSON of `user_id`; "" when the user is
  // gone (the activity then shows the plain "SU:<id>" reference).
  std::string_view Get(uint64_t user_id) {
    for (const auto& [id, json] : actors_) {
      if (id == user_id) return json;
    }
    std::string json;
    Result<User> user = LoadUser(txn_, user_id);
    if (user.ok()) {
      JsonOut out;
      WriteActorJson(out, *user);
      json = out.str();
    }
    actors_.emplace_back(user_id, std::move(json));
    return actors_.back().second;
  }

 private:
  const Txn& txn_;
  std::vector<std::pair<uint64_t, std::string>> actors_;
};

void WriteStreamId(JsonOut& out, const std::string& stream_id) {
  out.Field("id", stream_id, /*null_if_empty=*/true);
}

// Writes {"items":[...],"next":...}; `scan` fills the array and *next.
template <typename Scan>
Status SendFeedPage(RequestContext& ctx, Scan&& scan) {
  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  uint64_t next = 0;
  if (Status s = scan(out, &next); !s.ok()) return s;
  out.EndArray().Key("next");
  if (next != 0) {
    out.String(EncodeCursor(next));
  } else {
    out.Null();
  }
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

// GET /feeds/user/<username>: the user's collection activities, newest first.
Status UserFeed(RequestContext& ctx) {
  int limit = 0;
  std::string cursor;
  if (Status s = ctx.PageParams(&limit, &cursor); !s.ok()) return s;
  uint64_t before = 0;
  if (Status s = PageBefore(cursor, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;
  Result<User> user = FindUserByName(txn, ctx.Match(1));
  if (!user.ok()) return user.status();
  JsonOut actor_out;
  WriteActorJson(actor_out, *user);
  const std::string actor = actor_out.str();
  const std::string prefix = U64Key(user->id);

  Collection c;  // reused: decoding assigns into its strings' capacity
  return SendFeedPage(ctx, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(
        txn, Db::kCollectionsByAuthor, prefix, before, limit, next,
        [&](uint64_t id, std::string_view) -> Status {
          std::string_view row;
          Status s = txn.Get(Db::kCollections, U64Key(id), &row);
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
Status CollectionFeed(RequestContext& ctx) {
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  int limit = 0;
  std::string cursor;
  if (Status s = ctx.PageParams(&limit, &cursor); !s.ok()) return s;
  uint64_t before = 0;
  if (Status s = PageBefore(cursor, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;
  Result<Collection> c = LoadCollection(txn, *cid);
  if (!c.ok()) return c.status();
  const std::string prefix = U64Key(c->id);

  ActorCache actors(txn);
  Item item;  // reused across rows
  return SendFeedPage(ctx, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(
        txn, Db::kItemsByCollection, prefix, before, limit, next,
        [&](uint64_t id, std::string_view) -> Status {
          std::string_view row;
          Status s = txn.Get(Db::kItems, U64Key(id), &row);
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
  server.Route("GET", "/api/v1/feeds/user/([^/]+)", "feeds.user", UserFeed);
  server.Route("GET", "/api/v1/feeds/collection/([^/]+)", "feeds.collection", CollectionFeed);
}

}  // namespace offbrand
