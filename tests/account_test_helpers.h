// Helpers for the account HTTP tests (auth, users, validation): signing up
// through the real endpoints, waiting for captured mail, and a digest of the
// whole LMDB environment to prove that a refused request changed nothing.
#ifndef OFFBRAND_TESTS_ACCOUNT_TEST_HELPERS_H_
#define OFFBRAND_TESTS_ACCOUNT_TEST_HELPERS_H_

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <set>
#include <vector>
#include <string>
#include <thread>

#include "crypto.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "test_support.h"
#include "users_db.h"

namespace offbrand::test {

inline std::string PasswordOf(const std::string& username) { return "password-" + username; }
inline std::string EmailOf(const std::string& username) { return username + "@example.com"; }

// Waits (up to 10 s) for the newest mail to `email` to differ from
// `previous`; returns its body, or "" on timeout. (LastMailTo itself waits
// while there is no mail at all.)
inline std::string WaitForMail(const TestServer& server, const std::string& email,
                               const std::string& previous = "") {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string body = server.LastMailTo(email);
    if (!body.empty() && body != previous) return body;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "";
}

// The token of the first "token=" link in a mail body.
inline std::string TokenIn(const std::string& body) {
  size_t at = body.find("token=");
  if (at == std::string::npos) return "";
  at += 6;
  size_t end = body.find_first_of(" \t\r\n&", at);
  return body.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

inline std::string RegisterJson(const std::string& username, const std::string& email,
                                const std::string& password) {
  return "{\"username\":\"" + username + "\",\"email\":\"" + email + "\",\"password\":\"" +
         password + "\"}";
}

inline std::string LoginJson(const std::string& email, const std::string& password,
                             bool remember = false) {
  return "{\"email\":\"" + email + "\",\"password\":\"" + password +
         "\",\"remember\":" + (remember ? "true" : "false") + "}";
}

// Registers `username` (email EmailOf, password PasswordOf; the address must
// not have had mail yet) and returns the confirmation token from the mail.
inline std::string RegisterForToken(TestServer& server, const std::string& username) {
  const std::string email = EmailOf(username);
  HttpReply r = server.api().Post("/api/v1/auth/register",
                                  RegisterJson(username, email, PasswordOf(username)));
  BOOST_REQUIRE_EQUAL(r.status, 201);
  // A new address: the first mail to it is the confirmation.
  std::string mail = WaitForMail(server, email);
  BOOST_REQUIRE(!mail.empty());
  return TokenIn(mail);
}

inline std::string Login(TestServer& server, const std::string& username) {
  HttpReply r = server.api().Post("/api/v1/auth/login",
                                  LoginJson(EmailOf(username), PasswordOf(username)));
  BOOST_REQUIRE_EQUAL(r.status, 200);
  return r.json().at("token").str();
}

// Register, confirm through the mailed link, log in: the API token.
inline std::string Join(TestServer& server, const std::string& username) {
  std::string token = RegisterForToken(server, username);
  HttpReply c = server.api().Post("/api/v1/auth/confirm", "{\"token\":\"" + token + "\"}");
  BOOST_REQUIRE_EQUAL(c.status, 200);
  return Login(server, username);
}

// Registers without confirming and logs in.
inline std::string JoinUnconfirmed(TestServer& server, const std::string& username) {
  (void)RegisterForToken(server, username);
  return Login(server, username);
}

// A confirmed Administrator: joins, then is promoted directly in the store
// (the only way without a configured admin email).
inline std::string JoinAdmin(TestServer& server, const std::string& username) {
  std::string token = Join(server, username);
  Status s = server.store().Write([&username](WriteTxn& txn) -> Status {
    Result<User> u = FindUserByName(txn, username);
    if (!u.ok()) return u.status();
    User before = *u;
    u->role = Role::kAdministrator;
    return PutUser(txn, *u, &before);
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return token;
}

// SHA-256 over every key and value of every named database, except the
// users' last_seen (written by the background flusher at any time).
inline std::string StoreDigest(Store& store) {
  auto read = store.BeginRead();
  BOOST_REQUIRE(read.ok());
  std::string all;
  for (int d = 0; d < static_cast<int>(Db::kCount); ++d) {
    all += "#" + std::to_string(d);
    Cursor c = (*read)->OpenCursor(static_cast<Db>(d));
    for (bool ok = c.First(); ok; ok = c.Next()) {
      std::string value(c.value());
      User u;
      if (static_cast<Db>(d) == Db::kUsers && DecodeUser(value, &u)) {
        u.last_seen_us = 0;  // flushed in the background by design (LastSeen)
        value = EncodeUser(u);
      }
      all += std::to_string(c.key().size()) + ":" + std::string(c.key()) + "=" +
             std::to_string(value.size()) + ":" + value + ";";
    }
  }
  return Sha256Hex(all);
}

// A user object's id, whether the API writes it as a number or a string.
inline uint64_t IdOf(const Json& user) {
  Json id = user.at("id");
  if (id.raw().is_string()) return std::stoull(id.str());
  return static_cast<uint64_t>(id.num());
}

inline std::set<std::string> Keys(const Json& j) {
  std::set<std::string> keys;
  simdjson::dom::object obj;
  BOOST_REQUIRE(!j.raw().get_object().get(obj));
  for (auto field : obj) keys.insert(std::string(field.key));
  return keys;
}

// Gravatar URL without the hash and size, to compare shapes.
inline std::string GravatarShape(const std::string& url) {
  size_t hash = url.find("/avatar/");
  size_t query = url.find('?');
  size_t rest = url.find("&d=");
  if (hash == std::string::npos || query == std::string::npos || rest == std::string::npos) {
    return "not a gravatar url: " + url;
  }
  return url.substr(0, hash + 8) + "<md5>?s=<n>" + url.substr(rest);
}

// Checks a Stream user record (add or update) field by field against the
// golden request of `operation`: the same keys at every level, our id,
// username and the size-40 gravatar of `email`.
inline void CheckUserRecord(const OutboxRecord& rec, OutboxOp op, const std::string& operation,
                            uint64_t id, const std::string& username, const std::string& email) {
  BOOST_TEST(static_cast<int>(rec.op) == static_cast<int>(op));
  BOOST_TEST(rec.foreign_id == std::to_string(id));
  BOOST_TEST(rec.entity == UserEntity(std::to_string(id)));
  BOOST_TEST(rec.feed_group.empty());
  BOOST_TEST(rec.time.empty());
  Json golden = GoldenRequest(operation).at("body");
  if (op == OutboxOp::kUserDelete) {
    BOOST_TEST(golden.is_null());
    BOOST_TEST(rec.body.empty());
    return;
  }
  Json body(rec.body);
  BOOST_TEST(Keys(body) == Keys(golden), "top-level keys of " << rec.body);
  BOOST_TEST(Keys(body.at("data")) == Keys(golden.at("data")), "data keys of " << rec.body);
  if (golden.has("id")) BOOST_TEST(body.at("id").str() == std::to_string(id));
  BOOST_TEST(body.at("data").at("username").str() == username);
  const std::string gravatar = body.at("data").at("gravatar").str();
  BOOST_TEST(gravatar == "https://secure.gravatar.com/avatar/" + Md5Hex(email) +
                             "?s=40&d=identicon&r=g");
  BOOST_TEST(GravatarShape(gravatar) == GravatarShape(golden.at("data").at("gravatar").str()));
}

inline std::vector<OutboxRecord> RecordsOf(Store& store, OutboxOp op) {
  std::vector<OutboxRecord> out;
  for (OutboxRecord& r : OutboxRecords(store)) {
    if (r.op == op) out.push_back(std::move(r));
  }
  return out;
}

inline uint64_t CountRows(Store& store, Db db) {
  auto read = store.BeginRead();
  BOOST_REQUIRE(read.ok());
  return (*read)->Count(db);
}

}  // namespace offbrand::test

#endif  // OFFBRAND_TESTS_ACCOUNT_TEST_HELPERS_H_
