// Proves that the requests StreamClient builds from the outbox records our
// real code paths produce (an in-process server signs people up, creates,
// renames and deletes collections and follows; the records are read back
// from its outbox) are the requests Stream's official JS SDK sent
// (shared/stream/golden-requests.json): method, path, query, body (field by
// field, with our ids and times mapped to the capture's) and decoded token
// claims, operation by operation; plus id percent-encoding, token caching and
// the parsing of errors, rate-limit headers (both Retry-After forms) and add
// responses.
#define BOOST_TEST_MODULE stream_client_test
#include <boost/test/unit_test.hpp>
#include <simdjson.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "jwt.h"
#include "offbrand/config.h"
#include "stream_client.h"
#include "test_support.h"

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

// ---- golden comparisons of what our producers queue ------------------------------
//
// The records come from the real code paths: an in-process server on a real
// data dir is told to sign people up, create, rename and delete collections,
// add links and follow, and the records those actions queued are read back
// from the outbox. StreamClient turns them into requests, which are compared
// with the SDK's captures. Our ids, times, gravatar URLs and feed names are
// not the capture's: a table maps each of our whole strings (a path segment,
// a JSON string value, a token claim; query values only by "?key=value"
// entries) to the golden's first.
// Bodies must then hold every golden field with the golden value; fields the
// golden lacks are allowed only where APP.md adds them (listed per case).

using Subst = std::map<std::string, std::string>;

std::string Mapped(const Subst& subst, std::string_view s) {
  auto it = subst.find(std::string(s));
  return it == subst.end() ? std::string(s) : it->second;
}

// `ours` (after substitution of string values) holds every field of `golden`
// with an equivalent value; its other object keys must be in `extras`, and
// golden keys in `optional` may be missing. *why says where it differs.
bool Equivalent(simdjson::dom::element ours, simdjson::dom::element golden, const Subst& subst,
                const std::set<std::string>& extras, const std::set<std::string>& optional,
                const std::string& at, std::string* why) {
  using T = simdjson::dom::element_type;
  if (ours.type() == T::STRING && golden.type() == T::STRING) {
    const std::string mine = Mapped(subst, ours.get_string().value_unsafe());
    if (mine == golden.get_string().value_unsafe()) return true;
    *why = at + ": \"" + mine + "\" != \"" + std::string(golden.get_string().value_unsafe()) + "\"";
    return false;
  }
  if (ours.type() == T::OBJECT && golden.type() == T::OBJECT) {
    simdjson::dom::object mo = ours.get_object().value_unsafe();
    simdjson::dom::object go = golden.get_object().value_unsafe();
    for (auto field : go) {
      simdjson::dom::element mine;
      const std::string key(field.key);
      if (mo.at_key(field.key).get(mine) != simdjson::SUCCESS) {
        if (optional.count(key) != 0) continue;
        *why = at + "." + key + " is missing";
        return false;
      }
      if (!Equivalent(mine, field.value, subst, extras, optional, at + "." + key, why)) return false;
    }
    for (auto field : mo) {
      simdjson::dom::element theirs;
      const std::string key(field.key);
      if (go.at_key(field.key).get(theirs) != simdjson::SUCCESS && extras.count(key) == 0) {
        *why = at + "." + key + " is not in the golden request";
        return false;
      }
    }
    return true;
  }
  if (ours.type() == T::ARRAY && golden.type() == T::ARRAY) {
    simdjson::dom::array ma = ours.get_array().value_unsafe();
    simdjson::dom::array ga = golden.get_array().value_unsafe();
    if (ma.size() != ga.size()) {
      *why = at + ": " + std::to_string(ma.size()) + " elements, golden " + std::to_string(ga.size());
      return false;
    }
    size_t i = 0;
    for (auto im = ma.begin(), ig = ga.begin(); im != ma.end(); ++im, ++ig, ++i) {
      if (!Equivalent(*im, *ig, subst, extras, optional, at + "[" + std::to_string(i) + "]", why)) {
        return false;
      }
    }
    return true;
  }
  if (JsonEqual(ours, golden)) return true;
  *why = at + ": " + Minify(ours) + " != " + Minify(golden);
  return false;
}

