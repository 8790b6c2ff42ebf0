// Proves the /me and /users endpoints over real HTTP: profiles and the paged
// directory show confirmed users only, who may call what (anonymous /
// unconfirmed / other user / owner / admin for every auth and user endpoint),
// admin edits queue the right Stream records, and deleting a user removes
// their row, indexes, sessions, follows and collections and queues the
// golden user.delete.
#define BOOST_TEST_MODULE users_http_test
#include <boost/test/unit_test.hpp>

#include "account_test_helpers.h"
#include "follows.h"
#include "offbrand/model.h"

using namespace offbrand;
using namespace offbrand::test;

namespace {

const std::string kApi = "/api/v1";

// The people of the authorization matrix.
struct Cast {
  std::string unconfirmed, other, owner, admin;
};

Cast MakeCast(TestServer& server) {
  Cast c;
  c.owner = Join(server, "owner");
  c.other = Join(server, "other");
  c.unconfirmed = JoinUnconfirmed(server, "pending");
  c.admin = JoinAdmin(server, "root");
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(MeShowsAndEditsTheOwnProfile) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string token = Join(server, "ann");

  HttpReply me = api.Get(kApi + "/me", token);
  BOOST_REQUIRE_EQUAL(me.status, 200);
  Json j = me.json();
  BOOST_TEST(j.at("username").str() == "ann");
  BOOST_TEST(j.at("email").str() == EmailOf("ann"));
  BOOST_TEST(j.at("confirmed").boolean());
  for (const char* field : {"id", "name", "about_me", "gravatar", "role", "member_since", "last_seen"}) {
    BOOST_TEST(j.has(field), field);
  }

  HttpReply patched = api.Patch(kApi + "/me", "{\"name\":\"Ann Lee\",\"about_me\":\"line one\\nline two\"}", token);
  BOOST_REQUIRE_EQUAL(patched.status, 200);
  BOOST_TEST(patched.json().at("name").str() == "Ann Lee");
  BOOST_TEST(api.Get(kApi + "/me", token).json().at("about_me").str() == "line one\nline two");
  // A partial patch keeps the other field; no Stream record for profile text.
  BOOST_REQUIRE_EQUAL(api.Patch(kApi + "/me", "{\"name\":\"Ann\"}", token).status, 200);
  BOOST_TEST(api.Get(kApi + "/me", token).json().at("about_me").str() == "line one\nline two");
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserUpdate).empty());
}

BOOST_AUTO_TEST_CASE(DirectoryListsConfirmedUsersNewestFirstInPages) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  Join(server, "u1");
  Join(server, "u2");
  JoinUnconfirmed(server, "hidden");
  Join(server, "u3");

  HttpReply page1 = api.Get(kApi + "/users?limit=2");
  BOOST_REQUIRE_EQUAL(page1.status, 200);
  Json items = page1.json().at("items");
  BOOST_REQUIRE_EQUAL(items.size(), 2u);
  BOOST_TEST(items.at(0).at("username").str() == "u3");
  BOOST_TEST(items.at(1).at("username").str() == "u2");
  BOOST_TEST(!items.at(0).has("email"));  // anonymous viewers never see emails
  BOOST_REQUIRE(!page1.json().at("next").is_null());

  HttpReply page2 = api.Get(kApi + "/users?limit=2&cursor=" + page1.json().at("next").str());
  BOOST_REQUIRE_EQUAL(page2.status, 200);
  items = page2.json().at("items");
  BOOST_REQUIRE_EQUAL(items.size(), 1u);
  BOOST_TEST(items.at(0).at("username").str() == "u1");
  BOOST_TEST(page2.json().at("next").is_null());

  BOOST_TEST(api.Get(kApi + "/users?cursor=%21%21bad").status == 422);
  BOOST_TEST(api.Get(kApi + "/users?limit=0").status == 422);
  BOOST_TEST(api.Get(kApi + "/users?limit=101").status == 422);
}

