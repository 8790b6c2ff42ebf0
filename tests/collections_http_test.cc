// Proves, over real HTTP against an in-process server with a real LMDB dir,
// that collections and their links can be created, read, edited and deleted
// only by the people allowed to, that every change leaves exactly the outbox
// records of the golden Stream requests (field by field), that deleting a
// collection cascades to its links and follows, that bad input and refused
// requests change nothing, and that pages and the offline feeds stay stable.
#define BOOST_TEST_MODULE collections_http_test
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "activity_json.h"
#include "collections.h"
#include "json.h"
#include "offbrand/clock.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "ops.h"
#include "test_support.h"

namespace offbrand {
// Lets Boost.Test print record operations in failure messages.
std::ostream& operator<<(std::ostream& os, OutboxOp op) { return os << OutboxOpName(op); }
}  // namespace offbrand

namespace offbrand::test {
namespace {

const std::string kApi = "/api/v1";

std::string CollectionsPath(uint64_t id) { return kApi + "/collections/" + std::to_string(id); }
std::string ItemsPath(uint64_t cid) { return CollectionsPath(cid) + "/items"; }
std::string ItemPath(uint64_t id) { return kApi + "/items/" + std::to_string(id); }

// A JSON object of string fields (properly escaped).
std::string Body(const std::vector<std::pair<std::string, std::string>>& fields) {
  JsonOut out;
  out.BeginObject();
  for (const auto& [k, v] : fields) out.Field(k, v);
  out.EndObject();
  return out.str();
}

std::set<std::string> Keys(const Json& j) {
  std::set<std::string> keys;
  simdjson::dom::object obj;
  BOOST_REQUIRE(j.raw().get(obj) == simdjson::SUCCESS);
  for (auto field : obj) keys.insert(std::string(field.key));
  return keys;
}

std::vector<std::string> PathSegments(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string Prefix(const std::string& foreign_id) {
  return foreign_id.substr(0, foreign_id.find(':') + 1);
}

bool IsStreamTime(const std::string& s) {
  static const std::regex re(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})");
  return std::regex_match(s, re);
}

// Every key/value of the databases a collection or link request may touch,
// so "nothing changed" can be asserted byte for byte.
std::string StateDump(Store& store) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::string dump;
  for (Db db : {Db::kCollections, Db::kCollectionsByAuthor, Db::kItems, Db::kItemsByCollection,
                Db::kItemUrls, Db::kCollectionFollows, Db::kCollectionFollowers, Db::kOutbox}) {
    dump += DbName(db);
    dump += '\n';
    Cursor c = (*txn)->OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      dump += std::to_string(c.key().size()) + ":" + std::string(c.key()) + "=" +
              std::to_string(c.value().size()) + ":" + std::string(c.value()) + "\n";
    }
  }
  return dump;
}

// Entries of `db` whose key starts with `prefix`.
size_t CountPrefix(Store& store, Db db, const std::string& prefix) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  Cursor c = (*txn)->OpenCursor(db);
  size_t n = 0;
  for (bool ok = c.Seek(prefix); ok && c.key().substr(0, prefix.size()) == prefix; ok = c.Next()) {
    ++n;
  }
  return n;
}

// `offbrand check` finds nothing wrong: rows and indexes point at each other.
void CheckStoreInvariants(Store& store) {
  std::string report;
  Status s = CheckInvariants(store, &report);
  BOOST_TEST(s.ok(), s.ToString() << "\n" << report);
}

struct Fixture {
  explicit Fixture(const std::function<void(Config&)>& adjust = nullptr)
      : server(dir.path(), adjust) {}
  TempDir dir;
  TestServer server;
  TestApi api = server.api();
  std::string alice = server.SignUp("alice");
  std::string bob = server.SignUp("bob");
  std::string carol = server.SignUpUnconfirmed("carol");
  std::string admin = server.SignUpAdmin("root");
  uint64_t alice_id = UserId(alice);
  uint64_t bob_id = UserId(bob);
  const Config& config = server.app().config();

  uint64_t UserId(const std::string& token) {
    HttpReply r = api.Get(kApi + "/me", token);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "/me: " << r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  Json CreateCollection(const std::string& token, const std::string& name,
                        const std::string& description = "about it") {
    HttpReply r = api.Post(kApi + "/collections",
                           Body({{"name", name}, {"description", description}}), token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "create collection: " << r.status << " " << r.body);
    return r.json();
  }
  uint64_t NewCollection(const std::string& name = "Reading list") {
    return static_cast<uint64_t>(CreateCollection(alice, name).at("id").num());
  }
  Json AddItem(const std::string& token, uint64_t cid,
               const std::vector<std::pair<std::string, std::string>>& fields) {
    HttpReply r = api.Post(ItemsPath(cid), Body(fields), token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "add item: " << r.status << " " << r.body);
    return r.json();
  }
  uint64_t NewItem(uint64_t cid, const std::string& slug) {
    return static_cast<uint64_t>(
        AddItem(alice, cid, {{"url", "https://example.com/" + slug}, {"title", slug}})
            .at("id")
            .num());
  }
  uint64_t LastSeq() {
    std::vector<OutboxRecord> all = OutboxRecords(server.store());
    return all.empty() ? 0 : all.back().seq;
  }
  std::vector<OutboxRecord> RecordsSince(uint64_t seq) {
    std::vector<OutboxRecord> out;
    for (OutboxRecord& rec : OutboxRecords(server.store())) {
      if (rec.seq > seq) out.push_back(std::move(rec));
    }
    return out;
  }
};

// ---- golden comparisons --------------------------------------------------------

// An add record against the golden feed.addActivity request: the same
// method (an add), feed group (case-insensitively: the golden capture used
// "user"), feed id = the actor's id, foreign_id/time both in the record and
// its body, and the body fields of the golden body with our values.
void CheckAddAgainstGolden(const OutboxRecord& rec, const std::string& group,
                           uint64_t feed_id, uint64_t author, const std::string& foreign_id,
                           const std::string& verb) {
  Json golden = GoldenRequest("feed.addActivity");
  BOOST_TEST(golden.at("method").str() == "POST");
  const std::vector<std::string> path = PathSegments(golden.at("path").str());
  BOOST_REQUIRE_EQUAL(path.size(), 5u);  // api v1.0 feed <group> <id>
  Json gb = golden.at("body");
  // In the golden capture the feed id is the actor's id and object ==
  // foreign_id; the same relations must hold for us.
  BOOST_TEST(gb.at("actor").str() == "SU:" + path[4]);
  BOOST_TEST(gb.at("object").str() == gb.at("foreign_id").str());

  BOOST_TEST(rec.op == OutboxOp::kActivityAdd);
  BOOST_TEST(rec.feed_group == group);
  BOOST_TEST(rec.feed_id == std::to_string(feed_id));
  BOOST_TEST(rec.foreign_id == foreign_id);
  BOOST_TEST(rec.entity == foreign_id);
  BOOST_TEST(IsStreamTime(rec.time), rec.time);
  BOOST_TEST(rec.time.size() == gb.at("time").str().size());

  Json body(rec.body);
  BOOST_TEST(body.at("actor").str() == "SU:" + std::to_string(author));
  BOOST_TEST(Prefix(gb.at("actor").str()) == Prefix(body.at("actor").str()));
  BOOST_TEST(body.at("verb").str() == verb);
  BOOST_TEST(body.at("object").str() == foreign_id);
  BOOST_TEST(body.at("foreign_id").str() == foreign_id);
  BOOST_TEST(body.at("time").str() == rec.time);
  // Stream's keys (every golden core field) are all there.
  for (const char* core : {"actor", "verb", "object", "foreign_id", "time"}) {
    BOOST_TEST(gb.has(core));
    BOOST_TEST(body.has(core), core);
  }
}

// A collection's add: the golden body's keys exactly, plus our `create`.
void CheckCollectionAdd(const OutboxRecord& rec, const Config& config, const Json& collection) {
  const uint64_t id = static_cast<uint64_t>(collection.at("id").num());
  const uint64_t author = static_cast<uint64_t>(collection.at("author").at("id").num());
  const std::string foreign_id = "Collection:" + std::to_string(id);
  CheckAddAgainstGolden(rec, config.feed_user, author, author, foreign_id, "create");
  Json golden = GoldenRequest("feed.addActivity");
  BOOST_TEST(Prefix(golden.at("body").at("foreign_id").str()) == Prefix(foreign_id));
  BOOST_TEST(golden.at("body").at("verb").str() == "create");
  Json body(rec.body);
  std::set<std::string> want = Keys(golden.at("body"));
  want.insert("create");
  BOOST_TEST((Keys(body) == want), body.dump());
  BOOST_TEST(body.at("name").str() == collection.at("name").str());
  BOOST_TEST(body.at("create").str() == collection.at("name").str());
  BOOST_TEST(body.at("description").str() == collection.at("description").str());
  // The time is the row's timestamp, in Stream's format (no zone).
  BOOST_TEST(rec.time + "Z" == collection.at("timestamp").str());
}

// A link's add to Collections:<cid>: the golden core plus APP.md's fields.
void CheckItemAdd(const OutboxRecord& rec, const Config& config, const Json& item,
                  uint64_t author, const std::string& collection_name) {
  const uint64_t id = static_cast<uint64_t>(item.at("id").num());
  const uint64_t cid = static_cast<uint64_t>(item.at("collection_id").num());
  const std::string foreign_id = "Content:" + std::to_string(id);
  CheckAddAgainstGolden(rec, config.feed_collections, cid, author, foreign_id, "post");
  Json body(rec.body);
  std::set<std::string> want = {"actor", "verb", "object", "foreign_id", "time",
                                "post",  "url",  "collection"};
  if (!item.at("description").str().empty()) want.insert("description");
  if (!item.at("image").is_null()) want.insert("image");
  BOOST_TEST((Keys(body) == want), body.dump());
  BOOST_TEST(body.at("post").str() == item.at("title").str());
  BOOST_TEST(body.at("url").str() == item.at("url").str());
  if (want.count("description")) {
    BOOST_TEST(body.at("description").str() == item.at("description").str());
  }
  if (want.count("image")) BOOST_TEST(body.at("image").str() == item.at("image").str());
  BOOST_TEST(body.at("collection").at("id").str() == std::to_string(cid));
  BOOST_TEST(body.at("collection").at("name").str() == collection_name);
  BOOST_TEST(Keys(body.at("collection")) == (std::set<std::string>{"id", "name"}));
  BOOST_TEST(rec.time + "Z" == item.at("timestamp").str());
}

// An update record against activityPartialUpdate.foreignId: the body is one
// of the golden `changes`, keyed by foreign_id + time, with exactly `set`
// and `unset`.
void CheckUpdate(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
                 const std::string& foreign_id, const std::string& time,
                 const std::map<std::string, std::string>& set,
                 const std::vector<std::string>& unset) {
  Json golden = GoldenRequest("activityPartialUpdate.foreignId");
  BOOST_TEST(golden.at("method").str() == "POST");
  Json gchange = golden.at("body").at("changes").at(0);
  BOOST_TEST(rec.op == OutboxOp::kActivityUpdate);
  BOOST_TEST(rec.feed_group == group);
  BOOST_TEST(rec.feed_id == std::to_string(feed_id));
  BOOST_TEST(rec.foreign_id == foreign_id);
  BOOST_TEST(rec.entity == foreign_id);
  BOOST_TEST(rec.time == time);
  Json change(rec.body);
  std::set<std::string> keys = Keys(change);
  for (const std::string& k : keys) BOOST_TEST(gchange.has(k), "key " << k << " not in golden");
  BOOST_TEST(change.at("foreign_id").str() == foreign_id);
  BOOST_TEST(change.at("time").str() == time);
  BOOST_TEST(Prefix(gchange.at("foreign_id").str()) == "Collection:");
  if (set.empty()) {
    BOOST_TEST(!change.has("set"));
  } else {
    BOOST_REQUIRE(change.has("set"));
    std::map<std::string, std::string> got;
    for (const std::string& k : Keys(change.at("set"))) got[k] = change.at("set").at(k).str();
    BOOST_TEST((got == set), change.dump());
  }
  if (unset.empty()) {
    BOOST_TEST(!change.has("unset"));
  } else {
    BOOST_REQUIRE(change.has("unset"));
    std::vector<std::string> got;
    for (size_t i = 0; i < change.at("unset").size(); ++i) {
      got.push_back(change.at("unset").at(i).str());
    }
    BOOST_TEST((got == unset), change.dump());
  }
}

// A remove record against feed.removeActivity.foreignId: DELETE on
// feed/<group>/<id>/<foreign_id>/ with ?foreign_id=1 and no body.
void CheckRemove(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
                 const std::string& foreign_id, const std::string& time) {
  Json golden = GoldenRequest("feed.removeActivity.foreignId");
  BOOST_TEST(golden.at("method").str() == "DELETE");
  BOOST_TEST(golden.at("query").at("foreign_id").str() == "1");
  BOOST_TEST(golden.at("body").is_null());
  const std::vector<std::string> path = PathSegments(golden.at("path").str());
  BOOST_REQUIRE_EQUAL(path.size(), 6u);  // api v1.0 feed <group> <id> <foreign_id>
  BOOST_TEST(rec.op == OutboxOp::kActivityRemove);
  BOOST_TEST(rec.feed_group == group);
  BOOST_TEST(rec.feed_id == std::to_string(feed_id));
  BOOST_TEST(rec.foreign_id == foreign_id);
  BOOST_TEST(rec.entity == foreign_id);
  BOOST_TEST(rec.time == time);
  BOOST_TEST(rec.body.empty());
}

std::string StreamTimeOf(const Json& obj) {
  std::string ts = obj.at("timestamp").str();
  BOOST_REQUIRE(!ts.empty() && ts.back() == 'Z');
  return ts.substr(0, ts.size() - 1);
}

// ---- tests ----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(FeedTimeFormatterMatchesTheStreamTimeFormat) {
  // The allocation-free formatter of the feed reads must print what the
  // outbox has always sent (model.h FormatStreamTime).
  std::vector<int64_t> times = {0,
                                1,
                                999'999,
                                86'399'999'999,
                                86'400'000'000,
                                951'782'400'000'000,    // 2000-02-29
                                1'581'674'400'123'456,  // the golden time
                                4'107'542'400'000'000,  // 2100-03-01
                                253'402'300'799'999'999,
                                253'402'300'800'000'000,
                                -1};
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 20'000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    times.push_back(static_cast<int64_t>(x % 253'402'300'800'000'000ull));
  }
  for (int64_t t : times) {
    char buf[32];
    const std::string_view fast = FormatStreamTimeTo(t, buf);
    if (fast != FormatStreamTime(t)) {
      BOOST_ERROR(t << ": " << fast << " != " << FormatStreamTime(t));
      break;
    }
  }
}

