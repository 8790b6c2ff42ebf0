// Proves every sign-in flow of SPEC section 3 (register, confirm, resend,
// login, logout, password change, reset, email change) over real HTTP against
// an in-process server, including expired, forged and reused tokens, the
// Stream records a confirmation or email change queues, and login throttling.
#define BOOST_TEST_MODULE auth_http_test
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "account_test_helpers.h"
#include "mailer.h"
#include "offbrand/model.h"
#include "throttle.h"

using namespace offbrand;
using namespace offbrand::test;

namespace {

std::string TokenJson(const std::string& token) { return "{\"token\":\"" + token + "\"}"; }

const std::string kApi = "/api/v1";

// A minimal SMTP server on loopback that refuses the first `refuse_first`
// MAIL commands with 451 and records the DATA of accepted messages.
class FakeSmtp {
 public:
  explicit FakeSmtp(int refuse_first) : refuse_left_(refuse_first) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    BOOST_REQUIRE(listen(listen_fd_, 4) == 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeSmtp() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  int mail_commands() const { return mail_commands_.load(); }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) Serve(fd);
    }
  }
  static void Say(int fd, const std::string& line) {
    ssize_t ignored = send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    (void)ignored;
  }
  // Reads one CRLF-terminated line (without it); false on EOF or timeout.
  bool ReadLine(int fd, std::string* buf, std::string* line) {
    for (;;) {
      size_t eol = buf->find("\r\n");
      if (eol != std::string::npos) {
        *line = buf->substr(0, eol);
        buf->erase(0, eol + 2);
        return true;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return false;
      char chunk[4096];
      ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      buf->append(chunk, static_cast<size_t>(n));
    }
  }
  void Serve(int fd) {
    std::string buf, line;
    Say(fd, "220 fake ESMTP\r\n");
    while (ReadLine(fd, &buf, &line)) {
      std::string verb = line.substr(0, 4);
      for (char& c : verb) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
      if (verb == "EHLO" || verb == "HELO") {
        Say(fd, "250 fake\r\n");
      } else if (verb == "MAIL") {
        ++mail_commands_;
        if (refuse_left_ > 0) {
          --refuse_left_;
          Say(fd, "451 try again later\r\n");
        } else {
          Say(fd, "250 ok\r\n");
        }
      } else if (verb == "RCPT") {
        Say(fd, "250 ok\r\n");
      } else if (verb == "DATA") {
        Say(fd, "354 go ahead\r\n");
        std::string data;
        while (ReadLine(fd, &buf, &line) && line != ".") data += line + "\n";
        {
          std::lock_guard<std::mutex> lock(mu_);
          messages_.push_back(data);
        }
        Say(fd, "250 queued\r\n");
      } else if (verb == "QUIT") {
        Say(fd, "221 bye\r\n");
        break;
      } else {
        Say(fd, "250 ok\r\n");
      }
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int refuse_left_;
  std::atomic<bool> stop_{false};
  std::atomic<int> mail_commands_{0};
  std::mutex mu_;
  std::vector<std::string> messages_;
  std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(RegisterDoesNotLogInAndConfirmQueuesTheStreamUser) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();

  HttpReply reg = api.Post(kApi + "/auth/register",
                           RegisterJson("Ada", "Ada@Example.com", "correct horse"));
  BOOST_REQUIRE_EQUAL(reg.status, 201);
  Json user = reg.json().at("user");
  BOOST_TEST(user.at("username").str() == "Ada");
  BOOST_TEST(user.at("email").str() == "ada@example.com");
  BOOST_TEST(!user.at("confirmed").boolean());
  BOOST_TEST(user.at("role").str() == "User");
  BOOST_TEST(!reg.json().has("token"));
  BOOST_TEST(reg.header("Set-Cookie").empty());
  const uint64_t id = IdOf(user);
  // Nothing is queued for Stream before confirmation.
  BOOST_TEST(OutboxRecords(server.store()).empty());

  std::string mail = WaitForMail(server, "ada@example.com");
  BOOST_REQUIRE(!mail.empty());
  BOOST_TEST(mail.find("/confirm?token=") != std::string::npos);
  const std::string token = TokenIn(mail);

  // Logged in but unconfirmed: only the auth endpoints answer.
  HttpReply login = api.Post(kApi + "/auth/login", LoginJson("ada@example.com", "correct horse"));
  BOOST_REQUIRE_EQUAL(login.status, 200);
  const std::string api_token = login.json().at("token").str();
  HttpReply me = api.Get(kApi + "/me", api_token);
  BOOST_TEST(me.status == 403);
  BOOST_TEST(me.error_code() == "unconfirmed");

  HttpReply confirm = api.Post(kApi + "/auth/confirm", TokenJson(token));
  BOOST_REQUIRE_EQUAL(confirm.status, 200);
  BOOST_TEST(confirm.json().at("user").at("confirmed").boolean());

  me = api.Get(kApi + "/me", api_token);
  BOOST_REQUIRE_EQUAL(me.status, 200);
  BOOST_TEST(me.json().at("username").str() == "Ada");

  std::vector<OutboxRecord> adds = RecordsOf(server.store(), OutboxOp::kUserAdd);
  BOOST_REQUIRE_EQUAL(adds.size(), 1u);
  CheckUserRecord(adds[0], OutboxOp::kUserAdd, "user.getOrCreate", id, "Ada", "ada@example.com");
  // The self-follow (Notifications:<id> follows User:<id>) comes after the add.
  std::vector<OutboxRecord> follows = RecordsOf(server.store(), OutboxOp::kFollow);
  BOOST_REQUIRE_EQUAL(follows.size(), 1u);
  BOOST_TEST(follows[0].feed_id == std::to_string(id));
  BOOST_TEST(follows[0].seq > adds[0].seq);
}

BOOST_AUTO_TEST_CASE(ConfirmTokenIsSingleUse) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = RegisterForToken(server, "bob");
  BOOST_REQUIRE_EQUAL(server.api().Post(kApi + "/auth/confirm", TokenJson(token)).status, 200);
  const std::string digest = StoreDigest(server.store());

  HttpReply again = server.api().Post(kApi + "/auth/confirm", TokenJson(token));
  BOOST_TEST(again.status == 400);
  BOOST_TEST(again.error_code() == "invalid_token");
  BOOST_TEST(StoreDigest(server.store()) == digest);
  BOOST_TEST(RecordsOf(server.store(), OutboxOp::kUserAdd).size() == 1u);
}

BOOST_AUTO_TEST_CASE(ExpiredForgedAndWrongPurposeTokensAreRefused) {
  TempDir dir;
  TestServer server(dir.path());
  std::string good = RegisterForToken(server, "cleo");
  const std::string secret = server.app().config().secret_key;
  SignedToken t;
  BOOST_REQUIRE(VerifySignedToken(secret, good, "confirm", 0, &t).ok());

  SignedToken expired = t;
  expired.expires_ms = server.app().services().clock->NowMs() - 1;
  SignedToken other_purpose = t;
  other_purpose.purpose = "reset";
  std::string forged = good;
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  const std::string digest = StoreDigest(server.store());

  for (const std::string& bad :
       {MakeSignedToken(secret, expired), MakeSignedToken(secret, other_purpose),
        MakeSignedToken("another secret", t), forged, std::string("garbage"), std::string()}) {
    HttpReply r = server.api().Post(kApi + "/auth/confirm", TokenJson(bad));
    BOOST_TEST(r.status == 400, "token " << bad);
    BOOST_TEST(r.error_code() == "invalid_token");
  }
  BOOST_TEST(StoreDigest(server.store()) == digest);
  // The genuine token still works.
  BOOST_TEST(server.api().Post(kApi + "/auth/confirm", TokenJson(good)).status == 200);
}

BOOST_AUTO_TEST_CASE(ResendMailsANewWorkingLinkOnlyToUnconfirmedUsers) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  BOOST_TEST(api.Post(kApi + "/auth/confirm/resend", "{}").status == 401);

  std::string token = JoinUnconfirmed(server, "dora");
  std::string first = server.LastMailTo(EmailOf("dora"));
  HttpReply resend = api.Post(kApi + "/auth/confirm/resend", "{}", token);
  BOOST_REQUIRE_EQUAL(resend.status, 202);
  std::string second = WaitForMail(server, EmailOf("dora"), first);
  BOOST_REQUIRE(!second.empty());
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/confirm", TokenJson(TokenIn(second))).status, 200);

  HttpReply again = api.Post(kApi + "/auth/confirm/resend", "{}", token);
  BOOST_TEST(again.status == 409);
  BOOST_TEST(again.error_code() == "already_confirmed");
}

