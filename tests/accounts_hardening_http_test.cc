// Proves the account protections that sit around the flows, over real HTTP
// against an in-process server: bounded password hashing (503 busy while
// health checks still answer), the CSRF origin rule, client addresses behind
// a trusted proxy and the fail2ban log line, last_seen without a write per
// request, refusal of writes after a commit failure, and the `offbrand user
// confirm` command.
#define BOOST_TEST_MODULE accounts_hardening_http_test
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "account_test_helpers.h"
#include "accounts.h"
#include "http_server.h"
#include "throttle.h"

using namespace offbrand;
using namespace offbrand::test;

namespace {

const std::string kApi = "/api/v1";

std::string CookieOf(const std::string& token) {
  return std::string(kSessionCookie) + "=" + token;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

// 120 concurrent registrations used to queue without limit on the hasher,
// holding every HTTP worker: /healthz stalled for seconds.
BOOST_AUTO_TEST_CASE(PasswordHashWaitersAreBoundedAndOverflowGets503Busy) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) {
    c.http_threads = 32;
    c.password_hashes_max = 1;  // 4 waiters
  });
  constexpr int kClients = 40;
  std::vector<HttpReply> replies(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      const std::string name = "burst" + std::to_string(i);
      replies[i] = server.api().Post(kApi + "/auth/register",
                                     RegisterJson(name, EmailOf(name), PasswordOf(name)));
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(server.api().Get("/healthz").status == 200);
  BOOST_TEST(Seconds(start) < 1.0);
  for (auto& t : threads) t.join();

  int created = 0, busy = 0;
  for (const HttpReply& r : replies) {
    if (r.status == 201) {
      ++created;
    } else {
      BOOST_TEST(r.status == 503, r.body);
      BOOST_TEST(r.error_code() == "busy");
      BOOST_TEST(r.header("Retry-After") == std::to_string(kBusyRetryAfterS));
      ++busy;
    }
  }
  BOOST_TEST(created >= 1);
  BOOST_TEST(busy >= 1);
  BOOST_TEST(server.app().services().hasher->peak_running() == 1);
  BOOST_TEST(server.app().services().hasher->busy_refusals() == static_cast<uint64_t>(busy));
}

BOOST_AUTO_TEST_CASE(PasswordHasherRefusesWaitersOverTheBoundAndAfterTheWait) {
  PasswordHasher hasher(/*concurrent_max=*/2, /*waiters_max=*/3, /*wait_ms=*/10'000);
  constexpr int kCallers = 12;
  std::atomic<int> ok{0}, busy{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&] {
      Result<std::string> h = hasher.Hash("some password");
      (h.ok() ? ok : busy)++;
      if (!h.ok()) BOOST_TEST(h.status().error_code() == "busy");
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(hasher.peak_running() <= 2);
  BOOST_TEST(ok.load() >= 2);
  BOOST_TEST(ok.load() + busy.load() == kCallers);
  BOOST_TEST(busy.load() >= 1);  // 12 at once cannot all fit 2 running + 3 waiting

  // A waiter gives up after wait_ms.
  PasswordHasher slow(/*concurrent_max=*/1, /*waiters_max=*/8, /*wait_ms=*/1);
  std::atomic<int> slow_busy{0};
  std::vector<std::thread> more;
  for (int i = 0; i < 4; ++i) {
    more.emplace_back([&] {
      if (!slow.Verify(DummyPasswordHash(), "x").ok()) slow_busy++;
    });
  }
  for (auto& t : more) t.join();
  BOOST_TEST(slow_busy.load() >= 1);
  BOOST_TEST(slow.peak_running() == 1);
}

// The origin check was an exact string compare with the public URL.
BOOST_AUTO_TEST_CASE(CsrfOriginCheckComparesSchemeHostAndPort) {
  TempDir dir;
  TestServer server(dir.path());  // public URL http://127.0.0.1
  const std::string token = Join(server, "olga");
  // A bodyless cookie write that passes authentication answers 409
  // already_confirmed; a refused origin answers 403 csrf_rejected.
  auto resend_from = [&](const std::string& origin) {
    return server.api().Send("POST", kApi + "/auth/confirm/resend", "", "",
                             {{"Cookie", CookieOf(token)}, {"Origin", origin}});
  };
  for (const char* same : {"http://127.0.0.1", "http://127.0.0.1:80", "HTTP://127.0.0.1",
                           "http://127.0.0.1/"}) {
    HttpReply r = resend_from(same);
    BOOST_TEST(r.error_code() == "already_confirmed", same << ": " << r.body);
  }
  for (const char* other : {"http://localhost", "https://127.0.0.1", "http://127.0.0.1:8080",
                            "http://127.0.0.1.evil.example", "null", "http://evil@127.0.0.1"}) {
    HttpReply r = resend_from(other);
    BOOST_TEST(r.status == 403, other);
    BOOST_TEST(r.error_code() == "csrf_rejected", other << ": " << r.body);
  }
}

BOOST_AUTO_TEST_CASE(CsrfOriginCheckNormalizesTheHttpsDefaultPort) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) { c.public_url = "https://Links.Example.org"; });
  const std::string token = Join(server, "pete");
  for (const char* same : {"https://links.example.org", "https://links.example.org:443"}) {
    HttpReply r = server.api().Send("POST", kApi + "/auth/confirm/resend", "", "",
                                    {{"Cookie", CookieOf(token)}, {"Origin", same}});
    BOOST_TEST(r.error_code() == "already_confirmed", same << ": " << r.body);
  }
  HttpReply r = server.api().Send("POST", kApi + "/auth/confirm/resend", "", "",
                                  {{"Cookie", CookieOf(token)},
                                   {"Origin", "http://links.example.org"}});
  BOOST_TEST(r.error_code() == "csrf_rejected");
}