BOOST_FIXTURE_TEST_CASE(CollectionCreateReadEditDeleteRoundTrip, Fixture) {
  Json created = CreateCollection(alice, "Reading list", "Links worth keeping");
  const uint64_t id = static_cast<uint64_t>(created.at("id").num());
  BOOST_TEST(id > 0u);
  BOOST_TEST(created.at("name").str() == "Reading list");
  BOOST_TEST(created.at("description").str() == "Links worth keeping");
  BOOST_TEST(created.at("author").at("id").num() == static_cast<int64_t>(alice_id));
  BOOST_TEST(created.at("author").at("username").str() == "alice");
  BOOST_TEST(created.at("author").at("gravatar").str().find("s=40") != std::string::npos);
  BOOST_TEST(created.at("stream_id").is_null());
  BOOST_TEST(created.at("follower_count").num() == 0);  // the self-follow is not counted
  BOOST_TEST(created.at("timestamp").str().back() == 'Z');

  HttpReply got = api.Get(CollectionsPath(id));  // anyone may read
  BOOST_REQUIRE_EQUAL(got.status, 200);
  BOOST_TEST(got.json().dump() == created.dump());

  HttpReply edited = api.Patch(CollectionsPath(id), Body({{"name", "Renamed"}}), alice);
  BOOST_REQUIRE_MESSAGE(edited.status == 200, edited.body);
  BOOST_TEST(edited.json().at("name").str() == "Renamed");
  BOOST_TEST(edited.json().at("description").str() == "Links worth keeping");
  BOOST_TEST(edited.json().at("timestamp").str() == created.at("timestamp").str());
  BOOST_TEST(api.Get(CollectionsPath(id)).json().at("name").str() == "Renamed");

  HttpReply deleted = api.Delete(CollectionsPath(id), alice);
  BOOST_TEST(deleted.status == 204);
  HttpReply gone = api.Get(CollectionsPath(id));
  BOOST_TEST(gone.status == 404);
  BOOST_TEST(gone.error_code() == "not_found");
  BOOST_TEST(api.Delete(CollectionsPath(id), alice).status == 404);
}

BOOST_FIXTURE_TEST_CASE(ItemCreateReadEditDeleteRoundTrip, Fixture) {
  const uint64_t cid = NewCollection();
  Json item = AddItem(alice, cid,
                      {{"url", "https://example.com/a?b=c"},
                       {"title", "A page"},
                       {"description", "worth reading"},
                       {"image", "https://example.com/a.png"}});
  const uint64_t id = static_cast<uint64_t>(item.at("id").num());
  BOOST_TEST(item.at("collection_id").num() == static_cast<int64_t>(cid));
  BOOST_TEST(item.at("url").str() == "https://example.com/a?b=c");
  BOOST_TEST(item.at("title").str() == "A page");
  BOOST_TEST(item.at("description").str() == "worth reading");
  BOOST_TEST(item.at("image").str() == "https://example.com/a.png");
  BOOST_TEST(item.at("stream_id").is_null());
  BOOST_TEST(item.at("timestamp").str().back() == 'Z');

  Json plain = AddItem(alice, cid, {{"url", "http://example.org/"}, {"title", "Plain"}});
  BOOST_TEST(plain.at("image").is_null());
  BOOST_TEST(plain.at("description").str() == "");

  HttpReply got = api.Get(ItemPath(id));
  BOOST_REQUIRE_EQUAL(got.status, 200);
  BOOST_TEST(got.json().dump() == item.dump());

  HttpReply list = api.Get(ItemsPath(cid));
  BOOST_REQUIRE_EQUAL(list.status, 200);
  BOOST_REQUIRE_EQUAL(list.json().at("items").size(), 2u);
  BOOST_TEST(list.json().at("items").at(0).at("title").str() == "Plain");  // newest first
  BOOST_TEST(list.json().at("items").at(1).at("title").str() == "A page");
  BOOST_TEST(list.json().at("next").is_null());

  HttpReply edited =
      api.Patch(ItemPath(id), R"({"title":"Better title","image":null})", alice);
  BOOST_REQUIRE_MESSAGE(edited.status == 200, edited.body);
  BOOST_TEST(edited.json().at("title").str() == "Better title");
  BOOST_TEST(edited.json().at("image").is_null());
  BOOST_TEST(edited.json().at("url").str() == "https://example.com/a?b=c");
  BOOST_TEST(api.Get(ItemPath(id)).json().at("title").str() == "Better title");

  BOOST_TEST(api.Delete(ItemPath(id), alice).status == 204);
  BOOST_TEST(api.Get(ItemPath(id)).status == 404);
  BOOST_TEST(api.Get(ItemsPath(cid)).json().at("items").size() == 1u);
  // The url is free again once its link is gone.
  AddItem(alice, cid, {{"url", "https://example.com/a?b=c"}, {"title", "Again"}});
}