BOOST_AUTO_TEST_CASE(LogoutRevokesThatSessionOnly) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string a = Join(server, "eve");
  std::string b = Login(server, "eve");
  BOOST_REQUIRE_EQUAL(api.Get(kApi + "/me", a).status, 200);
  const uint64_t sessions = CountRows(server.store(), Db::kSessions);

  BOOST_TEST(api.Post(kApi + "/auth/logout", "{}", a).status == 204);
  BOOST_TEST(CountRows(server.store(), Db::kSessions) == sessions - 1);
  HttpReply after = api.Get(kApi + "/me", a);
  BOOST_TEST(after.status == 401);
  BOOST_TEST(api.Get(kApi + "/me", b).status == 200);
  BOOST_TEST(api.Post(kApi + "/auth/logout", "{}", a).status == 401);
}

BOOST_AUTO_TEST_CASE(WrongPasswordAndUnknownEmailGetTheSameAnswer) {
  TempDir dir;
  TestServer server(dir.path());
  Join(server, "fay");
  const std::string digest = StoreDigest(server.store());
  HttpReply wrong = server.api().Post(kApi + "/auth/login", LoginJson(EmailOf("fay"), "not-it-at-all"));
  HttpReply unknown = server.api().Post(kApi + "/auth/login", LoginJson("nobody@example.com", "whatever1"));
  BOOST_TEST(wrong.status == 401);
  BOOST_TEST(wrong.error_code() == "invalid_credentials");
  BOOST_TEST(unknown.status == wrong.status);
  BOOST_TEST(unknown.body == wrong.body);
  BOOST_TEST(StoreDigest(server.store()) == digest);
  // Email is case-insensitive at login.
  BOOST_TEST(server.api().Post(kApi + "/auth/login", LoginJson("FAY@example.COM", PasswordOf("fay"))).status == 200);
}

