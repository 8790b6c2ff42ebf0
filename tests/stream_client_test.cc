// Proves that StreamClient builds, from outbox records, the same requests
// Stream's official JS SDK sent (shared/stream/golden-requests.json): method,
// path, query, body (as JSON), headers and decoded token claims, compared
// operation by operation; plus id percent-encoding, token caching and the
// parsing of errors, rate-limit headers and add responses.
#define BOOST_TEST_MODULE stream_client_test
#include <boost/test/unit_test.hpp>
#include <simdjson.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "jwt.h"
#include "stream_client.h"

namespace offbrand {
namespace {

constexpr char kBase[] = "http://127.0.0.1:9/api/v1.0/";
constexpr char kSecret[] = "golden-secret";

// ---- JSON helpers (test-local) ----------------------------------------------

// Deep equality; objects compare as unordered key sets, numbers by value.
bool JsonEqual(simdjson::dom::element a, simdjson::dom::element b) {
  using T = simdjson::dom::element_type;
  auto number = [](simdjson::dom::element e) {
    double d = 0;
    return e.get(d) == simdjson::SUCCESS ? d : -1e308;
  };
  const bool a_num = a.is_number();
  if (a_num || b.is_number()) return a_num && b.is_number() && number(a) == number(b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case T::OBJECT: {
      simdjson::dom::object ao = a.get_object().value_unsafe();
      simdjson::dom::object bo = b.get_object().value_unsafe();
      if (ao.size() != bo.size()) return false;
      for (auto field : ao) {
        simdjson::dom::element other;
        if (bo.at_key(field.key).get(other) != simdjson::SUCCESS) return false;
        if (!JsonEqual(field.value, other)) return false;
      }
      return true;
    }
    case T::ARRAY: {
      simdjson::dom::array aa = a.get_array().value_unsafe();
      simdjson::dom::array ba = b.get_array().value_unsafe();
      if (aa.size() != ba.size()) return false;
      auto ia = aa.begin();
      auto ib = ba.begin();
      for (; ia != aa.end(); ++ia, ++ib) {
        if (!JsonEqual(*ia, *ib)) return false;
      }
      return true;
    }
    case T::STRING:
      return a.get_string().value_unsafe() == b.get_string().value_unsafe();
    case T::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    case T::NULL_VALUE:
      return true;
    default:
      return false;
  }
}

// Parses `text` with its own parser and compares with `expected`.
bool JsonTextEquals(const std::string& text, simdjson::dom::element expected) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text).get(doc) != simdjson::SUCCESS) return false;
  return JsonEqual(doc, expected);
}

std::string Minify(simdjson::dom::element e) { return simdjson::minify(e); }

// The golden file, parsed once; `requests` by operation.
struct Golden {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::map<std::string, simdjson::dom::object> by_operation;

  Golden() {
    const std::string path = std::string(OFFBRAND_SHARED_DIR) + "/stream/golden-requests.json";
    const auto error = parser.load(path).get(doc);
    BOOST_REQUIRE_MESSAGE(error == simdjson::SUCCESS, "cannot read " << path);
    simdjson::dom::array requests;
    BOOST_REQUIRE(doc["requests"].get(requests) == simdjson::SUCCESS);
    for (simdjson::dom::element r : requests) {
      simdjson::dom::object o = r.get_object().value();
      by_operation[std::string(o["operation"].get_string().value())] = o;
    }
  }
  simdjson::dom::object Op(const std::string& name) {
    auto it = by_operation.find(name);
    BOOST_REQUIRE_MESSAGE(it != by_operation.end(), "golden has no " << name);
    return it->second;
  }
  std::string ApiKey() { return std::string(doc["api_key"].get_string().value()); }
};

Golden& G() {
  static Golden golden;
  return golden;
}

std::unique_ptr<StreamClient> GoldenClient() {
  StreamClientOptions o;
  o.base_url = kBase;
  o.api_key = G().ApiKey();
  o.api_secret = kSecret;
  return std::make_unique<StreamClient>(o);
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct SplitUrl {
  std::string path;  // from "/api/v1.0/"
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
};

SplitUrl Split(const std::string& url) {
  SplitUrl out;
  const std::string host = "http://127.0.0.1:9";
  BOOST_REQUIRE(url.rfind(host, 0) == 0);
  const std::string rest = url.substr(host.size());
  const size_t q = rest.find('?');
  out.path = rest.substr(0, q);
  if (q == std::string::npos) return out;
  std::string query = rest.substr(q + 1);
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    const std::string pair = query.substr(start, amp - start);
    const size_t eq = pair.find('=');
    out.query.emplace_back(PercentDecode(pair.substr(0, eq)),
                           eq == std::string::npos ? "" : PercentDecode(pair.substr(eq + 1)));
    start = amp + 1;
  }
  return out;
}