BOOST_AUTO_TEST_CASE(ProfilesHideUnconfirmedUsersAndShowFollowState) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string viewer = Join(server, "viewer");
  Join(server, "Star");
  JoinUnconfirmed(server, "ghost");

  BOOST_TEST(api.Get(kApi + "/users/ghost").status == 404);
  BOOST_TEST(api.Get(kApi + "/users/nobody").status == 404);

  HttpReply anon = api.Get(kApi + "/users/star");  // case-insensitive lookup
  BOOST_REQUIRE_EQUAL(anon.status, 200);
  BOOST_TEST(anon.json().at("username").str() == "Star");
  BOOST_TEST(anon.json().at("follower_count").num() == 0);  // the self-follow is not counted
  BOOST_TEST(anon.json().at("following_count").num() == 0);
  BOOST_TEST(!anon.json().has("following"));
  BOOST_TEST(!anon.json().has("email"));

  HttpReply seen = api.Get(kApi + "/users/Star", viewer);
  BOOST_TEST(!seen.json().at("following").boolean());
  BOOST_TEST(!seen.json().at("follows_you").boolean());

  // viewer follows Star (written directly: follow routes are tested elsewhere).
  const uint64_t viewer_id = IdOf(api.Get(kApi + "/me", viewer).json());
  const uint64_t star_id = IdOf(anon.json());
  const Config& config = server.app().config();
  BOOST_REQUIRE(server.store()
                    .Write([&](WriteTxn& txn) {
                      return FollowUserInTxn(txn, config, viewer_id, star_id);
                    })
                    .ok());
  seen = api.Get(kApi + "/users/Star", viewer);
  BOOST_TEST(seen.json().at("following").boolean());
  BOOST_TEST(!seen.json().at("follows_you").boolean());
  BOOST_TEST(seen.json().at("follower_count").num() == 1);
  HttpReply back = api.Get(kApi + "/users/viewer", viewer);
  BOOST_TEST(back.json().at("following_count").num() == 1);
}

BOOST_AUTO_TEST_CASE(AuthorizationMatrixOfTheUserEndpoints) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  Cast cast = MakeCast(server);
  struct Case {
    const char* method;
    std::string path;
    std::string body;
    int anonymous, unconfirmed, other, owner, admin;
  };
  // "owner" is the user named in the path (for /me: the caller).
  const std::vector<Case> cases = {
      {"GET", "/me", "", 401, 403, 200, 200, 200},
      {"PATCH", "/me", "{\"name\":\"N\"}", 401, 403, 200, 200, 200},
      {"GET", "/users", "", 200, 200, 200, 200, 200},
      {"GET", "/users/owner", "", 200, 200, 200, 200, 200},
      {"PATCH", "/users/owner", "{\"name\":\"By Admin\"}", 401, 403, 403, 403, 200},
  };
  for (const Case& c : cases) {
    const std::pair<const std::string*, int> callers[] = {
        {nullptr, c.anonymous}, {&cast.unconfirmed, c.unconfirmed}, {&cast.other, c.other},
        {&cast.owner, c.owner}, {&cast.admin, c.admin}};
    for (const auto& [token, expected] : callers) {
      HttpReply r = api.Send(c.method, kApi + c.path, c.body,
                             c.body.empty() ? "" : "application/json",
                             token ? std::multimap<std::string, std::string>{
                                         {"Authorization", "Bearer " + *token}}
                                   : std::multimap<std::string, std::string>{});
      BOOST_TEST(r.status == expected, c.method << " " << c.path << " as "
                                                << (token ? token->substr(0, 6) : "anonymous")
                                                << ": " << r.body);
      if (expected == 403 && token == &cast.unconfirmed) BOOST_TEST(r.error_code() == "unconfirmed");
    }
  }

  // DELETE needs a fresh victim per caller: anonymous, unconfirmed and other
  // are refused; the owner and an admin succeed.
  Join(server, "victim");
  BOOST_TEST(api.Delete(kApi + "/users/victim").status == 401);
  BOOST_TEST(api.Delete(kApi + "/users/victim", cast.unconfirmed).status == 403);
  BOOST_TEST(api.Delete(kApi + "/users/victim", cast.other).status == 403);
  BOOST_TEST(api.Get(kApi + "/users/victim").status == 200);
  std::string victim = Login(server, "victim");
  BOOST_TEST(api.Delete(kApi + "/users/victim", victim).status == 204);
  Join(server, "victim2");
  BOOST_TEST(api.Delete(kApi + "/users/victim2", cast.admin).status == 204);
  BOOST_TEST(api.Delete(kApi + "/users/victim2", cast.admin).status == 404);
}

