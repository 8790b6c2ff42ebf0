// Proves, over real HTTP against an in-process server with a real LMDB dir,
// that follows of users and collections are idempotent and permission-checked,
// that self-follows exist but are never shown, that the offline Timeline and
// Notifications feeds follow every follow, unfollow, edit and delete, that the
// Stream credentials carry a user token signed with the API secret, that
// every follow edge reaches the outbox in the shape of the golden requests,
// and that after sync converges the Stream double's follow graph equals ours.
#define BOOST_TEST_MODULE follows_http_test
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <chrono>
#include <thread>

#include "follows.h"
#include "jwt.h"
#include "offbrand/outbox.h"
#include "stream_double.h"
#include "test_support.h"

namespace offbrand::test {
namespace {

const std::string kApi = "/api/v1";

struct Fixture {
  TempDir dir;
  TestServer server{dir.path()};
  TestApi api = server.api();

  uint64_t UserId(const std::string& token) {
    HttpReply r = api.Get(kApi + "/me", token);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  uint64_t CreateCollection(const std::string& token, const std::string& name) {
    HttpReply r = api.Post(kApi + "/collections",
                           R"({"name":")" + name + R"(","description":"about )" + name + R"("})",
                           token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "create collection: " << r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  uint64_t AddItem(const std::string& token, uint64_t cid, const std::string& title) {
    HttpReply r = api.Post(kApi + "/collections/" + std::to_string(cid) + "/items",
                           R"({"url":"https://example.com/)" + title + R"(","title":")" + title +
                               R"("})",
                           token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "add item: " << r.status << " " << r.body);
    return static_cast<uint64_t>(r.json().at("id").num());
  }
  // The "object" field of every entry of a feed page, in order.
  std::vector<std::string> FeedObjects(const std::string& feed, const std::string& token) {
    HttpReply r = api.Get(kApi + "/feeds/" + feed, token);
    BOOST_REQUIRE_MESSAGE(r.status == 200, feed << ": " << r.status << " " << r.body);
    std::vector<std::string> objects;
    Json items = r.json().at("items");
    for (size_t i = 0; i < items.size(); ++i) objects.push_back(items.at(i).at("object").str());
    return objects;
  }
  // The outbox records of one follow edge, in sequence order.
  std::vector<OutboxRecord> EdgeRecords(const std::string& group, uint64_t feed_id,
                                        const std::string& target) {
    std::vector<OutboxRecord> out;
    for (const OutboxRecord& rec : OutboxRecords(server.store())) {
      if ((rec.op == OutboxOp::kFollow || rec.op == OutboxOp::kUnfollow) &&
          rec.feed_group == group && rec.feed_id == std::to_string(feed_id) &&
          rec.foreign_id == target) {
        out.push_back(rec);
      }
    }
    return out;
  }
};

std::string Item(uint64_t id) { return "Content:" + std::to_string(id); }
std::string Coll(uint64_t id) { return "Collection:" + std::to_string(id); }
std::string Path(const std::string& a, uint64_t id, const std::string& b) {
  return kApi + a + std::to_string(id) + b;
}

// A follow record as the golden feed.follow request shows it: the body holds
// exactly the golden body's fields, the target feed and a copy limit of 100.
void CheckFollowRecord(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
                       const std::string& target) {
  Json golden = GoldenRequest("feed.follow");
  BOOST_TEST(std::string(OutboxOpName(rec.op)) == golden.at("operation").str());
  BOOST_TEST(golden.at("method").str() == "POST");
  BOOST_TEST(rec.feed_group == group);
  BOOST_TEST(rec.feed_id == std::to_string(feed_id));
  BOOST_TEST(rec.foreign_id == target);
  BOOST_TEST(rec.entity == FollowEntity(group, std::to_string(feed_id), target));
  Json body(rec.body);
  Json golden_body = golden.at("body");
  BOOST_TEST(body.size() == golden_body.size());
  BOOST_TEST(body.at("target").str() == target);
  BOOST_TEST(body.at("activity_copy_limit").num() == golden_body.at("activity_copy_limit").num());
}

// An unfollow record as the golden feed.unfollow request shows it: no body and
// no keep_history, so the followed feed's activities leave ours.
void CheckUnfollowRecord(const OutboxRecord& rec, const std::string& group, uint64_t feed_id,
                         const std::string& target) {
  Json golden = GoldenRequest("feed.unfollow");
  BOOST_TEST(std::string(OutboxOpName(rec.op)) == golden.at("operation").str());
  BOOST_TEST(golden.at("method").str() == "DELETE");
  BOOST_TEST(golden.at("body").is_null());
  BOOST_TEST(!golden.at("query").has("keep_history"));
  BOOST_TEST(rec.feed_group == group);
  BOOST_TEST(rec.feed_id == std::to_string(feed_id));
  BOOST_TEST(rec.foreign_id == target);
  BOOST_TEST(rec.entity == FollowEntity(group, std::to_string(feed_id), target));
  BOOST_TEST(rec.body.empty());
}

BOOST_FIXTURE_TEST_CASE(FollowingAUserTwiceAnswersTheSameAndQueuesOneFollow, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t alice_id = UserId(alice), bob_id = UserId(bob);

  for (int i = 0; i < 2; ++i) {
    HttpReply r = api.Put(kApi + "/users/bob/follow", "", alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    BOOST_TEST(r.json().at("following").boolean());
    BOOST_TEST(r.json().at("follower_count").num() == 1);
  }
  HttpReply followers = api.Get(kApi + "/users/bob/followers");
  BOOST_REQUIRE_EQUAL(followers.status, 200);
  BOOST_TEST(followers.json().at("count").num() == 1);
  BOOST_REQUIRE_EQUAL(followers.json().at("items").size(), 1u);
  Json entry = followers.json().at("items").at(0);
  BOOST_TEST(entry.at("id").num() == static_cast<int64_t>(alice_id));
  BOOST_TEST(entry.at("username").str() == "alice");
  BOOST_TEST(entry.at("gravatar").str().find("s=40") != std::string::npos);
  BOOST_TEST(entry.at("since").str().back() == 'Z');
  HttpReply following = api.Get(kApi + "/users/alice/following");
  BOOST_REQUIRE_EQUAL(following.status, 200);
  BOOST_TEST(following.json().at("count").num() == 1);
  BOOST_TEST(following.json().at("items").at(0).at("username").str() == "bob");

  std::vector<OutboxRecord> recs = EdgeRecords("Notifications", alice_id, "User:" + std::to_string(bob_id));
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckFollowRecord(recs[0], "Notifications", alice_id, "User:" + std::to_string(bob_id));

  for (int i = 0; i < 2; ++i) {
    HttpReply r = api.Delete(kApi + "/users/bob/follow", alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    BOOST_TEST(!r.json().at("following").boolean());
    BOOST_TEST(r.json().at("follower_count").num() == 0);
  }
  BOOST_TEST(api.Get(kApi + "/users/bob/followers").json().at("count").num() == 0);
  BOOST_TEST(api.Get(kApi + "/users/bob/followers").json().at("items").size() == 0u);
  BOOST_TEST(api.Get(kApi + "/users/alice/following").json().at("count").num() == 0);

  recs = EdgeRecords("Notifications", alice_id, "User:" + std::to_string(bob_id));
  BOOST_REQUIRE_EQUAL(recs.size(), 2u);
  BOOST_TEST(recs[0].seq < recs[1].seq);
  CheckUnfollowRecord(recs[1], "Notifications", alice_id, "User:" + std::to_string(bob_id));
}

BOOST_FIXTURE_TEST_CASE(FollowingACollectionTwiceAnswersTheSameAndQueuesOneFollow, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t alice_id = UserId(alice), bob_id = UserId(bob);
  const uint64_t cid = CreateCollection(bob, "reading");
  const std::string target = "Collections:" + std::to_string(cid);

  for (int i = 0; i < 2; ++i) {
    HttpReply r = api.Put(Path("/collections/", cid, "/follow"), "", alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    BOOST_TEST(r.json().at("following").boolean());
    BOOST_TEST(r.json().at("follower_count").num() == 1);
  }
  HttpReply followers = api.Get(Path("/collections/", cid, "/followers"));
  BOOST_REQUIRE_EQUAL(followers.status, 200);
  BOOST_TEST(followers.json().at("count").num() == 1);
  BOOST_REQUIRE_EQUAL(followers.json().at("items").size(), 1u);
  BOOST_TEST(followers.json().at("items").at(0).at("username").str() == "alice");
  BOOST_TEST(api.Get(Path("/collections/", cid, "")).json().at("follower_count").num() == 1);

  std::vector<OutboxRecord> recs = EdgeRecords("Timeline", alice_id, target);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckFollowRecord(recs[0], "Timeline", alice_id, target);

  for (int i = 0; i < 2; ++i) {
    HttpReply r = api.Delete(Path("/collections/", cid, "/follow"), alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    BOOST_TEST(!r.json().at("following").boolean());
    BOOST_TEST(r.json().at("follower_count").num() == 0);
  }
  BOOST_TEST(api.Get(Path("/collections/", cid, "/followers")).json().at("count").num() == 0);
  recs = EdgeRecords("Timeline", alice_id, target);
  BOOST_REQUIRE_EQUAL(recs.size(), 2u);
  CheckUnfollowRecord(recs[1], "Timeline", alice_id, target);

  // The author keeps following their own collection.
  HttpReply own = api.Delete(Path("/collections/", cid, "/follow"), bob);
  BOOST_TEST(own.status == 400);
  BOOST_TEST(own.error_code() == "cannot_unfollow_own_collection");
  BOOST_TEST(EdgeRecords("Timeline", bob_id, target).size() == 1u);

  BOOST_TEST(api.Put(kApi + "/collections/999999/follow", "", alice).status == 404);
  BOOST_TEST(api.Put(kApi + "/collections/abc/follow", "", alice).status == 404);
  BOOST_TEST(api.Get(kApi + "/collections/999999/followers").status == 404);
}

BOOST_FIXTURE_TEST_CASE(FollowNeedsAConfirmedAccount, Fixture) {
  // Every role of the seed app (User, Moderator, Administrator) has FOLLOW, so
  // there is no role to demote a user to that would lack it: that row of the
  // permission table cannot be exercised over HTTP.
  const std::string bob = server.SignUp("bob");
  const uint64_t cid = CreateCollection(bob, "reading");
  const std::string eve = server.SignUpUnconfirmed("eve");
  const std::size_t records_before = OutboxRecords(server.store()).size();

  for (const char* method : {"PUT", "DELETE"}) {
    const std::string m = method;
    auto send = [&](const std::string& path, const std::string& token) {
      return m == "PUT" ? api.Put(path, "", token) : api.Delete(path, token);
    };
    BOOST_TEST(send(kApi + "/users/bob/follow", "").status == 401);
    BOOST_TEST(send(Path("/collections/", cid, "/follow"), "").status == 401);
    HttpReply r = send(kApi + "/users/bob/follow", eve);
    BOOST_TEST(r.status == 403);
    BOOST_TEST(send(Path("/collections/", cid, "/follow"), eve).status == 403);
    // Unknown and unconfirmed users are not there to follow.
    BOOST_TEST(send(kApi + "/users/nobody/follow", bob).status == 404);
    BOOST_TEST(send(kApi + "/users/eve/follow", bob).status == 404);
  }
  BOOST_TEST(OutboxRecords(server.store()).size() == records_before);
  BOOST_TEST(api.Get(kApi + "/users/eve/followers").status == 404);
  BOOST_TEST(api.Get(kApi + "/users/nobody/following").status == 404);
}

BOOST_FIXTURE_TEST_CASE(SelfFollowsAreQueuedButRefusedByHandAndNeverCounted, Fixture) {
  const std::string alice = server.SignUp("alice");
  const uint64_t alice_id = UserId(alice);
  const std::string self = "User:" + std::to_string(alice_id);

  // Confirmation made alice follow herself, once.
  std::vector<OutboxRecord> recs = EdgeRecords("Notifications", alice_id, self);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckFollowRecord(recs[0], "Notifications", alice_id, self);

  const uint64_t cid = CreateCollection(alice, "mine");
  const std::string own = "Collections:" + std::to_string(cid);
  recs = EdgeRecords("Timeline", alice_id, own);
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  CheckFollowRecord(recs[0], "Timeline", alice_id, own);

  HttpReply put = api.Put(kApi + "/users/alice/follow", "", alice);
  BOOST_TEST(put.status == 400);
  BOOST_TEST(put.error_code() == "cannot_follow_self");
  HttpReply del = api.Delete(kApi + "/users/ALICE/follow", alice);
  BOOST_TEST(del.status == 400);
  BOOST_TEST(del.error_code() == "cannot_follow_self");
  BOOST_TEST(EdgeRecords("Notifications", alice_id, self).size() == 1u);

  // Following your own collection by hand is a no-op.
  HttpReply follow_own = api.Put(Path("/collections/", cid, "/follow"), "", alice);
  BOOST_TEST(follow_own.status == 200);
  BOOST_TEST(follow_own.json().at("follower_count").num() == 0);
  BOOST_TEST(EdgeRecords("Timeline", alice_id, own).size() == 1u);

  for (const char* list : {"/users/alice/followers", "/users/alice/following"}) {
    HttpReply r = api.Get(kApi + list);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    BOOST_TEST(r.json().at("count").num() == 0);
    BOOST_TEST(r.json().at("items").size() == 0u);
  }
  HttpReply cf = api.Get(Path("/collections/", cid, "/followers"));
  BOOST_TEST(cf.json().at("count").num() == 0);
  BOOST_TEST(cf.json().at("items").size() == 0u);
  BOOST_TEST(api.Get(Path("/collections/", cid, "")).json().at("follower_count").num() == 0);
}

BOOST_FIXTURE_TEST_CASE(TimelineShowsLinksOfFollowedCollectionsThroughEditsAndDeletes, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const std::string carol = server.SignUp("carol");
  const uint64_t bob_id = UserId(bob);
  const uint64_t c1 = CreateCollection(bob, "one");
  const uint64_t i1 = AddItem(bob, c1, "first");
  const uint64_t c2 = CreateCollection(carol, "two");
  const uint64_t i2 = AddItem(carol, c2, "second");
  const uint64_t i3 = AddItem(bob, c1, "third");

  BOOST_TEST(FeedObjects("timeline", alice).empty());
  BOOST_TEST(api.Put(Path("/collections/", c1, "/follow"), "", alice).status == 200);
  BOOST_TEST(FeedObjects("timeline", alice) == (std::vector<std::string>{Item(i3), Item(i1)}));

  HttpReply page = api.Get(kApi + "/feeds/timeline", alice);
  Json entry = page.json().at("items").at(0);
  BOOST_TEST(entry.at("id").is_null());  // Stream has not seen it yet
  BOOST_TEST(entry.at("actor").at("id").num() == static_cast<int64_t>(bob_id));
  BOOST_TEST(entry.at("actor").at("username").str() == "bob");
  BOOST_TEST(entry.at("actor").has("gravatar"));
  BOOST_TEST(entry.at("verb").str() == "post");
  BOOST_TEST(entry.at("foreign_id").str() == Item(i3));
  BOOST_TEST(entry.at("post").str() == "third");
  BOOST_TEST(entry.at("time").str().back() != 'Z');  // Stream's time string
  BOOST_TEST(page.json().at("next").is_null());

  BOOST_TEST(api.Put(Path("/collections/", c2, "/follow"), "", alice).status == 200);
  BOOST_TEST(FeedObjects("timeline", alice) ==
             (std::vector<std::string>{Item(i3), Item(i2), Item(i1)}));

  BOOST_TEST(api.Delete(Path("/collections/", c1, "/follow"), alice).status == 200);
  BOOST_TEST(FeedObjects("timeline", alice) == (std::vector<std::string>{Item(i2)}));

  BOOST_TEST(api.Put(Path("/collections/", c1, "/follow"), "", alice).status == 200);
  HttpReply edit = api.Patch(Path("/items/", i1, ""), R"({"title":"renamed"})", bob);
  BOOST_REQUIRE_MESSAGE(edit.status == 200, edit.status << " " << edit.body);
  Json items = api.Get(kApi + "/feeds/timeline", alice).json().at("items");
  BOOST_REQUIRE_EQUAL(items.size(), 3u);
  BOOST_TEST(items.at(2).at("object").str() == Item(i1));
  BOOST_TEST(items.at(2).at("post").str() == "renamed");

  HttpReply gone = api.Delete(Path("/collections/", c2, ""), carol);
  BOOST_REQUIRE_MESSAGE(gone.status == 200 || gone.status == 204, gone.status << " " << gone.body);
  BOOST_TEST(FeedObjects("timeline", alice) == (std::vector<std::string>{Item(i3), Item(i1)}));

  HttpReply gone_item = api.Delete(Path("/items/", i3, ""), bob);
  BOOST_REQUIRE(gone_item.status == 200 || gone_item.status == 204);
  BOOST_TEST(FeedObjects("timeline", alice) == (std::vector<std::string>{Item(i1)}));

  // Authors follow their own collections, so their links reach their timeline.
  BOOST_TEST(FeedObjects("timeline", bob) == (std::vector<std::string>{Item(i1)}));
  const uint64_t c3 = CreateCollection(alice, "mine");
  const uint64_t i4 = AddItem(alice, c3, "fourth");
  BOOST_TEST(FeedObjects("timeline", alice) == (std::vector<std::string>{Item(i4), Item(i1)}));

  BOOST_TEST(api.Get(kApi + "/feeds/timeline").status == 401);
}

BOOST_FIXTURE_TEST_CASE(TimelinePagesThroughMergedCollectionsNewestFirst, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t ca = CreateCollection(bob, "a");
  const uint64_t cb = CreateCollection(bob, "b");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 25; ++i) ids.push_back(AddItem(bob, i % 3 == 0 ? ca : cb, "link" + std::to_string(i)));
  BOOST_TEST(api.Put(Path("/collections/", ca, "/follow"), "", alice).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", cb, "/follow"), "", alice).status == 200);
  std::sort(ids.rbegin(), ids.rend());

  std::vector<uint64_t> seen;
  std::vector<size_t> page_sizes;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    std::string path = kApi + "/feeds/timeline?limit=10";
    if (!cursor.empty()) path += "&cursor=" + cursor;
    HttpReply r = api.Get(path, alice);
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    Json items = r.json().at("items");
    page_sizes.push_back(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string object = items.at(i).at("object").str();
      seen.push_back(std::stoull(object.substr(object.find(':') + 1)));
    }
    if (r.json().at("next").is_null()) break;
    cursor = r.json().at("next").str();
  }
  BOOST_TEST(page_sizes == (std::vector<size_t>{10, 10, 5}));
  BOOST_TEST(seen == ids);

  BOOST_TEST(api.Get(kApi + "/feeds/timeline?cursor=%%%", alice).status == 422);
  BOOST_TEST(api.Get(kApi + "/feeds/timeline?limit=0", alice).status == 422);
}

BOOST_FIXTURE_TEST_CASE(NotificationsShowCollectionsOfFollowedUsersAndFollowEveryChange, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t bob_id = UserId(bob);
  const uint64_t mine = CreateCollection(alice, "mine");
  const uint64_t b1 = CreateCollection(bob, "bobs");

  BOOST_TEST(FeedObjects("notifications", alice) == (std::vector<std::string>{Coll(mine)}));
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_TEST(FeedObjects("notifications", alice) ==
             (std::vector<std::string>{Coll(b1), Coll(mine)}));
  Json entry = api.Get(kApi + "/feeds/notifications", alice).json().at("items").at(0);
  BOOST_TEST(entry.at("id").is_null());
  BOOST_TEST(entry.at("verb").str() == "create");
  BOOST_TEST(entry.at("foreign_id").str() == Coll(b1));
  BOOST_TEST(entry.at("actor").at("id").num() == static_cast<int64_t>(bob_id));
  BOOST_TEST(entry.at("actor").at("username").str() == "bob");

  const uint64_t b2 = CreateCollection(bob, "more");
  BOOST_TEST(FeedObjects("notifications", alice) ==
             (std::vector<std::string>{Coll(b2), Coll(b1), Coll(mine)}));
  HttpReply page = api.Get(kApi + "/feeds/notifications?limit=2", alice);
  BOOST_TEST(page.json().at("items").size() == 2u);
  HttpReply rest = api.Get(kApi + "/feeds/notifications?limit=2&cursor=" +
                               page.json().at("next").str(), alice);
  BOOST_REQUIRE_EQUAL(rest.json().at("items").size(), 1u);
  BOOST_TEST(rest.json().at("items").at(0).at("object").str() == Coll(mine));

  HttpReply gone = api.Delete(Path("/collections/", b1, ""), bob);
  BOOST_REQUIRE(gone.status == 200 || gone.status == 204);
  BOOST_TEST(FeedObjects("notifications", alice) ==
             (std::vector<std::string>{Coll(b2), Coll(mine)}));

  BOOST_TEST(api.Delete(kApi + "/users/bob/follow", alice).status == 200);
  BOOST_TEST(FeedObjects("notifications", alice) == (std::vector<std::string>{Coll(mine)}));
  BOOST_TEST(api.Get(kApi + "/feeds/notifications").status == 401);
}

BOOST_FIXTURE_TEST_CASE(DeletingACollectionQueuesTheUnfollowsOfItsFollowers, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t alice_id = UserId(alice), bob_id = UserId(bob);
  const uint64_t cid = CreateCollection(bob, "doomed");
  const std::string target = "Collections:" + std::to_string(cid);
  BOOST_TEST(api.Put(Path("/collections/", cid, "/follow"), "", alice).status == 200);

  HttpReply gone = api.Delete(Path("/collections/", cid, ""), bob);
  BOOST_REQUIRE(gone.status == 200 || gone.status == 204);
  for (uint64_t user : {alice_id, bob_id}) {
    std::vector<OutboxRecord> recs = EdgeRecords("Timeline", user, target);
    BOOST_REQUIRE_EQUAL(recs.size(), 2u);
    CheckFollowRecord(recs[0], "Timeline", user, target);
    CheckUnfollowRecord(recs[1], "Timeline", user, target);
  }
  BOOST_TEST(api.Get(Path("/collections/", cid, "/followers")).status == 404);
}

BOOST_FIXTURE_TEST_CASE(DeletingAUserQueuesTheUnfollowsOfEveryEdge, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t alice_id = UserId(alice), bob_id = UserId(bob);
  const uint64_t alice_cid = CreateCollection(alice, "hers");
  const uint64_t bob_cid = CreateCollection(bob, "his");
  AddItem(bob, bob_cid, "link");
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_TEST(api.Put(kApi + "/users/alice/follow", "", bob).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", alice_cid, "/follow"), "", bob).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", bob_cid, "/follow"), "", alice).status == 200);

  HttpReply gone = api.Delete(kApi + "/users/bob", bob);
  BOOST_REQUIRE_MESSAGE(gone.status == 200 || gone.status == 204, gone.status << " " << gone.body);

  const std::string user_alice = "User:" + std::to_string(alice_id);
  const std::string user_bob = "User:" + std::to_string(bob_id);
  struct Edge { std::string group; uint64_t feed; std::string target; };
  for (const Edge& e : std::vector<Edge>{
           {"Notifications", alice_id, user_bob},
           {"Notifications", bob_id, user_alice},
           {"Notifications", bob_id, user_bob},
           {"Timeline", bob_id, "Collections:" + std::to_string(alice_cid)},
           {"Timeline", alice_id, "Collections:" + std::to_string(bob_cid)},
           {"Timeline", bob_id, "Collections:" + std::to_string(bob_cid)}}) {
    std::vector<OutboxRecord> recs = EdgeRecords(e.group, e.feed, e.target);
    BOOST_TEST_CONTEXT(e.group << ":" << e.feed << " -> " << e.target) {
      BOOST_REQUIRE_EQUAL(recs.size(), 2u);
      CheckUnfollowRecord(recs[1], e.group, e.feed, e.target);
    }
  }
  BOOST_TEST(api.Get(kApi + "/users/alice/following").json().at("count").num() == 0);
  BOOST_TEST(api.Get(kApi + "/users/alice/followers").json().at("count").num() == 0);
  BOOST_TEST(api.Get(Path("/collections/", alice_cid, "/followers")).json().at("count").num() == 0);
  BOOST_TEST(FeedObjects("timeline", alice).empty());
  BOOST_TEST(FeedObjects("notifications", alice) == (std::vector<std::string>{Coll(alice_cid)}));
}

// Every follow edge in LMDB as "<source feed> -> <target feed>".
std::set<std::string> LocalFollowGraph(Store& store, const Config& config) {
  std::set<std::string> edges;
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  struct Table { Db db; std::string source; std::string target; };
  for (const Table& t : {Table{Db::kFollows, config.feed_notifications, config.feed_user},
                         Table{Db::kCollectionFollows, config.feed_timeline, config.feed_collections}}) {
    Cursor c = (*txn)->OpenCursor(t.db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      edges.insert(t.source + ":" + std::to_string(GetU64BE(c.key())) + " -> " + t.target + ":" +
                   std::to_string(GetU64BE(c.key().substr(8))));
    }
  }
  return edges;
}

std::string Join(const std::set<std::string>& edges) {
  std::string s;
  for (const std::string& e : edges) s += e + "\n";
  return s;
}

std::set<std::string> DoubleFollowGraph(const StreamDouble& dbl) {
  std::set<std::string> edges;
  Json follows = Json(dbl.StateJson()).at("follows");
  for (size_t i = 0; i < follows.size(); ++i) {
    edges.insert(follows.at(i).at("source").str() + " -> " + follows.at(i).at("target").str());
  }
  return edges;
}

BOOST_AUTO_TEST_CASE(AfterSyncStreamsFollowGraphEqualsTheLocalOne) {
  StreamDouble dbl;
  BOOST_REQUIRE(dbl.Start().ok());
  TempDir dir;
  TestServer server(dir.path(), [&](Config& c) {
    c.stream_api_key = "testkey";
    c.stream_api_secret = "testsecret";
    c.stream_app_id = "1";
    c.stream_base_url = dbl.base_url();
    c.sync_retry_max_ms = 500;
  });
  TestApi api = server.api();
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const std::string carol = server.SignUp("carol");
  auto create = [&](const std::string& token, const std::string& name) {
    HttpReply r = api.Post(kApi + "/collections",
                           R"({"name":")" + name + R"(","description":"d"})", token);
    BOOST_REQUIRE_EQUAL(r.status, 201);
    return static_cast<uint64_t>(r.json().at("id").num());
  };
  const uint64_t c1 = create(bob, "one"), c2 = create(bob, "two"), c3 = create(carol, "three");
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_TEST(api.Put(kApi + "/users/carol/follow", "", alice).status == 200);
  BOOST_TEST(api.Put(kApi + "/users/alice/follow", "", bob).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", c1, "/follow"), "", alice).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", c3, "/follow"), "", alice).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", c1, "/follow"), "", carol).status == 200);
  BOOST_TEST(api.Put(Path("/collections/", c2, "/follow"), "", carol).status == 200);
  BOOST_TEST(api.Delete(kApi + "/users/carol/follow", alice).status == 200);
  BOOST_TEST(api.Delete(Path("/collections/", c3, "/follow"), alice).status == 200);
  HttpReply gone = api.Delete(Path("/collections/", c2, ""), bob);
  BOOST_TEST((gone.status == 200 || gone.status == 204));

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!OutboxRecords(server.store()).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_REQUIRE_MESSAGE(OutboxRecords(server.store()).empty(), "sync did not converge");
  BOOST_TEST(DeadRecords(server.store()).empty());

  const std::set<std::string> local = LocalFollowGraph(server.store(), server.app().config());
  // 3 self-follows, alice<->bob, 2 authors of c1/c3, alice and carol on c1.
  BOOST_TEST(local.size() == 9u);
  BOOST_TEST(local.count("Timeline:" + std::to_string(api.Get(kApi + "/me", carol).json().at("id").num()) +
                         " -> Collections:" + std::to_string(c2)) == 0u);
  const std::set<std::string> remote = DoubleFollowGraph(dbl);
  BOOST_TEST(Join(remote) == Join(local));
  if (remote != local) {
    BOOST_TEST_MESSAGE("double received " << dbl.RequestCount("follow") << " follows and "
                                          << dbl.RequestCount("unfollow") << " unfollows");
  }
}

BOOST_AUTO_TEST_CASE(StreamCredentialsCarryAUserTokenSignedWithTheSecret) {
  TempDir dir;
  const std::string secret = "s3cret-never-sent-0123456789";
  TestServer server(dir.path(), [&](Config& c) {
    c.stream_api_key = "key-abc";
    c.stream_api_secret = secret;
    c.stream_app_id = "4242";
    // Nothing listens here: sync fails fast and retries later.
    c.stream_base_url = "http://127.0.0.1:9/api/v1.0/";
  });
  TestApi api = server.api();
  const std::string alice = server.SignUp("alice");
  const int64_t alice_id = api.Get(kApi + "/me", alice).json().at("id").num();
  const std::string id = std::to_string(alice_id);

  HttpReply r = api.Get(kApi + "/stream/credentials", alice);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
  Json j = r.json();
  BOOST_TEST(j.at("api_key").str() == "key-abc");
  BOOST_TEST(j.at("app_id").str() == "4242");
  BOOST_TEST(j.at("base_url").str() == "http://127.0.0.1:9/api/v1.0/");
  BOOST_TEST(j.at("feeds").at("timeline").str() == "Timeline:" + id);
  BOOST_TEST(j.at("feeds").at("notifications").str() == "Notifications:" + id);
  BOOST_TEST(j.at("feeds").at("user").str() == "User:" + id);
  std::string claims;
  BOOST_TEST(VerifyJwt(secret, j.at("user_token").str(), &claims));
  BOOST_TEST(claims == R"({"user_id":")" + id + R"("})");
  BOOST_TEST(!VerifyJwt("another-secret", j.at("user_token").str(), nullptr));
  BOOST_TEST(r.body.find(secret) == std::string::npos);

  BOOST_TEST(api.Get(kApi + "/stream/credentials").status == 401);
  const std::string eve = server.SignUpUnconfirmed("eve");
  BOOST_TEST(api.Get(kApi + "/stream/credentials", eve).status == 403);
}

BOOST_FIXTURE_TEST_CASE(StreamCredentialsAre503WithoutKeys, Fixture) {
  const std::string alice = server.SignUp("alice");
  HttpReply r = api.Get(kApi + "/stream/credentials", alice);
  BOOST_TEST(r.status == 503);
  BOOST_TEST(r.error_code() == "stream_not_configured");
}


// ---- feed heads, counters, deep pagination -----------------------------------------

// The objects of every page of a feed, following the cursors with page size
// `limit`; fails on a page that is not 200 or a loop of more than 1000 pages.
std::vector<std::string> AllFeedObjects(const TestApi& api, const std::string& feed,
                                        const std::string& token, int limit) {
  std::vector<std::string> objects;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    std::string path = kApi + "/feeds/" + feed + "?limit=" + std::to_string(limit);
    if (!cursor.empty()) path += "&cursor=" + cursor;
    HttpReply r = api.Get(path, token);
    BOOST_REQUIRE_MESSAGE(r.status == 200, path << ": " << r.status << " " << r.body);
    Json items = r.json().at("items");
    BOOST_REQUIRE(items.size() <= static_cast<size_t>(limit));
    for (size_t i = 0; i < items.size(); ++i) objects.push_back(items.at(i).at("object").str());
    if (r.json().at("next").is_null()) return objects;
    BOOST_REQUIRE_MESSAGE(items.size() == static_cast<size_t>(limit), "a short page with a next");
    cursor = r.json().at("next").str();
  }
  BOOST_FAIL("feed " << feed << " never ended");
  return objects;
}

// The second ids of every (first, x) row of `db`.
std::vector<uint64_t> RowsUnder(const Txn& txn, Db db, uint64_t first) {
  std::vector<uint64_t> ids;
  Cursor c = txn.OpenCursor(db);
  for (bool ok = c.Seek(U64Key(first)); ok; ok = c.Next()) {
    if (c.key().size() != 16 || GetU64BE(c.key()) != first) break;
    ids.push_back(GetU64BE(c.key().substr(8)));
  }
  return ids;
}

// What a feed must show, worked out by brute force from the follow rows and
// the id indexes (not from the feed heads): every entry of every source the
// user follows, newest first, as "<prefix><id>".
std::vector<std::string> ExpectedFeed(Store& store, uint64_t user, Db follows, Db entries,
                                      const std::string& prefix) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::vector<uint64_t> ids;
  for (uint64_t source : RowsUnder(**txn, follows, user)) {
    for (uint64_t id : RowsUnder(**txn, entries, source)) ids.push_back(id);
  }
  std::sort(ids.rbegin(), ids.rend());
  std::vector<std::string> out;
  for (uint64_t id : ids) out.push_back(prefix + std::to_string(id));
  return out;
}
std::vector<std::string> ExpectedTimeline(Store& store, uint64_t user) {
  return ExpectedFeed(store, user, Db::kCollectionFollows, Db::kItemsByCollection, "Content:");
}
std::vector<std::string> ExpectedNotifications(Store& store, uint64_t user) {
  return ExpectedFeed(store, user, Db::kFollows, Db::kCollectionsByAuthor, "Collection:");
}

// Rows of `db` (self-follows included) whose first id is `first`.
uint64_t RowCount(Store& store, Db db, uint64_t first) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  return RowsUnder(**txn, db, first).size();
}

