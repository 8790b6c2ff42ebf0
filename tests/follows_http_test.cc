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
#include <set>
#include <string>
#include <vector>

#include <chrono>
#include <thread>

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

}  // namespace
}  // namespace offbrand::test