// Compares a request built from produced records with golden operation `name`.
void ExpectProducedMatchesGolden(const HttpRequest& req, const std::string& name,
                                 const Subst& subst, const std::set<std::string>& extras = {},
                                 const std::set<std::string>& optional = {}) {
  BOOST_TEST_CONTEXT("operation " << name << ", request " << req.method << " " << req.url
                                  << " " << req.body) {
    simdjson::dom::object g = G().Op(name);
    BOOST_TEST(req.method == std::string(g["method"].get_string().value()));

    // Path: segment by segment, decoded and mapped.
    const SplitUrl url = Split(req.url);
    std::string path;
    size_t start = 0;
    while (start < url.path.size()) {
      const size_t slash = url.path.find('/', start);
      path += Mapped(subst, PercentDecode(url.path.substr(start, slash - start))) + "/";
      start = slash + 1;
    }
    BOOST_TEST(path == std::string(g["path"].get_string().value()));

    // Query: the golden pairs except its optional `location`; api_key first.
    std::map<std::string, std::string> expected_query;
    simdjson::dom::object golden_query;
    BOOST_REQUIRE(g["query"].get(golden_query) == simdjson::SUCCESS);
    for (auto field : golden_query) {
      if (field.key == "location") continue;
      expected_query[std::string(field.key)] = std::string(field.value.get_string().value());
    }
    std::map<std::string, std::string> actual_query;
    // Query values are mapped only by entries spelled "?<key>=<value>" (a
    // bare id would map unrelated values such as foreign_id=1).
    for (const auto& [k, v] : url.query) {
      auto it = subst.find("?" + k + "=" + v);
      actual_query[k] = it == subst.end() ? v : it->second;
    }
    BOOST_TEST(actual_query.size() == url.query.size(), "a query key repeats");
    BOOST_TEST(actual_query == expected_query);
    BOOST_REQUIRE(!url.query.empty());
    BOOST_TEST(url.query.front().first == "api_key");

    // Body.
    simdjson::dom::element golden_body = g["body"].value();
    if (golden_body.is_null()) {
      BOOST_TEST(req.body.empty());
    } else {
      simdjson::dom::parser parser;
      simdjson::dom::element ours;
      BOOST_REQUIRE(parser.parse(req.body).get(ours) == simdjson::SUCCESS);
      std::string why;
      BOOST_TEST(Equivalent(ours, golden_body, subst, extras, optional, "body", &why), why);
    }

    // Headers.
    simdjson::dom::object gh = g["headers"].get_object().value();
    simdjson::dom::element content_type = gh["content-type"].value();
    if (content_type.is_null()) {
      BOOST_TEST(HeaderOf(req, "content-type").empty());
    } else {
      BOOST_TEST(HeaderOf(req, "content-type") == std::string(content_type.get_string().value()));
    }
    BOOST_TEST(HeaderOf(req, "stream-auth-type") ==
               std::string(gh["stream-auth-type"].get_string().value()));
    BOOST_TEST(HeaderOf(req, "x-stream-client") == "offbrand-" OFFBRAND_VERSION);

    // Token: signed with the secret; header and (mapped) claims equal the SDK's.
    const std::string token = HeaderOf(req, "authorization");
    BOOST_TEST(token.rfind("Bearer", 0) != 0);
    std::string claims;
    BOOST_REQUIRE(VerifyJwt(kSecret, token, &claims));
    simdjson::dom::parser parser;
    simdjson::dom::element ours;
    BOOST_REQUIRE(parser.parse(claims).get(ours) == simdjson::SUCCESS);
    simdjson::dom::object gj = g["jwt"].get_object().value();
    std::string why;
    BOOST_TEST(Equivalent(ours, gj["claims"].value(), subst, {}, {}, "claims", &why), why);
    std::string header;
    BOOST_REQUIRE(Base64UrlDecode(token.substr(0, token.find('.')), &header));
    BOOST_TEST(JsonTextEquals(header, gj["header"].value()));
  }
}