// The problems CheckFollowIndexes finds in `store` (`offbrand check` runs it).
std::vector<std::string> IndexProblems(Store& store) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  std::vector<std::string> problems;
  const uint64_t n = CheckFollowIndexes(**txn, [&](const std::string& p) { problems.push_back(p); });
  BOOST_TEST(n == problems.size());
  return problems;
}

// Random follows, unfollows, link and collection creates and deletes over
// HTTP; after each step, for every user, the timeline and notifications paged
// with a random page size equal the brute-force answer from the rows. This
// exercises the feed heads where they can go wrong: heads of deleted newest
// entries, follows of sources with old entries, unfollow and refollow.
BOOST_FIXTURE_TEST_CASE(FeedsEqualTheBruteForceMergeThroughRandomChanges, Fixture) {
  const std::vector<std::string> names = {"ann", "ben", "cat", "dan"};
  std::vector<std::string> tokens;
  std::vector<uint64_t> ids;
  for (const std::string& n : names) {
    tokens.push_back(server.SignUp(n));
    ids.push_back(UserId(tokens.back()));
  }
  const unsigned seed = 20261202;
  std::mt19937 rng(seed);
  BOOST_TEST_MESSAGE("seed " << seed);
  struct Coll { uint64_t id; size_t author; std::vector<uint64_t> items; };
  std::vector<Coll> colls;
  int link = 0;
  for (int step = 0; step < 160; ++step) {
    const size_t u = rng() % names.size();
    const int op = static_cast<int>(rng() % 100);
    if (op < 12 || colls.empty()) {
      colls.push_back(Coll{CreateCollection(tokens[u], "c" + std::to_string(step)), u, {}});
    } else if (op < 50) {
      Coll& c = colls[rng() % colls.size()];
      c.items.push_back(AddItem(tokens[c.author], c.id, "l" + std::to_string(link++)));
    } else if (op < 62) {
      const Coll& c = colls[rng() % colls.size()];
      BOOST_TEST(api.Put(Path("/collections/", c.id, "/follow"), "", tokens[u]).status == 200);
    } else if (op < 68) {
      const Coll& c = colls[rng() % colls.size()];
      const int st = api.Delete(Path("/collections/", c.id, "/follow"), tokens[u]).status;
      BOOST_TEST((st == 200 || (st == 400 && c.author == u)));
    } else if (op < 78) {
      const size_t v = rng() % names.size();
      const std::string path = kApi + "/users/" + names[v] + "/follow";
      const int st = rng() % 3 == 0 ? api.Delete(path, tokens[u]).status
                                     : api.Put(path, "", tokens[u]).status;
      BOOST_TEST((st == 200 || (st == 400 && v == u)));
    } else if (op < 90) {
      // Delete a link, most often the newest of its collection (its head).
      Coll& c = colls[rng() % colls.size()];
      if (c.items.empty()) continue;
      const size_t at = rng() % 2 == 0 ? c.items.size() - 1 : rng() % c.items.size();
      const int st = api.Delete(Path("/items/", c.items[at], ""), tokens[c.author]).status;
      BOOST_TEST((st == 200 || st == 204));
      c.items.erase(c.items.begin() + static_cast<long>(at));
    } else {
      const size_t at = rng() % colls.size();
      const int st = api.Delete(Path("/collections/", colls[at].id, ""),
                                tokens[colls[at].author]).status;
      BOOST_TEST((st == 200 || st == 204));
      colls.erase(colls.begin() + static_cast<long>(at));
    }
    if (step % 8 != 7) continue;
    BOOST_TEST(IndexProblems(server.store()).empty());
    for (size_t v = 0; v < names.size(); ++v) {
      const int limit = 1 + static_cast<int>(rng() % 6);
      BOOST_TEST_CONTEXT("step " << step << ", " << names[v] << ", limit " << limit) {
        BOOST_TEST(AllFeedObjects(api, "timeline", tokens[v], limit) ==
                   ExpectedTimeline(server.store(), ids[v]));
        BOOST_TEST(AllFeedObjects(api, "notifications", tokens[v], limit) ==
                   ExpectedNotifications(server.store(), ids[v]));
      }
    }
  }
}

