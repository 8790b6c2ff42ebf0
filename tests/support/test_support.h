// Test support: temporary data dirs, an in-process server on a loopback port,
// the real `offbrand` binary as a child process (for SIGKILL/SIGTERM tests),
// a small HTTP client and JSON access for assertions.
//
// Thread-safety: TestApi may be used from several threads (one
// httplib::Client per call).
#ifndef OFFBRAND_TESTS_TEST_SUPPORT_H_
#define OFFBRAND_TESTS_TEST_SUPPORT_H_

#include <simdjson.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app.h"
#include "offbrand/config.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"

namespace offbrand::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A parsed JSON document that owns its bytes; j.at("a").at(0)... ; lookups
// throw (failing the test) when the path is missing.
class Json {
 public:
  explicit Json(const std::string& text);
  Json(std::shared_ptr<simdjson::dom::parser> p, simdjson::dom::element e) : parser_(p), e_(e) {}
  Json at(const std::string& key) const;
  Json at(size_t index) const;
  bool has(const std::string& key) const;
  size_t size() const;  // array length or object field count
  std::string str() const;
  int64_t num() const;
  bool boolean() const;
  bool is_null() const;
  std::string dump() const;  // minified
  simdjson::dom::element raw() const { return e_; }

 private:
  std::shared_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element e_;
};

struct HttpReply {
  int status = 0;  // 0: no reply (connection error)
  std::string body;
  std::multimap<std::string, std::string> headers;
  Json json() const { return Json(body); }
  std::string header(const std::string& name) const;
  // The SPEC error code, or "" when the body is not an error object.
  std::string error_code() const;
};

// A client bound to 127.0.0.1:port. `auth` is a bearer token (may be empty).
class TestApi {
 public:
  explicit TestApi(int port) : port_(port) {}
  HttpReply Get(const std::string& path, const std::string& auth = "") const;
  HttpReply Delete(const std::string& path, const std::string& auth = "") const;
  HttpReply Post(const std::string& path, const std::string& json, const std::string& auth = "") const;
  HttpReply Put(const std::string& path, const std::string& json, const std::string& auth = "") const;
  HttpReply Patch(const std::string& path, const std::string& json, const std::string& auth = "") const;
  // Any method, with extra headers and a raw body/content type.
  HttpReply Send(const std::string& method, const std::string& path, const std::string& body,
                 const std::string& content_type,
                 const std::multimap<std::string, std::string>& headers) const;
  int port() const { return port_; }

 private:
  int port_;
};

// A Config for tests: port 0, data dir `dir`, log level warning, small map.
Config TestConfig(const std::string& dir);

// An App running in this process on a free loopback port. Mail is captured:
// LastMailTo() returns the body of the newest mail to an address.
class TestServer {
 public:
  explicit TestServer(const std::string& dir,
                      const std::function<void(Config&)>& adjust = nullptr);
  ~TestServer();
  App& app() { return *app_; }
  TestApi api() const { return TestApi(app_->port()); }
  int port() const { return app_->port(); }
  Store& store() { return *app_->services().store; }
  std::string LastMailTo(const std::string& email) const;
  // The token in the newest mail's link ("...token=<t>") to `email`.
  std::string LastTokenTo(const std::string& email) const;

  // Registers, confirms (through the mailed token) and logs in; returns the
  // API token. The password is "password-<username>".
  std::string SignUp(const std::string& username, const std::string& email = "");
  // Registers without confirming and logs in.
  std::string SignUpUnconfirmed(const std::string& username);
  // Creates a confirmed Administrator directly and logs in.
  std::string SignUpAdmin(const std::string& username);

 private:
  std::unique_ptr<App> app_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> mails_;  // to, body
};

// The real binary as a child process. Output is appended to
// <data_dir>.server.log (beside the data dir, so restarts keep history).
class ServerProcess {
 public:
  // `env` adds OFFBRAND_* variables (OFFBRAND_LISTEN defaults to
  // 127.0.0.1:<free port>, OFFBRAND_DATA_DIR to `data_dir`).
  ServerProcess(const std::string& data_dir, std::map<std::string, std::string> env = {});
  ~ServerProcess();  // SIGKILL if still running
  // Starts and waits until /readyz answers 200 (fails the test after 20 s).
  void Start();
  void Kill(int sig);      // send a signal
  int Wait();              // waits for exit; returns the exit status (or 128+signal)
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  TestApi api() const { return TestApi(port_); }
  std::string log() const;

 private:
  std::string data_dir_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Runs `offbrand <args>` to completion; returns the exit code, output in *out.
int RunCli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
           std::string* out, const std::string& stdin_text = "");

// A free TCP port on 127.0.0.1.
int FreePort();

// All outbox records, in sequence order (opens a read txn on `store`).
std::vector<OutboxRecord> OutboxRecords(Store& store);
std::vector<OutboxRecord> DeadRecords(Store& store);

// The golden request of `operation` from ../shared/stream/golden-requests.json.
Json GoldenRequest(const std::string& operation);


// ---- raw sockets and log capture (HTTP framing, timeout and logging tests) --

// A raw TCP connection to 127.0.0.1:port, for requests httplib's client
// cannot send (no Content-Length, slow, pipelined, malformed).
class RawConn {
 public:
  explicit RawConn(int port);  // fails the test when it cannot connect
  ~RawConn();
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool Send(const std::string& bytes);
  // One HTTP reply (status line, headers, Content-Length body) within
  // `timeout_ms`; "" on timeout or when the server closed first.
  std::string ReadReply(int timeout_ms);
  // Waits up to `timeout_ms` for the server to close: 0 on a clean close
  // (FIN), ECONNRESET on a reset, ETIMEDOUT when still open. Input that
  // arrives meanwhile is appended to *extra (may be null).
  int WaitClosed(int timeout_ms, std::string* extra = nullptr);
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string pending_;  // read past the last reply
};

// The status code of a raw reply ("HTTP/1.1 204 ..." -> 204), 0 if none.
int RawStatus(const std::string& reply);
// A header's value in a raw reply (case-insensitive name), "" if absent.
std::string RawHeader(const std::string& reply, const std::string& name);

// Captures every log line written while it lives (one capture at a time).
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  std::string Text() const;  // all lines, newline-separated
  bool Contains(const std::string& needle) const { return Text().find(needle) != std::string::npos; }
};

}  // namespace offbrand::test

#endif  // OFFBRAND_TESTS_TEST_SUPPORT_H_