std::string GoldenString(const std::string& op, const std::vector<std::string>& path) {
  simdjson::dom::element e = G().Op(op)["body"].value();
  for (const std::string& p : path) {
    if (!p.empty() && p[0] >= '0' && p[0] <= '9') {
      e = e.at(std::stoul(p)).value();
    } else {
      e = e[p].value();
    }
  }
  return std::string(e.get_string().value());
}

// An in-process server (Stream not configured, so records stay in the
// outbox) and the people of the captures: ada (golden user 42) and bob
// (golden 43), plus an administrator.
class Produced {
 public:
  Produced() : server_(dir_.Sub("data")) {
    ada = server_.SignUp("ada", "ada@example.com");
    bob = server_.SignUp("bob", "bob@example.com");
    admin = server_.SignUpAdmin("root");
    ada_id = Me(ada);
    bob_id = Me(bob);
  }
  test::TestApi api() const { return server_.api(); }
  const Config& config() { return server_.app().config(); }
  uint64_t LastSeq() {
    const auto all = test::OutboxRecords(server_.store());
    return all.empty() ? 0 : all.back().seq;
  }
  std::vector<OutboxRecord> Since(uint64_t seq, OutboxOp op) {
    std::vector<OutboxRecord> out;
    for (OutboxRecord& r : test::OutboxRecords(server_.store())) {
      if (r.seq > seq && r.op == op) out.push_back(std::move(r));
    }
    return out;
  }
  // Creates a collection; returns (id, stream time) from its add record.
  std::pair<std::string, std::string> NewCollection(const std::string& name,
                                                    const std::string& description) {
    const uint64_t seq = LastSeq();
    test::HttpReply r = api().Post(
        "/api/v1/collections",
        "{\"name\":\"" + name + "\",\"description\":\"" + description + "\"}", ada);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    const std::string id = std::to_string(r.json().at("id").num());
    const auto adds = Since(seq, OutboxOp::kActivityAdd);
    BOOST_REQUIRE_EQUAL(adds.size(), 1u);
    return {id, adds[0].time};
  }
  // The gravatar URL a user's records carry (from their add record).
  std::string GravatarOf(const std::string& id) {
    for (const OutboxRecord& r : test::OutboxRecords(server_.store())) {
      if (r.op == OutboxOp::kUserAdd && r.foreign_id == id) {
        return test::Json(r.body).at("data").at("gravatar").str();
      }
    }
    BOOST_FAIL("no user add for " << id);
    return {};
  }

  std::string ada, bob, admin;
  std::string ada_id, bob_id;

 private:
  std::string Me(const std::string& token) {
    test::HttpReply r = api().Get("/api/v1/me", token);
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return std::to_string(r.json().at("id").num());
  }
  test::TempDir dir_;
  test::TestServer server_;
};

// Our feed names and ada's id, as the golden spells them.
Subst BaseSubst(Produced& p) {
  const Config& c = p.config();
  return {{c.feed_user, "user"},
          {p.ada_id, "42"},
          {"SU:" + p.ada_id, "SU:42"},
          {c.feed_user + p.ada_id, "user42"}};
}

BOOST_AUTO_TEST_CASE(ProducedUserAddMatchesGoldenGetOrCreate) {
  Produced p;
  const auto adds = p.Since(0, OutboxOp::kUserAdd);
  BOOST_REQUIRE(!adds.empty());
  const OutboxRecord& ada = adds.front();
  BOOST_REQUIRE(ada.foreign_id == p.ada_id);
  Subst s = BaseSubst(p);
  s[p.GravatarOf(p.ada_id)] = GoldenString("user.getOrCreate", {"data", "gravatar"});
  ExpectProducedMatchesGolden(GoldenClient()->BuildSingle(ada), "user.getOrCreate", s);
}

BOOST_AUTO_TEST_CASE(ProducedUserUpdateMatchesGolden) {
  Produced p;
  const uint64_t seq = p.LastSeq();
  test::HttpReply r =
      p.api().Patch("/api/v1/users/ada", R"({"email":"ada.lovelace@example.com"})", p.admin);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
  const auto updates = p.Since(seq, OutboxOp::kUserUpdate);
  BOOST_REQUIRE_EQUAL(updates.size(), 1u);
  Subst s = BaseSubst(p);
  s[test::Json(updates[0].body).at("data").at("gravatar").str()] =
      GoldenString("user.update", {"data", "gravatar"});
  ExpectProducedMatchesGolden(GoldenClient()->BuildSingle(updates[0]), "user.update", s);
}

