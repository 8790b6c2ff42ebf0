// Collections and their links: rows, indexes, the Stream activities they
// queue, and the /collections and /items routes.
#include "collections.h"

#include <sodium.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "activity_json.h"
#include "follows.h"
#include "http_server.h"
#include "offbrand/log.h"
#include "offbrand/outbox.h"
#include "page_scan.h"
#include "users_db.h"

namespace offbrand {

namespace {

constexpr std::string_view kCollectionPrefix = "Collection:";
constexpr std::string_view kContentPrefix = "Content:";

// ---- request bodies ---------------------------------------------------------

// A parsed, validated collection body; has_* tells which fields were given.
struct CollectionFields {
  bool has_name = false;
  bool has_description = false;
  std::string name;
  std::string description;
};

// A parsed, validated item body. An explicit null or "" for an optional
// field (description, image) clears it (has_* true, the string empty); the
// outbox update then unsets it.
struct ItemFields {
  bool has_url = false;
  bool has_title = false;
  bool has_description = false;
  bool has_image = false;
  std::string url;
  std::string title;
  std::string description;
  std::string image;
};

Status CheckText(const char* field, const std::string& s, size_t bytes_min, size_t bytes_max,
                 bool multiline) {
  if (s.size() < bytes_min || s.size() > bytes_max) {
    return Status::Invalid(field, std::string(field) + " must be " + std::to_string(bytes_min) +
                                      "-" + std::to_string(bytes_max) + " bytes");
  }
  if (!IsCleanText(s, multiline)) {
    return Status::Invalid(field, std::string(field) +
                                      " must be UTF-8 text without control characters");
  }
  return Status::Ok();
}

Status CheckUrl(const char* field, const std::string& s) {
  if (!IsValidHttpUrl(s)) {
    return Status::Invalid(field, std::string(field) + " must be an absolute http(s) URL of at most " +
                                      std::to_string(kUrlBytesMax) + " bytes");
  }
  return Status::Ok();
}

// Reads an optional/required string field; *present is true when given and
// not null.
Status ReadField(const RequestJson& json, const char* name, bool required, std::string* out,
                 bool* present) {
  if (Status s = json.String(name, out, required); !s.ok()) return s;
  *present = json.Has(name) && !json.IsNull(name);
  return Status::Ok();
}

// A field every row must keep (a collection's name and description, a
// link's url and title) cannot be cleared: on a PATCH an explicit null is
// 422 invalid_field, not "leave it as it is"; on a create too (rather than
// 400 wrong_type), so both answer a null the same way.
Status RefuseNull(const RequestJson& json, const char* name) {
  if (!json.IsNull(name)) return Status::Ok();
  return Status::Invalid(name, std::string(name) + " cannot be null");
}

Status ParseCollectionFields(RequestContext& ctx, bool create, CollectionFields* f) {
  RequestJson json;
  if (Status s = ctx.ParseJson(&json, {"name", "description"}); !s.ok()) return s;
  for (const char* required : {"name", "description"}) {
    if (Status s = RefuseNull(json, required); !s.ok()) return s;
  }
  if (Status s = ReadField(json, "name", create, &f->name, &f->has_name); !s.ok()) return s;
  if (Status s = ReadField(json, "description", create, &f->description, &f->has_description);
      !s.ok()) {
    return s;
  }
  if (f->has_name) {
    if (Status s = CheckText("name", f->name, 1, kCollectionNameBytesMax, false); !s.ok()) return s;
  }
  if (f->has_description) {
    if (Status s = CheckText("description", f->description, 1, kCollectionDescriptionBytesMax,
                             true);
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

Status ParseItemFields(RequestContext& ctx, bool create, ItemFields* f) {
  RequestJson json;
  if (Status s = ctx.ParseJson(&json, {"url", "title", "description", "image"}); !s.ok()) return s;
  for (const char* required : {"url", "title"}) {
    if (Status s = RefuseNull(json, required); !s.ok()) return s;
  }
  if (Status s = ReadField(json, "url", create, &f->url, &f->has_url); !s.ok()) return s;
  if (Status s = ReadField(json, "title", create, &f->title, &f->has_title); !s.ok()) return s;
  if (Status s = ReadField(json, "description", false, &f->description, &f->has_description);
      !s.ok()) {
    return s;
  }
  if (Status s = ReadField(json, "image", false, &f->image, &f->has_image); !s.ok()) return s;
  // An explicit null clears an optional field.
  if (json.IsNull("description")) {
    f->has_description = true;
    f->description.clear();
  }
  if (json.IsNull("image")) {
    f->has_image = true;
    f->image.clear();
  }

  if (f->has_url) {
    if (Status s = CheckUrl("url", f->url); !s.ok()) return s;
  }
  if (f->has_title) {
    if (Status s = CheckText("title", f->title, 1, kItemTitleBytesMax, false); !s.ok()) return s;
  }
  if (f->has_description) {
    if (Status s = CheckText("description", f->description, 0, kItemDescriptionBytesMax, true);
        !s.ok()) {
      return s;
    }
  }
  if (f->has_image && !f->image.empty()) {
    if (Status s = CheckUrl("image", f->image); !s.ok()) return s;
  }
  return Status::Ok();
}

// ---- rows and records ---------------------------------------------------------

bool MayEdit(const Viewer& viewer, uint64_t author_id) {
  return viewer.user.id == author_id || viewer.user.is_admin();
}

Status PutCollectionRow(WriteTxn& txn, const Collection& c) {
  return txn.Put(Db::kCollections, U64Key(c.id), EncodeCollection(c));
}

Status PutItemRow(WriteTxn& txn, const Item& i) {
  return txn.Put(Db::kItems, U64Key(i.id), EncodeItem(i));
}

Status EnqueueActivity(WriteTxn& txn, OutboxOp op, const std::string& group, uint64_t feed_id,
                       std::string foreign_id, int64_t created_us, std::string body) {
  OutboxRecord rec;
  rec.op = op;
  rec.feed_group = group;
  rec.feed_id = std::to_string(feed_id);
  rec.foreign_id = std::move(foreign_id);
  rec.time = FormatStreamTime(created_us);
  rec.body = std::move(body);
  rec.entity = rec.foreign_id;
  return EnqueueOutbox(txn, &rec);
}

// A partial update of one activity: string fields to set, fields to set to
// a JSON value (compact JSON text), fields to unset.
struct Change {
  std::vector<std::pair<const char*, std::string>> set;
  std::vector<std::pair<const char*, std::string>> set_json;
  std::vector<const char*> unset;
  bool empty() const { return set.empty() && set_json.empty() && unset.empty(); }
};

// {"foreign_id","time","set":{..},"unset":[..]}: one entry of Stream's
// `changes`; empty set/unset are left out.
std::string ChangeJson(const std::string& foreign_id, int64_t created_us, const Change& change) {
  JsonOut out;
  out.BeginObject();
  out.Field("foreign_id", foreign_id);
  out.Field("time", FormatStreamTime(created_us));
  if (!change.set.empty() || !change.set_json.empty()) {
    out.Key("set").BeginObject();
    for (const auto& [key, value] : change.set) out.Field(key, value);
    for (const auto& [key, json] : change.set_json) out.Key(key).Raw(json);
    out.EndObject();
  }
  if (!change.unset.empty()) {
    out.Key("unset").BeginArray();
    for (const char* key : change.unset) out.String(key);
    out.EndArray();
  }
  out.EndObject();
  return out.str();
}

// The `collection` field of a link's activity: {"id":"<cid>","name":<name>}.
std::string CollectionRefJson(const Collection& c) {
  JsonOut out;
  out.BeginObject();
  out.Field("id", std::to_string(c.id));
  out.Field("name", c.name);
  out.EndObject();
  return out.str();
}

// The key in kMeta of the newest creation time handed out (u64 microseconds).
constexpr std::string_view kLastCreatedUsKey = "last_created_us";

// The creation time of a row about to get its id in this transaction: the
// clock's now, but strictly after every time issued before (collections and
// links share one sequence). Ids grow in commit order, so times grow with
// them, and Stream (which orders by `time`) shows what the local feeds
// (which order by id) show, whatever the clock does. Kept in the
// transaction, so a retried closure issues the same time again.
Result<int64_t> IssueCreatedUs(WriteTxn& txn, const Clock& clock) {
  int64_t created_us = clock.NowUs();
  std::string_view last;
  Status s = txn.Get(Db::kMeta, kLastCreatedUsKey, &last);
  if (!s.ok() && !s.IsNotFound()) return s;
  if (s.ok() && last.size() == 8) {
    created_us = std::max(created_us, static_cast<int64_t>(GetU64BE(last)) + 1);
  }
  const std::string value = U64Key(static_cast<uint64_t>(created_us));
  if (Status put = txn.Put(Db::kMeta, kLastCreatedUsKey, value); !put.ok()) return put;
  return created_us;
}

// 409 `code` ("<what> ... <max> ...") when `db` already holds `max` entries
// keyed `owner` + u64; counts no further than the limit.
Status CheckBelowLimit(const Txn& txn, Db db, uint64_t owner, uint64_t max, const char* code,
                       const std::string& message) {
  const std::string prefix = U64Key(owner);
  uint64_t n = 0;
  Cursor cursor = txn.OpenCursor(db);
  for (bool ok = cursor.Seek(prefix); ok && n < max; ok = cursor.Next()) {
    const std::string_view key = cursor.key();
    if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) break;
    ++n;
  }
  return n < max ? Status::Ok() : Status::Conflict(code, message);
}

// The ids of every entry of `db` keyed `prefix` (8 bytes) + u64 id, copied
// out so the caller may write while it walks them.
std::vector<uint64_t> IdsWithPrefix(const Txn& txn, Db db, const std::string& prefix) {
  std::vector<uint64_t> ids;
  Cursor cursor = txn.OpenCursor(db);
  for (bool ok = cursor.Seek(prefix); ok; ok = cursor.Next()) {
    const std::string_view key = cursor.key();
    if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) break;
    ids.push_back(GetU64BE(key.substr(prefix.size())));
  }
  return ids;
}

Status DuplicateLink() {
  return Status::Conflict("duplicate_link", "That link is already in this Collection!", "url");
}

// Queues, for every link of `c`, the partial update that gives its activity
// the collection's current {id, name}: a rename must reach the link
// activities already in Stream, not only new ones. Bounded by
// items_per_collection_max; the sync engine batches the updates.
Status QueueLinkCollectionUpdates(WriteTxn& txn, const Config& config, const Collection& c) {
  Change change;
  change.set_json.emplace_back("collection", CollectionRefJson(c));
  for (uint64_t item_id : IdsWithPrefix(txn, Db::kItemsByCollection, U64Key(c.id))) {
    Result<Item> i = LoadItem(txn, item_id);
    if (i.status().IsNotFound()) continue;  // dangling index entry: `offbrand check` reports it
    if (!i.ok()) return i.status();
    const std::string foreign_id = ItemForeignId(i->id);
    if (Status s = EnqueueActivity(txn, OutboxOp::kActivityUpdate, config.feed_collections, c.id,
                                   foreign_id, i->created_us,
                                   ChangeJson(foreign_id, i->created_us, change));
        !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

// Deletes an item's row and indexes and queues its remove from
// Collections:<cid>.
Status DeleteItemInTxn(WriteTxn& txn, const Config& config, const Item& i) {
  if (Status s = txn.Del(Db::kItems, U64Key(i.id)); !s.ok()) return s;
  if (Status s = txn.Del(Db::kItemsByCollection, U64PairKey(i.collection_id, i.id));
      !s.ok() && !s.IsNotFound()) {
    return s;
  }
  if (Status s = txn.Del(Db::kItemUrls, ItemUrlKey(i.collection_id, i.url, i.id));
      !s.ok() && !s.IsNotFound()) {
    return s;
  }
  return EnqueueActivity(txn, OutboxOp::kActivityRemove, config.feed_collections,
                         i.collection_id, ItemForeignId(i.id), i.created_us, {});
}

// Parses the decimal id after `prefix`; false when it is not one.
bool ParseForeignId(std::string_view foreign_id, std::string_view prefix, uint64_t* id) {
  if (foreign_id.substr(0, prefix.size()) != prefix) return false;
  std::string_view digits = foreign_id.substr(prefix.size());
  if (digits.empty() || digits.size() > 19) return false;
  uint64_t v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  *id = v;
  return v != 0;
}

std::string CollectionJson(const Txn& txn, const Collection& c) {
  JsonOut out;
  WriteCollectionJson(txn, out, c);
  return out.str();
}

std::string ItemJson(const Item& i) {
  JsonOut out;
  WriteItemJson(out, i);
  return out.str();
}

// A list met an index entry whose row is gone (damaged state that
// `offbrand check` reports): the page goes on without it instead of failing.
void LogDanglingEntry(Db index, uint64_t id) {
  OB_LOG(kWarning, "%s: entry for id %llu has no row; skipped (run `offbrand check`)",
         DbName(index), static_cast<unsigned long long>(id));
}

// Writes {"items":[...],"next":...} around the rows `write_items` emits.
template <typename WriteItems>
Status SendPage(RequestContext& ctx, WriteItems&& write_items) {
  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  uint64_t next = 0;
  if (Status s = write_items(out, &next); !s.ok()) return s;
  out.EndArray();
  WriteNextCursor(out, next != 0, next);
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

// Loads the collection named by capture 1 for an edit by the viewer: 404
// when unknown, 403 unless the viewer is its author or an administrator.
Status CheckCollectionEditor(const Txn& txn, const Viewer& viewer, uint64_t id, bool author_only,
                             Collection* c) {
  Result<Collection> loaded = LoadCollection(txn, id);
  if (!loaded.ok()) return loaded.status();
  const bool allowed = author_only ? viewer.user.id == loaded->author_id
                                   : MayEdit(viewer, loaded->author_id);
  if (!allowed) return Status::Forbidden();
  *c = std::move(*loaded);
  return Status::Ok();
}

Status CheckItemEditor(const Txn& txn, const Viewer& viewer, uint64_t id, Item* i) {
  Result<Item> loaded = LoadItem(txn, id);
  if (!loaded.ok()) return loaded.status();
  if (!MayEdit(viewer, loaded->author_id)) return Status::Forbidden();
  *i = std::move(*loaded);
  return Status::Ok();
}

// Checks in a read snapshot, before the body is parsed, so that strangers get
// 403 whatever they send. The write closure checks again.
template <typename Check>
Status PrecheckRead(RequestContext& ctx, Check&& check) {
  auto txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  return check(**txn);
}

// ---- collection handlers --------------------------------------------------------

Status CreateCollection(RequestContext& ctx) {
  if (Status s = ctx.RequirePermission(kPermWrite); !s.ok()) return s;
  CollectionFields f;
  if (Status s = ParseCollectionFields(ctx, true, &f); !s.ok()) return s;
  const Config& config = *ctx.svc.config;
  Collection c;
  c.author_id = ctx.viewer()->user.id;
  c.name = std::move(f.name);
  c.description = std::move(f.description);
  const Clock& clock = *ctx.svc.clock;
  std::string body;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    if (Status s = CheckBelowLimit(
            txn, Db::kCollectionsByAuthor, c.author_id, config.collections_per_user_max,
            "too_many_collections",
            "You already have " + std::to_string(config.collections_per_user_max) +
                " Collections, the most one person may have");
        !s.ok()) {
      return s;
    }
    Result<uint64_t> id = txn.NextId("collection");
    if (!id.ok()) return id.status();
    c.id = *id;
    Result<int64_t> created_us = IssueCreatedUs(txn, clock);
    if (!created_us.ok()) return created_us.status();
    c.created_us = *created_us;
    if (Status s = PutCollectionRow(txn, c); !s.ok()) return s;
    if (Status s = txn.Put(Db::kCollectionsByAuthor, U64PairKey(c.author_id, c.id), {}); !s.ok()) {
      return s;
    }
    if (Status s = NoteCollectionCreatedInTxn(txn, c.author_id, c.id); !s.ok()) return s;
    if (Status s = FollowCollectionInTxn(txn, config, c.author_id, c.id); !s.ok()) return s;
    if (Status s = EnqueueActivity(txn, OutboxOp::kActivityAdd, config.feed_user, c.author_id,
                                   CollectionForeignId(c.id), c.created_us,
                                   CollectionActivityJson(config, c));
        !s.ok()) {
      return s;
    }
    body = CollectionJson(txn, c);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  ctx.SendJson(201, body);
  return Status::Ok();
}

Status GetCollection(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  auto txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Collection> c = LoadCollection(**txn, *id);
  if (!c.ok()) return c.status();
  ctx.SendJson(200, CollectionJson(**txn, *c));
  return Status::Ok();
}

Status ListCollections(RequestContext& ctx) {
  int limit = 0;
  uint64_t before = 0;
  if (Status s = NewestFirstPageParams(ctx, &limit, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;

  Db db = Db::kCollections;
  std::string prefix;
  if (ctx.req.has_param("author")) {
    Result<User> author = FindUserByName(txn, ctx.req.get_param_value("author"));
    if (!author.ok()) return author.status();
    db = Db::kCollectionsByAuthor;
    prefix = U64Key(author->id);
  }
  return SendPage(ctx, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(txn, db, prefix, before, limit, next,
                           [&](uint64_t id, std::string_view) -> Status {
                             Result<Collection> c = LoadCollection(txn, id);
                             if (c.status().IsNotFound()) {
                               LogDanglingEntry(db, id);
                               return Status::Ok();
                             }
                             if (!c.ok()) return c.status();
                             WriteCollectionJson(txn, out, *c);
                             return Status::Ok();
                           });
  });
}

Status UpdateCollection(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  if (Status s = ctx.RequireLogin(); !s.ok()) return s;
  const Viewer& viewer = *ctx.viewer();
  if (Status s = PrecheckRead(ctx, [&](const Txn& txn) {
        Collection unused;
        return CheckCollectionEditor(txn, viewer, *id, false, &unused);
      });
      !s.ok()) {
    return s;
  }
  CollectionFields f;
  if (Status s = ParseCollectionFields(ctx, false, &f); !s.ok()) return s;
  const Config& config = *ctx.svc.config;
  std::string body;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Collection c;
    if (Status s = CheckCollectionEditor(txn, viewer, *id, false, &c); !s.ok()) return s;
    Change change;
    const bool renamed = f.has_name && f.name != c.name;
    if (renamed) {
      c.name = f.name;
      change.set.emplace_back("create", c.name);
      change.set.emplace_back("name", c.name);
    }
    if (f.has_description && f.description != c.description) {
      c.description = f.description;
      change.set.emplace_back("description", c.description);
    }
    if (!change.empty()) {
      if (Status s = PutCollectionRow(txn, c); !s.ok()) return s;
      const std::string foreign_id = CollectionForeignId(c.id);
      if (Status s = EnqueueActivity(txn, OutboxOp::kActivityUpdate, config.feed_user,
                                     c.author_id, foreign_id, c.created_us,
                                     ChangeJson(foreign_id, c.created_us, change));
          !s.ok()) {
        return s;
      }
    }
    if (renamed) {
      if (Status s = QueueLinkCollectionUpdates(txn, config, c); !s.ok()) return s;
    }
    body = CollectionJson(txn, c);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  ctx.SendJson(200, body);
  return Status::Ok();
}

Status DeleteCollection(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  if (Status s = ctx.RequireLogin(); !s.ok()) return s;
  const Viewer& viewer = *ctx.viewer();
  const Config& config = *ctx.svc.config;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Collection c;
    if (Status s = CheckCollectionEditor(txn, viewer, *id, false, &c); !s.ok()) return s;
    return DeleteCollectionInTxn(txn, config, c);
  });
  if (!st.ok()) return st;
  ctx.SendNoContent();
  return Status::Ok();
}

// ---- item handlers --------------------------------------------------------------

Status CreateItem(RequestContext& ctx) {
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  if (Status s = ctx.RequirePermission(kPermWrite); !s.ok()) return s;
  const Viewer& viewer = *ctx.viewer();
  if (Status s = PrecheckRead(ctx, [&](const Txn& txn) {
        Collection unused;
        return CheckCollectionEditor(txn, viewer, *cid, true, &unused);
      });
      !s.ok()) {
    return s;
  }
  ItemFields f;
  if (Status s = ParseItemFields(ctx, true, &f); !s.ok()) return s;
  const Config& config = *ctx.svc.config;
  Item item;
  item.collection_id = *cid;
  item.author_id = viewer.user.id;
  item.url = std::move(f.url);
  item.title = std::move(f.title);
  item.description = std::move(f.description);
  item.image = std::move(f.image);
  const Clock& clock = *ctx.svc.clock;
  std::string body;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Collection c;
    if (Status s = CheckCollectionEditor(txn, viewer, *cid, true, &c); !s.ok()) return s;
    if (FindItemByUrl(txn, c.id, item.url) != 0) return DuplicateLink();
    if (Status s = CheckBelowLimit(
            txn, Db::kItemsByCollection, c.id, config.items_per_collection_max, "too_many_links",
            "This Collection already holds " + std::to_string(config.items_per_collection_max) +
                " links, the most one Collection may hold");
        !s.ok()) {
      return s;
    }
    Result<uint64_t> id = txn.NextId("item");
    if (!id.ok()) return id.status();
    item.id = *id;
    Result<int64_t> created_us = IssueCreatedUs(txn, clock);
    if (!created_us.ok()) return created_us.status();
    item.created_us = *created_us;
    if (Status s = PutItemRow(txn, item); !s.ok()) return s;
    if (Status s = txn.Put(Db::kItemsByCollection, U64PairKey(c.id, item.id), {}); !s.ok()) {
      return s;
    }
    if (Status s = NoteItemAddedInTxn(txn, c.id, item.id); !s.ok()) return s;
    if (Status s = txn.Put(Db::kItemUrls, ItemUrlKey(c.id, item.url, item.id), {}); !s.ok()) {
      return s;
    }
    if (Status s = EnqueueActivity(txn, OutboxOp::kActivityAdd, config.feed_collections, c.id,
                                   ItemForeignId(item.id), item.created_us,
                                   ItemActivityJson(config, item, c));
        !s.ok()) {
      return s;
    }
    body = ItemJson(item);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  ctx.SendJson(201, body);
  return Status::Ok();
}

Status ListItems(RequestContext& ctx) {
  Result<uint64_t> cid = ctx.IdParam(1);
  if (!cid.ok()) return cid.status();
  int limit = 0;
  uint64_t before = 0;
  if (Status s = NewestFirstPageParams(ctx, &limit, &before); !s.ok()) return s;
  auto txn_or = ctx.svc.store->BeginRead();
  if (!txn_or.ok()) return txn_or.status();
  const Txn& txn = **txn_or;
  if (!txn.Has(Db::kCollections, U64Key(*cid))) return Status::NotFound("no such collection");
  const std::string prefix = U64Key(*cid);
  return SendPage(ctx, [&](JsonOut& out, uint64_t* next) {
    return ScanNewestFirst(txn, Db::kItemsByCollection, prefix, before, limit, next,
                           [&](uint64_t id, std::string_view) -> Status {
                             Result<Item> i = LoadItem(txn, id);
                             if (i.status().IsNotFound()) {
                               LogDanglingEntry(Db::kItemsByCollection, id);
                               return Status::Ok();
                             }
                             if (!i.ok()) return i.status();
                             WriteItemJson(out, *i);
                             return Status::Ok();
                           });
  });
}

Status GetItem(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  auto txn = ctx.svc.store->BeginRead();
  if (!txn.ok()) return txn.status();
  Result<Item> i = LoadItem(**txn, *id);
  if (!i.ok()) return i.status();
  ctx.SendJson(200, ItemJson(*i));
  return Status::Ok();
}

// Applies `f` to `i`, filling the Stream change it implies and the url index
// moves. 409 duplicate_link when the new url is taken in the collection.
Status ApplyItemFields(WriteTxn& txn, const ItemFields& f, Item* i, Change* change) {
  if (f.has_url && f.url != i->url) {
    if (FindItemByUrl(txn, i->collection_id, f.url) != 0) return DuplicateLink();
    if (Status s = txn.Del(Db::kItemUrls, ItemUrlKey(i->collection_id, i->url, i->id));
        !s.ok() && !s.IsNotFound()) {
      return s;
    }
    if (Status s = txn.Put(Db::kItemUrls, ItemUrlKey(i->collection_id, f.url, i->id), {});
        !s.ok()) {
      return s;
    }
    i->url = f.url;
    change->set.emplace_back("url", i->url);
  }
  if (f.has_title && f.title != i->title) {
    i->title = f.title;
    change->set.emplace_back("post", i->title);
  }
  if (f.has_description && f.description != i->description) {
    i->description = f.description;
    if (i->description.empty()) {
      change->unset.push_back("description");
    } else {
      change->set.emplace_back("description", i->description);
    }
  }
  if (f.has_image && f.image != i->image) {
    i->image = f.image;
    if (i->image.empty()) {
      change->unset.push_back("image");
    } else {
      change->set.emplace_back("image", i->image);
    }
  }
  return Status::Ok();
}

Status UpdateItem(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  if (Status s = ctx.RequireLogin(); !s.ok()) return s;
  const Viewer& viewer = *ctx.viewer();
  if (Status s = PrecheckRead(ctx, [&](const Txn& txn) {
        Item unused;
        return CheckItemEditor(txn, viewer, *id, &unused);
      });
      !s.ok()) {
    return s;
  }
  ItemFields f;
  if (Status s = ParseItemFields(ctx, false, &f); !s.ok()) return s;
  const Config& config = *ctx.svc.config;
  std::string body;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Item i;
    if (Status s = CheckItemEditor(txn, viewer, *id, &i); !s.ok()) return s;
    Change change;
    if (Status s = ApplyItemFields(txn, f, &i, &change); !s.ok()) return s;
    if (!change.empty()) {
      if (Status s = PutItemRow(txn, i); !s.ok()) return s;
      const std::string foreign_id = ItemForeignId(i.id);
      if (Status s = EnqueueActivity(txn, OutboxOp::kActivityUpdate, config.feed_collections,
                                     i.collection_id, foreign_id, i.created_us,
                                     ChangeJson(foreign_id, i.created_us, change));
          !s.ok()) {
        return s;
      }
    }
    body = ItemJson(i);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  ctx.SendJson(200, body);
  return Status::Ok();
}

Status DeleteItem(RequestContext& ctx) {
  Result<uint64_t> id = ctx.IdParam(1);
  if (!id.ok()) return id.status();
  if (Status s = ctx.RequireLogin(); !s.ok()) return s;
  const Viewer& viewer = *ctx.viewer();
  const Config& config = *ctx.svc.config;
  Status st = ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Item i;
    if (Status s = CheckItemEditor(txn, viewer, *id, &i); !s.ok()) return s;
    return DeleteItemInTxn(txn, config, i);
  });
  if (!st.ok()) return st;
  ctx.SendNoContent();
  return Status::Ok();
}

}  // namespace

// ---- domain functions (collections.h) --------------------------------------------

std::string ItemUrlPrefix(uint64_t collection_id, std::string_view url) {
  std::string key = U64Key(collection_id);
  unsigned char hash[crypto_hash_sha256_BYTES];
  static_assert(sizeof(hash) + 8 == kItemUrlPrefixBytes, "u64 + SHA-256");
  crypto_hash_sha256(hash, reinterpret_cast<const unsigned char*>(url.data()), url.size());
  key.append(reinterpret_cast<const char*>(hash), sizeof(hash));
  return key;
}

std::string ItemUrlKey(uint64_t collection_id, std::string_view url, uint64_t item_id) {
  std::string key = ItemUrlPrefix(collection_id, url);
  PutU64BE(&key, item_id);
  return key;
}

uint64_t FindItemByUrl(const Txn& txn, uint64_t collection_id, std::string_view url) {
  const std::string prefix = ItemUrlPrefix(collection_id, url);
  // Normally one entry; more only if two urls of this collection collide.
  for (uint64_t item_id : IdsWithPrefix(txn, Db::kItemUrls, prefix)) {
    Result<Item> i = LoadItem(txn, item_id);
    if (i.ok() && i->collection_id == collection_id && i->url == url) return item_id;
  }
  return 0;
}

Result<Collection> LoadCollection(const Txn& txn, uint64_t id) {
  std::string_view value;
  Status s = txn.Get(Db::kCollections, U64Key(id), &value);
  if (s.IsNotFound()) return Status::NotFound("no such collection");
  if (!s.ok()) return s;
  Collection c;
  if (!DecodeCollection(value, &c)) {
    return Status::Internal("collection " + std::to_string(id) + " does not decode");
  }
  return c;
}

Result<Item> LoadItem(const Txn& txn, uint64_t id) {
  std::string_view value;
  Status s = txn.Get(Db::kItems, U64Key(id), &value);
  if (s.IsNotFound()) return Status::NotFound("no such link");
  if (!s.ok()) return s;
  Item i;
  if (!DecodeItem(value, &i)) {
    return Status::Internal("item " + std::to_string(id) + " does not decode");
  }
  return i;
}

Status DeleteCollectionInTxn(WriteTxn& txn, const Config& config, const Collection& c) {
  // The ids are copied first: deleting while a cursor walks the index would
  // move it under our feet.
  for (uint64_t item_id : IdsWithPrefix(txn, Db::kItemsByCollection, U64Key(c.id))) {
    Result<Item> i = LoadItem(txn, item_id);
    if (i.status().IsNotFound()) continue;
    if (!i.ok()) return i.status();
    if (Status s = DeleteItemInTxn(txn, config, *i); !s.ok()) return s;
  }
  if (Status s = DropCollectionFollowersInTxn(txn, config, c.id); !s.ok()) return s;
  if (Status s = txn.Del(Db::kCollections, U64Key(c.id)); !s.ok()) return s;
  if (Status s = txn.Del(Db::kCollectionsByAuthor, U64PairKey(c.author_id, c.id));
      !s.ok() && !s.IsNotFound()) {
    return s;
  }
  return EnqueueActivity(txn, OutboxOp::kActivityRemove, config.feed_user, c.author_id,
                         CollectionForeignId(c.id), c.created_us, {});
}

Status DeleteUserCollectionsInTxn(WriteTxn& txn, const Config& config, uint64_t user_id) {
  for (uint64_t id : IdsWithPrefix(txn, Db::kCollectionsByAuthor, U64Key(user_id))) {
    Result<Collection> c = LoadCollection(txn, id);
    if (c.status().IsNotFound()) {
      // A dangling index entry: drop it so the user's rows are all gone.
      if (Status s = txn.Del(Db::kCollectionsByAuthor, U64PairKey(user_id, id));
          !s.ok() && !s.IsNotFound()) {
        return s;
      }
      continue;
    }
    if (!c.ok()) return c.status();
    if (Status s = DeleteCollectionInTxn(txn, config, *c); !s.ok()) return s;
  }
  return Status::Ok();
}

Status SetStreamIdInTxn(WriteTxn& txn, std::string_view foreign_id, std::string_view stream_id) {
  uint64_t id = 0;
  if (ParseForeignId(foreign_id, kCollectionPrefix, &id)) {
    Result<Collection> c = LoadCollection(txn, id);
    if (c.status().IsNotFound()) return Status::Ok();
    if (!c.ok()) return c.status();
    if (c->stream_id == stream_id) return Status::Ok();
    c->stream_id = std::string(stream_id);
    return PutCollectionRow(txn, *c);
  }
  if (ParseForeignId(foreign_id, kContentPrefix, &id)) {
    Result<Item> i = LoadItem(txn, id);
    if (i.status().IsNotFound()) return Status::Ok();
    if (!i.ok()) return i.status();
    if (i->stream_id == stream_id) return Status::Ok();
    i->stream_id = std::string(stream_id);
    return PutItemRow(txn, *i);
  }
  // Not one of ours (no row carries it): nothing to store.
  return Status::Ok();
}

void WriteCollectionJson(const Txn& txn, JsonOut& out, const Collection& c) {
  out.BeginObject();
  out.Key("id").Uint(c.id);
  out.Field("name", c.name);
  out.Field("description", c.description);
  out.Field("timestamp", FormatIsoTime(c.created_us));
  out.Key("author");
  Result<User> author = LoadUser(txn, c.author_id);
  if (author.ok()) {
    WriteActorJson(out, *author);
  } else {
    out.Null();
  }
  out.Field("stream_id", c.stream_id, true);
  out.Key("follower_count").Uint(CollectionFollowerCount(txn, c.id, c.author_id));
  out.EndObject();
}

void WriteItemJson(JsonOut& out, const Item& i) {
  out.BeginObject();
  out.Key("id").Uint(i.id);
  out.Key("collection_id").Uint(i.collection_id);
  out.Field("url", i.url);
  out.Field("title", i.title);
  out.Field("description", i.description);
  out.Field("image", i.image, true);
  out.Field("timestamp", FormatIsoTime(i.created_us));
  out.Field("stream_id", i.stream_id, true);
  out.EndObject();
}

// ---- activity bodies (activity_json.h and collections.h) --------------------------

namespace {

void PutDigits(char* dst, uint32_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    dst[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

void WriteActor(JsonOut& out, uint64_t author_id, std::string_view actor_json) {
  out.Key("actor");
  if (actor_json.empty()) {
    out.String(StreamUserRef(author_id));
  } else {
    out.Raw(actor_json);
  }
}
}  // namespace

std::string_view FormatStreamTimeTo(int64_t unix_us, char (&buf)[32]) {
  // Outside 1970..9999 fall back to the general formatter (never for our
  // rows, whose times come from the wall clock).
  constexpr int64_t kYear10000Us = 253'402'300'800'000'000;
  if (unix_us < 0 || unix_us >= kYear10000Us) {
    const std::string s = FormatStreamTime(unix_us);
    const size_t n = std::min(s.size(), sizeof(buf));
    std::copy(s.data(), s.data() + n, buf);
    return std::string_view(buf, n);
  }
  const int64_t secs = unix_us / 1'000'000;
  const uint32_t micros = static_cast<uint32_t>(unix_us % 1'000'000);
  const int64_t days = secs / 86'400;
  const uint32_t day_secs = static_cast<uint32_t>(secs % 86'400);
  // Howard Hinnant's civil_from_days (proleptic Gregorian), days >= 0 here.
  const int64_t z = days + 719'468;
  const int64_t era = z / 146'097;
  const int64_t doe = z - era * 146'097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  PutDigits(buf, static_cast<uint32_t>(year), 4);
  buf[4] = '-';
  PutDigits(buf + 5, static_cast<uint32_t>(month), 2);
  buf[7] = '-';
  PutDigits(buf + 8, static_cast<uint32_t>(day), 2);
  buf[10] = 'T';
  PutDigits(buf + 11, day_secs / 3600, 2);
  buf[13] = ':';
  PutDigits(buf + 14, day_secs / 60 % 60, 2);
  buf[16] = ':';
  PutDigits(buf + 17, day_secs % 60, 2);
  buf[19] = '.';
  PutDigits(buf + 20, micros, 6);
  return std::string_view(buf, 26);
}

void WriteCollectionActivityFields(JsonOut& out, const Collection& c,
                                   std::string_view actor_json) {
  const std::string foreign_id = CollectionForeignId(c.id);
  WriteActor(out, c.author_id, actor_json);
  out.Field("verb", "create");
  out.Field("object", foreign_id);
  out.Field("foreign_id", foreign_id);
  char time[32];
  out.Field("time", FormatStreamTimeTo(c.created_us, time));
  out.Field("create", c.name);
  out.Field("name", c.name);
  out.Field("description", c.description);
}

void WriteItemActivityFields(JsonOut& out, const Item& i, const Collection& c,
                             std::string_view actor_json) {
  const std::string foreign_id = ItemForeignId(i.id);
  WriteActor(out, i.author_id, actor_json);
  out.Field("verb", "post");
  out.Field("object", foreign_id);
  out.Field("foreign_id", foreign_id);
  char time[32];
  out.Field("time", FormatStreamTimeTo(i.created_us, time));
  out.Field("post", i.title);
  out.Field("url", i.url);
  if (!i.description.empty()) out.Field("description", i.description);
  if (!i.image.empty()) out.Field("image", i.image);
  out.Key("collection").BeginObject();
  out.Field("id", std::to_string(c.id));
  out.Field("name", c.name);
  out.EndObject();
}

std::string CollectionActivityJson(const Config& /*config*/, const Collection& c) {
  JsonOut out;
  out.BeginObject();
  WriteCollectionActivityFields(out, c, {});
  out.EndObject();
  return out.str();
}

std::string ItemActivityJson(const Config& /*config*/, const Item& i, const Collection& c) {
  JsonOut out;
  out.BeginObject();
  WriteItemActivityFields(out, i, c, {});
  out.EndObject();
  return out.str();
}

// ---- routes -------------------------------------------------------------------------

void RegisterCollectionRoutes(HttpServer& server) {
  const std::string collections = "/api/v1/collections";
  const std::string collection = collections + "/([^/]+)";
  const std::string items = collection + "/items";
  const std::string item = "/api/v1/items/([^/]+)";
  server.Route("GET", collections, "collections.list", ListCollections);
  server.Route("POST", collections, "collections.create", CreateCollection);
  server.Route("GET", collection, "collections.get", GetCollection);
  server.Route("PATCH", collection, "collections.update", UpdateCollection);
  server.Route("DELETE", collection, "collections.delete", DeleteCollection);
  server.Route("GET", items, "items.list", ListItems);
  server.Route("POST", items, "items.create", CreateItem);
  server.Route("GET", item, "items.get", GetItem);
  server.Route("PATCH", item, "items.update", UpdateItem);
  server.Route("DELETE", item, "items.delete", DeleteItem);
}

}  // namespace offbrand