std::string HeaderOf(const HttpRequest& r, const std::string& lower_name) {
  int found = 0;
  std::string value;
  for (const auto& [k, v] : r.headers) {
    std::string lk = k;
    for (char& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == lower_name) {
      ++found;
      value = v;
    }
  }
  BOOST_TEST(found <= 1, "header " << lower_name << " appears " << found << " times");
  return value;
}

// Compares one built request with the golden operation `name`.
void ExpectMatchesGolden(const HttpRequest& req, const std::string& name) {
  BOOST_TEST_CONTEXT("operation " << name) {
    simdjson::dom::object g = G().Op(name);
    BOOST_TEST(req.method == std::string(g["method"].get_string().value()));

    const SplitUrl url = Split(req.url);
    BOOST_TEST(url.path == std::string(g["path"].get_string().value()));
    // Query: same pairs as the golden except its optional `location`; api_key first.
    std::map<std::string, std::string> expected_query;
    simdjson::dom::object golden_query;
    BOOST_REQUIRE(g["query"].get(golden_query) == simdjson::SUCCESS);
    for (auto field : golden_query) {
      if (field.key == "location") continue;
      expected_query[std::string(field.key)] = std::string(field.value.get_string().value());
    }
    std::map<std::string, std::string> actual_query(url.query.begin(), url.query.end());
    BOOST_TEST(actual_query.size() == url.query.size(), "a query key repeats");
    BOOST_TEST(actual_query == expected_query);
    BOOST_REQUIRE(!url.query.empty());
    BOOST_TEST(url.query.front().first == "api_key");

    // Body.
    simdjson::dom::element golden_body = g["body"].value();
    if (golden_body.is_null()) {
      BOOST_TEST(req.body.empty());
    } else {
      BOOST_TEST(JsonTextEquals(req.body, golden_body),
                 "body " << req.body << " != golden " << Minify(golden_body));
    }

    // Headers.
    simdjson::dom::object gh = g["headers"].get_object().value();
    simdjson::dom::element content_type = gh["content-type"].value();
    if (content_type.is_null()) {
      BOOST_TEST(HeaderOf(req, "content-type").empty());
    } else {
      BOOST_TEST(HeaderOf(req, "content-type") ==
                 std::string(content_type.get_string().value()));
    }
    BOOST_TEST(HeaderOf(req, "stream-auth-type") ==
               std::string(gh["stream-auth-type"].get_string().value()));
    BOOST_TEST(HeaderOf(req, "x-stream-client") == "offbrand-" OFFBRAND_VERSION);

    // Token: signed with the secret, header and claims equal to the SDK's.
    const std::string token = HeaderOf(req, "authorization");
    BOOST_TEST(token.rfind("Bearer", 0) != 0);
    std::string claims;
    BOOST_REQUIRE(VerifyJwt(kSecret, token, &claims));
    simdjson::dom::object gj = g["jwt"].get_object().value();
    BOOST_TEST(JsonTextEquals(claims, gj["claims"].value()),
               "claims " << claims << " != golden " << Minify(gj["claims"].value()));
    std::string header;
    BOOST_REQUIRE(Base64UrlDecode(token.substr(0, token.find('.')), &header));
    BOOST_TEST(JsonTextEquals(header, gj["header"].value()));
  }
}

std::string GoldenBody(const std::string& name) { return Minify(G().Op(name)["body"].value()); }

// Golden bodies of the batch operations, element by element.
std::vector<std::string> GoldenItems(const std::string& name, const char* key) {
  std::vector<std::string> out;
  simdjson::dom::array items;
  BOOST_REQUIRE(G().Op(name)["body"][key].get(items) == simdjson::SUCCESS);
  for (simdjson::dom::element e : items) {
    out.push_back(Minify(e));
  }
  return out;
}

OutboxRecord Record(OutboxOp op, std::string group, std::string feed_id, std::string foreign_id,
                    std::string time, std::string body) {
  OutboxRecord r;
  r.op = op;
  r.feed_group = std::move(group);
  r.feed_id = std::move(feed_id);
  r.foreign_id = std::move(foreign_id);
  r.time = std::move(time);
  r.body = std::move(body);
  return r;
}

constexpr char kTime[] = "2020-02-14T10:00:00.123456";