BOOST_AUTO_TEST_CASE(LoginWithoutRememberMeSetsASessionCookieAndRememberMeOneForThirtyDays) {
  TempDir dir;
  TestServer server(dir.path());
  Join(server, "gus");
  TestApi api = server.api();

  HttpReply plain = api.Post(kApi + "/auth/login", LoginJson(EmailOf("gus"), PasswordOf("gus"), false));
  HttpReply remembered = api.Post(kApi + "/auth/login", LoginJson(EmailOf("gus"), PasswordOf("gus"), true));
  BOOST_REQUIRE_EQUAL(plain.status, 200);
  BOOST_REQUIRE_EQUAL(remembered.status, 200);
  const std::string cookie = remembered.header("Set-Cookie");
  BOOST_TEST(cookie.find(std::string(kSessionCookie) + "=" +
                         remembered.json().at("token").str()) != std::string::npos);
  BOOST_TEST(cookie.find("HttpOnly") != std::string::npos);
  BOOST_TEST(cookie.find("SameSite=Lax") != std::string::npos);
  BOOST_TEST(cookie.find("Max-Age=2592000") != std::string::npos, cookie);
  // Without remember me: a browser-session cookie (no Max-Age, no Expires),
  // while the session itself still ends after a day on the server.
  const std::string session_cookie = plain.header("Set-Cookie");
  BOOST_TEST(session_cookie.find("Max-Age") == std::string::npos, session_cookie);
  BOOST_TEST(session_cookie.find("Expires") == std::string::npos, session_cookie);
  BOOST_TEST(session_cookie.find("HttpOnly") != std::string::npos);
  BOOST_TEST(session_cookie.find("SameSite=Lax") != std::string::npos);
  BOOST_TEST(session_cookie.find("Secure") == std::string::npos);  // http public URL
  {
    auto read = server.store().BeginRead();
    BOOST_REQUIRE(read.ok());
    std::string_view value;
    Session session;
    BOOST_REQUIRE((*read)->Get(Db::kSessions, Sha256Hex(plain.json().at("token").str()), &value).ok());
    BOOST_REQUIRE(DecodeSession(value, &session));
    BOOST_TEST(session.expires_ms - session.created_ms == 24 * 3600 * 1000ll);
  }

  // The cookie alone authenticates.
  HttpReply me = api.Send("GET", kApi + "/me", "", "",
                          {{"Cookie", std::string(kSessionCookie) + "=" +
                                          remembered.json().at("token").str()}});
  BOOST_TEST(me.status == 200);
  // And so does the Token scheme.
  HttpReply token_scheme = api.Send("GET", kApi + "/me", "", "",
                                    {{"Authorization", "Token " + plain.json().at("token").str()}});
  BOOST_TEST(token_scheme.status == 200);
}