BOOST_FIXTURE_TEST_CASE(EveryWriteEndpointAnswersThePermissionMatrix, Fixture) {
  const std::string unconfirmed = carol;
  // Refusals: status, SPEC error code, and not a byte written or queued.
  auto refused = [&](const std::string& method, const std::string& path, const std::string& body,
                     const std::string& token, int status, const std::string& code) {
    const std::string before = StateDump(server.store());
    HttpReply r = api.Send(method, path, body, "application/json",
                           token.empty() ? std::multimap<std::string, std::string>{}
                                         : std::multimap<std::string, std::string>{
                                               {"Authorization", "Bearer " + token}});
    BOOST_TEST(r.status == status, method << " " << path << ": " << r.status << " " << r.body);
    BOOST_TEST(r.error_code() == code, method << " " << path << ": " << r.body);
    BOOST_TEST(StateDump(server.store()) == before, method << " " << path << " changed state");
  };
  auto matrix = [&](const std::string& method, const std::string& path, const std::string& body,
                    bool strangers_refused) {
    refused(method, path, body, "", 401, "unauthenticated");
    refused(method, path, body, unconfirmed, 403, "unconfirmed");
    if (strangers_refused) refused(method, path, body, bob, 403, "forbidden");
  };
  const std::string coll_body = Body({{"name", "N"}, {"description", "D"}});

  // POST /collections: WRITE and a confirmed account; any such user.
  matrix("POST", kApi + "/collections", coll_body, false);
  BOOST_TEST(api.Post(kApi + "/collections", coll_body, bob).status == 201);
  BOOST_TEST(api.Post(kApi + "/collections", coll_body, admin).status == 201);

  // PATCH /collections/<id>: author or admin.
  uint64_t cid = NewCollection();
  matrix("PATCH", CollectionsPath(cid), Body({{"name", "X"}}), true);
  BOOST_TEST(api.Patch(CollectionsPath(cid), Body({{"name", "By author"}}), alice).status == 200);
  BOOST_TEST(api.Patch(CollectionsPath(cid), Body({{"name", "By admin"}}), admin).status == 200);
  BOOST_TEST(api.Get(CollectionsPath(cid)).json().at("name").str() == "By admin");

  // POST /collections/<id>/items: the author only (SPEC: "author").
  matrix("POST", ItemsPath(cid), Body({{"url", "https://x.org/"}, {"title", "T"}}), true);
  refused("POST", ItemsPath(cid), Body({{"url", "https://x.org/"}, {"title", "T"}}), admin, 403,
          "forbidden");
  const uint64_t iid = NewItem(cid, "one");

  // PATCH /items/<id>: author or admin.
  matrix("PATCH", ItemPath(iid), Body({{"title", "X"}}), true);
  BOOST_TEST(api.Patch(ItemPath(iid), Body({{"title", "By author"}}), alice).status == 200);
  BOOST_TEST(api.Patch(ItemPath(iid), Body({{"title", "By admin"}}), admin).status == 200);

  // DELETE /items/<id>: author or admin.
  matrix("DELETE", ItemPath(iid), "", true);
  BOOST_TEST(api.Delete(ItemPath(iid), alice).status == 204);
  const uint64_t iid2 = NewItem(cid, "two");
  BOOST_TEST(api.Delete(ItemPath(iid2), admin).status == 204);

  // DELETE /collections/<id>: author or admin.
  matrix("DELETE", CollectionsPath(cid), "", true);
  BOOST_TEST(api.Delete(CollectionsPath(cid), alice).status == 204);
  const uint64_t cid2 = NewCollection("Second");
  BOOST_TEST(api.Delete(CollectionsPath(cid2), admin).status == 204);

  // Reads are for anyone, anonymous included.
  const uint64_t cid3 = NewCollection("Third");
  const uint64_t iid3 = NewItem(cid3, "three");
  for (const std::string& path :
       {kApi + "/collections", CollectionsPath(cid3), ItemsPath(cid3), ItemPath(iid3),
        kApi + "/feeds/user/alice", kApi + "/feeds/collection/" + std::to_string(cid3)}) {
    BOOST_TEST(api.Get(path).status == 200, path);
  }
}

BOOST_FIXTURE_TEST_CASE(DeletingACollectionDropsItsLinksFollowsAndQueuesEveryRemove, Fixture) {
  Json coll = CreateCollection(alice, "Doomed");
  const uint64_t cid = static_cast<uint64_t>(coll.at("id").num());
  std::vector<Json> items;
  for (const char* slug : {"a", "b", "c"}) {
    items.push_back(AddItem(alice, cid, {{"url", std::string("https://e.com/") + slug},
                                         {"title", slug}}));
  }
  HttpReply follow = api.Put(CollectionsPath(cid) + "/follow", "", bob);
  BOOST_REQUIRE_MESSAGE(follow.status / 100 == 2, "follow: " << follow.status << " " << follow.body);
  BOOST_TEST(api.Get(CollectionsPath(cid)).json().at("follower_count").num() == 1);
  const std::string cid_key = U64Key(cid);
  BOOST_TEST(CountPrefix(server.store(), Db::kCollectionFollowers, cid_key) == 2u);  // bob + self
  BOOST_TEST(CountPrefix(server.store(), Db::kItemsByCollection, cid_key) == 3u);
  BOOST_TEST(CountPrefix(server.store(), Db::kItemUrls, cid_key) == 3u);
  // Another collection's rows must survive.
  const uint64_t other = NewCollection("Survivor");
  const uint64_t other_item = NewItem(other, "keep");

  const uint64_t seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Delete(CollectionsPath(cid), alice).status, 204);

  BOOST_TEST(api.Get(CollectionsPath(cid)).status == 404);
  BOOST_TEST(api.Get(ItemsPath(cid)).status == 404);
  BOOST_TEST(api.Get(kApi + "/feeds/collection/" + std::to_string(cid)).status == 404);
  for (const Json& item : items) {
    BOOST_TEST(api.Get(ItemPath(static_cast<uint64_t>(item.at("id").num()))).status == 404);
  }
  BOOST_TEST(CountPrefix(server.store(), Db::kCollectionFollowers, cid_key) == 0u);
  BOOST_TEST(CountPrefix(server.store(), Db::kItemsByCollection, cid_key) == 0u);
  BOOST_TEST(CountPrefix(server.store(), Db::kItemUrls, cid_key) == 0u);
  {
    auto txn = server.store().BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(!(*txn)->Has(Db::kCollectionFollows, U64PairKey(bob_id, cid)));
    BOOST_TEST(!(*txn)->Has(Db::kCollectionFollows, U64PairKey(alice_id, cid)));
    BOOST_TEST(!(*txn)->Has(Db::kCollectionsByAuthor, U64PairKey(alice_id, cid)));
    for (const Json& item : items) {
      BOOST_TEST(!(*txn)->Has(Db::kItems, U64Key(static_cast<uint64_t>(item.at("id").num()))));
    }
  }
  BOOST_TEST(api.Get(CollectionsPath(other)).status == 200);
  BOOST_TEST(api.Get(ItemPath(other_item)).status == 200);

  // One remove per link from Collections:<cid>, one for the collection from
  // User:<author>, and bob's timeline unfollows the collection's feed.
  std::vector<OutboxRecord> recs = RecordsSince(seq);
  std::set<std::string> removed_items;
  int collection_removes = 0;
  bool bob_unfollowed = false;
  for (const OutboxRecord& rec : recs) {
    if (rec.op == OutboxOp::kActivityRemove && rec.foreign_id.rfind("Content:", 0) == 0) {
      removed_items.insert(rec.foreign_id);
      for (const Json& item : items) {
        if (rec.foreign_id == "Content:" + std::to_string(item.at("id").num())) {
          CheckRemove(rec, config.feed_collections, cid, rec.foreign_id, StreamTimeOf(item));
        }
      }
    } else if (rec.op == OutboxOp::kActivityRemove) {
      ++collection_removes;
      CheckRemove(rec, config.feed_user, alice_id, "Collection:" + std::to_string(cid),
                  StreamTimeOf(coll));
    } else if (rec.op == OutboxOp::kUnfollow && rec.feed_id == std::to_string(bob_id) &&
               rec.foreign_id == config.feed_collections + ":" + std::to_string(cid)) {
      bob_unfollowed = true;
    } else {
      BOOST_TEST(rec.op == OutboxOp::kUnfollow, "unexpected record " << OutboxRecordJson(rec));
    }
  }
  BOOST_TEST(removed_items.size() == 3u);
  BOOST_TEST(collection_removes == 1);
  BOOST_TEST(bob_unfollowed);
  CheckStoreInvariants(server.store());
}

BOOST_FIXTURE_TEST_CASE(TheSameUrlTwiceInOneCollectionIs409DuplicateLink, Fixture) {
  const uint64_t cid = NewCollection();
  const uint64_t other = NewCollection("Other");
  Json first = AddItem(alice, cid, {{"url", "https://example.com/x"}, {"title", "X"}});

  std::string before = StateDump(server.store());
  HttpReply dup =
      api.Post(ItemsPath(cid), Body({{"url", "https://example.com/x"}, {"title", "Again"}}), alice);
  BOOST_TEST(dup.status == 409);
  BOOST_TEST(dup.error_code() == "duplicate_link");
  BOOST_TEST(StateDump(server.store()) == before);

  // The same url in another collection is fine; a different url here too.
  AddItem(alice, other, {{"url", "https://example.com/x"}, {"title", "X elsewhere"}});
  Json second = AddItem(alice, cid, {{"url", "https://example.com/y"}, {"title", "Y"}});

  // Editing a link onto a url its collection already holds is refused too.
  before = StateDump(server.store());
  HttpReply moved = api.Patch(ItemPath(static_cast<uint64_t>(second.at("id").num())),
                              Body({{"url", "https://example.com/x"}}), alice);
  BOOST_TEST(moved.status == 409);
  BOOST_TEST(moved.error_code() == "duplicate_link");
  BOOST_TEST(StateDump(server.store()) == before);

  // A url change frees the old url and takes the new one.
  HttpReply renamed = api.Patch(ItemPath(static_cast<uint64_t>(first.at("id").num())),
                                Body({{"url", "https://example.com/z"}}), alice);
  BOOST_REQUIRE_EQUAL(renamed.status, 200);
  AddItem(alice, cid, {{"url", "https://example.com/x"}, {"title", "X reborn"}});
  BOOST_TEST(api.Post(ItemsPath(cid), Body({{"url", "https://example.com/z"}, {"title", "Z"}}),
                      alice)
                 .status == 409);
  CheckStoreInvariants(server.store());
}