// ---- golden comparisons -------------------------------------------------------

BOOST_AUTO_TEST_CASE(UserAddMatchesGoldenGetOrCreate) {
  auto client = GoldenClient();
  ExpectMatchesGolden(client->BuildSingle(Record(OutboxOp::kUserAdd, "", "", "42", "",
                                                 GoldenBody("user.getOrCreate"))),
                      "user.getOrCreate");
}

BOOST_AUTO_TEST_CASE(UserUpdateMatchesGolden) {
  auto client = GoldenClient();
  ExpectMatchesGolden(
      client->BuildSingle(Record(OutboxOp::kUserUpdate, "", "", "42", "", GoldenBody("user.update"))),
      "user.update");
}

BOOST_AUTO_TEST_CASE(UserDeleteMatchesGolden) {
  auto client = GoldenClient();
  ExpectMatchesGolden(client->BuildSingle(Record(OutboxOp::kUserDelete, "", "", "42", "", "")),
                      "user.delete");
}

BOOST_AUTO_TEST_CASE(SingleActivityAddMatchesGoldenAddActivity) {
  auto client = GoldenClient();
  const OutboxRecord r = Record(OutboxOp::kActivityAdd, "user", "42", "Collection:7", kTime,
                                GoldenBody("feed.addActivity"));
  ExpectMatchesGolden(client->BuildSingle(r), "feed.addActivity");
  // A batch of one is the same single-activity request.
  ExpectMatchesGolden(client->BuildAddBatch("user", "42", {&r}), "feed.addActivity");
}

BOOST_AUTO_TEST_CASE(AddBatchMatchesGoldenAddActivities) {
  auto client = GoldenClient();
  std::vector<OutboxRecord> records;
  for (const std::string& body : GoldenItems("feed.addActivities", "activities")) {
    records.push_back(Record(OutboxOp::kActivityAdd, "user", "42", "x", kTime, body));
  }
  BOOST_REQUIRE(records.size() == 2);
  ExpectMatchesGolden(client->BuildAddBatch("user", "42", {&records[0], &records[1]}),
                      "feed.addActivities");
}

BOOST_AUTO_TEST_CASE(SingleUpdateMatchesGoldenPartialUpdateByForeignId) {
  auto client = GoldenClient();
  const std::vector<std::string> changes =
      GoldenItems("activityPartialUpdate.foreignId", "changes");
  BOOST_REQUIRE(changes.size() == 1);
  const OutboxRecord r =
      Record(OutboxOp::kActivityUpdate, "user", "42", "Collection:7", kTime, changes[0]);
  ExpectMatchesGolden(client->BuildSingle(r), "activityPartialUpdate.foreignId");
  ExpectMatchesGolden(client->BuildUpdateBatch({&r}), "activityPartialUpdate.foreignId");
}

BOOST_AUTO_TEST_CASE(UpdateBatchMatchesGoldenBatchPartialUpdate) {
  auto client = GoldenClient();
  std::vector<OutboxRecord> records;
  for (const std::string& change : GoldenItems("activitiesPartialUpdate.batch", "changes")) {
    records.push_back(Record(OutboxOp::kActivityUpdate, "user", "42", "x", kTime, change));
  }
  BOOST_REQUIRE(records.size() == 2);
  ExpectMatchesGolden(client->BuildUpdateBatch({&records[0], &records[1]}),
                      "activitiesPartialUpdate.batch");
}

BOOST_AUTO_TEST_CASE(RemoveMatchesGoldenRemoveByForeignId) {
  auto client = GoldenClient();
  ExpectMatchesGolden(client->BuildSingle(Record(OutboxOp::kActivityRemove, "user", "42",
                                                 "Collection:7", kTime, "")),
                      "feed.removeActivity.foreignId");
}

BOOST_AUTO_TEST_CASE(FollowMatchesGolden) {
  auto client = GoldenClient();
  ExpectMatchesGolden(client->BuildSingle(Record(OutboxOp::kFollow, "timeline", "43", "user:42",
                                                 "", GoldenBody("feed.follow"))),
                      "feed.follow");
}

BOOST_AUTO_TEST_CASE(UnfollowMatchesGolden) {
  auto client = GoldenClient();
  ExpectMatchesGolden(
      client->BuildSingle(Record(OutboxOp::kUnfollow, "timeline", "43", "user:42", "", "")),
      "feed.unfollow");
}