BOOST_AUTO_TEST_CASE(SessionCookiesAreSecureWhenThePublicUrlIsHttps) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) { c.public_url = "https://links.example.org"; });
  Join(server, "sue");
  for (bool remember : {false, true}) {
    HttpReply r = server.api().Post(kApi + "/auth/login",
                                    LoginJson(EmailOf("sue"), PasswordOf("sue"), remember));
    BOOST_REQUIRE_EQUAL(r.status, 200);
    const std::string cookie = r.header("Set-Cookie");
    BOOST_TEST(cookie.find("; Secure") != std::string::npos, cookie);
    BOOST_TEST((cookie.find("Max-Age=2592000") != std::string::npos) == remember, cookie);
  }
}

BOOST_AUTO_TEST_CASE(PasswordChangeNeedsTheOldPasswordAndSignsOutOtherSessions) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string here = Join(server, "hal");
  std::string elsewhere = Login(server, "hal");
  const std::string digest = StoreDigest(server.store());

  HttpReply wrong = api.Post(kApi + "/auth/password",
                             "{\"old_password\":\"nope-nope\",\"password\":\"brand new pw\"}", here);
  BOOST_TEST(wrong.status == 422);
  BOOST_TEST(wrong.json().at("error").at("field").str() == "old_password");
  HttpReply too_short = api.Post(kApi + "/auth/password",
                                 "{\"old_password\":\"" + PasswordOf("hal") + "\",\"password\":\"short\"}",
                                 here);
  BOOST_TEST(too_short.status == 422);
  BOOST_TEST(StoreDigest(server.store()) == digest);

  HttpReply ok = api.Post(kApi + "/auth/password",
                          "{\"old_password\":\"" + PasswordOf("hal") + "\",\"password\":\"brand new pw\"}",
                          here);
  BOOST_REQUIRE_EQUAL(ok.status, 204);
  BOOST_TEST(api.Get(kApi + "/me", here).status == 200);
  BOOST_TEST(api.Get(kApi + "/me", elsewhere).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("hal"), PasswordOf("hal"))).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("hal"), "brand new pw")).status == 200);
}

BOOST_AUTO_TEST_CASE(ResetNeverRevealsWhetherTheEmailExistsAndIsSingleUse) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string old_session = Join(server, "ivy");
  const std::string before = server.LastMailTo(EmailOf("ivy"));

  HttpReply known = api.Post(kApi + "/auth/reset", "{\"email\":\"IVY@example.com\"}");
  HttpReply unknown = api.Post(kApi + "/auth/reset", "{\"email\":\"nobody@example.com\"}");
  BOOST_TEST(known.status == 202);
  BOOST_TEST(unknown.status == known.status);
  BOOST_TEST(unknown.body == known.body);
  std::string mail = WaitForMail(server, EmailOf("ivy"), before);
  BOOST_REQUIRE(!mail.empty());
  BOOST_TEST(mail.find("/reset?token=") != std::string::npos);
  BOOST_TEST(server.LastMailTo("nobody@example.com").empty());
  const std::string token = TokenIn(mail);

  HttpReply weak = api.Post(kApi + "/auth/reset/confirm",
                            "{\"token\":\"" + token + "\",\"password\":\"short\"}");
  BOOST_TEST(weak.status == 422);
  HttpReply reset = api.Post(kApi + "/auth/reset/confirm",
                             "{\"token\":\"" + token + "\",\"password\":\"a fresh secret\"}");
  BOOST_REQUIRE_EQUAL(reset.status, 204);
  BOOST_TEST(api.Get(kApi + "/me", old_session).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("ivy"), PasswordOf("ivy"))).status == 401);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("ivy"), "a fresh secret")).status == 200);

  const std::string digest = StoreDigest(server.store());
  HttpReply reuse = api.Post(kApi + "/auth/reset/confirm",
                             "{\"token\":\"" + token + "\",\"password\":\"another secret\"}");
  BOOST_TEST(reuse.status == 400);
  BOOST_TEST(reuse.error_code() == "invalid_token");
  BOOST_TEST(StoreDigest(server.store()) == digest);
}

