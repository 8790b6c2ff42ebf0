// Proves that finished feed pages are reused only within the LMDB snapshot
// that produced them: FeedPageCache's rules on their own (snapshot match,
// older entries dropped, byte bound), and over real HTTP against an
// in-process server with a real LMDB dir that every kind of commit (an edit
// through the API, a stream id stored by the sync engine's path, a follow)
// shows in the very next read of the user, collection, timeline and
// notifications feeds, and that viewers never see each other's pages.
#define BOOST_TEST_MODULE feeds_test
#include <boost/test/unit_test.hpp>

#include <memory>
#include <string>

#include "collections.h"
#include "feeds.h"
#include "test_support.h"

namespace offbrand::test {
namespace {

const std::string kApi = "/api/v1";

std::shared_ptr<const std::string> Body(size_t bytes, char fill = 'x') {
  return std::make_shared<const std::string>(bytes, fill);
}

BOOST_AUTO_TEST_CASE(ACachedPageIsServedOnlyToItsOwnSnapshot) {
  FeedPageCache cache;
  auto body = Body(10);
  cache.Insert("u|alice|20|0", 5, body);
  BOOST_TEST(cache.Find("u|alice|20|0", 5) == body);
  BOOST_TEST(cache.Find("u|alice|20|0", 6) == nullptr);
  BOOST_TEST(cache.Find("u|alice|20|0", 4) == nullptr);
  BOOST_TEST(cache.Find("u|bob|20|0", 5) == nullptr);
}

BOOST_AUTO_TEST_CASE(ANewerSnapshotDropsEveryOlderPageAndOlderOnesAreNotKept) {
  FeedPageCache cache;
  cache.Insert("a", 5, Body(10));
  cache.Insert("b", 5, Body(20));
  BOOST_TEST(cache.entries() == 2u);
  cache.Insert("c", 6, Body(30));
  BOOST_TEST(cache.entries() == 1u);
  BOOST_TEST(cache.bytes() == 30u);
  BOOST_TEST(cache.Find("a", 5) == nullptr);
  cache.Insert("a", 5, Body(10));  // a reader of an older snapshot finishing late
  BOOST_TEST(cache.entries() == 1u);
  BOOST_TEST(cache.Find("a", 5) == nullptr);
  BOOST_TEST(cache.Find("c", 6) != nullptr);
}

BOOST_AUTO_TEST_CASE(TheCacheStaysWithinItsByteBoundDroppingTheOldestFirst) {
  FeedPageCache cache;
  const size_t page = 100 << 10;
  const int pages = static_cast<int>(FeedPageCache::kCacheBytesMax / page) + 5;
  for (int i = 0; i < pages; ++i) cache.Insert("p" + std::to_string(i), 9, Body(page));
  BOOST_TEST(cache.bytes() <= FeedPageCache::kCacheBytesMax);
  BOOST_TEST(cache.bytes() == cache.entries() * page);
  BOOST_TEST(cache.Find("p0", 9) == nullptr);
  BOOST_TEST(cache.Find("p" + std::to_string(pages - 1), 9) != nullptr);
  cache.Insert("huge", 9, Body(FeedPageCache::kEntryBytesMax + 1));
  BOOST_TEST(cache.Find("huge", 9) == nullptr);
}

struct Fixture {
  TempDir dir;
  TestServer server{dir.path()};
  TestApi api = server.api();

