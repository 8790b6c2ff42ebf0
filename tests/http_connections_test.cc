// Proves, with raw sockets against a real server on loopback, that slow and
// idle clients cost no worker (health checks stay fast while more of them
// than there are workers trickle bytes or idle, and they are closed at their
// deadline), that request framing is settled before a body is read (no
// Content-Length means no body; oversized, malformed and chunked framings
// are refused at once), that kept-alive connections end only in ways a
// client can tell apart from a lost reply, and that replies httplib gives
// before routing are logged and counted like routed ones.
#define BOOST_TEST_MODULE http_connections_test
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "account_test_helpers.h"
#include "http_connections.h"
#include "http_server.h"
#include "metrics.h"

using namespace offbrand;
using namespace offbrand::test;

namespace {

constexpr int kWorkers = 4;  // fewer than the misbehaving clients below

void Small(Config& c) {
  c.http_threads = kWorkers;
  c.http_request_deadline_ms = 1'500;
  c.http_idle_timeout_ms = 1'000;
}

double HealthzSeconds(TestServer& server) {
  const auto start = std::chrono::steady_clock::now();
  HttpReply r = server.api().Get("/healthz");
  BOOST_TEST(r.status == 200, r.body);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + extra_headers + "\r\n";
}

}  // namespace

BOOST_AUTO_TEST_CASE(SlowHeaderClientsDoNotStopHealthzAndAreClosedAtTheDeadline) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  constexpr int kSlow = 5 * kWorkers;
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(std::make_unique<RawConn>(server.port()));
  const std::string request = Get("/healthz");
  // Each sends one byte every 200 ms: never a whole request in 1.5 s.
  for (int round = 0; round < 4; ++round) {
    for (auto& c : slow) c->Send(request.substr(round, 1));
    BOOST_TEST(HealthzSeconds(server) < 1.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // Past the deadline every slow client is closed, with a 408.
  int closed = 0, timeouts = 0;
  for (auto& c : slow) {
    std::string got;
    int rc = c->WaitClosed(3'000, &got);
    if (rc != ETIMEDOUT) ++closed;
    if (RawStatus(got) == 408) ++timeouts;
    else BOOST_TEST_MESSAGE("rc " << rc << " got " << got);
  }
  BOOST_TEST(closed == kSlow);
  BOOST_TEST(timeouts == kSlow);
  BOOST_TEST(server.app().services().metrics->Render("").find(
                 "offbrand_http_requests_total{route=\"rejected\",status=\"408\"} " +
                 std::to_string(kSlow)) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(SlowBodyClientsDoNotHoldWorkers) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < 3 * kWorkers; ++i) {
    slow.push_back(std::make_unique<RawConn>(server.port()));
    slow.back()->Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: 100\r\n\r\n{\"em");
  }
  BOOST_TEST(HealthzSeconds(server) < 1.0);
  for (auto& c : slow) BOOST_TEST(c->WaitClosed(4'000) != ETIMEDOUT);
}

BOOST_AUTO_TEST_CASE(IdleKeepAliveConnectionsDoNotHoldWorkersAndCloseCleanly) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  std::vector<std::unique_ptr<RawConn>> idle;
  for (int i = 0; i < 3 * kWorkers; ++i) {
    idle.push_back(std::make_unique<RawConn>(server.port()));
    idle.back()->Send(Get("/healthz"));
    std::string reply = idle.back()->ReadReply(2'000);
    BOOST_REQUIRE_EQUAL(RawStatus(reply), 200);
    // The idle timeout is advertised.
    BOOST_TEST(RawHeader(reply, "Keep-Alive").find("timeout=1") != std::string::npos, reply);
  }
  // A connection that never sends anything is idle too.
  for (int i = 0; i < kWorkers; ++i) idle.push_back(std::make_unique<RawConn>(server.port()));
  BOOST_TEST(HealthzSeconds(server) < 1.0);
  // After the idle timeout each is closed with a FIN (a clean end of
  // stream a client can tell from a lost reply), not a reset.
  for (auto& c : idle) BOOST_TEST(c->WaitClosed(3'000) == 0);
}

BOOST_AUTO_TEST_CASE(BodylessPutWithoutContentLengthIsAnsweredAtOnce) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  const std::string alice = Join(server, "alice");
  Join(server, "bob");
  RawConn c(server.port());
  const auto start = std::chrono::steady_clock::now();
  c.Send("PUT /api/v1/users/bob/follow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + alice +
         "\r\n\r\n");
  std::string reply = c.ReadReply(5'000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BOOST_TEST(RawStatus(reply) / 100 == 2, reply);
  BOOST_TEST(seconds < 1.0);
  // The connection stays usable for the next request.
  c.Send(Get("/api/v1/users/bob", "Authorization: Bearer " + alice + "\r\n"));
  reply = c.ReadReply(5'000);
  BOOST_REQUIRE_EQUAL(RawStatus(reply), 200);
  BOOST_TEST(reply.find("\"following\":true") != std::string::npos, reply);
}

BOOST_AUTO_TEST_CASE(OversizedMalformedAndChunkedFramingsAreRefusedWithoutReadingTheBody) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  struct Case {
    const char* headers;
    int status;
    const char* code;
  };
  const Case cases[] = {
      {"Content-Length: 1000000\r\n", 413, "too_large"},
      {"Content-Length: 12abc\r\n", 400, "bad_request"},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", 400, "bad_request"},
      {"Transfer-Encoding: chunked\r\n", 411, "length_required"},
  };
  for (const Case& k : cases) {
    RawConn c(server.port());
    const auto start = std::chrono::steady_clock::now();
    c.Send(std::string("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\n") +
           k.headers + "\r\n");
    std::string reply = c.ReadReply(5'000);
    BOOST_TEST(RawStatus(reply) == k.status, k.headers << reply);
    BOOST_TEST(reply.find(k.code) != std::string::npos, reply);
    BOOST_TEST(RawHeader(reply, "Connection") == "close", reply);
    BOOST_TEST(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
               1.0);
    BOOST_TEST(c.WaitClosed(3'000) == 0);
  }
}

BOOST_AUTO_TEST_CASE(HeadersOverTheLimitGet431) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  RawConn c(server.port());
  c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(40 * 1024, 'a'));
  std::string got;
  BOOST_TEST(c.WaitClosed(3'000, &got) != ETIMEDOUT);
  BOOST_TEST(RawStatus(got) == 431, got.substr(0, 200));
  BOOST_TEST(HealthzSeconds(server) < 1.0);
}

BOOST_AUTO_TEST_CASE(PipelinedRequestsAreAnsweredInOrder) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  RawConn c(server.port());
  c.Send(Get("/healthz") + Get("/nope") + Get("/readyz"));
  BOOST_TEST(RawStatus(c.ReadReply(3'000)) == 200);
  BOOST_TEST(RawStatus(c.ReadReply(3'000)) == 404);
  BOOST_TEST(RawStatus(c.ReadReply(3'000)) == 200);
}

// The bench saw rare "no reply" errors on kept-alive connections: the last
// reply a connection gets must say Connection: close, and the close after
// it must be a FIN, so a client never sends into a connection we dropped.
BOOST_AUTO_TEST_CASE(TheLastReplyOfAKeptAliveConnectionSaysConnectionClose) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) {
    Small(c);
    c.http_requests_per_connection_max = 3;
  });
  RawConn c(server.port());
  for (int i = 1; i <= 3; ++i) {
    c.Send(Get("/healthz"));
    std::string reply = c.ReadReply(3'000);
    BOOST_REQUIRE_EQUAL(RawStatus(reply), 200);
    BOOST_TEST((RawHeader(reply, "Connection") == "close") == (i == 3), i << ": " << reply);
  }
  BOOST_TEST(c.WaitClosed(3'000) == 0);
}

BOOST_AUTO_TEST_CASE(ConnectionsOverThePerAddressCapAreRefusedWith503) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) {
    Small(c);
    c.http_connections_per_address_max = 3;
  });
  std::vector<std::unique_ptr<RawConn>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<RawConn>(server.port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // accepted
  RawConn over(server.port());
  std::string got;
  BOOST_TEST(over.WaitClosed(2'000, &got) != ETIMEDOUT);
  BOOST_TEST(RawStatus(got) == 503, got);
  held.clear();  // closing them frees the address's slots
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  BOOST_TEST(HealthzSeconds(server) < 1.0);
}

BOOST_AUTO_TEST_CASE(RepliesGivenBeforeRoutingAreLoggedAndCounted) {
  TempDir dir;
  LogCapture log;
  TestServer server(dir.path(), [](Config& c) {
    Small(c);
    c.log_level = "info";
  });
  BOOST_TEST(server.api().Get("/nope?token=secret-in-query").status == 404);
  {
    RawConn c(server.port());
    c.Send("GARBAGE\r\n\r\n");
    BOOST_TEST(RawStatus(c.ReadReply(3'000)) == 400);
  }
  {
    RawConn c(server.port());
    c.Send("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n");
    BOOST_TEST(RawStatus(c.ReadReply(3'000)) == 413);
  }
  BOOST_TEST(server.api().Get("/healthz").status == 200);
  const std::string metrics = server.app().services().metrics->Render("");
  BOOST_TEST(metrics.find("offbrand_http_requests_total{route=\"unmatched\",status=\"404\"} 1") !=
                 std::string::npos,
             metrics);
  BOOST_TEST(metrics.find("offbrand_http_requests_total{route=\"rejected\",status=\"400\"} 1") !=
             std::string::npos);
  BOOST_TEST(metrics.find("offbrand_http_requests_total{route=\"rejected\",status=\"413\"} 1") !=
             std::string::npos);
  // The logger runs once a reply is sent: give the last one a moment.
  for (int i = 0; i < 100 && !log.Contains("http: GET /healthz 200 "); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string text = log.Text();
  BOOST_TEST(text.find("http: GET /nope 404 ") != std::string::npos, text);
  BOOST_TEST(text.find("secret-in-query") == std::string::npos);
  BOOST_TEST(text.find(" 400 ") != std::string::npos);
  BOOST_TEST(text.find("http: POST /api/v1/auth/login 413 ") != std::string::npos, text);
  BOOST_TEST(text.find("http: GET /healthz 200 ") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(RequestFramingWaitsForTheWholeBody) {
  size_t need = 0;
  const size_t h = 1024, b = 100;
  BOOST_TEST((RequestFraming("GET / HTTP/1.1\r\nHost: x\r\n", h, b, &need) == Framing::kIncomplete));
  BOOST_TEST((RequestFraming("GET / HTTP/1.1\r\n\r\n", h, b, &need) == Framing::kComplete));
  const std::string post = "POST / HTTP/1.1\r\ncontent-LENGTH:  5 \r\n\r\n";
  BOOST_TEST((RequestFraming(post + "abc", h, b, &need) == Framing::kIncomplete));
  BOOST_TEST(need == post.size() + 5);
  BOOST_TEST((RequestFraming(post + "abcde", h, b, &need) == Framing::kComplete));
  // Refused by the worker without reading: over the limit, malformed, chunked.
  BOOST_TEST((RequestFraming("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", h, b, &need) ==
              Framing::kComplete));
  BOOST_TEST((RequestFraming("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", h, b, &need) ==
              Framing::kComplete));
  BOOST_TEST((RequestFraming("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", h, b,
                             &need) == Framing::kComplete));
  BOOST_TEST((RequestFraming(std::string(h + 1, 'a'), h, b, &need) == Framing::kTooLarge));
}

// Brotli at cpp-httplib's quality 11 costs milliseconds of CPU per reply:
// a browser offering br and gzip gets gzip, br alone gets no compression.
BOOST_AUTO_TEST_CASE(BrowsersOfferingBrotliGetGzipOrNothing) {
  TempDir dir;
  TestServer server(dir.path(), Small);
  auto encoding = [&](const std::string& accept) {
    RawConn conn(server.port());
    conn.Send(Get("/metrics", "Accept-Encoding: " + accept + "\r\n"));
    std::string reply = conn.ReadReply(2'000);
    BOOST_REQUIRE_EQUAL(RawStatus(reply), 200);
    return RawHeader(reply, "Content-Encoding");
  };
  BOOST_CHECK_EQUAL(encoding("gzip, deflate, br"), "gzip");
  BOOST_CHECK_EQUAL(encoding("br"), "");
  BOOST_CHECK_EQUAL(encoding("gzip"), "gzip");
  BOOST_CHECK_EQUAL(encoding("identity"), "");
}
