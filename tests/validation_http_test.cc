// Proves the SPEC section 3 validation table and the bad-input list over real
// HTTP: every refused request (too long, empty, bad characters, control
// characters, invalid UTF-8, wrong type, unknown or missing field, malformed
// JSON, oversized body, wrong content type, duplicates) gets the SPEC error
// object with the right status and leaves every LMDB database byte-for-byte
// unchanged and sends no mail.
#define BOOST_TEST_MODULE validation_http_test
#include <boost/test/unit_test.hpp>

#include <map>
#include <tuple>
#include <vector>

#include "account_test_helpers.h"
#include "http_server.h"

using namespace offbrand;
using namespace offbrand::test;

namespace {

const std::string kApi = "/api/v1";

struct Row {
  std::string what;
  std::string body;   // raw request body
  int status;
  std::string code;   // SPEC error code
  std::string field;  // expected "field", or "" when not checked
};

// One register body with `field` replaced by the raw JSON `value` (or
// removed when value is empty).
std::string RegisterWith(const std::string& field, const std::string& value) {
  std::map<std::string, std::string> fields = {{"username", "\"newbie\""},
                                               {"email", "\"newbie@example.com\""},
                                               {"password", "\"newbie-password\""}};
  if (value.empty()) {
    fields.erase(field);
  } else {
    fields[field] = value;
  }
  std::string body = "{";
  for (const auto& [k, v] : fields) body += (body.size() > 1 ? "," : "") + ("\"" + k + "\":" + v);
  return body + "}";
}

void ExpectRefusedAndNothingChanged(TestServer& server, const std::string& method,
                                    const std::string& path, const std::string& token,
                                    const Row& row,
                                    const std::string& content_type = "application/json") {
  const std::string digest = StoreDigest(server.store());
  std::multimap<std::string, std::string> headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  HttpReply r = server.api().Send(method, kApi + path, row.body, content_type, headers);
  BOOST_TEST(r.status == row.status, row.what << ": got " << r.status << " " << r.body);
  BOOST_TEST(r.error_code() == row.code, row.what << ": " << r.body);
  if (!row.field.empty() && r.status == row.status && r.error_code() == row.code) {
    BOOST_TEST(r.json().at("error").at("field").str() == row.field, row.what);
  }
  BOOST_TEST(r.json().at("error").has("message"), row.what);
  BOOST_TEST(StoreDigest(server.store()) == digest, row.what << ": the database changed");
}

}  // namespace

BOOST_AUTO_TEST_CASE(RegisterValidationTableChangesNothing) {
  TempDir dir;
  TestServer server(dir.path());
  Join(server, "existing");
  const std::string long_name = std::string(65, 'a');
  const std::string long_email = std::string(53, 'a') + "@example.com";  // 65 bytes
  const std::string long_password = std::string(1025, 'p');
  const std::vector<Row> rows = {
      {"username too long", RegisterWith("username", "\"" + long_name + "\""), 422, "invalid_field", "username"},
      {"username empty", RegisterWith("username", "\"\""), 422, "invalid_field", "username"},
      {"username starts with digit", RegisterWith("username", "\"1abc\""), 422, "invalid_field", "username"},
      {"username with space", RegisterWith("username", "\"a b\""), 422, "invalid_field", "username"},
      {"username with dash", RegisterWith("username", "\"a-b\""), 422, "invalid_field", "username"},
      {"username with control char", RegisterWith("username", "\"ab\\u0001\""), 422, "invalid_field", "username"},
      {"username non-ascii", RegisterWith("username", "\"\xc3\xa9mile\""), 422, "invalid_field", "username"},
      {"username invalid utf-8", RegisterWith("username", "\"ab\xff\xfe\""), 400, "malformed_json", ""},
      {"username wrong type", RegisterWith("username", "5"), 400, "wrong_type", ""},
      {"username missing", RegisterWith("username", ""), 422, "missing_field", ""},
      {"email too long", RegisterWith("email", "\"" + long_email + "\""), 422, "invalid_field", "email"},
      {"email empty", RegisterWith("email", "\"\""), 422, "invalid_field", "email"},
      {"email without at", RegisterWith("email", "\"newbie.example.com\""), 422, "invalid_field", "email"},
      {"email without dot in domain", RegisterWith("email", "\"newbie@localhost\""), 422, "invalid_field", "email"},
      {"email with control char", RegisterWith("email", "\"new\\u0007bie@example.com\""), 422, "invalid_field", "email"},
      {"email invalid utf-8", RegisterWith("email", "\"n\xc3@example.com\""), 400, "malformed_json", ""},
      {"email wrong type", RegisterWith("email", "[\"a@b.c\"]"), 400, "wrong_type", ""},
      {"email missing", RegisterWith("email", ""), 422, "missing_field", ""},
      {"password too short", RegisterWith("password", "\"short\""), 422, "invalid_field", "password"},
      {"password too long", RegisterWith("password", "\"" + long_password + "\""), 422, "invalid_field", "password"},
      {"password empty", RegisterWith("password", "\"\""), 422, "invalid_field", "password"},
      {"password with control char", RegisterWith("password", "\"abcdefgh\\u0000\""), 422, "invalid_field", "password"},
      {"password wrong type", RegisterWith("password", "12345678"), 400, "wrong_type", ""},
      {"password missing", RegisterWith("password", ""), 422, "missing_field", ""},
      {"unknown field", RegisterWith("admin", "true"), 400, "unknown_field", ""},
      {"duplicate username (case)", RegisterWith("username", "\"EXISTING\""), 409, "duplicate_username", "username"},
      {"duplicate email (case)", RegisterWith("email", "\"Existing@Example.COM\""), 409, "duplicate_email", "email"},
  };
  for (const Row& row : rows) ExpectRefusedAndNothingChanged(server, "POST", "/auth/register", "", row);
  BOOST_TEST(server.LastMailTo("newbie@example.com").empty());
}