BOOST_FIXTURE_TEST_CASE(PagesStayStableWhileRowsAreAdded, Fixture) {
  uint64_t cid = 0;
  for (int i = 0; i < 5; ++i) cid = NewCollection("C" + std::to_string(i));
  for (int i = 0; i < 5; ++i) NewItem(cid, "i" + std::to_string(i));

  struct Listing {
    std::string path;
    std::string key;  // the field that identifies a row
    bool adds_collections;
  };
  const std::vector<Listing> listings = {
      {kApi + "/collections", "id", true},
      {kApi + "/collections?author=alice", "id", true},
      {ItemsPath(cid), "id", false},
      {kApi + "/feeds/user/alice", "foreign_id", true},
      {kApi + "/feeds/collection/" + std::to_string(cid), "foreign_id", false},
  };
  int made = 0;
  for (const Listing& l : listings) {
    const std::string sep = l.path.find('?') == std::string::npos ? "?" : "&";
    auto fetch = [&](const std::string& query, std::vector<std::string>* seen) {
      HttpReply r = api.Get(l.path + sep + query);
      BOOST_REQUIRE_MESSAGE(r.status == 200, l.path << sep << query << ": " << r.body);
      Json page = r.json();
      for (size_t i = 0; i < page.at("items").size(); ++i) {
        seen->push_back(page.at("items").at(i).at(l.key).dump());
      }
      return page.at("next").is_null() ? std::string() : page.at("next").str();
    };
    // Everything there is now, in one page: the order paging must reproduce.
    std::vector<std::string> everything;
    BOOST_REQUIRE(fetch("limit=100", &everything).empty());
    BOOST_REQUIRE(everything.size() >= 5u);

    std::vector<std::string> seen;
    std::string cursor = fetch("limit=2", &seen);
    BOOST_REQUIRE_EQUAL(seen.size(), 2u);
    BOOST_REQUIRE(!cursor.empty());
    // Rows added between pages must not shift what follows page 1.
    for (int i = 0; i < 3; ++i) {
      const std::string slug = "late" + std::to_string(made++);
      if (l.adds_collections) {
        NewCollection(slug);
      } else {
        NewItem(cid, slug);
      }
    }
    for (int pages = 0; !cursor.empty() && pages < 100; ++pages) {
      cursor = fetch("limit=2&cursor=" + cursor, &seen);
    }
    BOOST_TEST((seen == everything), l.path << ": paging skipped or repeated rows");
  }

  // Page parameters are checked.
  BOOST_TEST(api.Get(kApi + "/collections?limit=0").status == 422);
  BOOST_TEST(api.Get(kApi + "/collections?limit=101").status == 422);
  BOOST_TEST(api.Get(kApi + "/collections?cursor=%%%").status == 422);
  BOOST_TEST(api.Get(kApi + "/collections?limit=100").status == 200);
  BOOST_TEST(api.Get(kApi + "/collections?author=nobody").status == 404);
}

BOOST_FIXTURE_TEST_CASE(CollectionChangesQueueTheGoldenActivityRequests, Fixture) {
  uint64_t seq = LastSeq();
  Json coll = CreateCollection(alice, "Reading list", "Links worth keeping");
  const uint64_t cid = static_cast<uint64_t>(coll.at("id").num());
  const std::string fid = "Collection:" + std::to_string(cid);
  const std::string time = StreamTimeOf(coll);
  std::vector<OutboxRecord> recs = RecordsSince(seq);
  // The add, and the author's self-follow of the collection (follows.h).
  std::vector<OutboxRecord> adds;
  for (const OutboxRecord& r : recs) {
    if (r.op == OutboxOp::kActivityAdd) adds.push_back(r);
  }
  BOOST_REQUIRE_EQUAL(adds.size(), 1u);
  CheckCollectionAdd(adds[0], config, coll);

  // Rename: set create + name, nothing else.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid), Body({{"name", "Renamed"}}), alice).status,
                      200);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckUpdate(recs[0], config.feed_user, alice_id, fid, time,
              {{"create", "Renamed"}, {"name", "Renamed"}}, {});

  // Both fields, by an admin: the actor's feed stays the author's.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid),
                                Body({{"name", "Again"}, {"description", "New text"}}), admin)
                          .status,
                      200);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckUpdate(recs[0], config.feed_user, alice_id, fid, time,
              {{"create", "Again"}, {"name", "Again"}, {"description", "New text"}}, {});

  // Description only; then an edit that changes nothing queues nothing.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(
      api.Patch(CollectionsPath(cid), Body({{"description", "Third"}}), alice).status, 200);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckUpdate(recs[0], config.feed_user, alice_id, fid, time, {{"description", "Third"}}, {});
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid), Body({{"name", "Again"}}), alice).status,
                      200);
  BOOST_TEST(RecordsSince(seq).empty());

  // Delete: the remove from User:<author>.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Delete(CollectionsPath(cid), alice).status, 204);
  int removes = 0;
  for (const OutboxRecord& r : RecordsSince(seq)) {
    if (r.op != OutboxOp::kActivityRemove) continue;
    ++removes;
    CheckRemove(r, config.feed_user, alice_id, fid, time);
  }
  BOOST_TEST(removes == 1);
}

BOOST_FIXTURE_TEST_CASE(LinkChangesQueueTheGoldenActivityRequests, Fixture) {
  const uint64_t cid = NewCollection("Reading list");
  uint64_t seq = LastSeq();
  Json item = AddItem(alice, cid,
                      {{"url", "https://example.com/a"},
                       {"title", "A"},
                       {"description", "About A"},
                       {"image", "https://example.com/a.png"}});
  const uint64_t iid = static_cast<uint64_t>(item.at("id").num());
  const std::string fid = "Content:" + std::to_string(iid);
  const std::string time = StreamTimeOf(item);
  std::vector<OutboxRecord> recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckItemAdd(recs[0], config, item, alice_id, "Reading list");

  // Without description and image those fields are left out.
  seq = LastSeq();
  Json bare = AddItem(alice, cid, {{"url", "https://example.com/b"}, {"title", "B"}});
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckItemAdd(recs[0], config, bare, alice_id, "Reading list");

  // Title -> post; url; image removed -> unset.
  seq = LastSeq();
  HttpReply r = api.Patch(ItemPath(iid),
                          R"({"title":"A2","url":"https://example.com/a2","image":null})", alice);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.body);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckUpdate(recs[0], config.feed_collections, cid, fid, time,
              {{"url", "https://example.com/a2"}, {"post", "A2"}}, {"image"});

  // An image set again, by an admin.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(
      api.Patch(ItemPath(iid), Body({{"image", "https://example.com/new.png"}}), admin).status,
      200);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckUpdate(recs[0], config.feed_collections, cid, fid, time,
              {{"image", "https://example.com/new.png"}}, {});

  // Same values: nothing queued.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Patch(ItemPath(iid), Body({{"title", "A2"}}), alice).status, 200);
  BOOST_TEST(RecordsSince(seq).empty());

  // Delete: the remove from Collections:<cid>.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Delete(ItemPath(iid), alice).status, 204);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckRemove(recs[0], config.feed_collections, cid, fid, time);
}

BOOST_FIXTURE_TEST_CASE(NonNumericAndUnknownIdsAre404, Fixture) {
  const uint64_t cid = NewCollection();
  const uint64_t iid = NewItem(cid, "x");
  const std::string before = StateDump(server.store());
  for (const char* bad_id : {"abc", "0", "-1", "1x", "1.0", "99999999999999999999999", "%20"}) {
    const std::string bad = bad_id;
    for (const std::string& path :
         {kApi + "/collections/" + bad, kApi + "/collections/" + bad + "/items",
          kApi + "/items/" + bad, kApi + "/feeds/collection/" + bad}) {
      HttpReply r = api.Get(path);
      BOOST_TEST(r.status == 404, path << ": " << r.status << " " << r.body);
      BOOST_TEST(r.error_code() == "not_found", path << ": " << r.body);
    }
    BOOST_TEST(api.Patch(kApi + "/collections/" + bad, Body({{"name", "n"}}), alice).status == 404);
    BOOST_TEST(api.Delete(kApi + "/collections/" + bad, alice).status == 404);
    BOOST_TEST(api.Post(kApi + "/collections/" + bad + "/items",
                        Body({{"url", "https://a.b/"}, {"title", "t"}}), alice)
                   .status == 404);
    BOOST_TEST(api.Patch(kApi + "/items/" + bad, Body({{"title", "n"}}), alice).status == 404);
    BOOST_TEST(api.Delete(kApi + "/items/" + bad, alice).status == 404);
  }
  const uint64_t unknown = cid + iid + 1000;
  BOOST_TEST(api.Get(CollectionsPath(unknown)).status == 404);
  BOOST_TEST(api.Get(ItemsPath(unknown)).status == 404);
  BOOST_TEST(api.Get(ItemPath(unknown)).status == 404);
  BOOST_TEST(api.Patch(CollectionsPath(unknown), Body({{"name", "n"}}), alice).status == 404);
  BOOST_TEST(api.Delete(CollectionsPath(unknown), alice).status == 404);
  BOOST_TEST(api.Post(ItemsPath(unknown), Body({{"url", "https://a.b/"}, {"title", "t"}}), alice)
                 .status == 404);
  BOOST_TEST(api.Patch(ItemPath(unknown), Body({{"title", "n"}}), alice).status == 404);
  BOOST_TEST(api.Delete(ItemPath(unknown), alice).status == 404);
  BOOST_TEST(api.Get(kApi + "/feeds/user/nobody").status == 404);
  BOOST_TEST(StateDump(server.store()) == before);
}