BOOST_AUTO_TEST_CASE(ProducedUserDeleteMatchesGolden) {
  Produced p;
  const uint64_t seq = p.LastSeq();
  test::HttpReply r = p.api().Delete("/api/v1/users/ada", p.admin);
  BOOST_REQUIRE_MESSAGE(r.status == 200 || r.status == 204, r.status << " " << r.body);
  const auto deletes = p.Since(seq, OutboxOp::kUserDelete);
  BOOST_REQUIRE_EQUAL(deletes.size(), 1u);
  ExpectProducedMatchesGolden(GoldenClient()->BuildSingle(deletes[0]), "user.delete", BaseSubst(p));
}

BOOST_AUTO_TEST_CASE(ProducedCollectionAddMatchesGoldenAddActivity) {
  Produced p;
  const uint64_t seq = p.LastSeq();
  const auto [cid, time] = p.NewCollection("Reading list", "Links worth keeping");
  const auto adds = p.Since(seq, OutboxOp::kActivityAdd);
  BOOST_REQUIRE_EQUAL(adds.size(), 1u);
  // Stream's time format, chosen once: UTC, microseconds, no zone.
  BOOST_TEST(time.size() == std::string(kTime).size());
  BOOST_TEST(time[4] == '-');
  BOOST_TEST(time[10] == 'T');
  BOOST_TEST(time[19] == '.');
  BOOST_TEST(time.find_first_not_of("0123456789-T:.") == std::string::npos);
  Subst s = BaseSubst(p);
  s["Collection:" + cid] = "Collection:7";
  s[time] = kTime;
  auto client = GoldenClient();
  // APP.md adds `create` (the collection's name, for the activity text).
  ExpectProducedMatchesGolden(client->BuildSingle(adds[0]), "feed.addActivity", s, {"create"});
  ExpectProducedMatchesGolden(client->BuildAddBatch(adds[0].feed_group, adds[0].feed_id, {&adds[0]}),
                              "feed.addActivity", s, {"create"});
}

BOOST_AUTO_TEST_CASE(ProducedCollectionAddsBatchLikeGoldenAddActivities) {
  Produced p;
  const uint64_t seq = p.LastSeq();
  const auto [c8, t8] = p.NewCollection("Eight", "e");
  const auto [c9, t9] = p.NewCollection("Nine", "n");
  const auto adds = p.Since(seq, OutboxOp::kActivityAdd);
  BOOST_REQUIRE_EQUAL(adds.size(), 2u);
  Subst s = BaseSubst(p);
  s["Collection:" + c8] = "Collection:8";
  s["Collection:" + c9] = "Collection:9";
  s[t8] = kTime;
  s[t9] = kTime;
  // The capture's batch items carry only the core fields.
  ExpectProducedMatchesGolden(
      GoldenClient()->BuildAddBatch(adds[0].feed_group, adds[0].feed_id, {&adds[0], &adds[1]}),
      "feed.addActivities", s, {"create", "name", "description"});
}

BOOST_AUTO_TEST_CASE(ProducedRenameMatchesGoldenPartialUpdateByForeignId) {
  Produced p;
  const auto [cid, time] = p.NewCollection("Reading list", "Links worth keeping");
  const uint64_t seq = p.LastSeq();
  test::HttpReply r = p.api().Patch("/api/v1/collections/" + cid,
                                    R"({"name":"Renamed","description":"New text"})", p.ada);
  BOOST_REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
  const auto updates = p.Since(seq, OutboxOp::kActivityUpdate);
  BOOST_REQUIRE_EQUAL(updates.size(), 1u);
  Subst s = BaseSubst(p);
  s["Collection:" + cid] = "Collection:7";
  s[time] = kTime;
  auto client = GoldenClient();
  // `unset` is optional (nothing is unset here); `create` follows the name.
  ExpectProducedMatchesGolden(client->BuildSingle(updates[0]), "activityPartialUpdate.foreignId",
                              s, {"create"}, {"unset"});
  ExpectProducedMatchesGolden(client->BuildUpdateBatch({&updates[0]}),
                              "activityPartialUpdate.foreignId", s, {"create"}, {"unset"});
}

