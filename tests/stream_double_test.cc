// Proves the Stream test double behaves like Stream where the sync engine
// depends on it (keyed upserts, partial updates, removes, users, follows,
// enrichment, authentication and scope) and that each injected fault looks to
// a real client exactly like the failure it imitates. Everything goes over
// real HTTP through CurlTransport and requests built by StreamClient.
#define BOOST_TEST_MODULE stream_double_test
#include <boost/test/unit_test.hpp>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "curl_transport.h"
#include "jwt.h"
#include "stream_client.h"
#include "stream_double.h"

extern char** environ;

namespace offbrand {
namespace {

constexpr char kKey[] = "double-key";
constexpr char kSecret[] = "double-secret";
constexpr char kTime1[] = "2020-02-14T10:00:00.000001";
constexpr char kTime2[] = "2020-02-14T10:00:00.000002";
constexpr char kTime3[] = "2020-02-14T10:00:00.000003";
constexpr char kTime4[] = "2020-02-14T10:00:00.000004";

int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

// A JSON document kept alive with its parser.
struct Json {
  explicit Json(const std::string& text) {
    BOOST_REQUIRE_MESSAGE(parser.parse(text).get(doc) == simdjson::SUCCESS, "not JSON: " << text);
  }
  std::string Str(const char* key) const {
    std::string_view v;
    return doc[key].get(v) == simdjson::SUCCESS ? std::string(v) : std::string("<missing>");
  }
  int64_t Int(const char* key) const {
    int64_t v = 0;
    return doc[key].get(v) == simdjson::SUCCESS ? v : -999;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
};

std::string Activity(const std::string& foreign_id, const std::string& time,
                     const std::string& extra = "", const std::string& actor = "SU:42") {
  std::string json = R"({"actor":")" + actor + R"(","verb":"create","object":")" + foreign_id +
                     R"(","foreign_id":")" + foreign_id + "\"";
  if (!time.empty()) json += R"(,"time":")" + time + "\"";
  if (!extra.empty()) json += "," + extra;
  return json + "}";
}

OutboxRecord Add(const std::string& group, const std::string& id, const std::string& foreign_id,
                 const std::string& time, const std::string& extra = "",
                 const std::string& actor = "SU:42") {
  OutboxRecord r;
  r.op = OutboxOp::kActivityAdd;
  r.feed_group = group;
  r.feed_id = id;
  r.foreign_id = foreign_id;
  r.time = time;
  r.body = Activity(foreign_id, time, extra, actor);
  return r;
}

OutboxRecord Update(const std::string& foreign_id, const std::string& time,
                    const std::string& set_unset) {
  OutboxRecord r;
  r.op = OutboxOp::kActivityUpdate;
  r.foreign_id = foreign_id;
  r.time = time;
  r.body = R"({"foreign_id":")" + foreign_id + R"(","time":")" + time + "\"," + set_unset + "}";
  return r;
}

OutboxRecord Simple(OutboxOp op, const std::string& group, const std::string& id,
                    const std::string& foreign_id, const std::string& body = "") {
  OutboxRecord r;
  r.op = op;
  r.feed_group = group;
  r.feed_id = id;
  r.foreign_id = foreign_id;
  r.body = body;
  return r;
}

struct Fixture {
  Fixture() : stream_double(Options()) {
    BOOST_REQUIRE(stream_double.Start().ok());
    client = MakeClient(kKey, kSecret);
    transport = std::make_unique<CurlTransport>(TransportOptions(3000));
  }
  static StreamDoubleOptions Options() {
    StreamDoubleOptions o;
    o.api_key = kKey;
    o.api_secret = kSecret;
    return o;
  }
  static CurlTransportOptions TransportOptions(int64_t timeout_ms) {
    CurlTransportOptions o;
    o.timeout_ms = timeout_ms;
    return o;
  }
  std::unique_ptr<StreamClient> MakeClient(const std::string& key, const std::string& secret) {
    StreamClientOptions o;
    o.base_url = stream_double.base_url();
    o.api_key = key;
    o.api_secret = secret;
    return std::make_unique<StreamClient>(o);
  }
  HttpResponse Send(const HttpRequest& req, Transport* via = nullptr) {
    std::vector<HttpResponse> responses;
    (via ? via : transport.get())->Perform({req}, &responses);
    BOOST_REQUIRE(responses.size() == 1u);
    return responses[0];
  }
  HttpResponse Send(const OutboxRecord& r) { return Send(client->BuildSingle(r)); }
  // The stored activity id of an add response.
  std::string AddedId(const HttpResponse& r) {
    std::vector<std::pair<std::string, std::string>> ids;
    BOOST_REQUIRE(client->ParseAddResponse(r, &ids).ok());
    BOOST_REQUIRE(ids.size() == 1u);
    return ids[0].second;
  }
  std::vector<DoubleActivity> Feed(const std::string& group, const std::string& id) {
    return stream_double.FeedActivities(group, id);
  }