BOOST_FIXTURE_TEST_CASE(BadInputIsRefusedWithTheSpecErrorAndChangesNothing, Fixture) {
  const uint64_t cid = NewCollection();
  const uint64_t iid = NewItem(cid, "x");
  const std::string long65(65, 'n');
  const std::string long257(257, 'd');
  const std::string long1025(1025, 'd');
  const std::string long_url = "https://example.com/" + std::string(2048, 'u');
  struct Case {
    std::string method, path, body;
    int status;
    std::string code;
  };
  const std::string colls = kApi + "/collections";
  const std::string cpath = CollectionsPath(cid);
  const std::string ipath = ItemPath(iid);
  const std::string items = ItemsPath(cid);
  const std::string ok_item = R"("url":"https://ok.org/","title":"t")";
  std::vector<Case> cases = {
      {"POST", colls, "{", 400, "malformed_json"},
      {"POST", colls, "[1,2]", 400, "malformed_json"},
      {"POST", colls, R"({"name":"n","description":"d","extra":1})", 400, "unknown_field"},
      {"POST", colls, R"({"name":5,"description":"d"})", 400, "wrong_type"},
      {"POST", colls, R"({"description":"d"})", 422, "missing_field"},
      {"POST", colls, R"({"name":"n"})", 422, "missing_field"},
      {"POST", colls, R"({"name":"","description":"d"})", 422, "invalid_field"},
      {"POST", colls, Body({{"name", long65}, {"description", "d"}}), 422, "invalid_field"},
      {"POST", colls, Body({{"name", "n"}, {"description", ""}}), 422, "invalid_field"},
      {"POST", colls, Body({{"name", "n"}, {"description", long257}}), 422, "invalid_field"},
      {"POST", colls, Body({{"name", "a\x01z"}, {"description", "d"}}), 422, "invalid_field"},
      {"PATCH", cpath, "{", 400, "malformed_json"},
      {"PATCH", cpath, R"({"author":1})", 400, "unknown_field"},
      {"PATCH", cpath, Body({{"name", long65}}), 422, "invalid_field"},
      {"PATCH", cpath, Body({{"name", "ok"}, {"description", long257}}), 422, "invalid_field"},
      {"POST", items, "nope", 400, "malformed_json"},
      {"POST", items, "{" + ok_item + R"(,"stream_id":"x"})", 400, "unknown_field"},
      {"POST", items, R"({"url":"https://ok.org/","title":["t"]})", 400, "wrong_type"},
      {"POST", items, R"({"title":"t"})", 422, "missing_field"},
      {"POST", items, R"({"url":"https://ok.org/"})", 422, "missing_field"},
      {"POST", items, R"({"url":"ftp://ok.org/","title":"t"})", 422, "invalid_field"},
      {"POST", items, R"({"url":"example.com","title":"t"})", 422, "invalid_field"},
      {"POST", items, Body({{"url", long_url}, {"title", "t"}}), 422, "invalid_field"},
      {"POST", items, R"({"url":"https://ok.org/","title":""})", 422, "invalid_field"},
      {"POST", items, Body({{"url", "https://ok.org/"}, {"title", std::string(257, 't')}}), 422,
       "invalid_field"},
      {"POST", items, Body({{"url", "https://ok.org/"}, {"title", "t"}, {"description", long1025}}),
       422, "invalid_field"},
      {"POST", items, Body({{"url", "https://ok.org/"}, {"title", "t"}, {"image", "javascript:x"}}),
       422, "invalid_field"},
      {"PATCH", ipath, "{]", 400, "malformed_json"},
      {"PATCH", ipath, R"({"collection_id":2})", 400, "unknown_field"},
      {"PATCH", ipath, R"({"url":"mailto:a@b.c"})", 422, "invalid_field"},
      {"PATCH", ipath, R"({"title":""})", 422, "invalid_field"},
      {"PATCH", ipath, R"({"image":"not a url"})", 422, "invalid_field"},
  };
  for (const Case& c : cases) {
    const std::string before = StateDump(server.store());
    HttpReply r = api.Send(c.method, c.path, c.body, "application/json",
                           {{"Authorization", "Bearer " + alice}});
    BOOST_TEST(r.status == c.status, c.method << " " << c.path << " " << c.body.substr(0, 80)
                                               << ": " << r.status << " " << r.body);
    BOOST_TEST(r.error_code() == c.code, c.body.substr(0, 80) << ": " << r.body);
    BOOST_TEST(StateDump(server.store()) == before, c.body.substr(0, 80) << " changed state");
  }
  // Oversized bodies and the wrong media type are refused before parsing.
  const std::string before = StateDump(server.store());
  const std::string huge = Body({{"name", "n"}, {"description", std::string(70 * 1024, 'd')}});
  BOOST_TEST(api.Post(colls, huge, alice).status == 413);
  BOOST_TEST(api.Send("POST", colls, R"({"name":"n","description":"d"})", "text/plain",
                      {{"Authorization", "Bearer " + alice}})
                 .status == 415);
  BOOST_TEST(StateDump(server.store()) == before);
  // The objects are as they were.
  BOOST_TEST(api.Get(ItemPath(iid)).json().at("title").str() == "x");
  BOOST_TEST(api.Get(cpath).json().at("name").str() == "Reading list");
}

BOOST_FIXTURE_TEST_CASE(FeedsAreServedFromLmdbWithEnrichedActors, Fixture) {
  Json c1 = CreateCollection(alice, "First", "one");
  Json c2 = CreateCollection(alice, "Second", "two");
  CreateCollection(bob, "Bob's", "not alice's");
  const uint64_t cid = static_cast<uint64_t>(c2.at("id").num());
  Json i1 = AddItem(alice, cid, {{"url", "https://a.org/1"}, {"title", "One"}});
  Json i2 = AddItem(alice, cid,
                    {{"url", "https://a.org/2"},
                     {"title", "Two"},
                     {"description", "second"},
                     {"image", "https://a.org/2.png"}});
  Json me = Json(api.Get(kApi + "/me", alice).body);

  HttpReply uf = api.Get(kApi + "/feeds/user/ALICE");  // usernames are case-insensitive
  BOOST_REQUIRE_MESSAGE(uf.status == 200, uf.body);
  Json items = uf.json().at("items");
  BOOST_REQUIRE_EQUAL(items.size(), 2u);
  BOOST_TEST(uf.json().at("next").is_null());
  // Each entry is the outbox body with the actor enriched, plus the Stream id.
  std::vector<OutboxRecord> all = OutboxRecords(server.store());
  for (size_t k = 0; k < 2; ++k) {
    Json entry = items.at(k);
    const Json& coll = k == 0 ? c2 : c1;  // newest first
    const std::string fid = "Collection:" + std::to_string(coll.at("id").num());
    BOOST_TEST(entry.at("foreign_id").str() == fid);
    BOOST_TEST(entry.at("id").is_null());
    BOOST_TEST(entry.at("actor").at("id").num() == static_cast<int64_t>(alice_id));
    BOOST_TEST(entry.at("actor").at("username").str() == "alice");
    BOOST_TEST(entry.at("actor").at("gravatar").str() == coll.at("author").at("gravatar").str());
    BOOST_TEST(Keys(entry.at("actor")) == (std::set<std::string>{"id", "username", "gravatar"}));
    for (const OutboxRecord& rec : all) {
      if (rec.op != OutboxOp::kActivityAdd || rec.foreign_id != fid) continue;
      Json body(rec.body);
      std::set<std::string> want = Keys(body);
      want.insert("id");
      BOOST_TEST((Keys(entry) == want), entry.dump());
      for (const std::string& key : Keys(body)) {
        if (key == "actor") continue;
        BOOST_TEST(entry.at(key).dump() == body.at(key).dump(), key);
      }
    }
  }

  HttpReply cf = api.Get(kApi + "/feeds/collection/" + std::to_string(cid));
  BOOST_REQUIRE_MESSAGE(cf.status == 200, cf.body);
  Json links = cf.json().at("items");
  BOOST_REQUIRE_EQUAL(links.size(), 2u);
  BOOST_TEST(links.at(0).at("foreign_id").str() == "Content:" + std::to_string(i2.at("id").num()));
  BOOST_TEST(links.at(1).at("foreign_id").str() == "Content:" + std::to_string(i1.at("id").num()));
  BOOST_TEST(links.at(0).at("verb").str() == "post");
  BOOST_TEST(links.at(0).at("post").str() == "Two");
  BOOST_TEST(links.at(0).at("image").str() == "https://a.org/2.png");
  BOOST_TEST(links.at(0).at("description").str() == "second");
  BOOST_TEST(!links.at(1).has("image"));
  BOOST_TEST(links.at(0).at("collection").at("id").str() == std::to_string(cid));
  BOOST_TEST(links.at(0).at("collection").at("name").str() == "Second");
  BOOST_TEST(links.at(0).at("actor").at("username").str() == "alice");
  BOOST_TEST(links.at(0).at("time").str() == StreamTimeOf(i2));
  BOOST_TEST(me.at("username").str() == "alice");

  // An edit shows in the feed at once.
  BOOST_REQUIRE_EQUAL(
      api.Patch(ItemPath(static_cast<uint64_t>(i1.at("id").num())), Body({{"title", "Uno"}}), alice)
          .status,
      200);
  HttpReply cf2 = api.Get(kApi + "/feeds/collection/" + std::to_string(cid));
  BOOST_TEST(cf2.json().at("items").at(1).at("post").str() == "Uno");
}

BOOST_FIXTURE_TEST_CASE(StreamIdsReportedBySyncAreStoredAndShown, Fixture) {
  const uint64_t cid = NewCollection();
  const uint64_t iid = NewItem(cid, "s");
  Status st = server.store().Write([&](WriteTxn& txn) -> Status {
    if (Status s = SetStreamIdInTxn(txn, "Collection:" + std::to_string(cid), "uuid-coll");
        !s.ok()) {
      return s;
    }
    if (Status s = SetStreamIdInTxn(txn, "Content:" + std::to_string(iid), "uuid-item"); !s.ok()) {
      return s;
    }
    // Rows that are gone, and foreign ids that are not ours, are not errors.
    if (Status s = SetStreamIdInTxn(txn, "Collection:999999", "x"); !s.ok()) return s;
    if (Status s = SetStreamIdInTxn(txn, "Content:999999", "x"); !s.ok()) return s;
    return SetStreamIdInTxn(txn, "Collections:1", "x");
  });
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(api.Get(CollectionsPath(cid)).json().at("stream_id").str() == "uuid-coll");
  BOOST_TEST(api.Get(ItemPath(iid)).json().at("stream_id").str() == "uuid-item");
  BOOST_TEST(api.Get(ItemsPath(cid)).json().at("items").at(0).at("stream_id").str() ==
             "uuid-item");
  BOOST_TEST(api.Get(kApi + "/feeds/user/alice").json().at("items").at(0).at("id").str() ==
             "uuid-coll");
  BOOST_TEST(api.Get(kApi + "/feeds/collection/" + std::to_string(cid))
                 .json()
                 .at("items")
                 .at(0)
                 .at("id")
                 .str() == "uuid-item");
  // An edit keeps the stream id.
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid), Body({{"name", "New"}}), alice).status, 200);
  BOOST_TEST(api.Get(CollectionsPath(cid)).json().at("stream_id").str() == "uuid-coll");
}

// ---- regressions -------------------------------------------------------------------

// A url of `bytes` bytes: "https://e.com/<tag>uuu...".
std::string LongUrl(size_t bytes, const std::string& tag) {
  std::string url = "https://e.com/" + tag;
  url.resize(bytes, 'u');
  return url;
}

BOOST_FIXTURE_TEST_CASE(LinkUrlsLongerThanAnLmdbKeyAreAcceptedDeduplicatedEditedAndDeleted,
                        Fixture) {
  // Regression: the duplicate-url index was keyed by the raw url, so a
  // valid url of 504..2048 bytes overflowed LMDB's 511-byte keys: 500.
  const uint64_t cid = NewCollection();
  const std::string url2048 = LongUrl(kUrlBytesMax, "a");
  const std::string url504 = LongUrl(504, "b");
  Json big = AddItem(alice, cid, {{"url", url2048}, {"title", "Big"}});
  BOOST_TEST(big.at("url").str() == url2048);
  const uint64_t big_id = static_cast<uint64_t>(big.at("id").num());
  const uint64_t mid_id = static_cast<uint64_t>(
      AddItem(alice, cid, {{"url", url504}, {"title", "Mid"}}).at("id").num());
  BOOST_TEST(api.Get(ItemPath(big_id)).json().at("url").str() == url2048);

  // The second add of the same long url, and an edit onto it: 409.
  std::string before = StateDump(server.store());
  HttpReply dup = api.Post(ItemsPath(cid), Body({{"url", url2048}, {"title", "Again"}}), alice);
  BOOST_TEST(dup.status == 409, dup.body);
  BOOST_TEST(dup.error_code() == "duplicate_link");
  HttpReply onto = api.Patch(ItemPath(mid_id), Body({{"url", url2048}}), alice);
  BOOST_TEST(onto.status == 409, onto.body);
  BOOST_TEST(onto.error_code() == "duplicate_link");
  BOOST_TEST(StateDump(server.store()) == before);
  // Urls that differ only in their last byte are different links.
  std::string near = url2048;
  near.back() = 'v';
  const uint64_t near_id =
      static_cast<uint64_t>(AddItem(alice, cid, {{"url", near}, {"title", "Near"}}).at("id").num());

  // Editing a long url onto another long url frees the first.
  const std::string other2048 = LongUrl(kUrlBytesMax, "c");
  HttpReply edited = api.Patch(ItemPath(big_id), Body({{"url", other2048}}), alice);
  BOOST_REQUIRE_MESSAGE(edited.status == 200, edited.body);
  BOOST_TEST(edited.json().at("url").str() == other2048);
  BOOST_TEST(api.Post(ItemsPath(cid), Body({{"url", other2048}, {"title", "T"}}), alice).status ==
             409);
  const uint64_t reborn_id = static_cast<uint64_t>(
      AddItem(alice, cid, {{"url", url2048}, {"title", "Reborn"}}).at("id").num());
  CheckStoreInvariants(server.store());

  // Deleting frees the url; the index holds nothing for deleted links.
  for (uint64_t id : {big_id, mid_id, near_id, reborn_id}) {
    BOOST_TEST(api.Delete(ItemPath(id), alice).status == 204);
  }
  BOOST_TEST(CountPrefix(server.store(), Db::kItemUrls, U64Key(cid)) == 0u);
  AddItem(alice, cid, {{"url", url2048}, {"title", "Once more"}});
  CheckStoreInvariants(server.store());
}

BOOST_FIXTURE_TEST_CASE(AUrlIndexEntryOfAnotherUrlUnderTheSameHashIsNotADuplicate, Fixture) {
  // SHA-256 collisions are not expected, but the index does not assume them
  // away: a lookup compares the url of the item an entry names. Stand in for
  // a collision with an entry under the hash of url A naming item B.
  const uint64_t cid = NewCollection();
  const uint64_t b_id = NewItem(cid, "b");
  const std::string url_a = "https://example.com/a";
  Status st = server.store().Write(
      [&](WriteTxn& txn) { return txn.Put(Db::kItemUrls, ItemUrlKey(cid, url_a, b_id), {}); });
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  {
    auto txn = server.store().BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(FindItemByUrl(**txn, cid, url_a) == 0u);
    BOOST_TEST(FindItemByUrl(**txn, cid, "https://example.com/b") == b_id);
  }
  Json a = AddItem(alice, cid, {{"url", url_a}, {"title", "A"}});
  const uint64_t a_id = static_cast<uint64_t>(a.at("id").num());
  {
    auto txn = server.store().BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(FindItemByUrl(**txn, cid, url_a) == a_id);  // two entries, one matches
  }
  HttpReply dup = api.Post(ItemsPath(cid), Body({{"url", url_a}, {"title", "A2"}}), alice);
  BOOST_TEST(dup.status == 409);
  BOOST_TEST(
      api.Post(ItemsPath(cid), Body({{"url", "https://example.com/b"}, {"title", "B2"}}), alice)
          .status == 409);
  // `offbrand check` names the stray entry.
  std::string report;
  BOOST_TEST(!CheckInvariants(server.store(), &report).ok());
  BOOST_TEST(
      report.find("item_urls: entry in collection " + std::to_string(cid) + " points to item " +
                  std::to_string(b_id) + " with another url") != std::string::npos,
      report);
}

BOOST_FIXTURE_TEST_CASE(NullForARequiredFieldOnPatchIs422AndChangesNothing, Fixture) {
  // Regression: {"title":null} and the like answered 200 and changed nothing.
  const uint64_t cid = NewCollection("Kept name");
  const uint64_t iid = NewItem(cid, "kept");
  struct Case {
    std::string path, body, field;
  };
  const std::vector<Case> cases = {
      {ItemPath(iid), R"({"title":null})", "title"},
      {ItemPath(iid), R"({"url":null})", "url"},
      {ItemPath(iid), R"({"url":null,"description":"d"})", "url"},
      {ItemPath(iid), R"({"title":"ok","url":null})", "url"},
      {CollectionsPath(cid), R"({"name":null})", "name"},
      {CollectionsPath(cid), R"({"description":null})", "description"},
      {CollectionsPath(cid), R"({"name":"ok","description":null})", "description"},
  };
  for (const Case& c : cases) {
    const std::string before = StateDump(server.store());
    HttpReply r = api.Patch(c.path, c.body, alice);
    BOOST_TEST(r.status == 422, c.body << ": " << r.status << " " << r.body);
    BOOST_TEST(r.error_code() == "invalid_field", c.body << ": " << r.body);
    if (r.status == 422) {
      BOOST_TEST(r.json().at("error").at("field").str() == c.field, r.body);
    }
    BOOST_TEST(StateDump(server.store()) == before, c.body << " changed state");
  }
  // A create answers a null the same way (it was 400 wrong_type).
  const std::vector<std::pair<std::string, std::string>> creates = {
      {ItemsPath(cid), R"({"url":null,"title":"t"})"},
      {ItemsPath(cid), R"({"url":"https://a.b/","title":null})"},
      {kApi + "/collections", R"({"name":null,"description":"d"})"},
      {kApi + "/collections", R"({"name":"n","description":null})"}};
  for (const auto& [path, body] : creates) {
    const std::string before = StateDump(server.store());
    HttpReply r = api.Post(path, body, alice);
    BOOST_TEST(r.status == 422, body << ": " << r.body);
    BOOST_TEST(r.error_code() == "invalid_field", body << ": " << r.body);
    BOOST_TEST(StateDump(server.store()) == before, body << " changed state");
  }
  BOOST_TEST(api.Get(ItemPath(iid)).json().at("title").str() == "kept");
  BOOST_TEST(api.Get(CollectionsPath(cid)).json().at("name").str() == "Kept name");
}

BOOST_FIXTURE_TEST_CASE(OptionalLinkFieldsAreClearedByNullOrEmptyAndUnsetInStream, Fixture) {
  const uint64_t cid = NewCollection();
  auto add_full = [&](const std::string& slug) {
    return AddItem(alice, cid,
                   {{"url", "https://example.com/" + slug},
                    {"title", slug},
                    {"description", "about " + slug},
                    {"image", "https://example.com/" + slug + ".png"}});
  };
  for (const char* clear : {"null", "\"\""}) {
    Json item = add_full(std::string("c") + (clear[0] == 'n' ? "null" : "empty"));
    const uint64_t iid = static_cast<uint64_t>(item.at("id").num());
    const std::string fid = "Content:" + std::to_string(iid);
    uint64_t seq = LastSeq();
    const std::string body =
        std::string(R"({"description":)") + clear + R"(,"image":)" + clear + "}";
    HttpReply r = api.Patch(ItemPath(iid), body, alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, body << ": " << r.body);
    BOOST_TEST(r.json().at("description").str() == "");
    BOOST_TEST(r.json().at("image").is_null());
    std::vector<OutboxRecord> recs = RecordsSince(seq);
    BOOST_REQUIRE_EQUAL(recs.size(), 1u);
    CheckUpdate(recs[0], config.feed_collections, cid, fid, StreamTimeOf(item), {},
                {"description", "image"});
    // Clearing what is already clear, either way, changes nothing.
    for (const char* again : {"null", "\"\""}) {
      seq = LastSeq();
      const std::string b2 =
          std::string(R"({"description":)") + again + R"(,"image":)" + again + "}";
      BOOST_REQUIRE_EQUAL(api.Patch(ItemPath(iid), b2, alice).status, 200);
      BOOST_TEST(RecordsSince(seq).empty(), b2);
    }
  }
  // On create, null and "" both mean "none": the fields are left out.
  for (const char* none : {"null", "\"\""}) {
    uint64_t seq = LastSeq();
    const std::string body = std::string(R"({"url":"https://example.com/new)") +
                             std::to_string(std::string(none).size()) +
                             R"(","title":"n","description":)" + none + R"(,"image":)" + none + "}";
    HttpReply r = api.Post(ItemsPath(cid), body, alice);
    BOOST_REQUIRE_MESSAGE(r.status == 201, body << ": " << r.body);
    BOOST_TEST(r.json().at("image").is_null());
    std::vector<OutboxRecord> recs = RecordsSince(seq);
    BOOST_REQUIRE_EQUAL(recs.size(), 1u);
    CheckItemAdd(recs[0], config, r.json(), alice_id, "Reading list");
  }
}

// A link's update after its collection was renamed: the golden partial
// update, with exactly set.collection = {"id":"<cid>","name":<name>}.
void CheckLinkCollectionUpdate(const OutboxRecord& rec, const Config& config, const Json& item,
                               const std::string& name) {
  Json golden = GoldenRequest("activityPartialUpdate.foreignId");
  Json gchange = golden.at("body").at("changes").at(0);
  BOOST_TEST(gchange.has("set"));
  const uint64_t cid = static_cast<uint64_t>(item.at("collection_id").num());
  const std::string fid = "Content:" + std::to_string(item.at("id").num());
  BOOST_TEST(rec.op == OutboxOp::kActivityUpdate);
  BOOST_TEST(rec.feed_group == config.feed_collections);
  BOOST_TEST(rec.feed_id == std::to_string(cid));
  BOOST_TEST(rec.foreign_id == fid);
  BOOST_TEST(rec.entity == fid);
  BOOST_TEST(rec.time == StreamTimeOf(item));
  Json change(rec.body);
  for (const std::string& k : Keys(change)) BOOST_TEST(gchange.has(k), "key " << k);
  BOOST_TEST((Keys(change) == std::set<std::string>{"foreign_id", "time", "set"}), change.dump());
  BOOST_TEST(change.at("foreign_id").str() == fid);
  BOOST_TEST(change.at("time").str() == rec.time);
  BOOST_TEST((Keys(change.at("set")) == std::set<std::string>{"collection"}), change.dump());
  Json ref = change.at("set").at("collection");
  BOOST_TEST((Keys(ref) == std::set<std::string>{"id", "name"}), change.dump());
  BOOST_TEST(ref.at("id").str() == std::to_string(cid));
  BOOST_TEST(ref.at("name").str() == name);
}

BOOST_FIXTURE_TEST_CASE(RenamingACollectionQueuesTheNewNameForEveryLinkActivity, Fixture) {
  // Regression: after a rename, Stream's link activities kept the old
  // collection {id, name} while /feeds/collection showed the new one.
  const uint64_t cid = NewCollection("Old name");
  const uint64_t other = NewCollection("Untouched");
  std::map<std::string, Json> items;  // foreign id -> item
  for (const char* slug : {"a", "b", "c"}) {
    Json item =
        AddItem(alice, cid, {{"url", std::string("https://e.com/") + slug}, {"title", slug}});
    items.emplace("Content:" + std::to_string(item.at("id").num()), item);
  }
  NewItem(other, "elsewhere");

  uint64_t seq = LastSeq();
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid), Body({{"name", "New name"}}), alice).status,
                      200);
  std::vector<OutboxRecord> recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u + items.size());
  BOOST_TEST(recs[0].foreign_id == "Collection:" + std::to_string(cid));
  std::set<std::string> updated;
  for (size_t k = 1; k < recs.size(); ++k) {
    auto it = items.find(recs[k].foreign_id);
    BOOST_REQUIRE_MESSAGE(it != items.end(), "update of " << recs[k].foreign_id);
    CheckLinkCollectionUpdate(recs[k], config, it->second, "New name");
    updated.insert(recs[k].foreign_id);
  }
  BOOST_TEST(updated.size() == items.size());
  // What Stream is told matches the offline feed.
  Json feed = api.Get(kApi + "/feeds/collection/" + std::to_string(cid)).json();
  for (size_t k = 0; k < feed.at("items").size(); ++k) {
    BOOST_TEST(feed.at("items").at(k).at("collection").at("name").str() == "New name");
  }

  // A description edit does not touch the links; neither does an unchanged name.
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(
      api.Patch(CollectionsPath(cid), Body({{"name", "New name"}, {"description", "D2"}}), admin)
          .status,
      200);
  recs = RecordsSince(seq);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  BOOST_TEST(recs[0].foreign_id == "Collection:" + std::to_string(cid));

  // A renamed empty collection queues only its own update.
  const uint64_t empty = NewCollection("Empty");
  seq = LastSeq();
  BOOST_REQUIRE_EQUAL(
      api.Patch(CollectionsPath(empty), Body({{"name", "Still empty"}}), alice).status, 200);
  BOOST_TEST(RecordsSince(seq).size() == 1u);
}