BOOST_AUTO_TEST_CASE(EmailChangeIsConfirmedThroughTheNewAddressAndQueuesAUserUpdate) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  std::string token = Join(server, "jan");
  Json me = api.Get(kApi + "/me", token).json();
  const uint64_t id = IdOf(me);
  const std::string old_mail = server.LastMailTo(EmailOf("jan"));

  HttpReply wrong = api.Post(kApi + "/auth/email",
                             "{\"email\":\"jan.new@example.org\",\"password\":\"wrong-password\"}", token);
  BOOST_TEST(wrong.status == 422);
  BOOST_TEST(wrong.json().at("error").at("field").str() == "password");

  HttpReply ask = api.Post(kApi + "/auth/email",
                           "{\"email\":\"Jan.New@Example.org\",\"password\":\"" + PasswordOf("jan") + "\"}",
                           token);
  BOOST_REQUIRE_EQUAL(ask.status, 202);
  std::string mail = WaitForMail(server, "jan.new@example.org");
  BOOST_REQUIRE(!mail.empty());
  BOOST_TEST(server.LastMailTo(EmailOf("jan")) == old_mail);  // nothing to the old address
  // Not changed until confirmed.
  BOOST_TEST(api.Get(kApi + "/me", token).json().at("email").str() == EmailOf("jan"));

  const size_t updates_before = RecordsOf(server.store(), OutboxOp::kUserUpdate).size();
  HttpReply confirm = api.Post(kApi + "/auth/email/confirm", TokenJson(TokenIn(mail)));
  BOOST_REQUIRE_EQUAL(confirm.status, 200);
  BOOST_TEST(confirm.json().at("user").at("email").str() == "jan.new@example.org");
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson("jan.new@example.org", PasswordOf("jan"))).status == 200);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("jan"), PasswordOf("jan"))).status == 401);

  std::vector<OutboxRecord> updates = RecordsOf(server.store(), OutboxOp::kUserUpdate);
  BOOST_REQUIRE_EQUAL(updates.size(), updates_before + 1);
  CheckUserRecord(updates.back(), OutboxOp::kUserUpdate, "user.update", id, "jan",
                  "jan.new@example.org");

  // Single use.
  HttpReply again = api.Post(kApi + "/auth/email/confirm", TokenJson(TokenIn(mail)));
  BOOST_TEST(again.status == 400);
  BOOST_TEST(again.error_code() == "invalid_token");
}

BOOST_AUTO_TEST_CASE(EmailChangeToAnAddressInUseIsAConflict) {
  TempDir dir;
  TestServer server(dir.path());
  std::string token = Join(server, "kim");
  Join(server, "lea");
  HttpReply r = server.api().Post(kApi + "/auth/email",
                                  "{\"email\":\"LEA@example.com\",\"password\":\"" + PasswordOf("kim") + "\"}",
                                  token);
  BOOST_TEST(r.status == 409);
  BOOST_TEST(r.error_code() == "duplicate_email");
}

BOOST_AUTO_TEST_CASE(RepeatedFailuresForOneAccountAreRateLimitedWithRetryAfter) {
  TempDir dir;
  TestServer server(dir.path());
  Join(server, "max");
  TestApi api = server.api();
  for (int i = 0; i < Throttle::Options().failures_max; ++i) {
    BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("max"), "bad password")).status == 401);
  }
  // Locked: even the right password is refused until Retry-After passes.
  HttpReply locked = api.Post(kApi + "/auth/login", LoginJson(EmailOf("max"), PasswordOf("max")));
  BOOST_TEST(locked.status == 429);
  BOOST_TEST(locked.error_code() == "rate_limited");
  const std::string retry = locked.header("Retry-After");
  BOOST_REQUIRE(!retry.empty());
  BOOST_TEST(std::stoll(retry) > 0);
  BOOST_TEST(std::stoll(retry) <= Throttle::Options().lockout_s);
}

BOOST_AUTO_TEST_CASE(RepeatedFailuresFromOneAddressAreRateLimitedAcrossAccounts) {
  TempDir dir;
  TestServer server(dir.path());
  Join(server, "ned");
  TestApi api = server.api();
  for (int i = 0; i < Throttle::Options().failures_max; ++i) {
    std::string email = "stranger" + std::to_string(i) + "@example.com";
    BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(email, "bad password")).status == 401);
  }
  HttpReply locked = api.Post(kApi + "/auth/login", LoginJson(EmailOf("ned"), PasswordOf("ned")));
  BOOST_TEST(locked.status == 429);
  BOOST_TEST(!locked.header("Retry-After").empty());
}