  StreamDouble stream_double;
  std::unique_ptr<StreamClient> client;
  std::unique_ptr<CurlTransport> transport;
};

BOOST_FIXTURE_TEST_SUITE(stream_double_suite, Fixture)

// ---- activities -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(KeyedAddReplacesInPlaceAndKeepsId) {
  const HttpResponse first = Send(Add("user", "42", "Collection:7", kTime1, R"("name":"A")"));
  BOOST_TEST(first.status == 201);
  const std::string id = AddedId(first);
  const HttpResponse again = Send(Add("user", "42", "Collection:7", kTime1, R"("name":"B")"));
  BOOST_TEST(again.status == 201);
  BOOST_TEST(AddedId(again) == id);
  const auto feed = Feed("user", "42");
  BOOST_REQUIRE(feed.size() == 1u);
  BOOST_TEST(feed[0].id == id);
  BOOST_TEST(Json(feed[0].json).Str("name") == "B");
  // A different time is a different activity.
  BOOST_TEST(AddedId(Send(Add("user", "42", "Collection:7", kTime2))) != id);
  BOOST_TEST(Feed("user", "42").size() == 2u);
}

BOOST_AUTO_TEST_CASE(AddWithoutTimeIsANewActivityEveryTime) {
  const std::string a = AddedId(Send(Add("user", "42", "Collection:7", "")));
  const std::string b = AddedId(Send(Add("user", "42", "Collection:7", "")));
  BOOST_TEST(a != b);
  const auto feed = Feed("user", "42");
  BOOST_REQUIRE(feed.size() == 2u);
  BOOST_TEST(!feed[0].time.empty());
  BOOST_TEST(feed[0].time != feed[1].time);
}

BOOST_AUTO_TEST_CASE(BatchAddAnswersEveryForeignIdWithItsId) {
  const OutboxRecord a = Add("user", "42", "Collection:8", kTime1);
  const OutboxRecord b = Add("user", "42", "Collection:9", kTime1);
  const HttpResponse r = Send(client->BuildAddBatch("user", "42", {&a, &b}));
  BOOST_TEST(r.status == 201);
  std::vector<std::pair<std::string, std::string>> ids;
  BOOST_REQUIRE(client->ParseAddResponse(r, &ids).ok());
  BOOST_REQUIRE(ids.size() == 2u);
  BOOST_TEST(ids[0].first == "Collection:8");
  BOOST_TEST(ids[1].first == "Collection:9");
  const auto feed = Feed("user", "42");
  BOOST_REQUIRE(feed.size() == 2u);
  BOOST_TEST((feed[0].id == ids[0].second || feed[0].id == ids[1].second));
}

BOOST_AUTO_TEST_CASE(MissingRequiredFieldIsInputException) {
  OutboxRecord r = Add("user", "42", "Collection:7", kTime1);
  r.body = R"({"actor":"SU:42","object":"x","foreign_id":"Collection:7","time":"2020"})";
  const HttpResponse resp = Send(r);
  BOOST_TEST(resp.status == 400);
  const StreamError e = client->ParseError(resp);
  BOOST_TEST(e.code == 4);
  BOOST_TEST(e.exception == "InputException");
  BOOST_TEST(Json(resp.body).Int("status_code") == 400);
  BOOST_TEST(Feed("user", "42").empty());
}

BOOST_AUTO_TEST_CASE(PartialUpdateOfUnknownActivityIs404AndAppliesNothing) {
  BOOST_TEST(Send(Add("user", "42", "Collection:7", kTime1, R"("name":"A","obsolete":1)")).status ==
             201);
  const OutboxRecord known = Update("Collection:7", kTime1, R"("set":{"name":"X"})");
  const OutboxRecord unknown = Update("Collection:7", kTime2, R"("set":{"name":"Y"})");
  const HttpResponse r = Send(client->BuildUpdateBatch({&known, &unknown}));
  BOOST_TEST(r.status == 404);
  BOOST_TEST(client->ParseError(r).code == 16);
  BOOST_TEST(Json(Feed("user", "42")[0].json).Str("name") == "A");

  const HttpResponse ok = Send(Update(
      "Collection:7", kTime1, R"("set":{"name":"Renamed","meta.color":"red"},"unset":["obsolete"])"));
  BOOST_TEST(ok.status == 201);
  const Json stored(Feed("user", "42")[0].json);
  BOOST_TEST(stored.Str("name") == "Renamed");
  BOOST_TEST(stored.Int("obsolete") == -999);  // gone
  std::string_view color;
  BOOST_TEST(stored.doc["meta"]["color"].get(color) == simdjson::SUCCESS);
  BOOST_TEST(color == "red");
}