struct SmallLimitsFixture : Fixture {
  SmallLimitsFixture()
      : Fixture([](Config& c) {
          c.items_per_collection_max = 3;
          c.collections_per_user_max = 2;
        }) {}
};

BOOST_FIXTURE_TEST_CASE(ALinkBeyondItemsPerCollectionMaxIs409TooManyLinks, SmallLimitsFixture) {
  const uint64_t cid = NewCollection();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(NewItem(cid, "i" + std::to_string(i)));
  const std::string before = StateDump(server.store());
  HttpReply r = api.Post(ItemsPath(cid), Body({{"url", "https://e.com/4"}, {"title", "4"}}), alice);
  BOOST_TEST(r.status == 409, r.body);
  BOOST_TEST(r.error_code() == "too_many_links", r.body);
  BOOST_TEST(StateDump(server.store()) == before);
  // A duplicate is still reported as one (the more useful answer).
  BOOST_TEST(
      api.Post(ItemsPath(cid), Body({{"url", "https://example.com/i0"}, {"title", "x"}}), alice)
          .error_code() == "duplicate_link");
  // Room again after a delete.
  BOOST_REQUIRE_EQUAL(api.Delete(ItemPath(ids[0]), alice).status, 204);
  NewItem(cid, "again");
}

BOOST_FIXTURE_TEST_CASE(ACollectionBeyondCollectionsPerUserMaxIs409TooManyCollections,
                        SmallLimitsFixture) {
  const uint64_t first = NewCollection("one");
  NewCollection("two");
  const std::string before = StateDump(server.store());
  HttpReply r = api.Post(kApi + "/collections", Body({{"name", "3"}, {"description", "d"}}), alice);
  BOOST_TEST(r.status == 409, r.body);
  BOOST_TEST(r.error_code() == "too_many_collections", r.body);
  BOOST_TEST(StateDump(server.store()) == before);
  // The limit is per person.
  CreateCollection(bob, "bob's");
  BOOST_REQUIRE_EQUAL(api.Delete(CollectionsPath(first), alice).status, 204);
  NewCollection("three");
}