BOOST_AUTO_TEST_CASE(ThrottleLocksOneKeyAndReleasesItAfterTheLockout) {
  Throttle::Options options;
  options.failures_max = 3;
  options.window_s = 60;
  options.lockout_s = 30;
  Throttle throttle(options);
  for (int i = 0; i < 2; ++i) throttle.RecordFailure("a", 1000);
  BOOST_TEST(throttle.RetryAfter("a", 1000) == 0);
  throttle.RecordFailure("a", 1001);
  BOOST_TEST(throttle.RetryAfter("a", 1001) == 30);
  BOOST_TEST(throttle.RetryAfter("b", 1001) == 0);
  BOOST_TEST(throttle.RetryAfter("a", 1031) == 0);
  // Failures outside the window do not add up.
  throttle.RecordFailure("c", 0);
  throttle.RecordFailure("c", 100);
  throttle.RecordFailure("c", 200);
  BOOST_TEST(throttle.RetryAfter("c", 200) == 0);
  throttle.RecordFailure("d", 0);
  throttle.RecordSuccess("d");
  throttle.RecordFailure("d", 1);
  throttle.RecordFailure("d", 2);
  BOOST_TEST(throttle.RetryAfter("d", 2) == 0);
}

BOOST_AUTO_TEST_CASE(TheConfiguredAdminEmailRegistersAsAdministrator) {
  TempDir dir;
  TestServer server(dir.path(), [](Config& c) { c.admin_email = "boss@example.com"; });
  HttpReply boss = server.api().Post(kApi + "/auth/register",
                                     RegisterJson("boss", "Boss@Example.com", "the boss pw"));
  BOOST_REQUIRE_EQUAL(boss.status, 201);
  BOOST_TEST(boss.json().at("user").at("role").str() == "Administrator");
  HttpReply other = server.api().Post(kApi + "/auth/register",
                                      RegisterJson("minion", "minion@example.com", "a minion pw"));
  BOOST_TEST(other.json().at("user").at("role").str() == "User");
}