BOOST_AUTO_TEST_CASE(RemoveByForeignIdSucceedsForUnknownAndRemovesKnown) {
  BOOST_TEST(Send(Simple(OutboxOp::kActivityRemove, "user", "42", "Nothing:1")).status == 200);
  BOOST_TEST(Send(Add("user", "42", "Collection:7", kTime1)).status == 201);
  BOOST_TEST(Send(Add("user", "42", "Collection:8", kTime1)).status == 201);
  BOOST_TEST(Send(Simple(OutboxOp::kActivityRemove, "user", "42", "Collection:7")).status == 200);
  const auto feed = Feed("user", "42");
  BOOST_REQUIRE(feed.size() == 1u);
  BOOST_TEST(feed[0].foreign_id == "Collection:8");
}

BOOST_AUTO_TEST_CASE(OddIdsRoundTripThroughPercentEncoding) {
  const std::string odd = "Link:a/b?c#d e%";
  BOOST_TEST(Send(Add("user", "4 2", odd, kTime1)).status == 201);
  BOOST_REQUIRE(Feed("user", "4 2").size() == 1u);
  BOOST_TEST(Feed("user", "4 2")[0].foreign_id == odd);
  BOOST_TEST(Send(Simple(OutboxOp::kActivityRemove, "user", "4 2", odd)).status == 200);
  BOOST_TEST(Feed("user", "4 2").empty());
}

// ---- users ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(GetOrCreateReturnsExistingUnchangedAndPlainAddConflicts) {
  const OutboxRecord add =
      Simple(OutboxOp::kUserAdd, "", "", "42", R"({"id":"42","data":{"username":"ada"}})");
  BOOST_TEST(Send(add).status == 201);
  const OutboxRecord again =
      Simple(OutboxOp::kUserAdd, "", "", "42", R"({"id":"42","data":{"username":"eve"}})");
  const HttpResponse r = Send(again);
  BOOST_TEST(r.status == 200);
  BOOST_TEST(stream_double.UserData("42") == R"({"username":"ada"})");

  HttpRequest plain = client->BuildSingle(again);
  plain.url.erase(plain.url.find("&get_or_create=true"));
  const HttpResponse conflict = Send(plain);
  BOOST_TEST(conflict.status == 409);
  BOOST_TEST(client->ParseError(conflict).code == 22);
}

BOOST_AUTO_TEST_CASE(UserUpdateAndDeleteOfMissingUserAre404) {
  const HttpResponse update = Send(
      Simple(OutboxOp::kUserUpdate, "", "", "7", R"({"data":{"username":"x"}})"));
  BOOST_TEST(update.status == 404);
  BOOST_TEST(client->ParseError(update).code == 16);
  BOOST_TEST(Send(Simple(OutboxOp::kUserAdd, "", "", "7", R"({"id":"7","data":{}})")).status ==
             201);
  BOOST_TEST(Send(Simple(OutboxOp::kUserUpdate, "", "", "7", R"({"data":{"username":"x"}})"))
                 .status == 201);
  BOOST_TEST(stream_double.UserData("7") == R"({"username":"x"})");
  BOOST_TEST(Send(Simple(OutboxOp::kUserDelete, "", "", "7")).status == 200);
  BOOST_TEST(!stream_double.HasUser("7"));
  BOOST_TEST(Send(Simple(OutboxOp::kUserDelete, "", "", "7")).status == 404);
}

// ---- follows and reads --------------------------------------------------------

