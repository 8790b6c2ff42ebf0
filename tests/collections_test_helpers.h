// Helpers for the collection HTTP tests (collections_http_test and
// collections_regression_test): paths and bodies, a byte-for-byte dump of the
// databases a request may touch (to prove a refusal changed nothing), the
// Fixture (a server with alice, bob, unconfirmed carol and an admin), and
// comparisons of outbox records with the golden Stream requests.
#ifndef OFFBRAND_TESTS_COLLECTIONS_TEST_HELPERS_H_
#define OFFBRAND_TESTS_COLLECTIONS_TEST_HELPERS_H_

#include <boost/test/unit_test.hpp>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "json.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "ops.h"
#include "test_support.h"

namespace offbrand {
// Lets Boost.Test print record operations in failure messages.
inline std::ostream& operator<<(std::ostream& os, OutboxOp op) { return os << OutboxOpName(op); }
}  // namespace offbrand

namespace offbrand::test {

inline const std::string kApi = "/api/v1";

inline std::string CollectionsPath(uint64_t id) {
  return kApi + "/collections/" + std::to_string(id);
}
inline std::string ItemsPath(uint64_t cid) { return CollectionsPath(cid) + "/items"; }
inline std::string ItemPath(uint64_t id) { return kApi + "/items/" + std::to_string(id); }

// A JSON object of string fields (properly escaped).
inline std::string Body(const std::vector<std::pair<std::string, std::string>>& fields) {
  JsonOut out;
  out.BeginObject();
  for (const auto& [k, v] : fields) out.Field(k, v);
  out.EndObject();
  return out.str();
}

inline std::set<std::string> Keys(const Json& j) {
  std::set<std::string> keys;
  simdjson::dom::object obj;
  BOOST_REQUIRE(j.raw().get(obj) == simdjson::SUCCESS);
  for (auto field : obj) keys.insert(std::string(field.key));
  return keys;
}

inline std::vector<std::string> PathSegments(const std::string& path) {
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

inline std::string Prefix(const std::string& foreign_id) {
  return foreign_id.substr(0, foreign_id.find(':') + 1);
}

inline bool IsStreamTime(const std::string& s) {
  static const std::regex re(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6})");
  return std::regex_match(s, re);
}

// Every key/value of the databases a collection or link request may touch,
// so "nothing changed" can be asserted byte for byte.
inline std::string StateDump(Store& store) {
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
inline size_t CountPrefix(Store& store, Db db, const std::string& prefix) {
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
inline void CheckStoreInvariants(Store& store) {
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
inline void CheckAddAgainstGolden(const OutboxRecord& rec, const std::string& group,
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
inline void CheckCollectionAdd(const OutboxRecord& rec, const Config& config,
                               const Json& collection) {
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
inline void CheckItemAdd(const OutboxRecord& rec, const Config& config, const Json& item,
                         uint64_t author, const std::string& collection_name) {
  const uint64_t id = static_cast<uint64_t>(item.at("id").num());
  const uint64_t cid = static_cast<uint64_t>(item.at("collection_id").num());
  const std::string foreign_id = "Content:" + std::to_string(id);
  CheckAddAgainstGolden(rec, config.feed_collections, cid, author, foreign_id, "post");
  Json body(rec.body);
  std::set<std::string> want = {"actor", "verb", "object", "foreign_id",
                                "time",  "post", "url",    "collection"};
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
inline void CheckUpdate(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
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
inline void CheckRemove(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
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

inline std::string StreamTimeOf(const Json& obj) {
  std::string ts = obj.at("timestamp").str();
  BOOST_REQUIRE(!ts.empty() && ts.back() == 'Z');
  return ts.substr(0, ts.size() - 1);
}

}  // namespace offbrand::test

#endif  // OFFBRAND_TESTS_COLLECTIONS_TEST_HELPERS_H_