  uint64_t Create(const std::string& token, const std::string& path, const std::string& body) {
    HttpReply r = api.Post(kApi + path, body, token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, path << ": " << r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  // A feed page read twice in a row: the second answer (from the cache when
  // nothing was committed in between) must be the first one.
  std::string Read(const std::string& path, const std::string& token = "") {
    HttpReply first = api.Get(kApi + path, token);
    BOOST_REQUIRE_MESSAGE(first.status == 200, path << ": " << first.status << " " << first.body);
    HttpReply again = api.Get(kApi + path, token);
    BOOST_TEST(again.status == 200);
    BOOST_TEST(again.body == first.body);
    BOOST_TEST(again.header("Content-Type") == "application/json");
    return first.body;
  }
};

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

BOOST_FIXTURE_TEST_CASE(EveryCommitShowsInTheNextReadOfEachFeed, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t cid = Create(bob, "/collections", R"({"name":"first name","description":"d"})");
  const std::string items = "/collections/" + std::to_string(cid) + "/items";
  const uint64_t item = Create(bob, items, R"({"url":"https://example.com/1","title":"one"})");
  BOOST_REQUIRE(api.Put(kApi + "/collections/" + std::to_string(cid) + "/follow", "", alice).status == 200);
  BOOST_REQUIRE(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  const std::string user_feed = "/feeds/user/bob";
  const std::string coll_feed = "/feeds/collection/" + std::to_string(cid);

  BOOST_TEST(Contains(Read(user_feed), "first name"));
  BOOST_TEST(Contains(Read(coll_feed), "\"one\""));
  BOOST_TEST(Contains(Read("/feeds/timeline", alice), "\"one\""));
  BOOST_TEST(Contains(Read("/feeds/notifications", alice), "first name"));

  // An edit through the API.
  HttpReply edit = api.Patch(kApi + "/collections/" + std::to_string(cid),
                             R"({"name":"second name"})", bob);
  BOOST_REQUIRE_MESSAGE(edit.status == 200, edit.status << " " << edit.body);
  BOOST_TEST(Contains(Read(user_feed), "second name"));
  BOOST_TEST(Contains(Read(coll_feed), "second name"));
  BOOST_TEST(Contains(Read("/feeds/timeline", alice), "second name"));
  BOOST_TEST(Contains(Read("/feeds/notifications", alice), "second name"));

  // A commit that is not an HTTP request: the sync engine storing the
  // activity ids Stream answered.
  Status s = server.store().Write([&](WriteTxn& txn) {
    Status r = SetStreamIdInTxn(txn, "Collection:" + std::to_string(cid), "stream-coll-id");
    if (!r.ok()) return r;
    return SetStreamIdInTxn(txn, "Content:" + std::to_string(item), "stream-item-id");
  });
  BOOST_REQUIRE(s.ok());
  BOOST_TEST(Contains(Read(user_feed), "stream-coll-id"));
  BOOST_TEST(Contains(Read(coll_feed), "stream-item-id"));
  BOOST_TEST(Contains(Read("/feeds/timeline", alice), "stream-item-id"));
  BOOST_TEST(Contains(Read("/feeds/notifications", alice), "stream-coll-id"));

  // A new link, an unfollow, a delete.
  Create(bob, items, R"({"url":"https://example.com/2","title":"two"})");
  BOOST_TEST(Contains(Read("/feeds/timeline", alice), "\"two\""));
  BOOST_TEST(Contains(Read(coll_feed), "\"two\""));
  BOOST_REQUIRE(api.Delete(kApi + "/users/bob/follow", alice).status == 200);
  BOOST_TEST(!Contains(Read("/feeds/notifications", alice), "second name"));
  BOOST_REQUIRE(api.Delete(kApi + "/collections/" + std::to_string(cid), bob).status / 100 == 2);
  BOOST_TEST(!Contains(Read("/feeds/timeline", alice), "\"two\""));
  BOOST_TEST(!Contains(Read(user_feed), "second name"));
  BOOST_TEST(api.Get(kApi + coll_feed).status == 404);
}

BOOST_FIXTURE_TEST_CASE(ViewersAndPageParametersNeverShareAPage, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t mine = Create(alice, "/collections", R"({"name":"alices","description":"d"})");
  const uint64_t his = Create(bob, "/collections", R"({"name":"bobs","description":"d"})");
  for (int i = 0; i < 3; ++i) {
    Create(alice, "/collections/" + std::to_string(mine) + "/items",
           R"({"url":"https://example.com/a)" + std::to_string(i) + R"(","title":"alice link"})");
    Create(bob, "/collections/" + std::to_string(his) + "/items",
           R"({"url":"https://example.com/b)" + std::to_string(i) + R"(","title":"bob link"})");
  }
  // Same snapshot, different viewers and parameters: different pages.
  const std::string a = Read("/feeds/timeline", alice);
  const std::string b = Read("/feeds/timeline", bob);
  BOOST_TEST(Contains(a, "alice link"));
  BOOST_TEST(!Contains(a, "bob link"));
  BOOST_TEST(Contains(b, "bob link"));
  BOOST_TEST(!Contains(b, "alice link"));
  const std::string one = Read("/feeds/timeline?limit=1", alice);
  BOOST_TEST(one != a);
  const std::string next = api.Get(kApi + "/feeds/timeline?limit=1", alice).json().at("next").str();
  BOOST_TEST(Read("/feeds/timeline?limit=1&cursor=" + next, alice) != one);
  BOOST_TEST(Read("/feeds/notifications", alice) != Read("/feeds/notifications", bob));
  BOOST_TEST(api.Get(kApi + "/feeds/timeline").status == 401);
}

}  // namespace
}  // namespace offbrand::test