BOOST_AUTO_TEST_CASE(AuthorizationMatrixOfTheAuthEndpoints) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  Cast cast = MakeCast(server);
  // Logged-in auth endpoints: anonymous 401; unconfirmed users may use them.
  BOOST_TEST(api.Post(kApi + "/auth/confirm/resend", "{}").status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/confirm/resend", "{}", cast.unconfirmed).status == 202);
  BOOST_TEST(api.Post(kApi + "/auth/confirm/resend", "{}", cast.owner).status == 409);
  const std::string pw_body = "{\"old_password\":\"" + PasswordOf("pending") +
                              "\",\"password\":\"pending-new-pw\"}";
  BOOST_TEST(api.Post(kApi + "/auth/password", pw_body).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/password", pw_body, cast.unconfirmed).status == 204);
  const std::string email_body =
      "{\"email\":\"pending2@example.com\",\"password\":\"pending-new-pw\"}";
  BOOST_TEST(api.Post(kApi + "/auth/email", email_body).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/email", email_body, cast.unconfirmed).status == 202);
  BOOST_TEST(api.Post(kApi + "/auth/logout", "{}").status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/logout", "{}", cast.unconfirmed).status == 204);
  BOOST_TEST(api.Post(kApi + "/auth/logout", "{}", cast.admin).status == 204);
  // Anonymous auth endpoints answer without a session.
  BOOST_TEST(api.Post(kApi + "/auth/reset", "{\"email\":\"x@example.com\"}").status == 202);
  BOOST_TEST(api.Post(kApi + "/auth/register", RegisterJson("newbie", "newbie@example.com", "newbie-pw")).status == 201);
}

BOOST_AUTO_TEST_CASE(AdminPatchEditsAnyFieldAndQueuesStreamRecords) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string admin = JoinAdmin(server, "root");
  Join(server, "pat");
  Join(server, "taken");
  JoinUnconfirmed(server, "late");
  const uint64_t pat_id = IdOf(api.Get(kApi + "/users/pat").json());

  // Text fields and role: no Stream record.
  HttpReply r = api.Patch(kApi + "/users/pat",
                          "{\"name\":\"Pat\",\"about_me\":\"hi\",\"role\":\"Moderator\"}", admin);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.json().at("role").str() == "Moderator");
  BOOST_TEST(r.json().at("name").str() == "Pat");
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserUpdate).empty());

  // Duplicates are refused case-insensitively and change nothing.
  std::string digest = StoreDigest(server.store());
  HttpReply dup = api.Patch(kApi + "/users/pat", "{\"username\":\"TAKEN\"}", admin);
  BOOST_TEST(dup.status == 409);
  BOOST_TEST(dup.error_code() == "duplicate_username");
  dup = api.Patch(kApi + "/users/pat", "{\"email\":\"Taken@Example.com\"}", admin);
  BOOST_TEST(dup.status == 409);
  BOOST_TEST(dup.error_code() == "duplicate_email");
  BOOST_TEST(api.Patch(kApi + "/users/pat", "{\"role\":\"God\"}", admin).status == 422);
  BOOST_TEST(api.Patch(kApi + "/users/pat", "{\"confirmed\":false}", admin).status == 422);
  BOOST_TEST(api.Patch(kApi + "/users/nobody", "{\"name\":\"x\"}", admin).status == 404);
  BOOST_TEST(StoreDigest(server.store()) == digest);

  // Username and email of a confirmed user: one user.update with both.
  r = api.Patch(kApi + "/users/pat", "{\"username\":\"patricia\",\"email\":\"PAT@new.example\"}", admin);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.json().at("email").str() == "pat@new.example");
  std::vector<OutboxRecord> updates = RecordsOf(server.store(), OutboxOp::kUserUpdate);
  BOOST_REQUIRE_EQUAL(updates.size(), 1u);
  CheckUserRecord(updates[0], OutboxOp::kUserUpdate, "user.update", pat_id, "patricia",
                  "pat@new.example");
  BOOST_TEST(api.Get(kApi + "/users/pat").status == 404);
  BOOST_TEST(api.Get(kApi + "/users/patricia").status == 200);

  // Confirming an unconfirmed user queues the add (with the edited name) and
  // the self-follow, not an update.
  const size_t adds_before = RecordsOf(server.store(), OutboxOp::kUserAdd).size();
  r = api.Patch(kApi + "/users/late", "{\"confirmed\":true,\"username\":\"later\"}", admin);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.json().at("confirmed").boolean());
  std::vector<OutboxRecord> adds = RecordsOf(server.store(), OutboxOp::kUserAdd);
  BOOST_REQUIRE_EQUAL(adds.size(), adds_before + 1);
  CheckUserRecord(adds.back(), OutboxOp::kUserAdd, "user.getOrCreate", IdOf(r.json()), "later",
                  EmailOf("late"));
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserUpdate).size() == 1u);
  BOOST_TEST(api.Get(kApi + "/users/later").status == 200);
}