// The derived rows pass the check after random changes (stale heads of
// deleted entries included), and the check names each kind of damage.
BOOST_FIXTURE_TEST_CASE(CheckPassesDerivedRowsAndNamesBrokenCountersAndHeads, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const uint64_t alice_id = UserId(alice);
  const uint64_t cid = CreateCollection(bob, "c");
  AddItem(bob, cid, "one");
  const uint64_t newest = AddItem(bob, cid, "two");
  BOOST_REQUIRE(api.Put(Path("/collections/", cid, "/follow"), "", alice).status == 200);
  BOOST_REQUIRE(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_REQUIRE(api.Delete(Path("/items/", newest, ""), bob).status / 100 == 2);
  std::vector<std::string> problems = IndexProblems(server.store());
  BOOST_TEST(problems.empty(), "unexpected: " << (problems.empty() ? "" : problems[0]));

  struct Damage { const char* what; std::function<Status(WriteTxn&)> apply; const char* names; };
  const std::vector<Damage> damages = {
      {"a counter off by one",
       [&](WriteTxn& txn) {
         std::string key(1, static_cast<char>(Db::kFollowers));
         key += U64Key(UserId(bob));
         return txn.Put(Db::kFollowCounts, key, U64Key(7));
       },
       "follow_counts"},
      {"a head row removed",
       [&](WriteTxn& txn) {
         std::vector<std::string> keys;
         Cursor c = txn.OpenCursor(Db::kFeedHeads);
         for (bool ok = c.First(); ok; ok = c.Next()) {
           if (GetU64BE(c.key().substr(1)) == alice_id) keys.emplace_back(c.key());
         }
         for (const std::string& k : keys) {
           if (Status st = txn.Del(Db::kFeedHeads, k); !st.ok()) return st;
         }
         return Status::Ok();
       },
       "lacks source"},
      {"a source head lost",
       [&](WriteTxn& txn) {
         std::string key(1, '\x01');  // the timeline's sources
         key += U64Key(cid);
         return txn.Del(Db::kFeedSources, key);
       },
       "below its newest entry"},
  };
  for (const Damage& d : damages) {
    BOOST_TEST_CONTEXT(d.what) {
      // Damage a copy: run it in a transaction that is rolled back.
      Status s = server.store().Write([&](WriteTxn& txn) -> Status {
        if (Status a = d.apply(txn); !a.ok()) return a;
        std::vector<std::string> found;
        CheckFollowIndexes(txn, [&](const std::string& p) { found.push_back(p); });
        BOOST_TEST(!found.empty());
        bool named = false;
        for (const std::string& p : found) named = named || p.find(d.names) != std::string::npos;
        BOOST_TEST(named, (found.empty() ? std::string() : found[0]));
        return Status::BadRequest("rollback", "test damage is not kept");
      });
      BOOST_TEST(s.error_code() == "rollback");
    }
  }
  BOOST_TEST(IndexProblems(server.store()).empty());
}

// Pages through a timeline and notifications with small pages while another
// client keeps adding links and collections: every entry that existed when
// the first page was read shows exactly once, newest first, and nothing
// added meanwhile slips into a later page.
BOOST_FIXTURE_TEST_CASE(DeepPagesHaveNoGapsOrDuplicatesWhileEntriesAreAdded, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const std::string carol = server.SignUp("carol");
  const uint64_t alice_id = UserId(alice);
  std::vector<uint64_t> followed;
  for (int i = 0; i < 3; ++i) followed.push_back(CreateCollection(bob, "b" + std::to_string(i)));
  for (int i = 0; i < 3; ++i) followed.push_back(CreateCollection(carol, "c" + std::to_string(i)));
  const uint64_t unfollowed = CreateCollection(carol, "not followed");
  for (int i = 0; i < 60; ++i) {
    const uint64_t cid = followed[static_cast<size_t>(i * 7 % 6)];
    AddItem(cid <= followed[2] ? bob : carol, cid, "old" + std::to_string(i));
    if (i % 10 == 0) AddItem(carol, unfollowed, "noise" + std::to_string(i));
  }
  for (uint64_t cid : followed) {
    BOOST_REQUIRE(api.Put(Path("/collections/", cid, "/follow"), "", alice).status == 200);
  }
  BOOST_REQUIRE(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_REQUIRE(api.Put(kApi + "/users/carol/follow", "", alice).status == 200);
  for (int i = 0; i < 12; ++i) CreateCollection(i % 2 ? bob : carol, "more" + std::to_string(i));

  std::atomic<bool> stop{false};
  std::atomic<int> added{0};
  std::thread writer([&] {
    TestApi w = server.api();
    for (int i = 0; !stop.load() && i < 400; ++i) {
      const uint64_t cid = followed[static_cast<size_t>(i % 6)];
      const std::string& token = cid <= followed[2] ? bob : carol;
      HttpReply r = w.Post(kApi + "/collections/" + std::to_string(cid) + "/items",
                           R"({"url":"https://example.com/new)" + std::to_string(i) +
                               R"(","title":"new"})",
                           token);
      if (r.status == 201) added.fetch_add(1);
      if (i % 5 == 0) {
        w.Post(kApi + "/collections", R"({"name":"n)" + std::to_string(i) + R"(","description":"d"})",
               token);
      }
    }
  });
  for (const std::string feed : {"timeline", "notifications"}) {
    // The snapshot: everything up to the first page's newest entry.
    const std::vector<std::string> paged = AllFeedObjects(api, feed, alice, 4);
    BOOST_REQUIRE(!paged.empty());
    const std::vector<std::string> now = feed == "timeline"
                                             ? ExpectedTimeline(server.store(), alice_id)
                                             : ExpectedNotifications(server.store(), alice_id);
    auto id_of = [](const std::string& object) {
      return std::stoull(object.substr(object.find(':') + 1));
    };
    std::vector<std::string> expected;
    for (const std::string& o : now) {
      if (id_of(o) <= id_of(paged.front())) expected.push_back(o);
    }
    BOOST_TEST_CONTEXT(feed) {
      BOOST_TEST(paged.size() >= (feed == std::string("timeline") ? 60u : 19u));
      BOOST_TEST(paged == expected);
    }
  }
  stop.store(true);
  writer.join();
  BOOST_TEST(added.load() > 0);
  // A fresh first page starts with the newest link.
  BOOST_TEST(FeedObjects("timeline", alice).front() == ExpectedTimeline(server.store(), alice_id).front());
}

