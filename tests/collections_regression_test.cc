// Regression tests for the collection and link bugs of issue 3's review,
// each named after what broke, over real HTTP against an in-process server
// with a real LMDB dir: urls too long for a raw LMDB key, url hash
// collisions, nulls for required fields, a rename that left Stream's link
// activities with the old name, unbounded links and collections, Stream
// times out of id order, lists failing on one dangling index entry, the read
// permission matrix, and configured feed group names.
#define BOOST_TEST_MODULE collections_regression_test
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "collections.h"
#include "collections_test_helpers.h"
#include "offbrand/clock.h"

namespace offbrand::test {
namespace {

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