BOOST_AUTO_TEST_CASE(ProfileValidationTableChangesNothing) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = Join(server, "prof");
  const std::vector<Row> rows = {
      {"name too long", "{\"name\":\"" + std::string(65, 'n') + "\"}", 422, "invalid_field", "name"},
      {"name with control char", "{\"name\":\"a\\u001fb\"}", 422, "invalid_field", "name"},
      {"name with newline", "{\"name\":\"a\\nb\"}", 422, "invalid_field", "name"},
      {"name invalid utf-8", "{\"name\":\"\xed\xa0\x80\"}", 400, "malformed_json", ""},
      {"name wrong type", "{\"name\":true}", 400, "wrong_type", ""},
      {"about_me too long", "{\"about_me\":\"" + std::string(kAboutMeBytesMax + 1, 'x') + "\"}", 422, "invalid_field", "about_me"},
      {"about_me with control char", "{\"about_me\":\"bell\\u0007\"}", 422, "invalid_field", "about_me"},
      {"about_me wrong type", "{\"about_me\":{}}", 400, "wrong_type", ""},
      {"unknown field", "{\"role\":\"Administrator\"}", 400, "unknown_field", ""},
  };
  for (const Row& row : rows) ExpectRefusedAndNothingChanged(server, "PATCH", "/me", token, row);
  // The limits themselves are accepted.
  BOOST_TEST(server.api().Patch(kApi + "/me", "{\"name\":\"" + std::string(64, 'n') + "\"}", token).status == 200);
}

BOOST_AUTO_TEST_CASE(AuthBodiesAreCheckedBeforeAnythingElse) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = Join(server, "auth");
  const std::vector<std::tuple<std::string, std::string, Row>> cases = {
      {"/auth/login", "", {"login remember wrong type", "{\"email\":\"a@b.co\",\"password\":\"12345678\",\"remember\":\"yes\"}", 400, "wrong_type", ""}},
      {"/auth/login", "", {"login password missing", "{\"email\":\"a@b.co\"}", 422, "missing_field", ""}},
      {"/auth/login", "", {"login unknown field", "{\"email\":\"a@b.co\",\"password\":\"12345678\",\"x\":1}", 400, "unknown_field", ""}},
      {"/auth/confirm", "", {"confirm token missing", "{}", 422, "missing_field", ""}},
      {"/auth/confirm", "", {"confirm token wrong type", "{\"token\":1}", 400, "wrong_type", ""}},
      {"/auth/reset", "", {"reset bad email", "{\"email\":\"nope\"}", 422, "invalid_field", "email"}},
      {"/auth/reset/confirm", "", {"reset confirm bad token", "{\"token\":\"abc\",\"password\":\"12345678\"}", 400, "invalid_token", ""}},
      {"/auth/password", token, {"password change new too short", "{\"old_password\":\"" + PasswordOf("auth") + "\",\"password\":\"1234567\"}", 422, "invalid_field", "password"}},
      {"/auth/email", token, {"email change bad email", "{\"email\":\"no@pe\",\"password\":\"" + PasswordOf("auth") + "\"}", 422, "invalid_field", "email"}},
      {"/auth/email/confirm", "", {"email confirm bad token", "{\"token\":\"\"}", 400, "invalid_token", ""}},
  };
  for (const auto& [path, auth, row] : cases) ExpectRefusedAndNothingChanged(server, "POST", path, auth, row);
}

BOOST_AUTO_TEST_CASE(AdminPatchValidationChangesNothing) {
  TempDir dir;
  TestServer server(dir.path());
  std::string admin = JoinAdmin(server, "root");
  Join(server, "target");
  const std::vector<Row> rows = {
      {"role unknown", "{\"role\":\"God\"}", 422, "invalid_field", "role"},
      {"role wrong type", "{\"role\":3}", 400, "wrong_type", ""},
      {"confirmed wrong type", "{\"confirmed\":\"yes\"}", 400, "wrong_type", ""},
      {"username invalid", "{\"username\":\"9lives\"}", 422, "invalid_field", "username"},
      {"email invalid", "{\"email\":\"@example.com\"}", 422, "invalid_field", "email"},
      {"name too long", "{\"name\":\"" + std::string(65, 'n') + "\"}", 422, "invalid_field", "name"},
      {"unknown field", "{\"password\":\"x\"}", 400, "unknown_field", ""},
  };
  for (const Row& row : rows) ExpectRefusedAndNothingChanged(server, "PATCH", "/users/target", admin, row);
}

