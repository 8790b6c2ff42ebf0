// Test support: temporary dirs, in-process and child-process servers, an HTTP
// client and JSON access for assertions (see test_support.h).
#include "test_support.h"

#include <fcntl.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <mutex>
#include <thread>

#include "accounts.h"
#include "crypto.h"
#include "mailer.h"
#include "offbrand/log.h"

extern char** environ;

namespace offbrand::test {
namespace {

// A fixed key so tokens minted by one server (or process) verify in another.
constexpr const char* kTestSecretKey = "test-secret-key-0123456789abcdef";
constexpr int kReadTimeoutS = 30;
constexpr int kConnectTimeoutS = 5;
constexpr int kStartWaitMs = 20'000;
constexpr int kMailWaitMs = 5'000;  // LastMailTo waits this long for a first mail

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& s, size_t bytes) {
  return s.size() <= bytes ? s : s.substr(s.size() - bytes);
}

HttpReply ToReply(const httplib::Result& r) {
  HttpReply reply;
  if (!r) {
    reply.body = "connection error: " + httplib::to_string(r.error());
    return reply;
  }
  reply.status = r->status;
  reply.body = r->body;
  for (const auto& [k, v] : r->headers) reply.headers.emplace(k, v);
  return reply;
}

httplib::Headers AuthHeaders(const std::string& auth) {
  httplib::Headers h;
  if (!auth.empty()) h.emplace("Authorization", "Bearer " + auth);
  return h;
}

void ConfigureClient(httplib::Client* cli) {
  cli->set_tcp_nodelay(true);
  cli->set_read_timeout(kReadTimeoutS, 0);
  cli->set_write_timeout(kReadTimeoutS, 0);
  cli->set_connection_timeout(kConnectTimeoutS, 0);
}

// The inherited environment without OFFBRAND_* and CREDENTIALS_DIRECTORY (so
// a developer's shell settings cannot leak into a test), plus `add`.
std::vector<std::string> ChildEnv(const std::map<std::string, std::string>& add) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("OFFBRAND_", 0) == 0 || kv.rfind("CREDENTIALS_DIRECTORY=", 0) == 0) continue;
    std::string key = kv.substr(0, kv.find('='));
    if (add.count(key)) continue;
    out.push_back(kv);
  }
  for (const auto& [k, v] : add) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string ServerLogPath(const std::string& data_dir) {
  std::string d = data_dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".server.log";
}

}  // namespace

// ---- TempDir ---------------------------------------------------------------

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/offbrand-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    throw std::runtime_error("mkdtemp " + tmpl + ": " + strerror(errno));
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// ---- Json ------------------------------------------------------------------

Json::Json(const std::string& text) : parser_(std::make_shared<simdjson::dom::parser>()) {
  simdjson::padded_string padded(text);
  auto err = parser_->parse(padded).get(e_);
  if (err) {
    throw std::runtime_error(std::string("invalid JSON (") + simdjson::error_message(err) +
                             "): " + text.substr(0, 500));
  }
}

Json Json::at(const std::string& key) const {
  simdjson::dom::element child;
  if (!e_.is_object() || e_.at_key(key).get(child)) {
    throw std::runtime_error("JSON has no key \"" + key + "\" in " + dump().substr(0, 500));
  }
  return Json(parser_, child);
}

Json Json::at(size_t index) const {
  simdjson::dom::element child;
  if (!e_.is_array() || e_.at(index).get(child)) {
    throw std::runtime_error("JSON has no index " + std::to_string(index) + " in " +
                             dump().substr(0, 500));
  }
  return Json(parser_, child);
}

bool Json::has(const std::string& key) const {
  simdjson::dom::element child;
  return e_.is_object() && !e_.at_key(key).get(child);
}

size_t Json::size() const {
  if (e_.is_array()) return simdjson::dom::array(e_).size();
  if (e_.is_object()) return simdjson::dom::object(e_).size();
  throw std::runtime_error("JSON size() of a scalar: " + dump());
}