BOOST_AUTO_TEST_CASE(FollowCopiesFanOutPropagatesAndUnfollowPurges) {
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
  BOOST_TEST(Send(Add("user", "42", "C:2", kTime2)).status == 201);
  BOOST_TEST(Send(Add("user", "42", "C:3", kTime3)).status == 201);
  const OutboxRecord follow = Simple(OutboxOp::kFollow, "timeline", "43", "user:42",
                                     R"({"target":"user:42","activity_copy_limit":2})");
  BOOST_TEST(Send(follow).status == 201);
  BOOST_TEST(stream_double.IsFollowing("timeline:43", "user:42"));
  auto timeline = Feed("timeline", "43");
  BOOST_REQUIRE(timeline.size() == 2u);  // the newest two
  BOOST_TEST(timeline[0].foreign_id == "C:3");
  BOOST_TEST(timeline[1].foreign_id == "C:2");

  BOOST_TEST(Send(follow).status == 201);  // re-follow: no-op
  BOOST_TEST(Feed("timeline", "43").size() == 2u);

  BOOST_TEST(Send(Add("user", "42", "C:4", kTime4)).status == 201);  // fan-out
  timeline = Feed("timeline", "43");
  BOOST_REQUIRE(timeline.size() == 3u);
  BOOST_TEST(timeline[0].id == Feed("user", "42")[0].id);  // same activity, same id

  BOOST_TEST(Send(Update("C:4", kTime4, R"("set":{"name":"N"})")).status == 201);
  BOOST_TEST(Json(Feed("timeline", "43")[0].json).Str("name") == "N");

  BOOST_TEST(Send(Simple(OutboxOp::kActivityRemove, "user", "42", "C:3")).status == 200);
  BOOST_TEST(Feed("timeline", "43").size() == 2u);

  BOOST_TEST(Send(Simple(OutboxOp::kUnfollow, "timeline", "43", "user:42")).status == 200);
  BOOST_TEST(!stream_double.IsFollowing("timeline:43", "user:42"));
  BOOST_TEST(Feed("timeline", "43").empty());
  BOOST_TEST(Feed("user", "42").size() == 3u);
}

BOOST_AUTO_TEST_CASE(UnfollowWithKeepHistoryKeepsCopies) {
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
  BOOST_TEST(Send(Simple(OutboxOp::kFollow, "timeline", "43", "user:42",
                         R"({"target":"user:42","activity_copy_limit":100})"))
                 .status == 201);
  HttpRequest unfollow = client->BuildSingle(Simple(OutboxOp::kUnfollow, "timeline", "43", "user:42"));
  unfollow.url += "&keep_history=1";
  BOOST_TEST(Send(unfollow).status == 200);
  BOOST_TEST(Feed("timeline", "43").size() == 1u);
}

BOOST_AUTO_TEST_CASE(EnrichedReadReplacesKnownActorsAndFlagsMissingOnes) {
  BOOST_TEST(Send(Simple(OutboxOp::kUserAdd, "", "", "42",
                         R"({"id":"42","data":{"username":"ada"}})"))
                 .status == 201);
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1, "", "SU:42")).status == 201);
  BOOST_TEST(Send(Add("user", "42", "C:2", kTime2, "", "SU:99")).status == 201);
  const HttpResponse r = Send(client->BuildGetFeed("user", "42", 10, "", true));
  BOOST_TEST(r.status == 200);
  Json body(r.body);
  simdjson::dom::array results = body.doc["results"].get_array().value();
  BOOST_REQUIRE(results.size() == 2u);
  std::string_view v;
  // Newest first: C:2 (missing user), then C:1.
  BOOST_TEST(results.at(0)["actor"]["error"].get(v) == simdjson::SUCCESS);
  BOOST_TEST(v == "ReferenceNotFound");
  BOOST_TEST(results.at(1)["actor"]["id"].get(v) == simdjson::SUCCESS);
  BOOST_TEST(v == "42");
  BOOST_TEST(results.at(1)["actor"]["data"]["username"].get(v) == simdjson::SUCCESS);
  BOOST_TEST(v == "ada");
  // The plain read keeps the reference string.
  Json plain(Send(client->BuildGetFeed("user", "42", 1, "", false)).body);
  BOOST_TEST(plain.doc["results"].at(0)["actor"].get(v) == simdjson::SUCCESS);
  BOOST_TEST(v == "SU:99");
  BOOST_TEST(plain.Str("next").find("id_lt=") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(GetActivitiesByForeignIdAndTime) {
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
  const HttpResponse r =
      Send(client->BuildGetActivities({{"C:1", kTime1}, {"C:1", kTime2}}));
  BOOST_TEST(r.status == 200);
  Json body(r.body);
  BOOST_TEST(body.doc["results"].get_array().value().size() == 1u);
}

// ---- authentication -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(WrongApiKeyIs401Code2) {
  auto bad = MakeClient("other-key", kSecret);
  const HttpResponse r = Send(bad->BuildSingle(Add("user", "42", "C:1", kTime1)));
  BOOST_TEST(r.status == 401);
  BOOST_TEST(client->ParseError(r).code == 2);
  BOOST_TEST(Feed("user", "42").empty());
}

BOOST_AUTO_TEST_CASE(WrongSecretIs401Code3) {
  auto bad = MakeClient(kKey, "other-secret");
  const HttpResponse r = Send(bad->BuildSingle(Add("user", "42", "C:1", kTime1)));
  BOOST_TEST(r.status == 401);
  const StreamError e = client->ParseError(r);
  BOOST_TEST(e.code == 3);
  BOOST_TEST(e.exception == "SignatureException");
}