// Behind nginx every client was 127.0.0.1: one attacker locked everyone out.
BOOST_AUTO_TEST_CASE(ThrottlingUsesTheForwardedClientBehindATrustedProxy) {
  TempDir dir;
  LogCapture log;
  TestServer server(dir.path(), [](Config& c) { c.trusted_proxies = {"127.0.0.1"}; });
  Join(server, "rita");
  TestApi api = server.api();
  auto login_from = [&](const std::string& forwarded, const std::string& email,
                        const std::string& password) {
    return api.Send("POST", kApi + "/auth/login", LoginJson(email, password), "application/json",
                    {{"X-Forwarded-For", forwarded}});
  };
  for (int i = 0; i < Throttle::Options().failures_max; ++i) {
    // The client-supplied first hop is ignored; the proxy's (last) hop counts.
    HttpReply r = login_from("10.9.9." + std::to_string(i) + ", 203.0.113.7",
                             "stranger" + std::to_string(i) + "@example.com", "bad password");
    BOOST_TEST(r.status == 401);
  }
  BOOST_TEST(login_from("203.0.113.7", EmailOf("rita"), PasswordOf("rita")).status == 429);
  BOOST_TEST(login_from("198.51.100.2", EmailOf("rita"), PasswordOf("rita")).status == 200);

  // The fail2ban line names the forwarded client, in a fixed format.
  const std::regex line(R"(^<4>auth: login failed for (\S+) from (\S+)$)");
  std::istringstream lines(log.Text());
  std::string l;
  int matched = 0;
  while (std::getline(lines, l)) {
    std::smatch m;
    if (std::regex_match(l, m, line)) {
      BOOST_TEST(m[2].str() == "203.0.113.7");
      BOOST_TEST(m[1].str().find("@example.com") != std::string::npos);
      ++matched;
    }
  }
  BOOST_TEST(matched == Throttle::Options().failures_max);
}

BOOST_AUTO_TEST_CASE(ForwardedForIsIgnoredFromAnUntrustedPeer) {
  TempDir dir;
  TestServer server(dir.path());  // no trusted proxies
  Join(server, "sam");
  TestApi api = server.api();
  for (int i = 0; i < Throttle::Options().failures_max; ++i) {
    HttpReply r = api.Send("POST", kApi + "/auth/login",
                           LoginJson("nobody" + std::to_string(i) + "@example.com", "bad password"),
                           "application/json", {{"X-Forwarded-For", "10.0.0." + std::to_string(i)}});
    BOOST_TEST(r.status == 401);
  }
  // Every attempt counted against the real peer, 127.0.0.1.
  HttpReply r = api.Send("POST", kApi + "/auth/login", LoginJson(EmailOf("sam"), PasswordOf("sam")),
                         "application/json", {{"X-Forwarded-For", "10.0.0.200"}});
  BOOST_TEST(r.status == 429);
}