BOOST_AUTO_TEST_CASE(SignedTokensRoundTripAndRejectTampering) {
  SignedToken t;
  t.purpose = "email";
  t.user_id = 42;
  t.epoch = 3;
  t.expires_ms = 2'000'000'000'000;
  t.extra = "odd|address@example.com";
  std::string text = MakeSignedToken("k", t);
  for (char c : text) BOOST_TEST((isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'));
  SignedToken out;
  BOOST_REQUIRE(VerifySignedToken("k", text, "email", 1'000, &out).ok());
  BOOST_TEST(out.user_id == 42u);
  BOOST_TEST(out.epoch == 3u);
  BOOST_TEST(out.expires_ms == t.expires_ms);
  BOOST_TEST(out.extra == t.extra);
  BOOST_TEST(!VerifySignedToken("k", text, "email", t.expires_ms, &out).ok());
  BOOST_TEST(!VerifySignedToken("k", text, "reset", 1'000, &out).ok());
  BOOST_TEST(!VerifySignedToken("other", text, "email", 1'000, &out).ok());
  BOOST_TEST(Sha256Hex("abc") ==
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(Md5Hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  BOOST_TEST(RandomToken().size() == 43u);
  BOOST_TEST(RandomToken() != RandomToken());
}

BOOST_AUTO_TEST_CASE(MailerSendsThroughSmtpAndRetriesAFailedSend) {
  FakeSmtp smtp(/*refuse_first=*/1);
  Config config;
  config.smtp_url = "smtp://127.0.0.1:" + std::to_string(smtp.port());
  config.smtp_from = "offbrand@example.com";
  Mailer mailer(config);
  std::atomic<int> observed{0};
  mailer.SetObserver([&observed](const Mail&) { ++observed; });
  mailer.Start();
  Mail mail;
  mail.to = "someone@example.com";
  mail.subject = "Hello there";
  mail.body = "Line one\nhttp://example.com/confirm?token=abc\n";
  BOOST_REQUIRE(mailer.Enqueue(mail));
  // The first attempt is refused (451); the retry after the backoff succeeds.
  for (int i = 0; i < 300 && mailer.sent() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_REQUIRE_EQUAL(mailer.sent(), 1u);
  BOOST_TEST(mailer.failed() == 0u);
  BOOST_TEST(smtp.mail_commands() == 2);
  BOOST_TEST(observed.load() == 1);  // observed once, not per attempt
  std::vector<std::string> messages = smtp.messages();
  BOOST_REQUIRE_EQUAL(messages.size(), 1u);
  BOOST_TEST(messages[0].find("To: <someone@example.com>") != std::string::npos);
  BOOST_TEST(messages[0].find("From: <offbrand@example.com>") != std::string::npos);
  BOOST_TEST(messages[0].find("Subject: Hello there") != std::string::npos);
  BOOST_TEST(messages[0].find("http://example.com/confirm?token=abc") != std::string::npos);
  mailer.Stop();
}

// An email change used to leave auth_epoch alone: a reset link mailed to the
// old address stayed valid for its hour. Now both kinds of email change
// spend every outstanding link.
BOOST_AUTO_TEST_CASE(EmailChangeSpendsResetLinksMailedToTheOldAddress) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  const std::string token = Join(server, "ola");
  const std::string admin = JoinAdmin(server, "boss");
  Join(server, "pia");

  auto reset_token_for = [&](const std::string& email) {
    const std::string before = server.LastMailTo(email);
    BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/reset", "{\"email\":\"" + email + "\"}").status, 202);
    std::string mail = WaitForMail(server, email, before);
    BOOST_REQUIRE(mail.find("/reset?token=") != std::string::npos);
    return TokenIn(mail.substr(mail.find("/reset?token=")));
  };
  auto reset_with = [&](const std::string& reset) {
    return api.Post(kApi + "/auth/reset/confirm",
                    "{\"token\":\"" + reset + "\",\"password\":\"a-brand-new-password\"}");
  };

  // The user's own change, confirmed through the new address.
  const std::string ola_reset = reset_token_for(EmailOf("ola"));
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/email",
                               "{\"email\":\"ola.new@example.org\",\"password\":\"" +
                                   PasswordOf("ola") + "\"}",
                               token)
                          .status,
                      202);
  std::string mail = WaitForMail(server, "ola.new@example.org");
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/email/confirm", TokenJson(TokenIn(mail))).status, 200);
  HttpReply spent = reset_with(ola_reset);
  BOOST_TEST(spent.status == 400, spent.body);
  BOOST_TEST(spent.error_code() == "invalid_token");

  // An administrator's change.
  const std::string pia_reset = reset_token_for(EmailOf("pia"));
  BOOST_REQUIRE_EQUAL(api.Patch(kApi + "/users/pia", "{\"email\":\"pia.new@example.org\"}", admin).status,
                      200);
  spent = reset_with(pia_reset);
  BOOST_TEST(spent.status == 400, spent.body);
  BOOST_TEST(spent.error_code() == "invalid_token");
  // A link asked for after the change works.
  BOOST_TEST(reset_with(reset_token_for("pia.new@example.org")).status == 204);
}

// Proves that no auth flow writes a secret to the log, with SMTP and Stream
// configured (so the offline "mail link in the log" exception is off) and
// everything logged at debug level.
BOOST_AUTO_TEST_CASE(NoSecretsReachTheLogDuringAuthFlows) {
  FakeSmtp smtp(/*refuse_first=*/1);  // one failed send is logged too
  TempDir dir;
  LogCapture log;
  const std::string smtp_password = "smtp-pass-6d1f";
  const std::string stream_secret = "stream-secret-93ab";
  TestServer server(dir.path(), [&](Config& c) {
    c.log_level = "debug";
    c.smtp_url = "smtp://mailer:" + smtp_password + "@127.0.0.1:" + std::to_string(smtp.port());
    c.stream_api_key = "stream-key";
    c.stream_api_secret = stream_secret;
    c.stream_app_id = "1";
    c.stream_base_url = "http://127.0.0.1:" + std::to_string(FreePort()) + "/";
  });
  TestApi api = server.api();
  std::vector<std::string> secrets = {smtp_password, stream_secret, PasswordOf("quin")};
  const std::string confirm = RegisterForToken(server, "quin");
  secrets.push_back(confirm);
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/confirm", TokenJson(confirm)).status, 200);
  const std::string session = Login(server, "quin");
  secrets.push_back(session);
  BOOST_TEST(api.Post(kApi + "/auth/login", LoginJson(EmailOf("quin"), "wrong-password-x")).status == 401);
  secrets.push_back("wrong-password-x");
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/password",
                               "{\"old_password\":\"" + PasswordOf("quin") +
                                   "\",\"password\":\"second-password-1\"}",
                               session)
                          .status,
                      204);
  secrets.push_back("second-password-1");
  const std::string before = server.LastMailTo(EmailOf("quin"));
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/reset", "{\"email\":\"" + EmailOf("quin") + "\"}").status, 202);
  const std::string reset = TokenIn(WaitForMail(server, EmailOf("quin"), before));
  secrets.push_back(reset);
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/reset/confirm",
                               "{\"token\":\"" + reset + "\",\"password\":\"third-password-2\"}")
                          .status,
                      204);
  secrets.push_back("third-password-2");
  HttpReply again = api.Post(kApi + "/auth/login", LoginJson(EmailOf("quin"), "third-password-2"));
  BOOST_REQUIRE_EQUAL(again.status, 200);
  secrets.push_back(again.json().at("token").str());
  // Let the mailer and the sync thread run into their failures and log them.
  for (int i = 0; i < 200 && smtp.mail_commands() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string text = log.Text();
  BOOST_TEST(text.find("http: POST /api/v1/auth/login") != std::string::npos);  // it did log
  for (const std::string& secret : secrets) {
    BOOST_TEST(text.find(secret) == std::string::npos, "in the log: " << secret);
  }
}

// The links we mail open pages that exist: each page names the API call its
// button makes, keeps the token out of Referer headers and runs only our
// own script; nothing happens on a mere GET (mail scanners prefetch links).
BOOST_AUTO_TEST_CASE(MailedLinksOpenPagesThatCallTheApi) {
  TempDir dir;
  TestServer server(dir.path());
  TestApi api = server.api();
  const std::string email = EmailOf("linda");
  BOOST_REQUIRE_EQUAL(api.Post(kApi + "/auth/register",
                               RegisterJson("linda", email, PasswordOf("linda"))).status,
                      201);
  const std::string mail = WaitForMail(server, email);
  const size_t at = mail.find("/confirm?token=");
  BOOST_REQUIRE(at != std::string::npos);
  const std::string link = mail.substr(at, mail.find_first_of(" \r\n", at) - at);

  const struct {
    std::string path;
    std::string api;
  } pages[] = {{link, "/api/v1/auth/confirm"},
               {"/reset?token=x", "/api/v1/auth/reset/confirm"},
               {"/email/confirm?token=x", "/api/v1/auth/email/confirm"}};
  for (const auto& p : pages) {
    HttpReply r = api.Get(p.path);
    BOOST_TEST_CONTEXT(p.path) {
      BOOST_CHECK_EQUAL(r.status, 200);
      BOOST_TEST(r.header("Content-Type").rfind("text/html", 0) == 0);
      BOOST_TEST(r.body.find("data-api=\"" + p.api + "\"") != std::string::npos);
      BOOST_TEST(r.body.find("<script src=\"/link-pages.js\">") != std::string::npos);
      BOOST_CHECK_EQUAL(r.header("Referrer-Policy"), "no-referrer");
      BOOST_TEST(r.header("Content-Security-Policy").find("script-src 'self'") !=
                 std::string::npos);
    }
  }
  BOOST_TEST(api.Get("/reset?token=x").body.find("type=\"password\"") != std::string::npos);
  HttpReply js = api.Get("/link-pages.js");
  BOOST_CHECK_EQUAL(js.status, 200);
  BOOST_TEST(js.header("Content-Type").rfind("text/javascript", 0) == 0);
  BOOST_TEST(js.body.find("URLSearchParams") != std::string::npos);

  // Opening the page confirmed nothing: the API call does.
  HttpReply me = api.Post(kApi + "/auth/login", LoginJson(email, PasswordOf("linda")));
  BOOST_REQUIRE_EQUAL(me.status, 200);
  BOOST_TEST(!me.json().at("user").at("confirmed").boolean());
  BOOST_CHECK_EQUAL(api.Post(kApi + "/auth/confirm",
                             "{\"token\":\"" + TokenIn(mail) + "\"}").status,
                    200);
}