BOOST_AUTO_TEST_CASE(TokenForAnotherFeedOrReadOnlyIs403Code17) {
  HttpRequest req = client->BuildSingle(Add("user", "42", "C:1", kTime1));
  for (const std::string& claims :
       {ServerTokenClaims("*", "*", "user43"), ServerTokenClaims("*", "read", "user42"),
        ServerTokenClaims("activities", "*", "*"), UserTokenClaims("42")}) {
    BOOST_TEST_CONTEXT(claims) {
      for (auto& [k, v] : req.headers) {
        if (k == "Authorization") v = MakeJwt(kSecret, claims);
      }
      const HttpResponse r = Send(req);
      BOOST_TEST(r.status == 403);
      BOOST_TEST(client->ParseError(r).code == 17);
    }
  }
  // Users need feed_id "*".
  HttpRequest user = client->BuildSingle(Simple(OutboxOp::kUserDelete, "", "", "1"));
  for (auto& [k, v] : user.headers) {
    if (k == "Authorization") v = MakeJwt(kSecret, ServerTokenClaims("*", "*", "user1"));
  }
  BOOST_TEST(Send(user).status == 403);
  BOOST_TEST(Feed("user", "42").empty());
}

BOOST_AUTO_TEST_CASE(EveryAnswerCarriesRateLimitHeaders) {
  const HttpResponse r = Send(Add("user", "42", "C:1", kTime1));
  const RateLimit rl = StreamClient::ParseRateLimit(r);
  BOOST_TEST(rl.limit == 1000);
  BOOST_TEST(rl.remaining >= 0);
  BOOST_TEST(rl.remaining < 1000);
  BOOST_TEST(rl.reset_unix_s > 1'600'000'000);
  BOOST_TEST(StreamClient::ParseRateLimit(Send(Simple(OutboxOp::kUserDelete, "", "", "x"))).limit >
             0);  // errors too
}

// ---- faults ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(RefusedConnectionsAreStatusZeroUntilReopenedOnTheSamePort) {
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);  // warm connection
  const int port = stream_double.port();
  BOOST_REQUIRE(stream_double.SetRefuse(true).ok());
  const HttpResponse r = Send(Add("user", "42", "C:2", kTime2));
  BOOST_TEST(r.status == 0);
  BOOST_TEST(!r.error.empty());
  BOOST_TEST(Feed("user", "42").size() == 1u);
  BOOST_REQUIRE(stream_double.SetRefuse(false).ok());
  BOOST_TEST(stream_double.port() == port);
  BOOST_TEST(Send(Add("user", "42", "C:2", kTime2)).status == 201);
  BOOST_TEST(Feed("user", "42").size() == 2u);
}

BOOST_AUTO_TEST_CASE(FailStatusAnswersTheNextNRequestsWithoutApplyingThem) {
  stream_double.FailNext(503, 2);
  const HttpResponse a = Send(Add("user", "42", "C:1", kTime1));
  const HttpResponse b = Send(Add("user", "42", "C:1", kTime1));
  BOOST_TEST(a.status == 503);
  BOOST_TEST(b.status == 503);
  BOOST_TEST(client->ParseError(a).code == -1);
  BOOST_TEST(Feed("user", "42").empty());
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
  stream_double.FailNext(500, -1);  // until cleared
  for (int i = 0; i < 3; ++i) BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 500);
  stream_double.ClearFaults();
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
}

BOOST_AUTO_TEST_CASE(RateLimitAnswers429WithResetAndRetryAfter) {
  stream_double.RateLimitNext(1, 5);
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const HttpResponse r = Send(Add("user", "42", "C:1", kTime1));
  BOOST_TEST(r.status == 429);
  BOOST_TEST(client->ParseError(r).code == 9);
  const RateLimit rl = StreamClient::ParseRateLimit(r);
  BOOST_TEST(rl.remaining == 0);
  BOOST_TEST(rl.retry_after_s == 5);
  BOOST_TEST(rl.reset_unix_s >= now_s + 4);
  BOOST_TEST(rl.reset_unix_s <= now_s + 6);
  BOOST_TEST(Feed("user", "42").empty());
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
}

BOOST_AUTO_TEST_CASE(LostAcknowledgementChangesStateButClientSeesStatusZero) {
  // A fresh transport: the request goes on a new connection, so curl has no
  // reason to resend it (see curl_transport.h).
  CurlTransport fresh(TransportOptions(3000));
  stream_double.DropNext(1);
  const HttpResponse r = Send(client->BuildSingle(Add("user", "42", "C:1", kTime1)), &fresh);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(!r.error.empty());
  const auto feed = Feed("user", "42");
  BOOST_REQUIRE(feed.size() == 1u);  // applied
  // The keyed retry is harmless: same activity, same id.
  const HttpResponse retry = Send(client->BuildSingle(Add("user", "42", "C:1", kTime1)), &fresh);
  BOOST_TEST(retry.status == 201);
  BOOST_TEST(AddedId(retry) == feed[0].id);
  BOOST_TEST(Feed("user", "42").size() == 1u);
}