std::string Json::str() const {
  std::string_view sv;
  if (e_.get(sv)) throw std::runtime_error("JSON is not a string: " + dump());
  return std::string(sv);
}

int64_t Json::num() const {
  int64_t i;
  if (!e_.get(i)) return i;
  uint64_t u;
  if (!e_.get(u)) return static_cast<int64_t>(u);
  double d;
  if (!e_.get(d)) return static_cast<int64_t>(d);
  throw std::runtime_error("JSON is not a number: " + dump());
}

bool Json::boolean() const {
  bool b;
  if (e_.get(b)) throw std::runtime_error("JSON is not a boolean: " + dump());
  return b;
}

bool Json::is_null() const { return e_.is_null(); }

std::string Json::dump() const { return simdjson::minify(e_); }

// ---- HttpReply -------------------------------------------------------------

std::string HttpReply::header(const std::string& name) const {
  std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (Lower(k) == want) return v;
  }
  return "";
}

std::string HttpReply::error_code() const {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc)) return "";
  std::string_view code;
  if (doc["error"]["code"].get(code)) return "";
  return std::string(code);
}

// ---- TestApi ---------------------------------------------------------------

HttpReply TestApi::Get(const std::string& path, const std::string& auth) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  return ToReply(cli.Get(path.c_str(), AuthHeaders(auth)));
}

HttpReply TestApi::Delete(const std::string& path, const std::string& auth) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  return ToReply(cli.Delete(path.c_str(), AuthHeaders(auth)));
}

HttpReply TestApi::Post(const std::string& path, const std::string& json,
                        const std::string& auth) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  return ToReply(cli.Post(path.c_str(), AuthHeaders(auth), json, "application/json"));
}

HttpReply TestApi::Put(const std::string& path, const std::string& json,
                       const std::string& auth) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  return ToReply(cli.Put(path.c_str(), AuthHeaders(auth), json, "application/json"));
}

HttpReply TestApi::Patch(const std::string& path, const std::string& json,
                         const std::string& auth) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  return ToReply(cli.Patch(path.c_str(), AuthHeaders(auth), json, "application/json"));
}

HttpReply TestApi::Send(const std::string& method, const std::string& path,
                        const std::string& body, const std::string& content_type,
                        const std::multimap<std::string, std::string>& headers) const {
  httplib::Client cli("127.0.0.1", port_);
  ConfigureClient(&cli);
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.body = body;
  for (const auto& [k, v] : headers) req.headers.emplace(k, v);
  if (!content_type.empty() && !req.has_header("Content-Type")) {
    req.headers.emplace("Content-Type", content_type);
  }
  return ToReply(cli.send(req));
}

// ---- TestConfig / TestServer -----------------------------------------------

Config TestConfig(const std::string& dir) {
  Config c;
  c.listen_host = "127.0.0.1";
  c.listen_port = 0;
  c.data_dir = dir;
  c.public_url = "http://127.0.0.1";
  c.secret_key = kTestSecretKey;
  c.log_level = "warning";
  c.http_threads = 8;
  c.password_hashes_max = 2;
  c.map_size_bytes = 8ull << 20;
  SetLogLevel(c.log_level.c_str());
  return c;
}

TestServer::TestServer(const std::string& dir, const std::function<void(Config&)>& adjust) {
  Config cfg = TestConfig(dir);
  if (adjust) adjust(cfg);
  SetLogLevel(cfg.log_level.c_str());
  auto app = App::Open(cfg);
  BOOST_REQUIRE_MESSAGE(app.ok(), "App::Open: " << app.status().ToString());
  app_ = std::move(*app);
  BOOST_REQUIRE(app_->services().mailer != nullptr);
  app_->services().mailer->SetObserver([this](const Mail& mail) {
    std::lock_guard<std::mutex> lock(mu_);
    mails_.emplace_back(mail.to, mail.body);
  });
  Status started = app_->Start();
  if (!started.ok()) app_->Stop();  // before mails_ goes away with the exception
  BOOST_REQUIRE_MESSAGE(started.ok(), "App::Start: " << started.ToString());
}