// Counts come from counters kept in the follow's own transaction: they must
// match the rows (without self-follows) through follows, unfollows, deletes
// of collections and users, and leave no counter behind for what is gone.
BOOST_FIXTURE_TEST_CASE(FollowCountsMatchTheRowsThroughFollowsUnfollowsAndDeletes, Fixture) {
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  const std::string carol = server.SignUp("carol");
  const uint64_t bob_id = UserId(bob);
  const uint64_t cid = CreateCollection(bob, "popular");
  auto counts_match = [&](const std::string& context) {
    BOOST_TEST_CONTEXT(context) {
      for (const std::string name : {"alice", "bob", "carol"}) {
        HttpReply followers = api.Get(kApi + "/users/" + name + "/followers");
        if (followers.status == 404) continue;
        HttpReply following = api.Get(kApi + "/users/" + name + "/following");
        HttpReply profile = api.Get(kApi + "/users/" + name);
        BOOST_REQUIRE_EQUAL(profile.status, 200);
        const int64_t id = profile.json().at("id").num();
        const uint64_t uid = static_cast<uint64_t>(id);
        const int64_t self = 1;  // every confirmed user follows themselves
        BOOST_TEST(followers.json().at("count").num() ==
                   static_cast<int64_t>(RowCount(server.store(), Db::kFollowers, uid)) - self);
        BOOST_TEST(following.json().at("count").num() ==
                   static_cast<int64_t>(RowCount(server.store(), Db::kFollows, uid)) - self);
        BOOST_TEST(profile.json().at("follower_count").num() == followers.json().at("count").num());
        BOOST_TEST(profile.json().at("following_count").num() == following.json().at("count").num());
        BOOST_TEST(followers.json().at("items").size() ==
                   static_cast<size_t>(followers.json().at("count").num()));
      }
    }
  };
  counts_match("start");
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", alice).json().at("follower_count").num() == 1);
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", carol).json().at("follower_count").num() == 2);
  BOOST_TEST(api.Put(kApi + "/users/bob/follow", "", carol).json().at("follower_count").num() == 2);
  BOOST_TEST(api.Put(kApi + "/users/carol/follow", "", bob).json().at("follower_count").num() == 1);
  BOOST_TEST(api.Put(Path("/collections/", cid, "/follow"), "", alice).json().at("follower_count").num() == 1);
  BOOST_TEST(api.Put(Path("/collections/", cid, "/follow"), "", carol).json().at("follower_count").num() == 2);
  BOOST_TEST(api.Put(Path("/collections/", cid, "/follow"), "", bob).json().at("follower_count").num() == 2);
  counts_match("after follows");
  BOOST_TEST(api.Get(Path("/collections/", cid, "")).json().at("follower_count").num() == 2);
  BOOST_TEST(api.Get(Path("/collections/", cid, "/followers")).json().at("count").num() == 2);
  BOOST_TEST(api.Delete(kApi + "/users/bob/follow", alice).json().at("follower_count").num() == 1);
  BOOST_TEST(api.Delete(kApi + "/users/bob/follow", alice).json().at("follower_count").num() == 1);
  BOOST_TEST(api.Delete(Path("/collections/", cid, "/follow"), carol).json().at("follower_count").num() == 1);
  counts_match("after unfollows");

  const uint64_t doomed = CreateCollection(carol, "doomed");
  BOOST_TEST(api.Put(Path("/collections/", doomed, "/follow"), "", alice).status == 200);
  HttpReply gone = api.Delete(Path("/collections/", doomed, ""), carol);
  BOOST_REQUIRE(gone.status == 200 || gone.status == 204);
  HttpReply gone_user = api.Delete(kApi + "/users/bob", bob);
  BOOST_REQUIRE(gone_user.status == 200 || gone_user.status == 204);
  counts_match("after deletes");
  BOOST_TEST(api.Get(kApi + "/users/carol/followers").json().at("count").num() == 0);

  // Nothing derived is left for the deleted user or collections.
  auto txn = server.store().BeginRead();
  BOOST_REQUIRE(txn.ok());
  // Counter keys are tagged with the follow index they count; source keys
  // with the feed (1 timeline: collections, 2 notifications: users).
  auto names_collection = [](Db db, int tag) {
    if (db == Db::kFollowCounts) return tag == static_cast<int>(Db::kCollectionFollowers);
    return tag == 1;
  };
  for (Db db : {Db::kFollowCounts, Db::kFeedSources}) {
    Cursor c = (*txn)->OpenCursor(db);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      const int tag = static_cast<unsigned char>(c.key()[0]);
      const uint64_t id = GetU64BE(c.key().substr(1));
      BOOST_TEST_CONTEXT(DbName(db) << " tag " << tag << " id " << id) {
        if (names_collection(db, tag)) {
          BOOST_TEST(id != cid);
          BOOST_TEST(id != doomed);
        } else {
          BOOST_TEST(id != bob_id);
        }
      }
    }
  }
  Cursor heads = (*txn)->OpenCursor(Db::kFeedHeads);
  for (bool ok = heads.First(); ok; ok = heads.Next()) {
    BOOST_TEST(GetU64BE(heads.key().substr(1)) != bob_id);
    BOOST_TEST(GetU64BE(heads.key().substr(17)) != bob_id);
  }
}