BOOST_AUTO_TEST_CASE(LostAcknowledgementOnReusedConnectionIsResentByCurlNotDuplicated) {
  BOOST_TEST(Send(Simple(OutboxOp::kUserDelete, "", "", "warm")).status == 404);  // keep-alive
  stream_double.DropNext(1);
  const HttpResponse r = Send(Add("user", "42", "C:1", kTime1));
  BOOST_TEST(r.status == 201);  // curl's own resend got the answer
  BOOST_TEST(stream_double.RequestCount("activity.add") == 2);
  BOOST_TEST(Feed("user", "42").size() == 1u);
}

BOOST_AUTO_TEST_CASE(HangLongerThanTheTimeoutIsStatusZeroAndNothingIsApplied) {
  CurlTransport impatient(TransportOptions(300));
  stream_double.SetHangMs(600);
  const auto start = std::chrono::steady_clock::now();
  const HttpResponse r = Send(client->BuildSingle(Add("user", "42", "C:1", kTime1)), &impatient);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.error.find("imeout") != std::string::npos, r.error);
  BOOST_TEST(r.maybe_delivered);  // the request went out
  BOOST_TEST(ElapsedMs(start) < 550);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  BOOST_TEST(Feed("user", "42").empty());  // dropped after the hang, never applied
  stream_double.SetHangMs(0);
}

BOOST_AUTO_TEST_CASE(HangThenApplyTakesEffectAfterTheClientGaveUp) {
  CurlTransport impatient(TransportOptions(200));
  stream_double.SetHangMs(500, /*then_apply=*/true);
  const HttpResponse r = Send(client->BuildSingle(Add("user", "42", "C:1", kTime1)), &impatient);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.maybe_delivered);
  BOOST_TEST(Feed("user", "42").empty());  // not yet
  for (int i = 0; i < 100 && Feed("user", "42").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_TEST(Feed("user", "42").size() == 1u);  // applied late
  stream_double.SetHangMs(0);
}

BOOST_AUTO_TEST_CASE(RefusedConnectionIsNotMaybeDelivered) {
  CurlTransport t(TransportOptions(1000));
  BOOST_REQUIRE(stream_double.SetRefuse(true).ok());
  const HttpResponse r = Send(client->BuildSingle(Add("user", "42", "C:1", kTime1)), &t);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(!r.maybe_delivered);
  BOOST_REQUIRE(stream_double.SetRefuse(false).ok());
}

BOOST_AUTO_TEST_CASE(FollowManyFollowsEveryPairOrNone) {
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
  const OutboxRecord a = Simple(OutboxOp::kFollow, "timeline", "43", "user:42",
                                R"({"target":"user:42","activity_copy_limit":20})");
  const OutboxRecord b = Simple(OutboxOp::kFollow, "timeline", "44", "user:42",
                                R"({"target":"user:42","activity_copy_limit":20})");
  const HttpResponse r = Send(client->BuildFollowMany({&a, &b}));
  BOOST_TEST(r.status == 201, r.body);
  BOOST_TEST(stream_double.IsFollowing("timeline:43", "user:42"));
  BOOST_TEST(stream_double.IsFollowing("timeline:44", "user:42"));
  BOOST_TEST(Feed("timeline", "43").size() == 1u);  // copied
  BOOST_TEST(stream_double.RequestCount("follow_many") == 1);
  // One bad pair fails the whole batch.
  const OutboxRecord c = Simple(OutboxOp::kFollow, "timeline", "45", "user:42",
                                R"({"target":"user:42","activity_copy_limit":20})");
  const OutboxRecord bad = Simple(OutboxOp::kFollow, "timeline", "46", "nocolon",
                                  R"({"target":"nocolon","activity_copy_limit":20})");
  BOOST_TEST(Send(client->BuildFollowMany({&c, &bad})).status == 400);
  BOOST_TEST(!stream_double.IsFollowing("timeline:45", "user:42"));
  // The token must be for every feed.
  HttpRequest narrow = client->BuildFollowMany({&c});
  for (auto& [k, v] : narrow.headers) {
    if (k == "Authorization") v = client->Token(R"({"resource":"*","action":"*","feed_id":"timeline45"})");
  }
  BOOST_TEST(Send(narrow).status == 403);
}