BOOST_AUTO_TEST_CASE(DeletingAUserRemovesRowIndexesSessionsAndQueuesTheDelete) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string admin = JoinAdmin(server, "root");
  std::string token = Join(server, "zed");
  std::string second = Login(server, "zed");
  const uint64_t id = IdOf(api.Get(kApi + "/me", token).json());
  HttpReply made = api.Post(kApi + "/collections", "{\"name\":\"Links\",\"description\":\"Mine\"}", token);
  BOOST_REQUIRE_EQUAL(made.status, 201);
  const std::string collection = kApi + "/collections/" + std::to_string(made.json().at("id").num());
  BOOST_REQUIRE_EQUAL(api.Get(collection).status, 200);
  const uint64_t users = CountRows(server.store(), Db::kUsers);
  const uint64_t sessions = CountRows(server.store(), Db::kSessions);

  BOOST_REQUIRE_EQUAL(api.Delete(kApi + "/users/zed", admin).status, 204);
  BOOST_TEST(CountRows(server.store(), Db::kUsers) == users - 1);
  BOOST_TEST(CountRows(server.store(), Db::kSessions) == sessions - 2);
  BOOST_TEST(api.Get(kApi + "/me", token).status == 401);
  BOOST_TEST(api.Get(kApi + "/me", second).status == 401);
  BOOST_TEST(api.Get(kApi + "/users/zed").status == 404);
  // Their collections went with them.
  BOOST_TEST(api.Get(collection).status == 404);
  BOOST_TEST(CountRows(server.store(), Db::kCollections) == 0u);
  BOOST_TEST(CountRows(server.store(), Db::kCollectionFollows) == 0u);
  // Self-follow rows are gone too.
  {
    auto read = server.store().BeginRead();
    BOOST_REQUIRE(read.ok());
    BOOST_TEST(!Follows(**read, id, id));
  }
  std::vector<OutboxRecord> deletes = RecordsOf(server.store(), OutboxOp::kUserDelete);
  BOOST_REQUIRE_EQUAL(deletes.size(), 1u);
  CheckUserRecord(deletes[0], OutboxOp::kUserDelete, "user.delete", id, "zed", EmailOf("zed"));
  // The username and email indexes were freed.
  BOOST_TEST(api.Post(kApi + "/auth/register", RegisterJson("ZED", EmailOf("zed"), "zed-again-pw")).status == 201);

  // An unconfirmed user never reached Stream: no delete record.
  JoinUnconfirmed(server, "shy");
  BOOST_REQUIRE_EQUAL(api.Delete(kApi + "/users/shy", admin).status, 204);
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserDelete).size() == 1u);
}