// A store written before the counters and heads existed (schema 1, none of
// those rows) is migrated on start: every count and feed answers as before.
BOOST_AUTO_TEST_CASE(MigratingASchemaOneStoreRebuildsCountsAndFeedHeads) {
  TempDir dir;
  std::optional<TestServer> server;
  server.emplace(dir.path());
  TestApi api = server->api();
  const std::string alice = server->SignUp("alice");
  const std::string bob = server->SignUp("bob");
  std::vector<uint64_t> cids;
  for (int i = 0; i < 4; ++i) {
    HttpReply r = api.Post(kApi + "/collections", R"({"name":"c)" + std::to_string(i) +
                                                      R"(","description":"d"})", i % 2 ? alice : bob);
    BOOST_REQUIRE_EQUAL(r.status, 201);
    cids.push_back(static_cast<uint64_t>(r.json().at("id").num()));
  }
  std::vector<uint64_t> items;
  for (int i = 0; i < 12; ++i) {
    const uint64_t cid = cids[static_cast<size_t>(i % 4)];
    HttpReply r = api.Post(Path("/collections/", cid, "/items"),
                           R"({"url":"https://example.com/)" + std::to_string(i) +
                               R"(","title":"t"})", i % 2 ? alice : bob);
    BOOST_REQUIRE_EQUAL(r.status, 201);
    items.push_back(static_cast<uint64_t>(r.json().at("id").num()));
  }
  BOOST_REQUIRE(api.Put(kApi + "/users/bob/follow", "", alice).status == 200);
  BOOST_REQUIRE(api.Put(Path("/collections/", cids[0], "/follow"), "", alice).status == 200);
  BOOST_REQUIRE(api.Put(Path("/collections/", cids[1], "/follow"), "", bob).status == 200);
  BOOST_REQUIRE(api.Delete(Path("/items/", items[8], ""), bob).status / 100 == 2);  // a head
  auto answers = [&](const TestApi& a) {
    std::vector<std::string> out;
    for (const std::string& token : {alice, bob}) {
      for (const std::string feed : {"timeline", "notifications"}) {
        for (const std::string& o : AllFeedObjects(a, feed, token, 3)) out.push_back(o);
        out.push_back("|");
      }
    }
    for (const std::string name : {"alice", "bob"}) {
      Json profile = a.Get(kApi + "/users/" + name).json();  // last_seen moves on
      out.push_back(std::to_string(profile.at("follower_count").num()) + " " +
                    std::to_string(profile.at("following_count").num()));
      out.push_back(a.Get(kApi + "/users/" + name + "/followers").body);
      out.push_back(a.Get(kApi + "/users/" + name + "/following").body);
    }
    for (uint64_t cid : cids) out.push_back(a.Get(Path("/collections/", cid, "/followers")).body);
    return out;
  };
  const std::vector<std::string> before = answers(api);
  server.reset();

  {
    StoreOptions options;
    options.dir = dir.path();
    auto store = Store::Open(options);
    BOOST_REQUIRE(store.ok());
    Status s = (*store)->Write([](WriteTxn& txn) -> Status {
      for (Db db : {Db::kFeedHeads, Db::kFeedSources, Db::kFollowCounts}) {
        std::vector<std::string> keys;
        Cursor c = txn.OpenCursor(db);
        for (bool ok = c.First(); ok; ok = c.Next()) keys.emplace_back(c.key());
        BOOST_TEST(!keys.empty());
        for (const std::string& k : keys) {
          if (Status d = txn.Del(db, k); !d.ok()) return d;
        }
      }
      return txn.Put(Db::kMeta, "schema_version", U64Key(1));
    });
    BOOST_REQUIRE_MESSAGE(s.ok(), s.message());
  }

  server.emplace(dir.path());
  const std::vector<std::string> after = answers(server->api());
  BOOST_TEST(after == before, boost::test_tools::per_element());
}