BOOST_AUTO_TEST_CASE(RateLimitPerMinuteSetsTheAdvertisedLimit) {
  HttpResponse r = Send(Add("user", "42", "C:1", kTime1));
  BOOST_TEST(StreamClient::ParseRateLimit(r).limit == 1000);  // Stream's published add limit
  BOOST_TEST(StreamClient::ParseRateLimit(r).remaining == 999);
  // (The count is per calendar minute: the next call may open a new minute.)
  BOOST_REQUIRE(stream_double.ApplyControlJson(R"({"rate_limit_per_minute":50000})").ok());
  r = Send(Add("user", "42", "C:2", kTime1));
  BOOST_TEST(StreamClient::ParseRateLimit(r).limit == 50000);
  BOOST_TEST(StreamClient::ParseRateLimit(r).remaining >= 50000 - 2);
  BOOST_TEST(StreamClient::ParseRateLimit(r).remaining <= 50000 - 1);
  BOOST_TEST(!stream_double.ApplyControlJson(R"({"rate_limit_per_minute":-1})").ok());
}

BOOST_AUTO_TEST_CASE(DelayedAnswersAreConcurrentAndLateAnswersAreLostAcks) {
  stream_double.SetDelayMs(400);
  std::vector<OutboxRecord> records;
  for (int i = 0; i < 8; ++i) records.push_back(Add("user", "42", "C:" + std::to_string(i), kTime1));
  std::vector<HttpRequest> requests;
  for (const auto& r : records) requests.push_back(client->BuildSingle(r));
  std::vector<HttpResponse> responses;
  const auto start = std::chrono::steady_clock::now();
  transport->Perform(requests, &responses);
  const int64_t elapsed = ElapsedMs(start);
  for (const auto& r : responses) BOOST_TEST(r.status == 201);
  BOOST_TEST(elapsed >= 400);
  BOOST_TEST(elapsed < 8 * 400);  // in parallel: handlers do not block each other

  CurlTransport impatient(TransportOptions(150));
  const HttpResponse late = Send(client->BuildSingle(Add("user", "42", "late", kTime1)), &impatient);
  BOOST_TEST(late.status == 0);
  stream_double.SetDelayMs(0);
  BOOST_TEST(Feed("user", "42").size() == 9u);  // the late one was applied
}

BOOST_AUTO_TEST_CASE(PoisonForeignIdFailsTheWholeBatch) {
  stream_double.SetPoisonForeignId("C:bad");
  const OutboxRecord good = Add("user", "42", "C:good", kTime1);
  const OutboxRecord bad = Add("user", "42", "C:bad", kTime1);
  const HttpResponse r = Send(client->BuildAddBatch("user", "42", {&good, &bad}));
  BOOST_TEST(r.status == 400);
  BOOST_TEST(client->ParseError(r).code == 4);
  BOOST_TEST(Feed("user", "42").empty());
  BOOST_TEST(Send(good).status == 201);
  BOOST_TEST(Send(Update("C:bad", kTime1, R"("set":{"a":1})")).status == 400);
}

BOOST_AUTO_TEST_CASE(RejectCredentialsIs401ForEverything) {
  stream_double.SetRejectCredentials(true);
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 401);
  BOOST_TEST(Send(Simple(OutboxOp::kUserDelete, "", "", "1")).status == 401);
  stream_double.SetRejectCredentials(false);
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);
}

BOOST_AUTO_TEST_CASE(ControlStateAndResetEndpointsSteerTheDouble) {
  const std::string root = "http://127.0.0.1:" + std::to_string(stream_double.port());
  HttpRequest control{"POST", root + "/__control", {{"Content-Type", "application/json"}},
                      R"({"fail_status":503,"fail_count":1,"poison_foreign_id":"p"})"};
  BOOST_TEST(Send(control).status == 200);
  BOOST_TEST(stream_double.faults().poison_foreign_id == "p");
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 503);
  BOOST_TEST(Send(Add("user", "42", "C:1", kTime1)).status == 201);

  control.body = R"({"no_such_fault":1})";
  BOOST_TEST(Send(control).status == 400);
  control.body = R"({"clear":true})";
  BOOST_TEST(Send(control).status == 200);
  BOOST_TEST(stream_double.faults().poison_foreign_id.empty());

  const HttpResponse state = Send(HttpRequest{"GET", root + "/__state", {}, ""});
  BOOST_TEST(state.status == 200);
  Json s(state.body);
  BOOST_TEST(s.Int("total_requests") == 2);
  BOOST_TEST(s.doc["requests"]["activity.add"].get_int64().value() == 2);
  BOOST_TEST(s.doc["feeds"]["user:42"].get_array().value().size() == 1u);

  BOOST_TEST(Send(HttpRequest{"POST", root + "/__reset", {}, ""}).status == 200);
  BOOST_TEST(stream_double.TotalRequests() == 0);
  BOOST_TEST(Feed("user", "42").empty());
}