TestServer::~TestServer() {
  // Stop before mails_ and mu_ are destroyed: the mailer thread calls the
  // observer, which touches them.
  if (app_) {
    app_->Stop();
    app_.reset();
  }
}

std::string TestServer::LastMailTo(const std::string& email) const {
  const std::string want = Lower(email);
  // Mail is sent from the mailer's own thread; give it a moment.
  for (int waited = 0; waited <= kMailWaitMs; waited += 20) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = mails_.rbegin(); it != mails_.rend(); ++it) {
        if (Lower(it->first) == want) return it->second;
      }
    }
    SleepMs(20);
  }
  return "";
}

std::string TestServer::LastTokenTo(const std::string& email) const {
  std::string body = LastMailTo(email);
  size_t pos = body.rfind("token=");
  if (pos == std::string::npos) return "";
  pos += strlen("token=");
  size_t end = body.find_first_of(" \t\r\n\"'&<>", pos);
  return body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

namespace {

std::string Login(const TestApi& api, const std::string& email, const std::string& password) {
  std::string body = "{\"email\":\"" + email + "\",\"password\":\"" + password + "\"}";
  HttpReply r = api.Post("/api/v1/auth/login", body);
  BOOST_REQUIRE_MESSAGE(r.status == 200, "login " << email << ": " << r.status << " " << r.body);
  std::string token = r.json().at("token").str();
  BOOST_REQUIRE(!token.empty());
  return token;
}

void Register(const TestApi& api, const std::string& username, const std::string& email) {
  std::string body = "{\"username\":\"" + username + "\",\"email\":\"" + email +
                     "\",\"password\":\"password-" + username + "\"}";
  HttpReply r = api.Post("/api/v1/auth/register", body);
  BOOST_REQUIRE_MESSAGE(r.status == 201,
                        "register " << username << ": " << r.status << " " << r.body);
}

}  // namespace

std::string TestServer::SignUp(const std::string& username, const std::string& email_in) {
  std::string email = email_in.empty() ? username + "@example.com" : email_in;
  TestApi a = api();
  Register(a, username, email);
  std::string token = LastTokenTo(email);
  BOOST_REQUIRE_MESSAGE(!token.empty(), "no confirmation mail with a token to " << email);
  HttpReply r = a.Post("/api/v1/auth/confirm", "{\"token\":\"" + token + "\"}");
  BOOST_REQUIRE_MESSAGE(r.status == 200 || r.status == 204,
                        "confirm " << username << ": " << r.status << " " << r.body);
  return Login(a, email, "password-" + username);
}

std::string TestServer::SignUpUnconfirmed(const std::string& username) {
  std::string email = username + "@example.com";
  TestApi a = api();
  Register(a, username, email);
  return Login(a, email, "password-" + username);
}

std::string TestServer::SignUpAdmin(const std::string& username) {
  std::string email = username + "@example.com";
  std::string password = "password-" + username;
  BOOST_REQUIRE(app_->services().hasher != nullptr);
  auto user = CreateUser(store(), app_->config(), *app_->services().hasher, username, email,
                         password, /*admin=*/true, /*confirmed=*/true);
  BOOST_REQUIRE_MESSAGE(user.ok(), "CreateUser " << username << ": " << user.status().ToString());
  return Login(api(), email, password);
}

// ---- ServerProcess ---------------------------------------------------------

ServerProcess::ServerProcess(const std::string& data_dir, std::map<std::string, std::string> env)
    : data_dir_(data_dir), env_(std::move(env)) {
  auto listen = env_.find("OFFBRAND_LISTEN");
  if (listen == env_.end()) {
    port_ = FreePort();
    env_["OFFBRAND_LISTEN"] = "127.0.0.1:" + std::to_string(port_);
  } else {
    size_t colon = listen->second.rfind(':');
    port_ = colon == std::string::npos ? 0 : atoi(listen->second.c_str() + colon + 1);
  }
  env_.emplace("OFFBRAND_DATA_DIR", data_dir_);
  env_.emplace("OFFBRAND_LOG_LEVEL", "info");
  env_.emplace("OFFBRAND_SECRET_KEY", kTestSecretKey);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }
}