std::string Dump(const std::map<std::string, std::vector<std::string>>& feeds) {
  std::string s;
  for (const auto& [id, objects] : feeds) {
    s += id + ":";
    for (const std::string& o : objects) s += " " + o;
    s += "\n";
  }
  return s;
}

// Every activity of the Stream double's feeds of `group`, per feed id:
// foreign ids newest first.
std::map<std::string, std::vector<std::string>> DoubleFeeds(const StreamDouble& dbl,
                                                            const std::string& group) {
  std::map<std::string, std::vector<std::string>> feeds;
  Json all = Json(dbl.StateJson()).at("feeds");
  simdjson::dom::object obj;
  BOOST_REQUIRE(all.raw().get(obj) == simdjson::SUCCESS);
  for (auto field : obj) {
    const std::string name(field.key);
    if (name.rfind(group + ":", 0) != 0) continue;
    const std::string id = name.substr(group.size() + 1);
    for (const DoubleActivity& a : dbl.FeedActivities(group, id)) feeds[id].push_back(a.foreign_id);
    if (feeds[id].empty()) feeds.erase(id);
  }
  return feeds;
}

// Deleting users, one long synced and one whose records never left, then
// letting sync converge: Stream's follow graph, users, user and collection
// feeds and every follower's Timeline and Notifications equal what the
// server answers from LMDB.
BOOST_AUTO_TEST_CASE(AfterDeletingUsersStreamsGraphAndFeedsEqualTheLocalOnes) {
  StreamDouble dbl;
  BOOST_REQUIRE(dbl.Start().ok());
  TempDir dir;
  TestServer server(dir.path(), [&](Config& c) {
    c.stream_api_key = "testkey";
    c.stream_api_secret = "testsecret";
    c.stream_app_id = "1";
    c.stream_base_url = dbl.base_url();
    c.sync_retry_max_ms = 500;
  });
  TestApi api = server.api();
  const Config& config = server.app().config();
  std::map<std::string, std::string> tokens;
  std::map<std::string, uint64_t> ids;
  for (const std::string name : {"alice", "bob", "carol", "dave"}) {
    tokens[name] = server.SignUp(name);
    ids[name] = static_cast<uint64_t>(api.Get(kApi + "/me", tokens[name]).json().at("id").num());
  }
  std::vector<uint64_t> cids;
  auto create = [&](const std::string& who, int links) {
    HttpReply r = api.Post(kApi + "/collections", R"({"name":")" + who + std::to_string(cids.size()) +
                                                      R"(","description":"d"})", tokens[who]);
    BOOST_REQUIRE_EQUAL(r.status, 201);
    const uint64_t cid = static_cast<uint64_t>(r.json().at("id").num());
    cids.push_back(cid);
    for (int i = 0; i < links; ++i) {
      HttpReply l = api.Post(Path("/collections/", cid, "/items"),
                             R"({"url":"https://example.com/)" + std::to_string(cid) + "/" +
                                 std::to_string(i) + R"(","title":"t"})", tokens[who]);
      BOOST_REQUIRE_EQUAL(l.status, 201);
    }
    return cid;
  };
  const uint64_t b1 = create("bob", 3), b2 = create("bob", 2), c1 = create("carol", 2);
  const uint64_t d1 = create("dave", 1);
  for (const auto& [who, whom] : std::vector<std::pair<std::string, std::string>>{
           {"alice", "bob"}, {"alice", "carol"}, {"bob", "alice"}, {"carol", "bob"},
           {"dave", "bob"}, {"carol", "dave"}}) {
    BOOST_REQUIRE(api.Put(kApi + "/users/" + whom + "/follow", "", tokens[who]).status == 200);
  }
  for (const auto& [who, cid] : std::vector<std::pair<std::string, uint64_t>>{
           {"alice", b1}, {"carol", b2}, {"bob", c1}, {"alice", d1}, {"dave", b1}}) {
    BOOST_REQUIRE(api.Put(Path("/collections/", cid, "/follow"), "", tokens[who]).status == 200);
  }
  auto converge = [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!OutboxRecords(server.store()).empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    BOOST_REQUIRE_MESSAGE(OutboxRecords(server.store()).empty(), "sync did not converge");
    BOOST_TEST(DeadRecords(server.store()).empty());
  };
  converge();
  BOOST_REQUIRE(dbl.HasUser(std::to_string(ids["bob"])));

  // Bob's records have all reached Stream; dave's last ones have not when he
  // goes (his new link and follow may compact away with their removal).
  BOOST_REQUIRE(api.Delete(kApi + "/users/bob", tokens["bob"]).status / 100 == 2);
  create("dave", 1);
  BOOST_REQUIRE(api.Put(kApi + "/users/alice/follow", "", tokens["dave"]).status == 200);
  BOOST_REQUIRE(api.Delete(kApi + "/users/dave", tokens["dave"]).status / 100 == 2);
  converge();

  BOOST_TEST(Join(DoubleFollowGraph(dbl)) == Join(LocalFollowGraph(server.store(), config)));
  BOOST_TEST(!dbl.HasUser(std::to_string(ids["bob"])));
  BOOST_TEST(!dbl.HasUser(std::to_string(ids["dave"])));
  BOOST_TEST(dbl.HasUser(std::to_string(ids["alice"])));
  BOOST_TEST(dbl.HasUser(std::to_string(ids["carol"])));

  // Source feeds: a user's collections and a collection's links.
  std::map<std::string, std::vector<std::string>> local_user, local_collections;
  for (const std::string name : {"alice", "carol"}) {
    std::vector<std::string> objects = AllFeedObjects(api, "user/" + name, "", 100);
    if (!objects.empty()) local_user[std::to_string(ids[name])] = objects;
  }
  for (uint64_t cid : cids) {
    HttpReply r = api.Get(Path("/feeds/collection/", cid, "?limit=100"));
    if (r.status == 404) continue;
    BOOST_REQUIRE_EQUAL(r.status, 200);
    std::vector<std::string> objects = AllFeedObjects(api, "collection/" + std::to_string(cid), "", 100);
    if (!objects.empty()) local_collections[std::to_string(cid)] = objects;
  }
  BOOST_TEST(Dump(DoubleFeeds(dbl, config.feed_user)) == Dump(local_user));
  BOOST_TEST(Dump(DoubleFeeds(dbl, config.feed_collections)) == Dump(local_collections));

  // Follower feeds, as Stream fans them out, equal our offline ones.
  std::map<std::string, std::vector<std::string>> local_timeline, local_notifications;
  for (const std::string name : {"alice", "carol"}) {
    const std::string id = std::to_string(ids[name]);
    std::vector<std::string> t = AllFeedObjects(api, "timeline", tokens[name], 100);
    std::vector<std::string> n = AllFeedObjects(api, "notifications", tokens[name], 100);
    if (!t.empty()) local_timeline[id] = t;
    if (!n.empty()) local_notifications[id] = n;
  }
  BOOST_TEST(!local_timeline.empty());
  BOOST_TEST(Dump(DoubleFeeds(dbl, config.feed_timeline)) == Dump(local_timeline));
  BOOST_TEST(Dump(DoubleFeeds(dbl, config.feed_notifications)) == Dump(local_notifications));
}

}  // namespace
}  // namespace offbrand::test