BOOST_AUTO_TEST_CASE(BadInputListChangesNothing) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = Join(server, "bad");
  const std::string good = RegisterJson("fresh", "fresh@example.com", "fresh-password");
  const std::vector<Row> rows = {
      {"malformed JSON", "{\"username\":", 400, "malformed_json", ""},
      {"not an object", "[1,2]", 400, "malformed_json", ""},
      {"trailing garbage", good + "x", 400, "malformed_json", ""},
      {"empty body", "", 400, "malformed_json", ""},
      {"body over 64 KiB",
       "{\"username\":\"" + std::string(kRequestBodyBytesMax, 'a') + "\"}", 413, "", ""},
  };
  for (Row row : rows) {
    // 413 may be answered before a handler runs; check its code loosely.
    if (row.status == 413) {
      const std::string digest = StoreDigest(server.store());
      HttpReply r = server.api().Send("POST", kApi + "/auth/register", row.body, "application/json", {});
      BOOST_TEST(r.status == 413);
      BOOST_TEST(StoreDigest(server.store()) == digest);
      continue;
    }
    ExpectRefusedAndNothingChanged(server, "POST", "/auth/register", "", row);
  }
  // Wrong content type: 415 on anonymous and logged-in writes.
  {
    const std::string digest = StoreDigest(server.store());
    HttpReply r = server.api().Send("POST", kApi + "/auth/register", good, "text/plain", {});
    BOOST_TEST(r.status == 415);
    r = server.api().Send("PATCH", kApi + "/me", "{\"name\":\"x\"}", "application/x-www-form-urlencoded",
                          {{"Authorization", "Bearer " + token}});
    BOOST_TEST(r.status == 415);
    BOOST_TEST(StoreDigest(server.store()) == digest);
  }
  BOOST_TEST(server.LastMailTo("fresh@example.com").empty());
  // The same body with the right type is accepted.
  BOOST_TEST(server.api().Post(kApi + "/auth/register", good).status == 201);
}

// IdParam accepted "01" as 1: an id has one spelling.
BOOST_AUTO_TEST_CASE(LeadingZeroIdsAreNotFound) {
  TempDir dir;
  TestServer server(dir.path());
  const std::string token = Join(server, "zed");
  HttpReply made = server.api().Post(kApi + "/collections", "{\"name\":\"Reading\",\"description\":\"about it\"}", token);
  BOOST_REQUIRE_EQUAL(made.status, 201);
  const uint64_t id = IdOf(made.json());
  const std::string text = std::to_string(id);
  BOOST_TEST(server.api().Get(kApi + "/collections/" + text, token).status == 200);
  for (const std::string& bad : {"0" + text, "00" + text, std::string("0")}) {
    HttpReply r = server.api().Get(kApi + "/collections/" + bad, token);
    BOOST_TEST(r.status == 404, bad << ": " << r.body);
    BOOST_TEST(r.error_code() == "not_found");
  }
}

// Content-Type was matched by prefix and case-sensitively; a NUL byte after
// the JSON document was accepted.
BOOST_AUTO_TEST_CASE(ContentTypeIsParsedAsAMediaTypeAndNulBytesAreMalformed) {
  TempDir dir;
  TestServer server(dir.path());
  const std::string token = Join(server, "yan");
  const std::string body = "{\"name\":\"Yan\"}";
  auto patch = [&](const std::string& type, const std::string& b) {
    return server.api().Send("PATCH", kApi + "/me", b, type, {{"Authorization", "Bearer " + token}});
  };
  for (const char* type : {"application/json", "Application/JSON", "application/json; charset=utf-8",
                           "application/json;charset=UTF-8", " application/json "}) {
    HttpReply r = patch(type, body);
    BOOST_TEST(r.status == 200, type << ": " << r.body);
  }
  const std::string digest = StoreDigest(server.store());
  for (const char* type : {"application/jsonfoo", "application/json-seq", "text/json",
                           "application/x-json", "application"}) {
    HttpReply r = patch(type, body);
    BOOST_TEST(r.status == 415, type << ": " << r.body);
    BOOST_TEST(r.error_code() == "unsupported_media_type");
  }
  for (const std::string& nul : {body + std::string(1, '\0'), std::string("{\"name\":\"a\0b\"}", 14)}) {
    HttpReply r = patch("application/json", nul);
    BOOST_TEST(r.status == 400, r.body);
    BOOST_TEST(r.error_code() == "malformed_json");
  }
  BOOST_TEST(StoreDigest(server.store()) == digest);
}