BOOST_AUTO_TEST_CASE(LastSeenCausesNoWritePerRequestYetIsFlushed) {
  TempDir dir;
  const auto started = std::chrono::steady_clock::now();
  TestServer server(dir.path());
  const std::string token = Join(server, "tess");
  Store& store = server.store();
  // Housekeeping's first tick (1 s after start) flushes and purges once;
  // after it nothing writes in the background for a minute.
  std::this_thread::sleep_until(started + std::chrono::milliseconds(1'500));
  const uint64_t writes = store.writes();
  for (int i = 0; i < 20; ++i) BOOST_REQUIRE_EQUAL(server.api().Get(kApi + "/me", token).status, 200);
  BOOST_TEST(store.writes() == writes);
  // The value is served from memory meanwhile.
  BOOST_TEST(!server.api().Get(kApi + "/me", token).json().at("last_seen").is_null());

  BOOST_REQUIRE(server.app().services().last_seen->Flush(store).ok());
  BOOST_TEST(store.writes() == writes + 1);
  auto read = store.BeginRead();
  BOOST_REQUIRE(read.ok());
  Result<User> u = FindUserByName(**read, "tess");
  BOOST_REQUIRE(u.ok());
  BOOST_TEST(u->last_seen_us > 0);
}

BOOST_AUTO_TEST_CASE(ACommitFailureRefusesWritesWith503AndFailsReadyz) {
  TempDir dir;
  auto fail = std::make_shared<std::atomic<bool>>(false);
  TestServer server(dir.path(), [fail](Config& c) {
    c.commit_fault_for_test = [fail] { return fail->load() ? EIO : 0; };
  });
  const std::string token = Join(server, "uma");
  BOOST_REQUIRE_EQUAL(server.api().Get("/readyz").status, 200);
  const std::string digest = StoreDigest(server.store());
  fail->store(true);
  HttpReply r = server.api().Patch(kApi + "/me", "{\"name\":\"Uma\"}", token);
  BOOST_TEST(r.status == 503, r.body);
  BOOST_TEST(r.error_code() == "storage_failed");
  fail->store(false);
  // Refused until restart, also once the disk "recovers".
  r = server.api().Patch(kApi + "/me", "{\"name\":\"Uma\"}", token);
  BOOST_TEST(r.status == 503);
  BOOST_TEST(r.error_code() == "storage_failed");
  BOOST_TEST(server.api().Get("/readyz").status == 503);
  BOOST_TEST(server.api().Get(kApi + "/me", token).status == 200);  // reads still work
  BOOST_TEST(StoreDigest(server.store()) == digest);
}

BOOST_AUTO_TEST_CASE(UserConfirmCommandConfirmsOnceAndIsIdempotent) {
  TempDir dir;
  TestServer server(dir.path());
  (void)RegisterForToken(server, "vera");  // unconfirmed
  BOOST_TEST(server.api().Get(kApi + "/users/vera").status == 404);
  const std::map<std::string, std::string> env = {{"OFFBRAND_DATA_DIR", dir.path()}};
  std::string out;
  BOOST_REQUIRE_EQUAL(RunCli({"user", "confirm", "vera"}, env, &out), 0);
  BOOST_TEST(out.find("confirmed") != std::string::npos, out);
  BOOST_TEST(server.api().Get(kApi + "/users/vera").status == 200);
  const size_t adds = RecordsOf(server.store(), OutboxOp::kUserAdd).size();
  BOOST_TEST(adds == 1u);

  BOOST_REQUIRE_EQUAL(RunCli({"user", "confirm", "vera"}, env, &out), 0);
  BOOST_TEST(out.find("already confirmed") != std::string::npos, out);
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserAdd).size() == adds);
  // Logging in now works past the unconfirmed gate.
  BOOST_TEST(server.api().Get(kApi + "/me", Login(server, "vera")).status == 200);

  BOOST_TEST(RunCli({"user", "confirm", "nobody"}, env, &out) != 0);
}

BOOST_AUTO_TEST_CASE(TrustedProxiesAreParsedAsIpAddresses) {
  setenv("OFFBRAND_TRUSTED_PROXIES", " 10.0.0.1, ::ffff:127.0.0.1 ,::1,", 1);
  Result<Config> c = LoadConfig("");
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  BOOST_TEST((c->trusted_proxies == std::vector<std::string>{"10.0.0.1", "127.0.0.1", "::1"}));
  setenv("OFFBRAND_TRUSTED_PROXIES", "10.0.0.1,proxy.local", 1);
  c = LoadConfig("");
  BOOST_TEST(!c.ok());
  BOOST_TEST(c.status().message().find("proxy.local") != std::string::npos);
  unsetenv("OFFBRAND_TRUSTED_PROXIES");
  BOOST_TEST(LoadConfig("")->trusted_proxies.empty());
}