BOOST_AUTO_TEST_CASE(ProducedRenamesBatchLikeGoldenBatchPartialUpdate) {
  Produced p;
  const auto [c7, t7] = p.NewCollection("Seven", "s");
  const auto [c8, t8] = p.NewCollection("Eight", "e");
  const uint64_t seq = p.LastSeq();
  BOOST_REQUIRE_EQUAL(p.api().Patch("/api/v1/collections/" + c7, R"({"name":"B"})", p.ada).status,
                      200);
  BOOST_REQUIRE_EQUAL(p.api().Patch("/api/v1/collections/" + c8, R"({"name":"C"})", p.ada).status,
                      200);
  const auto updates = p.Since(seq, OutboxOp::kActivityUpdate);
  BOOST_REQUIRE_EQUAL(updates.size(), 2u);
  Subst s = BaseSubst(p);
  s["Collection:" + c7] = "Collection:7";
  s["Collection:" + c8] = "Collection:8";
  s[t7] = kTime;
  s[t8] = kTime;
  ExpectProducedMatchesGolden(GoldenClient()->BuildUpdateBatch({&updates[0], &updates[1]}),
                              "activitiesPartialUpdate.batch", s, {"create"});
}

BOOST_AUTO_TEST_CASE(ProducedCollectionDeleteMatchesGoldenRemoveByForeignId) {
  Produced p;
  const auto [cid, time] = p.NewCollection("Reading list", "Links worth keeping");
  const uint64_t seq = p.LastSeq();
  BOOST_REQUIRE_EQUAL(p.api().Delete("/api/v1/collections/" + cid, p.ada).status, 204);
  std::vector<OutboxRecord> removes;
  for (OutboxRecord& r : p.Since(seq, OutboxOp::kActivityRemove)) {
    if (r.feed_group == p.config().feed_user) removes.push_back(std::move(r));
  }
  BOOST_REQUIRE_EQUAL(removes.size(), 1u);
  Subst s = BaseSubst(p);
  s["Collection:" + cid] = "Collection:7";
  ExpectProducedMatchesGolden(GoldenClient()->BuildSingle(removes[0]),
                              "feed.removeActivity.foreignId", s);
}

// bob follows ada: bob's notification feed follows ada's user feed. The
// capture's follower feed is timeline:43; our group names are configurable.
Subst FollowSubst(Produced& p) {
  const Config& c = p.config();
  Subst s = BaseSubst(p);
  s[c.feed_notifications] = "timeline";
  s[p.bob_id] = "43";
  s[c.feed_notifications + p.bob_id] = "timeline43";
  s[c.feed_notifications + ":" + p.bob_id] = "timeline:43";
  s[c.feed_user + ":" + p.ada_id] = "user:42";
  return s;
}

BOOST_AUTO_TEST_CASE(ProducedFollowAndUnfollowMatchGolden) {
  Produced p;
  uint64_t seq = p.LastSeq();
  BOOST_REQUIRE_EQUAL(p.api().Put("/api/v1/users/ada/follow", "{}", p.bob).status / 100, 2);
  const auto follows = p.Since(seq, OutboxOp::kFollow);
  BOOST_REQUIRE_EQUAL(follows.size(), 1u);
  BOOST_REQUIRE(follows[0].feed_group == p.config().feed_notifications);
  auto client = GoldenClient();
  ExpectProducedMatchesGolden(client->BuildSingle(follows[0]), "feed.follow", FollowSubst(p));
  // Batched (sync_engine.h): one follow_many; the copy limit becomes the query.
  BOOST_TEST(client->FollowCopyLimit(follows[0]) == 100);
  Subst many = FollowSubst(p);
  many["?activity_copy_limit=100"] = "20";  // the capture asked for 20
  ExpectProducedMatchesGolden(client->BuildFollowMany({&follows[0]}), "followMany", many);

  seq = p.LastSeq();
  BOOST_REQUIRE_EQUAL(p.api().Delete("/api/v1/users/ada/follow", p.bob).status / 100, 2);
  const auto unfollows = p.Since(seq, OutboxOp::kUnfollow);
  BOOST_REQUIRE_EQUAL(unfollows.size(), 1u);
  ExpectProducedMatchesGolden(client->BuildSingle(unfollows[0]), "feed.unfollow", FollowSubst(p));
}

