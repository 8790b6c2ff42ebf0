// Proves, over real HTTP against an in-process server with a real LMDB dir,
// that collections and their links can be created, read, edited and deleted
// only by the people allowed to, that every change leaves exactly the outbox
// records of the golden Stream requests (field by field), that deleting a
// collection cascades to its links and follows, that bad input and refused
// requests change nothing, and that pages and the offline feeds stay stable.
#define BOOST_TEST_MODULE collections_http_test
#include <boost/test/unit_test.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "activity_json.h"
#include "collections.h"
#include "collections_test_helpers.h"

namespace offbrand::test {
namespace {

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

}  // namespace
}  // namespace offbrand::test