void ServerProcess::Start() {
  BOOST_REQUIRE_MESSAGE(pid_ <= 0, "ServerProcess::Start while running");
  // Everything the child needs is built before fork: no allocation after it.
  std::vector<std::string> env_strings = ChildEnv(env_);
  std::vector<char*> envp = CStrings(env_strings);
  std::vector<std::string> arg_strings = {OFFBRAND_BINARY, "serve"};
  std::vector<char*> argv = CStrings(arg_strings);
  const std::string log_path = ServerLogPath(data_dir_);

  pid_t pid = fork();
  BOOST_REQUIRE_MESSAGE(pid >= 0, "fork: " << strerror(errno));
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  pid_ = pid;

  for (int waited = 0; waited < kStartWaitMs; waited += 50) {
    int st = 0;
    pid_t done = waitpid(pid_, &st, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      BOOST_FAIL("offbrand serve exited during start-up (status " << st << "); log:\n"
                                                                  << Tail(log(), 4000));
    }
    httplib::Client cli("127.0.0.1", port_);
    cli.set_connection_timeout(1, 0);
    cli.set_read_timeout(2, 0);
    auto r = cli.Get("/readyz");
    if (r && r->status == 200) return;
    if (r && r->status == 404) {
      auto r2 = cli.Get("/api/v1/readyz");
      if (r2 && r2->status == 200) return;
    }
    SleepMs(50);
  }
  BOOST_FAIL("offbrand serve not ready after " << kStartWaitMs << " ms; log:\n"
                                                << Tail(log(), 4000));
}