BOOST_AUTO_TEST_CASE(ReadsMatchGolden) {
  auto client = GoldenClient();
  ExpectMatchesGolden(client->BuildGetUser("42"), "user.get");
  ExpectMatchesGolden(client->BuildGetFeed("user", "42", 20, "", true), "feed.get.enriched");
  ExpectMatchesGolden(
      client->BuildGetFeed("user", "42", 20, "8a7d4f2e-4e5b-11ea-8080-800020f3c9a1", false),
      "feed.get.plain");
  ExpectMatchesGolden(client->BuildGetActivities({{"Collection:7", kTime}}),
                      "getActivities.foreignIdTimes");
}

BOOST_AUTO_TEST_CASE(UserAndReadOnlyTokensMatchGoldenClaims) {
  auto client = GoldenClient();
  for (const auto& [name, token] :
       std::vector<std::pair<std::string, std::string>>{
           {"createUserToken", client->UserToken("42")},
           {"feed.getReadOnlyToken", client->ReadOnlyFeedToken("user", "42")}}) {
    BOOST_TEST_CONTEXT(name) {
      std::string claims;
      BOOST_REQUIRE(VerifyJwt(kSecret, token, &claims));
      BOOST_TEST(JsonTextEquals(claims, G().Op(name)["jwt"]["claims"].value()), claims);
    }
  }
}

// ---- encoding, scope and URLs ---------------------------------------------------

BOOST_AUTO_TEST_CASE(OddIdsArePercentEncodedInEverySegment) {
  auto client = GoldenClient();
  BOOST_TEST(StreamClient::EncodeSegment("Collection:7") == "Collection:7");
  BOOST_TEST(StreamClient::EncodeSegment("a/b?c#d e%f+g&h") == "a%2Fb%3Fc%23d%20e%25f%2Bg%26h");
  BOOST_TEST(StreamClient::EncodeSegment("\xC3\xA9-._~") == "%C3%A9-._~");

  const HttpRequest remove = client->BuildSingle(
      Record(OutboxOp::kActivityRemove, "user", "a b", "x/y?z#w", kTime, ""));
  BOOST_TEST(Split(remove.url).path == "/api/v1.0/feed/user/a%20b/x%2Fy%3Fz%23w/");
  const HttpRequest user =
      client->BuildSingle(Record(OutboxOp::kUserDelete, "", "", "ad/min", "", ""));
  BOOST_TEST(Split(user.url).path == "/api/v1.0/user/ad%2Fmin/");
  const HttpRequest unfollow =
      client->BuildSingle(Record(OutboxOp::kUnfollow, "Timeline", "4 3", "User:4/2", "", ""));
  BOOST_TEST(Split(unfollow.url).path == "/api/v1.0/feed/Timeline/4%203/following/User:4%2F2/");
  // The token names the feed unencoded, as Stream computes it.
  std::string claims;
  BOOST_REQUIRE(VerifyJwt(kSecret, HeaderOf(remove, "authorization"), &claims));
  BOOST_TEST(claims == R"({"resource":"*","action":"*","feed_id":"usera b"})");
}

BOOST_AUTO_TEST_CASE(ConfiguredGroupNamesScopeTokens) {
  auto client = GoldenClient();
  const HttpRequest add = client->BuildSingle(
      Record(OutboxOp::kActivityAdd, "User", "42", "Collection:7", kTime, "{}"));
  BOOST_TEST(Split(add.url).path == "/api/v1.0/feed/User/42/");
  std::string claims;
  BOOST_REQUIRE(VerifyJwt(kSecret, HeaderOf(add, "authorization"), &claims));
  BOOST_TEST(claims == R"({"resource":"*","action":"*","feed_id":"User42"})");
}

BOOST_AUTO_TEST_CASE(TokensAreCachedPerClaims) {
  auto client = GoldenClient();
  const std::string a = client->Token(R"({"user_id":"1"})");
  BOOST_TEST(client->Token(R"({"user_id":"1"})") == a);
  BOOST_TEST(client->Token(R"({"user_id":"2"})") != a);
  BOOST_TEST(a == MakeJwt(kSecret, R"({"user_id":"1"})"));
}

BOOST_AUTO_TEST_CASE(LocationSelectsTheHostOnlyWhenBaseUrlIsDefault) {
  StreamClientOptions o;
  o.api_key = "k";
  o.location = "dublin";
  BOOST_TEST(StreamClient(o).base_url() == "https://dublin-api.stream-io-api.com/api/v1.0/");
  o.base_url = "http://127.0.0.1:1/api/v1.0";  // explicit wins; '/' appended
  BOOST_TEST(StreamClient(o).base_url() == "http://127.0.0.1:1/api/v1.0/");
  const HttpRequest r =
      StreamClient(o).BuildSingle(Record(OutboxOp::kUserDelete, "", "", "1", "", ""));
  BOOST_TEST(r.url.find("location") == std::string::npos);
}