BOOST_AUTO_TEST_CASE(DeletingYourselfClearsTheCookie) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = Join(server, "quit");
  HttpReply r = server.api().Delete(kApi + "/users/quit", token);
  BOOST_REQUIRE_EQUAL(r.status, 204);
  BOOST_TEST(r.header("Set-Cookie").find(kSessionCookie) != std::string::npos);
  BOOST_TEST(server.api().Post(kApi + "/auth/login", LoginJson(EmailOf("quit"), PasswordOf("quit"))).status == 401);
}

// GET /users/<me> used to show following:true, follows_you:true (the hidden
// self-follow) while the counts left it out.
BOOST_AUTO_TEST_CASE(OwnProfileShowsNoSelfFollowFlagsBeforeAndAfterARealFollow) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  const std::string wes = Join(server, "wes");
  const std::string xia = Join(server, "xia");
  auto flags = [&](const std::string& who, const std::string& viewer) {
    HttpReply r = api.Get(kApi + "/users/" + who, viewer);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return std::make_pair(r.json().at("following").boolean(), r.json().at("follows_you").boolean());
  };
  BOOST_TEST((flags("wes", wes) == std::make_pair(false, false)));

  // wes follows xia through the API.
  BOOST_REQUIRE_EQUAL(api.Put(kApi + "/users/xia/follow", "", wes).status / 100, 2);
  BOOST_TEST((flags("xia", wes) == std::make_pair(true, false)));   // wes looks at xia
  BOOST_TEST((flags("wes", xia) == std::make_pair(false, true)));   // xia looks at wes
  BOOST_TEST((flags("wes", wes) == std::make_pair(false, false)));  // self, still
  BOOST_TEST((flags("xia", xia) == std::make_pair(false, false)));
  HttpReply self = api.Get(kApi + "/users/wes", wes);
  BOOST_TEST(self.json().at("following_count").num() == 1);
  BOOST_TEST(self.json().at("follower_count").num() == 0);
}

// An administrator could demote or delete the last administrator, leaving
// nobody able to administer the server.
BOOST_AUTO_TEST_CASE(TheLastAdministratorCannotBeDemotedOrDeleted) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  const std::string root = JoinAdmin(server, "root");
  const std::string digest = StoreDigest(server.store());
  HttpReply r = api.Patch(kApi + "/users/root", "{\"role\":\"Moderator\"}", root);
  BOOST_TEST(r.status == 409, r.body);
  BOOST_TEST(r.error_code() == "last_admin");
  r = api.Delete(kApi + "/users/root", root);
  BOOST_TEST(r.status == 409, r.body);
  BOOST_TEST(r.error_code() == "last_admin");
  BOOST_TEST(StoreDigest(server.store()) == digest);

  // With a second administrator, either may go.
  const std::string second = JoinAdmin(server, "second");
  BOOST_TEST(api.Patch(kApi + "/users/root", "{\"role\":\"User\"}", second).status == 200);
  // Now second is the last one.
  BOOST_TEST(api.Delete(kApi + "/users/second", second).error_code() == "last_admin");
  BOOST_TEST(api.Patch(kApi + "/users/second", "{\"name\":\"Still Admin\"}", second).status == 200);
}