void ServerProcess::Kill(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int ServerProcess::Wait() {
  if (pid_ <= 0) return -1;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  pid_ = -1;
  if (r < 0) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

std::string ServerProcess::log() const { return ReadFileOrEmpty(ServerLogPath(data_dir_)); }

// ---- RunCli / FreePort -----------------------------------------------------

int RunCli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
           std::string* out, const std::string& stdin_text) {
  signal(SIGPIPE, SIG_IGN);  // the child may exit without reading its stdin
  std::vector<std::string> env_strings = ChildEnv(env);
  std::vector<char*> envp = CStrings(env_strings);
  std::vector<std::string> arg_strings = {OFFBRAND_BINARY};
  arg_strings.insert(arg_strings.end(), args.begin(), args.end());
  std::vector<char*> argv = CStrings(arg_strings);

  int in_pipe[2], out_pipe[2];
  BOOST_REQUIRE(pipe2(in_pipe, O_CLOEXEC) == 0);
  BOOST_REQUIRE(pipe2(out_pipe, O_CLOEXEC) == 0);
  pid_t pid = fork();
  BOOST_REQUIRE_MESSAGE(pid >= 0, "fork: " << strerror(errno));
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  // Feed stdin from a thread so a chatty child cannot deadlock against us.
  std::thread feeder([fd = in_pipe[1], text = stdin_text] {
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = write(fd, text.data() + off, text.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fd);
  });
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = read(out_pipe[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  close(out_pipe[0]);
  feeder.join();
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (out) *out = output;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  BOOST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  BOOST_REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// ---- Store inspection ------------------------------------------------------

namespace {

std::vector<OutboxRecord> ReadRecords(Store& store, Db db) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE_MESSAGE(txn.ok(), "BeginRead: " << txn.status().ToString());
  std::vector<OutboxRecord> out;
  Cursor c = (*txn)->OpenCursor(db);
  for (bool ok = c.First(); ok; ok = c.Next()) {
    auto rec = DecodeOutboxRecord(c.key(), c.value());
    BOOST_REQUIRE_MESSAGE(rec.ok(), "DecodeOutboxRecord: " << rec.status().ToString());
    out.push_back(std::move(*rec));
  }
  return out;
}

}  // namespace

std::vector<OutboxRecord> OutboxRecords(Store& store) { return ReadRecords(store, Db::kOutbox); }
std::vector<OutboxRecord> DeadRecords(Store& store) { return ReadRecords(store, Db::kDead); }

Json GoldenRequest(const std::string& operation) {
  const std::string path = std::string(OFFBRAND_SHARED_DIR) + "/stream/golden-requests.json";
  std::string text = ReadFileOrEmpty(path);
  if (text.empty()) throw std::runtime_error("cannot read " + path);
  Json doc(text);
  Json requests = doc.at("requests");
  for (size_t i = 0; i < requests.size(); ++i) {
    Json r = requests.at(i);
    if (r.has("operation") && r.at("operation").str() == operation) return r;
  }
  throw std::runtime_error("no golden request \"" + operation + "\" in " + path);
}

// ---- RawConn / LogCapture -------------------------------------------------------

RawConn::RawConn(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd_ >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE_MESSAGE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
                        "connect: " << strerror(errno));
}

RawConn::~RawConn() {
  if (fd_ >= 0) close(fd_);
}

bool RawConn::Send(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

namespace {
// Bytes until the end of one reply in `buf`, or 0 when it is incomplete.
size_t ReplyLength(const std::string& buf) {
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::string length = RawHeader(buf.substr(0, end + 2), "Content-Length");
  size_t body = length.empty() ? 0 : std::stoul(length);
  return buf.size() >= end + 4 + body ? end + 4 + body : 0;
}

bool PollIn(int fd, int64_t deadline_ms) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  if (now >= deadline_ms) return false;
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(deadline_ms - now)) > 0;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::string RawConn::ReadReply(int timeout_ms) {
  const int64_t deadline = SteadyMs() + timeout_ms;
  for (;;) {
    if (size_t n = ReplyLength(pending_)) {
      std::string reply = pending_.substr(0, n);
      pending_.erase(0, n);
      return reply;
    }
    if (!PollIn(fd_, deadline)) return "";
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return "";
    pending_.append(buf, static_cast<size_t>(n));
  }
}

int RawConn::WaitClosed(int timeout_ms, std::string* extra) {
  const int64_t deadline = SteadyMs() + timeout_ms;
  if (extra) *extra += pending_;
  pending_.clear();
  for (;;) {
    if (!PollIn(fd_, deadline)) return ETIMEDOUT;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n == 0) return 0;
    if (n < 0) return errno;
    if (extra) extra->append(buf, static_cast<size_t>(n));
  }
}

int RawStatus(const std::string& reply) {
  if (reply.rfind("HTTP/1.", 0) != 0 || reply.size() < 12) return 0;
  return atoi(reply.c_str() + 9);
}

std::string RawHeader(const std::string& reply, const std::string& name) {
  const std::string want = Lower(name) + ":";
  size_t pos = reply.find("\r\n");
  while (pos != std::string::npos && pos + 2 < reply.size()) {
    size_t start = pos + 2;
    size_t end = reply.find("\r\n", start);
    std::string line = reply.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.empty()) break;
    if (Lower(line.substr(0, want.size())) == want) {
      std::string v = line.substr(want.size());
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      return v;
    }
    pos = end;
  }
  return "";
}

namespace {
std::mutex g_log_mu;
std::string g_log_text;
void CaptureLine(const char* line, size_t len) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  g_log_text.append(line, len);
  g_log_text += '\n';
}
}  // namespace

LogCapture::LogCapture() {
  {
    std::lock_guard<std::mutex> lock(g_log_mu);
    g_log_text.clear();
  }
  SetLogSinkForTest(CaptureLine);
}

LogCapture::~LogCapture() { SetLogSinkForTest(nullptr); }

std::string LogCapture::Text() const {
  std::lock_guard<std::mutex> lock(g_log_mu);
  return g_log_text;
}

}  // namespace offbrand::test