// ---- responses ----------------------------------------------------------------

HttpResponse Response(int status, std::string body,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

BOOST_AUTO_TEST_CASE(ParseErrorReadsStreamErrorBody) {
  auto client = GoldenClient();
  const StreamError e = client->ParseError(Response(
      400, R"({"code":4,"detail":"verb is required","duration":"0.1ms","exception":"InputException","status_code":400,"exception_fields":{"verb":["required"]}})"));
  BOOST_TEST(e.http_status == 400);
  BOOST_TEST(e.code == 4);
  BOOST_TEST(e.exception == "InputException");
  BOOST_TEST(e.detail == "verb is required");
  BOOST_TEST(client->DescribeFailure(Response(409, R"({"code":22,"detail":"exists","exception":"Conflict"})")) ==
             "409 Conflict: exists");
}

BOOST_AUTO_TEST_CASE(ParseErrorSurvivesNonJsonAndNetworkFailures) {
  auto client = GoldenClient();
  const StreamError html = client->ParseError(Response(502, "<html>Bad Gateway</html>"));
  BOOST_TEST(html.code == 0);
  BOOST_TEST(html.exception.empty());
  BOOST_TEST(html.detail == "<html>Bad Gateway</html>");
  HttpResponse net;
  net.error = "Couldn't connect to server";
  BOOST_TEST(client->ParseError(net).detail == "Couldn't connect to server");
  BOOST_TEST(client->DescribeFailure(net) == "network: Couldn't connect to server");
  BOOST_TEST(client->DescribeFailure(Response(500, std::string(1000, 'x'))).size() < 260);
}

BOOST_AUTO_TEST_CASE(ParseRateLimitReadsHeadersAndToleratesGarbage) {
  const RateLimit r = StreamClient::ParseRateLimit(Response(
      429, "", {{"x-ratelimit-limit", "1000"}, {"x-ratelimit-remaining", "0"},
                {"x-ratelimit-reset", "1700000060"}, {"retry-after", "7"}}));
  BOOST_TEST(r.limit == 1000);
  BOOST_TEST(r.remaining == 0);
  BOOST_TEST(r.reset_unix_s == 1700000060);
  BOOST_TEST(r.retry_after_s == 7);
  const RateLimit none = StreamClient::ParseRateLimit(
      Response(200, "", {{"x-ratelimit-limit", "abc"}, {"retry-after", "Wed, 21 Oct 2015"}}));
  BOOST_TEST(none.limit == -1);
  BOOST_TEST(none.remaining == -1);
  BOOST_TEST(none.reset_unix_s == -1);
  BOOST_TEST(none.retry_after_s == -1);
}

BOOST_AUTO_TEST_CASE(ParseAddResponseReadsSingleAndBatchForms) {
  auto client = GoldenClient();
  std::vector<std::pair<std::string, std::string>> ids;
  BOOST_TEST(client->ParseAddResponse(
      Response(201, R"({"id":"u-1","foreign_id":"Collection:7","actor":"SU:42","duration":"1ms"})"),
      &ids).ok());
  BOOST_TEST(ids.size() == 1u);
  BOOST_TEST(ids[0].first == "Collection:7");
  BOOST_TEST(ids[0].second == "u-1");

  ids.clear();
  BOOST_TEST(client->ParseAddResponse(
      Response(201, R"({"activities":[{"id":"u-8","foreign_id":"Collection:8"},{"id":"u-9","foreign_id":"Collection:9"}],"duration":"1ms"})"),
      &ids).ok());
  BOOST_TEST(ids.size() == 2u);
  BOOST_TEST(ids[1].first == "Collection:9");
  BOOST_TEST(ids[1].second == "u-9");
}

BOOST_AUTO_TEST_CASE(ParseAddResponseRejectsMalformedBodies) {
  auto client = GoldenClient();
  std::vector<std::pair<std::string, std::string>> ids;
  for (const char* body : {"", "[]", "not json", R"({"duration":"1ms"})",
                           R"({"activities":[{"foreign_id":"x"}]})"}) {
    const Status s = client->ParseAddResponse(Response(201, body), &ids);
    BOOST_TEST(!s.ok(), body);
    BOOST_TEST(s.error_code() == "stream_bad_response");
  }
  BOOST_TEST(ids.empty());
}

}  // namespace
}  // namespace offbrand