BOOST_AUTO_TEST_CASE(ProducedRecordsAreCheckedAgainstTheGoldenNotByConstruction) {
  // The comparison must be able to fail: a wrong field value, a field the
  // golden lacks, and a missing field are each reported.
  Produced p;
  const auto [cid, time] = p.NewCollection("Reading list", "Links worth keeping");
  simdjson::dom::parser parser;
  simdjson::dom::element golden = G().Op("feed.addActivity")["body"].value();
  Subst s = BaseSubst(p);
  s["Collection:" + cid] = "Collection:7";
  s[time] = kTime;
  for (const auto& [body, expect_ok] : std::vector<std::pair<std::string, bool>>{
           {R"({"actor":"SU:)" + p.ada_id + R"(","verb":"create","object":"Collection:)" + cid +
                R"(","foreign_id":"Collection:)" + cid + R"(","time":")" + time +
                R"(","name":"Reading list","description":"Links worth keeping"})",
            true},
           {R"({"actor":"SU:)" + p.ada_id + R"(","verb":"create","object":"Collection:)" + cid +
                R"(","foreign_id":"Collection:)" + cid + R"(","time":")" + time +
                R"(","name":"Other","description":"Links worth keeping"})",
            false},
           {R"({"actor":"SU:)" + p.ada_id + R"(","verb":"create","object":"Collection:)" + cid +
                R"(","foreign_id":"Collection:)" + cid +
                R"(","name":"Reading list","description":"Links worth keeping"})",
            false},
           {R"({"actor":"SU:)" + p.ada_id + R"(","verb":"create","object":"Collection:)" + cid +
                R"(","foreign_id":"Collection:)" + cid + R"(","time":")" + time +
                R"(","name":"Reading list","description":"Links worth keeping","x":1})",
            false}}) {
    simdjson::dom::element ours;
    BOOST_REQUIRE(parser.parse(body).get(ours) == simdjson::SUCCESS);
    std::string why;
    BOOST_TEST(Equivalent(ours, golden, s, {}, {}, "body", &why) == expect_ok, body << ": " << why);
  }
}

BOOST_AUTO_TEST_CASE(ReadsMatchGolden) {
  auto client = GoldenClient();
  const Subst none;
  ExpectProducedMatchesGolden(client->BuildGetUser("42"), "user.get", none);
  ExpectProducedMatchesGolden(client->BuildGetFeed("user", "42", 20, "", true),
                              "feed.get.enriched", none);
  ExpectProducedMatchesGolden(
      client->BuildGetFeed("user", "42", 20, "8a7d4f2e-4e5b-11ea-8080-800020f3c9a1", false),
      "feed.get.plain", none);
  ExpectProducedMatchesGolden(client->BuildGetActivities({{"Collection:7", kTime}}),
                              "getActivities.foreignIdTimes", none);
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

// Regression (audit 7): Retry-After as an HTTP date was ignored.
BOOST_AUTO_TEST_CASE(ParseRateLimitReadsRetryAfterAsAnHttpDate) {
  const RateLimit date = StreamClient::ParseRateLimit(
      Response(429, "", {{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}}));
  BOOST_TEST(date.retry_after_s == -1);
  BOOST_TEST(date.retry_at_unix_s == 1445412480);
  const RateLimit seconds = StreamClient::ParseRateLimit(Response(429, "", {{"retry-after", "120"}}));
  BOOST_TEST(seconds.retry_after_s == 120);
  BOOST_TEST(seconds.retry_at_unix_s == -1);
  const RateLimit garbage = StreamClient::ParseRateLimit(Response(429, "", {{"retry-after", "soon"}}));
  BOOST_TEST(garbage.retry_after_s == -1);
  BOOST_TEST(garbage.retry_at_unix_s == -1);
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