BOOST_FIXTURE_TEST_CASE(CreationTimesStrictlyIncreaseWithIdsWhateverTheClockDoes, Fixture) {
  // Regression: created_us was read before the group commit that assigns
  // the id, so a larger id could get an earlier Stream `time` (local feeds
  // order by id, Stream by time). A frozen clock made that certain: every
  // row got the same time.
  static FakeClock clock(SystemClock::Instance().NowUs());
  server.app().services().clock = &clock;  // before any request of the test
  const uint64_t cid = NewCollection("Burst");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 8;
  std::vector<std::thread> threads;
  std::vector<int> failures(2 * kThreads, 0);
  for (int t = 0; t < 2 * kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kPerThread; ++n) {
        const std::string tag = std::to_string(t) + "-" + std::to_string(n);
        if (n == kPerThread / 2 && t == 0) clock.SetUs(clock.NowUs() - 10'000'000);  // jump back
        HttpReply r =
            t % 2 == 0 ? api.Post(kApi + "/collections",
                                  Body({{"name", "c" + tag}, {"description", "d"}}), alice)
                       : api.Post(ItemsPath(cid),
                                  Body({{"url", "https://e.com/" + tag}, {"title", tag}}), alice);
        if (r.status != 201) ++failures[static_cast<size_t>(t)];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  server.app().services().clock = &SystemClock::Instance();
  for (int f : failures) BOOST_TEST(f == 0);

  // Rows by id, and their add records, carry strictly increasing times.
  auto check = [&](const std::string& path, const char* kind) {
    Json page = api.Get(path + "?limit=100").json();
    std::vector<std::pair<int64_t, std::string>> by_id;
    for (size_t k = 0; k < page.at("items").size(); ++k) {
      by_id.emplace_back(page.at("items").at(k).at("id").num(),
                         page.at("items").at(k).at("timestamp").str());
    }
    std::sort(by_id.begin(), by_id.end());
    BOOST_TEST(by_id.size() >= static_cast<size_t>(kThreads * kPerThread));
    for (size_t k = 1; k < by_id.size(); ++k) {
      BOOST_TEST(by_id[k - 1].second < by_id[k].second,
                 kind << " " << by_id[k - 1].first << " at " << by_id[k - 1].second << ", "
                      << by_id[k].first << " at " << by_id[k].second);
    }
  };
  check(kApi + "/collections", "collection");
  check(ItemsPath(cid), "link");
  std::map<std::string, std::string> add_time;  // foreign id -> record time
  for (const OutboxRecord& rec : OutboxRecords(server.store())) {
    if (rec.op == OutboxOp::kActivityAdd) add_time[rec.foreign_id] = rec.time;
  }
  Json items = api.Get(ItemsPath(cid) + "?limit=100").json().at("items");
  for (size_t k = 0; k < items.size(); ++k) {
    BOOST_TEST(add_time["Content:" + std::to_string(items.at(k).at("id").num())] ==
               StreamTimeOf(items.at(k)));
  }
}

BOOST_FIXTURE_TEST_CASE(ListsSkipIndexEntriesWhoseRowIsMissing, Fixture) {
  // Regression: one index entry without its row (damaged state) turned the
  // whole ?author= list or link list into a 404.
  const uint64_t c1 = NewCollection("one");
  const uint64_t c2 = NewCollection("two");
  const uint64_t c3 = NewCollection("three");
  const uint64_t i1 = NewItem(c3, "a");
  const uint64_t i2 = NewItem(c3, "b");
  const uint64_t i3 = NewItem(c3, "c");
  Status st = server.store().Write([&](WriteTxn& txn) -> Status {
    if (Status s = txn.Del(Db::kCollections, U64Key(c2)); !s.ok()) return s;
    return txn.Del(Db::kItems, U64Key(i2));
  });
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());

  auto ids = [&](const std::string& path, const char* key) {
    HttpReply r = api.Get(path);
    BOOST_REQUIRE_MESSAGE(r.status == 200, path << ": " << r.status << " " << r.body);
    std::vector<std::string> out;
    for (size_t k = 0; k < r.json().at("items").size(); ++k) {
      out.push_back(r.json().at("items").at(k).at(key).dump());
    }
    return out;
  };
  const auto str = [](uint64_t v) { return std::to_string(v); };
  const auto q = [](const std::string& v) { return "\"" + v + "\""; };
  BOOST_TEST((ids(kApi + "/collections?author=alice", "id") ==
              std::vector<std::string>{str(c3), str(c1)}));
  BOOST_TEST((ids(ItemsPath(c3), "id") == std::vector<std::string>{str(i3), str(i1)}));
  BOOST_TEST((ids(kApi + "/feeds/user/alice", "foreign_id") ==
              std::vector<std::string>{q("Collection:" + str(c3)), q("Collection:" + str(c1))}));
  BOOST_TEST((ids(kApi + "/feeds/collection/" + str(c3), "foreign_id") ==
              std::vector<std::string>{q("Content:" + str(i3)), q("Content:" + str(i1))}));
  // Paging past the gap still ends.
  HttpReply p1 = api.Get(ItemsPath(c3) + "?limit=1");
  BOOST_REQUIRE_EQUAL(p1.status, 200);
  HttpReply p2 = api.Get(ItemsPath(c3) + "?limit=1&cursor=" + p1.json().at("next").str());
  BOOST_REQUIRE_EQUAL(p2.status, 200);
  BOOST_TEST(p2.json().at("items").size() <= 1u);
}