// ---- CurlTransport against the double ----------------------------------------------

BOOST_AUTO_TEST_CASE(CancelEndsAHangingPerformPromptly) {
  stream_double.SetHangMs(5000);
  CurlTransport transport_under_test(TransportOptions(10000));
  std::vector<HttpRequest> requests(3, client->BuildSingle(Add("user", "42", "C:1", kTime1)));
  std::vector<HttpResponse> responses;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    transport_under_test.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  transport_under_test.Perform(requests, &responses);
  canceller.join();
  BOOST_TEST(ElapsedMs(start) < 1500);
  BOOST_REQUIRE(responses.size() == 3u);
  for (const auto& r : responses) {
    BOOST_TEST(r.status == 0);
    BOOST_TEST(r.error == "cancelled");
  }
  // Sticky: a later Perform returns at once.
  transport_under_test.Perform(requests, &responses);
  BOOST_TEST(responses[0].error == "cancelled");
  stream_double.SetHangMs(0);
}

BOOST_AUTO_TEST_CASE(MaxInFlightBoundsConcurrencyButCompletesEverything) {
  CurlTransportOptions o = TransportOptions(5000);
  o.max_in_flight = 2;
  CurlTransport narrow(o);
  stream_double.SetDelayMs(200);
  std::vector<HttpRequest> requests;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(client->BuildSingle(Add("user", "42", "C:" + std::to_string(i), kTime1)));
  }
  std::vector<HttpResponse> responses;
  const auto start = std::chrono::steady_clock::now();
  narrow.Perform(requests, &responses);
  BOOST_TEST(ElapsedMs(start) >= 3 * 200 - 50);  // three waves of two
  for (const auto& r : responses) {
    BOOST_TEST(r.status == 201);
    BOOST_TEST(r.Header("content-type") == "application/json; charset=utf-8");  // lowercased names
    BOOST_TEST(r.Header("content-encoding").empty());  // never compressed (stream_double.h)
  }
  stream_double.SetDelayMs(0);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- the separate binary -----------------------------------------------------------

#ifdef OFFBRAND_DOUBLE_BINARY
BOOST_AUTO_TEST_CASE(ServerBinaryRefusesAndRecoversThroughItsControlPort) {
  int out[2];
  BOOST_REQUIRE(pipe(out) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> args = {OFFBRAND_DOUBLE_BINARY, "--port", "0", "--api-key", kKey,
                                   "--api-secret", kSecret, "--control-port"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  BOOST_REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  FILE* lines = fdopen(out[0], "r");
  int port = 0;
  int control_port = 0;
  BOOST_REQUIRE(std::fscanf(lines, "listening %d\ncontrol %d", &port, &control_port) == 2);

  StreamClientOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/api/v1.0/";
  o.api_key = kKey;
  o.api_secret = kSecret;
  StreamClient client(o);
  CurlTransport transport;
  auto send = [&](const HttpRequest& req) {
    std::vector<HttpResponse> responses;
    transport.Perform({req}, &responses);
    return responses[0];
  };
  const std::string control = "http://127.0.0.1:" + std::to_string(control_port) + "/__control";
  BOOST_TEST(send(client.BuildSingle(Add("user", "42", "C:1", kTime1))).status == 201);
  BOOST_TEST(send({"POST", control, {}, R"({"refuse":true})"}).status == 200);
  BOOST_TEST(send(client.BuildSingle(Add("user", "42", "C:2", kTime1))).status == 0);
  BOOST_TEST(send({"POST", control, {}, R"({"refuse":false})"}).status == 200);
  BOOST_TEST(send(client.BuildSingle(Add("user", "42", "C:2", kTime1))).status == 201);
  const HttpResponse state = send({"GET", "http://127.0.0.1:" + std::to_string(control_port) +
                                              "/__state", {}, ""});
  Json s(state.body);
  BOOST_TEST(s.doc["feeds"]["user:42"].get_array().value().size() == 2u);

  BOOST_REQUIRE(kill(pid, SIGTERM) == 0);
  int wstatus = 0;
  BOOST_REQUIRE(waitpid(pid, &wstatus, 0) == pid);
  BOOST_TEST(WIFEXITED(wstatus));
  BOOST_TEST(WEXITSTATUS(wstatus) == 0);
  std::fclose(lines);
}
#endif

}  // namespace
}  // namespace offbrand