BOOST_FIXTURE_TEST_CASE(EveryReadEndpointAnswersEveryKindOfToken, Fixture) {
  // Reads are public: the same 200 for anyone logged in or not, and a bad
  // Authorization header is the client's error (401 invalid_token).
  const uint64_t cid = NewCollection("Read me");
  const uint64_t iid = NewItem(cid, "r");
  const std::vector<std::string> paths = {kApi + "/collections",
                                          kApi + "/collections?author=alice",
                                          CollectionsPath(cid),
                                          ItemsPath(cid),
                                          ItemPath(iid),
                                          kApi + "/feeds/user/alice",
                                          kApi + "/feeds/collection/" + std::to_string(cid)};
  const std::vector<std::pair<std::string, std::string>> viewers = {{"anonymous", ""},
                                                                    {"unconfirmed", carol},
                                                                    {"other user", bob},
                                                                    {"author", alice},
                                                                    {"admin", admin}};
  for (const std::string& path : paths) {
    const HttpReply anonymous = api.Get(path);
    BOOST_TEST(anonymous.status == 200, path << ": " << anonymous.body);
    for (const auto& [who, token] : viewers) {
      HttpReply r = api.Get(path, token);
      BOOST_TEST(r.status == 200, path << " as " << who << ": " << r.status << " " << r.body);
    }
    for (const std::string& bad :
         {std::string("not-a-token"), alice + "x", std::string(300, 'a')}) {
      HttpReply r = api.Get(path, bad);
      BOOST_TEST(r.status == 401, path << " with a bad token: " << r.status << " " << r.body);
      BOOST_TEST(r.error_code() == "invalid_token", path << ": " << r.body);
    }
  }
  // A logged-out token is invalid too.
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/logout", "", bob).status / 100, 2);
  HttpReply r = api.Get(CollectionsPath(cid), bob);
  BOOST_TEST(r.status == 401, r.body);
  BOOST_TEST(r.error_code() == "invalid_token");
}

struct RenamedFeedGroupsFixture : Fixture {
  RenamedFeedGroupsFixture()
      : Fixture([](Config& c) {
          c.feed_user = "people";
          c.feed_collections = "lists";
          c.feed_timeline = "home";
          c.feed_notifications = "alerts";
        }) {}
};

BOOST_FIXTURE_TEST_CASE(ConfiguredFeedGroupNamesAreUsedByEveryRecord, RenamedFeedGroupsFixture) {
  BOOST_REQUIRE(config.feed_user == "people");
  const uint64_t seq0 = LastSeq();
  Json coll = CreateCollection(alice, "Mine");
  const uint64_t cid = static_cast<uint64_t>(coll.at("id").num());
  const std::string a = std::to_string(alice_id);
  const std::string b = std::to_string(bob_id);
  const std::string c = std::to_string(cid);
  uint64_t seq = LastSeq();
  for (const OutboxRecord& rec : RecordsSince(seq0)) {
    if (rec.op == OutboxOp::kActivityAdd) CheckCollectionAdd(rec, config, coll);
  }
  const uint64_t iid = NewItem(cid, "x");
  BOOST_REQUIRE_EQUAL(api.Patch(CollectionsPath(cid), Body({{"name", "Ours"}}), alice).status, 200);
  BOOST_REQUIRE_EQUAL(api.Patch(ItemPath(iid), Body({{"title", "y"}}), alice).status, 200);
  BOOST_REQUIRE_EQUAL(api.Put(kApi + "/users/alice/follow", "", bob).status / 100, 2);
  BOOST_REQUIRE_EQUAL(api.Put(CollectionsPath(cid) + "/follow", "", bob).status / 100, 2);
  BOOST_REQUIRE_EQUAL(api.Delete(ItemPath(iid), alice).status, 204);
  BOOST_REQUIRE_EQUAL(api.Delete(CollectionsPath(cid), alice).status, 204);

  // (op, group, feed id, foreign id) of every record after the create.
  std::multiset<std::string> got;
  for (const OutboxRecord& rec : RecordsSince(seq)) {
    if (rec.op == OutboxOp::kUserAdd || rec.op == OutboxOp::kUserUpdate) continue;
    got.insert(std::string(OutboxOpName(rec.op)) + " " + rec.feed_group + "/" + rec.feed_id + " " +
               rec.foreign_id);
  }
  const std::string item = "Content:" + std::to_string(iid);
  const std::string cfid = "Collection:" + c;
  auto name = [](OutboxOp op) { return std::string(OutboxOpName(op)) + " "; };
  const std::multiset<std::string> want = {
      name(OutboxOp::kActivityAdd) + "lists/" + c + " " + item,
      name(OutboxOp::kActivityUpdate) + "people/" + a + " " + cfid,
      name(OutboxOp::kActivityUpdate) + "lists/" + c + " " + item,  // the rename
      name(OutboxOp::kActivityUpdate) + "lists/" + c + " " + item,  // the title
      name(OutboxOp::kFollow) + "alerts/" + b + " people:" + a,     // APP.md: Notifications
      name(OutboxOp::kFollow) + "home/" + b + " lists:" + c,
      name(OutboxOp::kActivityRemove) + "lists/" + c + " " + item,
      name(OutboxOp::kUnfollow) + "home/" + b + " lists:" + c,
      name(OutboxOp::kUnfollow) + "home/" + a + " lists:" + c,  // the author's self-follow
      name(OutboxOp::kActivityRemove) + "people/" + a + " " + cfid,
  };
  std::string got_text, want_text;
  for (const std::string& g : got) got_text += g + "\n";
  for (const std::string& w : want) want_text += w + "\n";
  BOOST_TEST(got_text == want_text);
  // And the create's self-follow of the author's timeline.
  bool self_follow = false;
  for (const OutboxRecord& rec : RecordsSince(seq0)) {
    if (rec.op == OutboxOp::kFollow && rec.feed_group == "home" && rec.feed_id == a &&
        rec.foreign_id == "lists:" + c) {
      self_follow = true;
    }
  }
  BOOST_TEST(self_follow);
}

}  // namespace
}  // namespace offbrand::test
