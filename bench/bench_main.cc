// offbrand_bench: the figures the issues ask for, measured with the real
// binary on this machine in one run (`make bench`), printed as a table and
// written to <build>/bench-results.txt.
//
//   issue 2  durable writes/s with 32 HTTP clients (collection creates: a
//            registration's cost is Argon2, so a collection create - row,
//            index, self-follow and two outbox records in one transaction - is
//            the equivalent durable write), next to one-fsync-per-write
//            commits (Store::WriteDirect) and group commit (Store::Write) of
//            the same write from 32 threads in this process, same disk.
//   issue 3  GET /feeds/user/<name> (20 enriched items) with 32 keep-alive
//            connections, next to a bare cpp-httplib handler (a forked copy
//            of this process, same pool size and keep-alive settings)
//            answering a constant body of the same size; alternating halves.
//   issue 4  drain rate of a ~10,000-record outbox backlog into the Stream
//            double with 50 ms added to every answer.
//   issue 5  GET /feeds/timeline for a user following 200 collections of 50
//            links each, 32 connections.
//   issue 6  idle RSS, RSS after 10,000 collections and 50,000 links under
//            the read benchmarks, time from exec to /readyz 200 with that
//            data, stripped binary size.
//
// Not a test: nothing here asserts; every figure is printed with its target
// and PASS or MISS. Set-up failures stop the run with a message and exit 1.
// Data lives under --work (default: <binary dir>/bench-work, i.e. the build
// directory on the real disk; never tmpfs, or fsync would cost nothing).
#include <httplib.h>
#include <signal.h>
#include <simdjson.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "http_server.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

extern char** environ;

namespace offbrand::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- sizes of the experiment ---------------------------------------------------

constexpr int kConnections = 32;            // every load run
constexpr int kServerThreads = 36;          // >= connections: the bare httplib
                                            // server pins a kept-alive connection
                                            // to a worker; offbrand gets the same
constexpr int kSetupConnections = 32;
constexpr int kUsers = 20;                  // u0 .. u19 (Argon2id each: keep few)
// The write benchmark's authors w0 .. w63: each person may own at most
// Config::collections_per_user_max (1,000) collections, and a fast run
// makes tens of thousands.
constexpr int kWriters = 64;
constexpr int kCollectionsTotal = 10'000;   // issue 6 data set
constexpr int kLinksTotal = 50'000;
constexpr int kTimelineCollections = 200;   // issue 5: u0's collections,
constexpr int kTimelineLinksEach = 50;      // each with 50 links
constexpr int kBacklogCollectionsPerUser = 50;  // issue 4: 20 x 50 collections
constexpr int kBacklogLinksEach = 8;            // x 8 links (+ 2 records per collection)
constexpr int64_t kStreamDelayMs = 50;
constexpr double kNaiveRecordsPerS = 1000.0 / kStreamDelayMs;
constexpr int64_t kDrainTimeoutMs = 60'000;     // 10 s at the target rate
constexpr int kDrainDoubleThreads = 96;         // >= the engine's connections (64)
constexpr int64_t kDrainRateLimitPerMinute = 100'000;  // a plan with higher limits
constexpr double kFillBudgetS = 75;         // links+follows set-up; reduced beyond
constexpr int64_t kReadyTimeoutMs = 20'000;
constexpr const char* kPassword = "bench-password-1";
constexpr const char* kStreamKey = "benchkey";
constexpr const char* kStreamSecret = "benchsecret";

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  const int n = vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

// ---- child processes ------------------------------------------------------------

std::mutex children_mu;
std::set<pid_t> children;  // guarded by children_mu

// Starts `argv` with this environment minus OFFBRAND_*, plus `env`; output
// appended to `log_path`. Returns the pid or -1.
pid_t Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& log_path) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "OFFBRAND_", 9) != 0) env_strings.emplace_back(*e);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    signal(SIGPIPE, SIG_DFL);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  std::lock_guard<std::mutex> lock(children_mu);
  children.insert(pid);
  return pid;
}

int DecodeWaitStatus(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

// Waits up to `timeout_ms`; the exit status, or -1 while still running.
int WaitExit(pid_t pid, int64_t timeout_ms) {
  auto t0 = Clock::now();
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      std::lock_guard<std::mutex> lock(children_mu);
      children.erase(pid);
      return DecodeWaitStatus(st);
    }
    if (r < 0) return -1;
    if (Since(t0) * 1000 >= static_cast<double>(timeout_ms)) return -1;
    usleep(2000);
  }
}

// `sig`, then SIGKILL after `timeout_ms`. Returns the exit status.
int Stop(pid_t pid, int sig, int64_t timeout_ms) {
  if (pid <= 0) return -1;
  kill(pid, sig);
  int st = WaitExit(pid, timeout_ms);
  if (st >= 0) return st;
  kill(pid, SIGKILL);
  return WaitExit(pid, 5000);
}

int RunToExit(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              const std::string& log_path, int64_t timeout_ms) {
  pid_t pid = Spawn(argv, env, log_path);
  if (pid < 0) return -1;
  int st = WaitExit(pid, timeout_ms);
  if (st < 0) st = Stop(pid, SIGKILL, 1000);
  return st;
}

void KillAllChildren() {
  std::set<pid_t> left;
  {
    std::lock_guard<std::mutex> lock(children_mu);
    left = children;
  }
  for (pid_t pid : left) Stop(pid, SIGKILL, 2000);
}

[[noreturn]] void Fatal(const std::string& message) {
  fprintf(stderr, "offbrand_bench: %s\n", message.c_str());
  KillAllChildren();
  exit(1);
}

// A field of /proc/<pid>/status in KiB, or -1.
int64_t ProcFileKib(pid_t pid, const char* file, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  const size_t n = strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::strtoll(line.c_str() + n + 1, nullptr, 10);
    }
  }
  return -1;
}

int64_t ProcStatusKib(pid_t pid, const char* field) { return ProcFileKib(pid, "status", field); }

std::string LogTail(const std::string& path, size_t bytes = 2000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

// ---- HTTP -----------------------------------------------------------------------

// Transport errors (no HTTP reply) seen by any client, by httplib's name.
std::mutex transport_mu;
std::map<std::string, uint64_t> transport_errors;  // guarded by transport_mu

void NoteTransportError(httplib::Error e, std::string* body) {
  std::string what = httplib::to_string(e);
  if (body != nullptr) *body = "no reply: " + what;
  std::lock_guard<std::mutex> lock(transport_mu);
  transport_errors[what]++;
}

// "Read x2, Connection x1" since the last call; empties the tally.
std::string TakeTransportErrors() {
  std::lock_guard<std::mutex> lock(transport_mu);
  std::string s;
  for (const auto& [what, n] : transport_errors) {
    s += (s.empty() ? "" : ", ") + what + " x" + std::to_string(n);
  }
  transport_errors.clear();
  return s;
}

std::unique_ptr<httplib::Client> MakeClient(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_keep_alive(true);
  // Without TCP_NODELAY a request's header and body writes meet Nagle and
  // delayed ACKs (40 ms a request): the figure would measure the client.
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(30, 0);
  c->set_write_timeout(10, 0);
  return c;
}

httplib::Headers AuthHeaders(const std::string& token) {
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  return h;
}

int HttpGet(httplib::Client& c, const std::string& path, const std::string& token,
            std::string* body = nullptr) {
  auto r = c.Get(path.c_str(), AuthHeaders(token));
  if (!r) {
    NoteTransportError(r.error(), body);
    return 0;
  }
  if (body != nullptr) *body = std::move(r->body);
  return r->status;
}

int HttpSend(httplib::Client& c, const std::string& method, const std::string& path,
             const std::string& json, const std::string& token, std::string* body = nullptr) {
  httplib::Result r = method == "POST"  ? c.Post(path.c_str(), AuthHeaders(token), json, "application/json")
                      : method == "PUT" ? c.Put(path.c_str(), AuthHeaders(token), json, "application/json")
                                        : c.Delete(path.c_str(), AuthHeaders(token));
  if (!r) {
    NoteTransportError(r.error(), body);
    return 0;
  }
  if (body != nullptr) *body = std::move(r->body);
  return r->status;
}

// HttpSend, repeated (up to 3 times) while there is no reply at all; for
// set-up only. *retried tells the caller that an earlier attempt may have
// been applied (a repeated link add may then answer 409).
int HttpSendRetry(httplib::Client& c, const std::string& method, const std::string& path,
                  const std::string& json, const std::string& token, std::string* body,
                  bool* retried) {
  *retried = false;
  int st = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    st = HttpSend(c, method, path, json, token, body);
    if (st != 0) return st;
    *retried = true;
    usleep(10'000);
  }
  return st;
}

// Polls GET `path` every `interval_us` until 200; false after `timeout_ms`.
bool WaitFor200(int port, const std::string& path, int64_t timeout_ms, int64_t interval_us,
                pid_t pid = -1) {
  auto t0 = Clock::now();
  while (Since(t0) * 1000 < static_cast<double>(timeout_ms)) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    auto r = c.Get(path.c_str());
    if (r && r->status == 200) return true;
    if (pid > 0) {
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        std::lock_guard<std::mutex> lock(children_mu);
        children.erase(pid);
        return false;
      }
    }
    usleep(static_cast<useconds_t>(interval_us));
  }
  return false;
}

// A port nobody listens on now: bind port 0, read it back, close. (Not
// httplib::Server::bind_to_any_port: its socket stays open and, with
// SO_REUSEPORT, would take half of the child's connections.)
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// ---- JSON -----------------------------------------------------------------------

// The unsigned field `key` of the top-level object in `body`; -1 when absent.
int64_t JsonU64(const std::string& body, const char* key) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) return -1;
  uint64_t v = 0;
  if (doc[key].get(v) != simdjson::SUCCESS) return -1;
  return static_cast<int64_t>(v);
}

std::string JsonString(const std::string& body, const char* key) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) return "";
  std::string_view v;
  if (doc[key].get(v) != simdjson::SUCCESS) return "";
  return std::string(v);
}

// ---- load -----------------------------------------------------------------------

// One request on the thread's own client; returns the HTTP status (0: none).
using RequestFn = std::function<int(httplib::Client& client, int thread, uint64_t n)>;

struct LoadResult {
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::map<int, uint64_t> failures;  // status -> count (0: no reply)
  double seconds = 0;
  double rps = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::string transport;  // "no reply" causes, by httplib's name
  std::vector<uint32_t> sorted_us;  // latencies of the expected replies

  std::string FailureSummary() const {
    std::string s = transport;
    for (const auto& [status, n] : failures) {
      if (status == 0 && !transport.empty()) continue;
      if (!s.empty()) s += ", ";
      s += (status == 0 ? std::string("no reply") : std::to_string(status)) + " x" +
           std::to_string(n);
    }
    return s;
  }
};

double Percentile(const std::vector<uint32_t>& sorted_us, double q) {
  if (sorted_us.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted_us.size()));
  if (i >= sorted_us.size()) i = sorted_us.size() - 1;
  return sorted_us[i] / 1000.0;
}

// Closed loop: `connections` threads with one keep-alive client each send
// requests back to back for `seconds`.
LoadResult LoadRun(int port, int connections, double seconds, int expect_status,
                   const RequestFn& fn) {
  struct PerThread {
    std::vector<uint32_t> lat_us;
    std::map<int, uint64_t> failures;
  };
  std::vector<PerThread> per(static_cast<size_t>(connections));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start, deadline;
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      auto client = MakeClient(port);
      PerThread& me = per[static_cast<size_t>(t)];
      me.lat_us.reserve(65536);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      for (uint64_t n = 0; Clock::now() < deadline; ++n) {
        auto t0 = Clock::now();
        int status = fn(*client, t, n);
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
        if (status == expect_status) {
          me.lat_us.push_back(static_cast<uint32_t>(us));
        } else {
          me.failures[status]++;
        }
      }
    });
  }
  while (ready.load() < connections) std::this_thread::yield();
  start = Clock::now();
  deadline = start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  go.store(true);
  for (auto& th : threads) th.join();
  LoadResult r;
  r.seconds = Since(start);
  std::vector<uint32_t> all;
  for (auto& p : per) {
    all.insert(all.end(), p.lat_us.begin(), p.lat_us.end());
    for (auto& [s, n] : p.failures) {
      r.failures[s] += n;
      r.failed += n;
    }
  }
  std::sort(all.begin(), all.end());
  r.ok = all.size();
  r.sorted_us = all;
  r.rps = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  r.p50_ms = Percentile(all, 0.50);
  r.p99_ms = Percentile(all, 0.99);
  r.max_ms = all.empty() ? 0 : all.back() / 1000.0;
  const std::string causes = TakeTransportErrors();
  if (!causes.empty()) r.transport = "no reply (" + causes + ")";
  return r;
}

// Two runs of the same request as one: counts and seconds add up,
// percentiles over all latencies.
LoadResult Merge(const LoadResult& a, const LoadResult& b) {
  LoadResult r;
  r.ok = a.ok + b.ok;
  r.failed = a.failed + b.failed;
  r.failures = a.failures;
  for (const auto& [st, n] : b.failures) r.failures[st] += n;
  r.transport = a.transport + (a.transport.empty() || b.transport.empty() ? "" : "; ") + b.transport;
  r.seconds = a.seconds + b.seconds;
  r.rps = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  std::merge(a.sorted_us.begin(), a.sorted_us.end(), b.sorted_us.begin(), b.sorted_us.end(),
             std::back_inserter(r.sorted_us));
  r.p50_ms = Percentile(r.sorted_us, 0.50);
  r.p99_ms = Percentile(r.sorted_us, 0.99);
  r.max_ms = r.sorted_us.empty() ? 0 : r.sorted_us.back() / 1000.0;
  return r;
}

// fn(client, i, &error) for every i in [0, count) on `connections` threads;
// returns the number of failures and the first error message.
using TaskFn = std::function<bool(httplib::Client& client, uint64_t i, std::string* error)>;
uint64_t ForEachParallel(int port, int connections, uint64_t count, const TaskFn& fn,
                         std::string* first_error) {
  std::atomic<uint64_t> next{0}, failures{0};
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&] {
      auto client = MakeClient(port);
      for (uint64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
        std::string error;
        if (!fn(*client, i, &error)) {
          if (failures.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(mu);
            *first_error = error;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  return failures.load();
}

// ---- results --------------------------------------------------------------------

struct Row {
  std::string figure, measured, target, verdict;
};

class Report {
 public:
  void Add(std::string figure, std::string measured, std::string target, std::string verdict) {
    rows_.push_back({std::move(figure), std::move(measured), std::move(target), std::move(verdict)});
  }
  void Note(const std::string& line) {
    notes_.push_back(line);
    printf("  %s\n", line.c_str());
    fflush(stdout);
  }
  std::string Render(const std::string& header) const {
    size_t w0 = 6, w1 = 8, w2 = 6;
    for (const auto& r : rows_) {
      w0 = std::max(w0, r.figure.size());
      w1 = std::max(w1, r.measured.size());
      w2 = std::max(w2, r.target.size());
    }
    std::string out = header + "\n\n";
    auto line = [&](const std::string& a, const std::string& b, const std::string& c,
                    const std::string& d) {
      out += a + std::string(w0 - a.size() + 2, ' ') + b + std::string(w1 - b.size() + 2, ' ') +
             c + std::string(w2 - c.size() + 2, ' ') + d + "\n";
    };
    line("figure", "measured", "target", "result");
    line(std::string(w0, '-'), std::string(w1, '-'), std::string(w2, '-'), "------");
    for (const auto& r : rows_) line(r.figure, r.measured, r.target, r.verdict);
    out += "\nDetails:\n";
    for (const auto& n : notes_) out += "  " + n + "\n";
    return out;
  }

 private:
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
};

const char* Verdict(bool pass) { return pass ? "PASS" : "MISS"; }

void Progress(const std::string& s) {
  printf("[bench] %s\n", s.c_str());
  fflush(stdout);
}

// Forks a process serving `body` on GET /bare at 127.0.0.1:port with a
// cpp-httplib pool of kServerThreads and offbrand's keep-alive settings.
// Call only while this process has one thread. Returns the pid or -1.
pid_t StartBareServer(int port, const std::string& body) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    httplib::Server bare;
    bare.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
    bare.set_read_timeout(10, 0);
    bare.set_write_timeout(10, 0);
    bare.set_keep_alive_timeout(5);
    bare.set_keep_alive_max_count(1'000);
    bare.set_tcp_nodelay(true);
    bare.Get("/bare", [&body](const httplib::Request&, httplib::Response& res) {
      res.set_content(body, "application/json");
    });
    bare.listen("127.0.0.1", port);
    _exit(0);
  }
  std::lock_guard<std::mutex> lock(children_mu);
  children.insert(pid);
  return pid;
}

// ---- the offbrand server as a child ------------------------------------------------

struct Options {
  std::string binary;
  std::string double_binary;
  std::string work;
  std::string out;
  double seconds = 5;
  bool keep = false;
  std::string only;  // "store": only the in-process store baselines; "drain": only issue 4
  bool out_given = false;
};

class Server {
 public:
  Server(const Options& opt, std::string data_dir, std::string log)
      : opt_(opt), data_dir_(std::move(data_dir)), log_(std::move(log)) {}
  ~Server() { StopGracefully(); }

  // Execs the binary and waits for /readyz; returns false (with the log tail
  // on stderr) when it does not get ready. *ready_ms: exec to first 200.
  bool Start(std::map<std::string, std::string> extra, double* ready_ms = nullptr) {
    port_ = FreePort();
    std::map<std::string, std::string> env = {
        {"OFFBRAND_LISTEN", "127.0.0.1:" + std::to_string(port_)},
        {"OFFBRAND_DATA_DIR", data_dir_},
        {"OFFBRAND_LOG_LEVEL", "warning"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    auto t0 = Clock::now();
    pid_ = Spawn({opt_.binary, "serve"}, env, log_);
    if (pid_ < 0) return false;
    if (!WaitFor200(port_, "/readyz", kReadyTimeoutMs, 500, pid_)) {
      fprintf(stderr, "server did not get ready; log tail:\n%s\n", LogTail(log_).c_str());
      Stop(pid_, SIGKILL, 1000);
      pid_ = -1;
      return false;
    }
    if (ready_ms != nullptr) *ready_ms = Since(t0) * 1000;
    return true;
  }
  int StopGracefully() {
    if (pid_ <= 0) return -1;
    int st = Stop(pid_, SIGTERM, 15'000);
    pid_ = -1;
    return st;
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& log() const { return log_; }

 private:
  const Options& opt_;
  std::string data_dir_;
  std::string log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

std::string UserName(int i) { return "u" + std::to_string(i); }
std::string WriterName(int i) { return "w" + std::to_string(i); }
std::string UserEmail(const std::string& name) { return name + "@bench.example"; }

// ---- the bench ------------------------------------------------------------------------

class Bench {
 public:
  explicit Bench(Options opt) : opt_(std::move(opt)) {}
  int Run();

 private:
  void Seed();
  void Login(Server& s);
  void RunMain();
  void WriteBenchHttp(Server& s);
  void StoreBaselines();
  void FillDataSet(Server& s);
  void ReadBenches(Server& s);
  void RestartTiming(Server& s);
  void RunDrain();
  void BinarySize();
  std::string Dir(const std::string& name) const { return opt_.work + "/" + name; }
  std::string DataSetName() const {
    return Fmt("%.0fk colls + %.0fk links", collections_made_ / 1000.0, links_made_ / 1000.0);
  }

  Options opt_;
  Report report_;
  std::map<std::string, std::string> tokens_;  // username -> API token
  std::vector<std::string> users_;             // u0..u19, reader, admin
  double http_writes_per_s_ = 0;
  std::vector<std::pair<uint64_t, int>> collections_;  // (id, author index), issue 6 data
  uint64_t collections_made_ = 0;  // issue 6 data set as made
  uint64_t links_made_ = 0;
};

// Creates every account with the CLI in <work>/seed, starts the server once
// with defaults to measure idle RSS, logs everyone in (tokens are rows, so
// every copy of the directory accepts them) and stops it.
void Bench::Seed() {
  const std::string seed = Dir("seed");
  fs::create_directories(seed);
  const std::string pw_file = Dir("password");
  {
    std::ofstream pw(pw_file);
    pw << kPassword << "\n";
  }
  for (int i = 0; i < kUsers; ++i) users_.push_back(UserName(i));
  for (int i = 0; i < kWriters; ++i) users_.push_back(WriterName(i));
  users_.push_back("reader");
  users_.push_back("admin");
  Progress(Fmt("creating %zu accounts with `offbrand user create` (Argon2id each)", users_.size()));
  auto t0 = Clock::now();
  std::map<std::string, std::string> env = {{"OFFBRAND_DATA_DIR", seed},
                                            {"OFFBRAND_LOG_LEVEL", "warning"}};
  // The first create makes the environment and the secret key alone; the
  // rest run two at a time (LMDB is multi-process safe).
  auto create = [&](size_t i) {
    std::vector<std::string> argv = {opt_.binary, "user", "create", "--username", users_[i],
                                     "--email", UserEmail(users_[i]), "--password-file", pw_file};
    if (users_[i] == "admin") argv.push_back("--admin");
    return RunToExit(argv, env, Dir("cli.log"), 60'000);
  };
  if (create(0) != 0) Fatal("user create failed:\n" + LogTail(Dir("cli.log")));
  std::atomic<size_t> next{1};
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next.fetch_add(1); i < users_.size(); i = next.fetch_add(1)) {
        if (create(i) != 0) failures.fetch_add(1);
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failures.load() != 0) Fatal("user create failed:\n" + LogTail(Dir("cli.log")));
  report_.Note(Fmt("set-up: %zu accounts created with the CLI in %.1f s", users_.size(), Since(t0)));

  // Idle footprint: default settings (OFFBRAND_HTTP_THREADS=32), nothing
  // requested yet but /readyz.
  Server s(opt_, seed, Dir("seed-server.log"));
  double ready_ms = 0;
  if (!s.Start({}, &ready_ms)) Fatal("the server did not start on the seed data");
  usleep(1'000'000);
  int64_t idle_kib = ProcStatusKib(s.pid(), "VmRSS");
  report_.Add("[6] idle RSS after start (default settings)",
              Fmt("%.2f MiB", idle_kib / 1024.0), "<= 8 MiB", Verdict(idle_kib <= 8 * 1024));
  report_.Note(Fmt("idle: VmRSS %" PRId64 " KiB one second after /readyz (RssAnon %" PRId64
                   " KiB private; RssFile %" PRId64 " KiB, pages of the shared libraries "
                   "Debian's libcurl and cpp-httplib load; Pss %" PRId64 " KiB; %" PRId64
                   " threads); exec to /readyz %.1f ms with %zu users",
                   idle_kib, ProcStatusKib(s.pid(), "RssAnon"), ProcStatusKib(s.pid(), "RssFile"),
                   ProcFileKib(s.pid(), "smaps_rollup", "Pss"),
                   ProcStatusKib(s.pid(), "Threads"), ready_ms, users_.size()));
  Login(s);
  if (s.StopGracefully() != 0) report_.Note("warning: seed server did not exit 0 on SIGTERM");
}

void Bench::Login(Server& s) {
  Progress("logging in every account");
  std::mutex mu;
  std::string error;
  uint64_t failed = ForEachParallel(
      s.port(), 4, users_.size(),
      [&](httplib::Client& c, uint64_t i, std::string* err) {
        const std::string& name = users_[i];
        std::string body;
        std::string req = "{\"email\":\"" + UserEmail(name) + "\",\"password\":\"" + kPassword +
                          "\",\"remember\":true}";
        bool retried = false;
        int st = HttpSendRetry(c, "POST", "/api/v1/auth/login", req, "", &body, &retried);
        std::string token = st == 200 ? JsonString(body, "token") : "";
        if (token.empty()) {
          *err = Fmt("login %s: %d %s", name.c_str(), st, body.substr(0, 200).c_str());
          return false;
        }
        std::lock_guard<std::mutex> lock(mu);
        tokens_[name] = token;
        return true;
      },
      &error);
  if (failed != 0) Fatal(error);
}

std::string CollectionBody(const std::string& tag) {
  return "{\"name\":\"Collection " + tag +
         "\",\"description\":\"Links about benchmarks, databases and small servers, kept for "
         "later reading.\"}";
}

// Issue 2, HTTP side: 32 clients creating collections for opt_.seconds.
void Bench::WriteBenchHttp(Server& s) {
  Progress(Fmt("issue 2: durable collection creates, %d clients, %.0f s", kConnections, opt_.seconds));
  // Each client alternates between two writers of its own.
  LoadResult r = LoadRun(s.port(), kConnections, opt_.seconds, 201,
                         [&](httplib::Client& c, int t, uint64_t n) {
                           const int writer = (t * 2 + static_cast<int>(n % 2)) % kWriters;
                           std::string body;
                           return HttpSend(c, "POST", "/api/v1/collections",
                                           CollectionBody(Fmt("w%d-%" PRIu64, t, n)),
                                           tokens_.at(WriterName(writer)), &body);
                         });
  http_writes_per_s_ = r.rps;
  report_.Note(Fmt("issue 2 HTTP: %" PRIu64 " collection creates (201) in %.2f s = %.0f/s, "
                   "p50 %.2f ms, p99 %.2f ms, max %.1f ms; failures: %s",
                   r.ok, r.seconds, r.rps, r.p50_ms, r.p99_ms, r.max_ms,
                   r.failed ? r.FailureSummary().c_str() : "none"));
}

// The write a collection create makes, done in-process: the row, its author
// index, the author's follow of it (two rows), the activity add and the
// Timeline follow outbox records.
Status EquivalentWrite(WriteTxn& txn, uint64_t author) {
  Result<uint64_t> id = txn.NextId("collection");
  if (!id.ok()) return id.status();
  Collection c;
  c.id = *id;
  c.author_id = author;
  c.name = "Collection " + std::to_string(c.id);
  c.description = "Links about benchmarks, databases and small servers, kept for later reading.";
  c.created_us = txn.now_ms() * 1000 + static_cast<int64_t>(c.id % 1000);
  if (Status s = txn.Put(Db::kCollections, U64Key(c.id), EncodeCollection(c)); !s.ok()) return s;
  if (Status s = txn.Put(Db::kCollectionsByAuthor, U64PairKey(author, c.id), {}); !s.ok()) return s;
  const std::string ms = U64Key(static_cast<uint64_t>(txn.now_ms()));
  if (Status s = txn.Put(Db::kCollectionFollows, U64PairKey(author, c.id), ms); !s.ok()) return s;
  if (Status s = txn.Put(Db::kCollectionFollowers, U64PairKey(c.id, author), ms); !s.ok()) return s;
  OutboxRecord add;
  add.op = OutboxOp::kActivityAdd;
  add.feed_group = "User";
  add.feed_id = std::to_string(author);
  add.foreign_id = CollectionForeignId(c.id);
  add.time = FormatStreamTime(c.created_us);
  add.entity = add.foreign_id;
  add.body = "{\"actor\":\"" + StreamUserRef(author) + "\",\"verb\":\"create\",\"object\":\"" +
             add.foreign_id + "\",\"foreign_id\":\"" + add.foreign_id + "\",\"time\":\"" +
             add.time + "\",\"create\":\"" + c.name + "\",\"name\":\"" + c.name +
             "\",\"description\":\"" + c.description + "\"}";
  if (Status s = EnqueueOutbox(txn, &add); !s.ok()) return s;
  OutboxRecord follow;
  follow.op = OutboxOp::kFollow;
  follow.feed_group = "Timeline";
  follow.feed_id = std::to_string(author);
  follow.foreign_id = "Collections:" + std::to_string(c.id);
  follow.body = "{\"target\":\"" + follow.foreign_id + "\",\"activity_copy_limit\":100}";
  follow.entity = FollowEntity(follow.feed_group, follow.feed_id, follow.foreign_id);
  return EnqueueOutbox(txn, &follow);
}

struct StoreRun {
  uint64_t writes = 0, failed = 0, commits = 0;
  double seconds = 0;
  std::string error;
};

// 32 threads doing EquivalentWrite through Store::WriteDirect (direct) or
// Store::Write (group commit) for `seconds`, on a fresh store in `dir`.
StoreRun StoreLoad(const std::string& dir, bool direct, double seconds) {
  StoreRun run;
  StoreOptions options;
  options.dir = dir;
  options.durable = true;
  auto store = Store::Open(options);
  if (!store.ok()) {
    run.error = store.status().ToString();
    return run;
  }
  Store& st = **store;
  std::atomic<uint64_t> writes{0}, failed{0};
  std::atomic<bool> go{false};
  Clock::time_point deadline;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < kConnections; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      const uint64_t author = 1 + static_cast<uint64_t>(t);
      while (Clock::now() < deadline) {
        auto fn = [author](WriteTxn& txn) { return EquivalentWrite(txn, author); };
        Status s = direct ? st.WriteDirect(fn) : st.Write(fn);
        if (s.ok()) {
          writes.fetch_add(1);
        } else {
          if (failed.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(mu);
            run.error = s.ToString();
          }
          usleep(1000);
        }
      }
    });
  }
  auto start = Clock::now();
  deadline = start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  go.store(true);
  for (auto& th : threads) th.join();
  run.seconds = Since(start);
  run.writes = writes.load();
  run.failed = failed.load();
  run.commits = direct ? run.writes : st.commits();
  return run;
}

// Issue 2, store side, and the row for the issue.
void Bench::StoreBaselines() {
  const double seconds = std::max(2.0, opt_.seconds * 0.6);
  Progress(Fmt("issue 2: in-process Store::WriteDirect (one commit + fsync per write), %d threads, %.0f s",
               kConnections, seconds));
  StoreRun direct = StoreLoad(Dir("store-direct"), true, seconds);
  if (!direct.error.empty() && direct.writes == 0) Fatal("store (direct): " + direct.error);
  Progress(Fmt("issue 2: in-process Store::Write (group commit), %d threads, %.0f s", kConnections,
               seconds));
  StoreRun group = StoreLoad(Dir("store-group"), false, seconds);
  if (!group.error.empty() && group.writes == 0) Fatal("store (group): " + group.error);
  const double direct_rate = static_cast<double>(direct.writes) / direct.seconds;
  const double group_rate = static_cast<double>(group.writes) / group.seconds;
  report_.Note(Fmt("issue 2 store, one fsync per write (WriteDirect): %" PRIu64 " writes in %.2f s = "
                   "%.0f/s%s",
                   direct.writes, direct.seconds, direct_rate,
                   direct.failed ? (", failures: " + direct.error).c_str() : ""));
  report_.Note(Fmt("issue 2 store, group commit (Write): %" PRIu64 " writes in %.2f s = %.0f/s, %" PRIu64
                   " commits (%.1f writes per fsync)%s",
                   group.writes, group.seconds, group_rate, group.commits,
                   group.commits ? static_cast<double>(group.writes) / group.commits : 0.0,
                   group.failed ? (", failures: " + group.error).c_str() : ""));
  report_.Note("issue 2: the write is a collection create (row, author index, self-follow rows, "
               "activity-add and follow outbox records); registrations are bound by Argon2id, so "
               "collection creates are the equivalent durable write");
  const double ratio = direct_rate > 0 ? http_writes_per_s_ / direct_rate : 0;
  if (http_writes_per_s_ > 0) {
    report_.Add("[2] durable writes/s over HTTP, 32 clients", Fmt("%.0f/s", http_writes_per_s_), "",
                "info");
  }
  report_.Add("[2] one-fsync-per-write baseline, 32 threads", Fmt("%.0f/s", direct_rate), "", "info");
  if (http_writes_per_s_ > 0) {
    report_.Add("[2] HTTP durable writes / one-fsync-per-write", Fmt("%.1fx", ratio), ">= 3x",
                Verdict(ratio >= 3.0));
  }
  report_.Add("[2] in-process group commit / one-fsync-per-write",
              Fmt("%.1fx (%.0f/s)", direct_rate > 0 ? group_rate / direct_rate : 0, group_rate),
              ">= 3x", Verdict(direct_rate > 0 && group_rate / direct_rate >= 3.0));
  std::error_code ec;
  fs::remove_all(Dir("store-direct"), ec);
  fs::remove_all(Dir("store-group"), ec);
}

// Issue 6 data set over HTTP: 10,000 collections (u0 owns 200, the rest
// spread over u1..u19), 50,000 links (50 in each of u0's, the rest spread),
// and `reader` following u0's 200 collections.
void Bench::FillDataSet(Server& s) {
  auto t0 = Clock::now();
  const int more = kCollectionsTotal - kTimelineCollections;
  Progress(Fmt("set-up: %d collections", kCollectionsTotal));
  std::mutex mu;
  std::vector<uint64_t> timeline_ids;
  std::string error;
  const uint64_t total = static_cast<uint64_t>(more + kTimelineCollections);
  uint64_t failed = ForEachParallel(
      s.port(), kSetupConnections, total,
      [&](httplib::Client& c, uint64_t i, std::string* err) {
        const bool timeline = i < static_cast<uint64_t>(kTimelineCollections);
        const int user = timeline ? 0 : 1 + static_cast<int>(i % (kUsers - 1));
        std::string body;
        bool retried = false;
        int st = HttpSendRetry(c, "POST", "/api/v1/collections", CollectionBody(Fmt("f%" PRIu64, i)),
                               tokens_.at(UserName(user)), &body, &retried);
        int64_t id = st == 201 ? JsonU64(body, "id") : -1;
        if (id <= 0) {
          *err = Fmt("create collection: %d %s", st, body.substr(0, 200).c_str());
          return false;
        }
        std::lock_guard<std::mutex> lock(mu);
        if (timeline) timeline_ids.push_back(static_cast<uint64_t>(id));
        else collections_.emplace_back(static_cast<uint64_t>(id), user);
        return true;
      },
      &error);
  if (failed != 0) Fatal(Fmt("%" PRIu64 " collection creates failed; first: %s", failed, error.c_str()));
  const double coll_s = Since(t0);

  // Links: u0's collections get 50 each, the others share the rest evenly.
  const uint64_t timeline_links = static_cast<uint64_t>(kTimelineCollections) * kTimelineLinksEach;
  uint64_t other_links = static_cast<uint64_t>(kLinksTotal) - timeline_links;
  const uint64_t follows = timeline_ids.size();
  // Keep the run short on a slow or busy machine: project the links phase
  // from the collections phase's rate and shrink the spread links (never the
  // timeline's) to fit kFillBudgetS. Said in the output when it happens.
  const double write_rate = static_cast<double>(total) / std::max(coll_s, 1e-3);
  const double projected_s = static_cast<double>(timeline_links + other_links + follows) / write_rate;
  if (projected_s > kFillBudgetS) {
    const double fit = write_rate * kFillBudgetS - static_cast<double>(timeline_links + follows);
    const uint64_t reduced = static_cast<uint64_t>(std::max(0.0, fit));
    report_.Note(Fmt("set-up REDUCED: HTTP writes ran at %.0f/s, so %" PRIu64 " links would take "
                     "%.0f s; adding %" PRIu64 " instead of %d links (issue 6 figures are for "
                     "the smaller data set)",
                     write_rate, timeline_links + other_links, projected_s,
                     timeline_links + reduced, kLinksTotal));
    other_links = reduced;
  }
  links_made_ = timeline_links + other_links;
  const uint64_t tasks = timeline_links + other_links + follows;
  Progress(Fmt("set-up: %" PRIu64 " links and %" PRIu64 " collection follows", timeline_links + other_links,
               follows));
  auto t1 = Clock::now();
  failed = ForEachParallel(
      s.port(), kSetupConnections, tasks,
      [&](httplib::Client& c, uint64_t i, std::string* err) {
        std::string path, token, body, reply;
        int want = 201;
        if (i < follows) {
          path = "/api/v1/collections/" + std::to_string(timeline_ids[i]) + "/follow";
          token = tokens_.at("reader");
          bool retried = false;
          int st = HttpSendRetry(c, "PUT", path, "", token, &reply, &retried);
          if (st != 200 && st != 201 && st != 204) {
            *err = Fmt("follow: %d %s", st, reply.substr(0, 200).c_str());
            return false;
          }
          return true;
        }
        const uint64_t k = i - follows;
        uint64_t cid;
        if (k < timeline_links) {
          cid = timeline_ids[k % timeline_ids.size()];
          token = tokens_.at(UserName(0));
        } else {
          const auto& [id, user] = collections_[(k - timeline_links) % collections_.size()];
          cid = id;
          token = tokens_.at(UserName(user));
        }
        path = "/api/v1/collections/" + std::to_string(cid) + "/items";
        body = "{\"url\":\"https://example.com/articles/" + std::to_string(k) +
               "\",\"title\":\"Article number " + std::to_string(k) +
               "\",\"description\":\"A link saved by the benchmark, with a short description.\"}";
        bool retried = false;
        int st = HttpSendRetry(c, "POST", path, body, token, &reply, &retried);
        if (st != want && !(retried && st == 409)) {
          *err = Fmt("add link: %d %s", st, reply.substr(0, 200).c_str());
          return false;
        }
        return true;
      },
      &error);
  if (failed != 0) Fatal(Fmt("%" PRIu64 " link/follow writes failed; first: %s", failed, error.c_str()));
  const double link_s = Since(t1);
  const uint64_t writes = total + tasks;
  collections_made_ = collections_.size() + timeline_ids.size();
  report_.Note(Fmt("set-up: %zu collections total, %" PRIu64 " links, reader follows %" PRIu64
                   " collections: %" PRIu64 " writes over HTTP in %.1f s (%.0f/s; collections "
                   "%.1f s, links+follows %.1f s)",
                   collections_.size() + timeline_ids.size(), links_made_, follows, writes,
                   coll_s + link_s, static_cast<double>(writes) / (coll_s + link_s), coll_s, link_s));
  const std::string retries = TakeTransportErrors();
  if (!retries.empty()) report_.Note("set-up: requests repeated after no reply: " + retries);
}

// Issue 6: exec to /readyz with the full data set, three restarts.
void Bench::RestartTiming(Server& s) {
  Progress("issue 6: restart with the data set, exec to /readyz 200");
  std::vector<double> times;
  for (int i = 0; i < 3; ++i) {
    s.StopGracefully();
    double ms = 0;
    if (!s.Start({{"OFFBRAND_HTTP_THREADS", std::to_string(kServerThreads)}}, &ms)) {
      Fatal("server did not restart with the data set");
    }
    times.push_back(ms);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  report_.Add(Fmt("[6] exec to /readyz 200 with %s (median of 3)", DataSetName().c_str()),
              Fmt("%.1f ms", sorted[1]), "<= 200 ms", Verdict(sorted[1] <= 200));
  report_.Note(Fmt("issue 6 start to ready: %.1f / %.1f / %.1f ms (polling /readyz every 0.5 ms)",
                   times[0], times[1], times[2]));
}

// Issues 3, 5 and 6 (RSS under the reads).
// Pages per rotation of the distinct-page reads: well over what the
// server's 2 MiB page cache holds (about 250 such pages), so it never hits.
constexpr uint64_t kDistinctPages = 1000;
constexpr size_t kDistinctPagesMin = 300;

// The id of the first entry ("object":"<Kind>:<id>") of a feed page, 0 if none.
uint64_t NewestId(const std::string& page) {
  simdjson::dom::parser p;
  std::string_view object;
  if (p.parse(page)["items"].at(0)["object"].get(object) != simdjson::SUCCESS) return 0;
  const size_t colon = object.find(':');
  if (colon == std::string_view::npos) return 0;
  return std::strtoull(std::string(object.substr(colon + 1)).c_str(), nullptr, 10);
}

void Bench::ReadBenches(Server& s) {
  auto probe = MakeClient(s.port());
  std::string feed_body, timeline_body;
  const std::string feed_path = "/api/v1/feeds/user/" + UserName(1) + "?limit=20";
  const std::string timeline_path = "/api/v1/feeds/timeline?limit=20";
  int st = HttpGet(*probe, feed_path, "", &feed_body);
  if (st != 200) Fatal(Fmt("GET %s: %d %s", feed_path.c_str(), st, feed_body.substr(0, 300).c_str()));
  st = HttpGet(*probe, timeline_path, tokens_.at("reader"), &timeline_body);
  if (st != 200) Fatal(Fmt("GET %s: %d %s", timeline_path.c_str(), st, timeline_body.substr(0, 300).c_str()));
  auto count_items = [](const std::string& body) -> int64_t {
    simdjson::dom::parser p;
    simdjson::dom::array items;
    if (p.parse(body)["items"].get(items) != simdjson::SUCCESS) return -1;
    return static_cast<int64_t>(items.size());
  };
  const int64_t feed_items = count_items(feed_body);
  const int64_t timeline_items = count_items(timeline_body);

  // The bare handler runs in a forked copy of this (still single-threaded)
  // process, so that, like offbrand, it does not share a process with the
  // load generator. Same pool size and keep-alive settings as offbrand.
  const int bare_port = FreePort();
  const pid_t bare_pid = StartBareServer(bare_port, feed_body);
  if (bare_pid < 0 || !WaitFor200(bare_port, "/bare", 10'000, 1000, bare_pid)) {
    Fatal("the bare cpp-httplib server did not start");
  }

  auto get = [](const std::string& path, const std::string& token) {
    return [path, token](httplib::Client& c, int, uint64_t) { return HttpGet(c, path, token); };
  };
  const double secs = opt_.seconds;
  Progress("warm-up reads, 1 s each");
  LoadRun(s.port(), kConnections, 1.0, 200, get(feed_path, ""));
  LoadRun(bare_port, kConnections, 1.0, 200, get("/bare", ""));
  // Alternating halves (offbrand, bare, offbrand, bare), so that a change
  // in the machine's background load hits both sides alike.
  Progress(Fmt("issue 3: GET %s vs the bare handler (%d threads), %d connections, 2 x %.1f s each, "
               "alternating",
               feed_path.c_str(), kServerThreads, kConnections, secs / 2));
  LoadResult feed, base;
  for (int round = 0; round < 2; ++round) {
    feed = Merge(feed, LoadRun(s.port(), kConnections, secs / 2, 200, get(feed_path, "")));
    base = Merge(base, LoadRun(bare_port, kConnections, secs / 2, 200, get("/bare", "")));
  }
  int64_t rss_after_feed = ProcStatusKib(s.pid(), "VmRSS");
  Stop(bare_pid, SIGKILL, 2000);

  Progress(Fmt("issue 5: GET %s (reader follows 200 x 50 links), %d connections, %.0f s",
               timeline_path.c_str(), kConnections, secs));
  LoadRun(s.port(), kConnections, 1.0, 200, get(timeline_path, tokens_.at("reader")));
  LoadResult tl = LoadRun(s.port(), kConnections, secs, 200, get(timeline_path, tokens_.at("reader")));
  const int64_t rss_kib = ProcStatusKib(s.pid(), "VmRSS");

  // The same reads with a different page on every request, so that the
  // server's page cache (valid for one LMDB snapshot) never answers: the
  // cost of really building a page. User feed pages of u1 start at each of
  // its collections; timeline pages are deep ones (below ids spread over
  // the timeline), the merge's worst case.
  std::vector<std::string> feed_pages, timeline_pages;
  for (const auto& [id, author] : collections_) {
    if (author == 1) feed_pages.push_back(feed_path + "&cursor=" + EncodeCursor(id + 1));
  }
  const uint64_t newest = NewestId(timeline_body);
  for (uint64_t k = 1; k <= kDistinctPages && newest > kDistinctPages; ++k) {
    timeline_pages.push_back(timeline_path + "&cursor=" +
                             EncodeCursor(newest - k * (newest / (kDistinctPages + 1))));
  }
  auto rotate = [](const std::vector<std::string>& paths, const std::string& token) {
    return [&paths, token](httplib::Client& c, int t, uint64_t n) {
      return HttpGet(c, paths[(static_cast<uint64_t>(t) * 7919 + n) % paths.size()], token);
    };
  };
  LoadResult feed_miss, base_miss, tl_miss;
  if (feed_pages.size() > kDistinctPagesMin && timeline_pages.size() > kDistinctPagesMin) {
    Progress(Fmt("issue 3/5: the same reads, a different page each request (%zu user feed pages, "
                 "%zu timeline pages), %.1f s each",
                 feed_pages.size(), timeline_pages.size(), secs / 2));
    const pid_t bare2 = StartBareServer(bare_port, feed_body);
    if (bare2 > 0 && WaitFor200(bare_port, "/bare", 10'000, 1000, bare2)) {
      feed_miss = LoadRun(s.port(), kConnections, secs / 2, 200, rotate(feed_pages, ""));
      base_miss = LoadRun(bare_port, kConnections, secs / 2, 200, get("/bare", ""));
      Stop(bare2, SIGKILL, 2000);
    }
    tl_miss = LoadRun(s.port(), kConnections, secs / 2, 200,
                      rotate(timeline_pages, tokens_.at("reader")));
  }
  const int64_t hwm_kib = ProcStatusKib(s.pid(), "VmHWM");
  const int64_t anon_kib = ProcStatusKib(s.pid(), "RssAnon");

  const double ratio = base.rps > 0 ? feed.rps / base.rps : 0;
  report_.Add("[3] GET /feeds/user/<name> (20 items), 32 conns", Fmt("%.0f req/s, p99 %.2f ms", feed.rps, feed.p99_ms),
              "", "info");
  report_.Add("[3] bare cpp-httplib, same body, same run", Fmt("%.0f req/s, p99 %.2f ms", base.rps, base.p99_ms), "",
              "info");
  report_.Add("[3] user feed / bare handler", Fmt("%.2fx", ratio), ">= 0.7x", Verdict(ratio >= 0.7));
  report_.Add("[5] GET /feeds/timeline (200 colls x 50 links), 32 conns", Fmt("%.0f req/s", tl.rps), "", "info");
  report_.Add("[5] timeline p99 latency", Fmt("%.2f ms", tl.p99_ms), "< 10 ms", Verdict(tl.p99_ms < 10.0));
  if (feed_miss.ok > 0 && base_miss.rps > 0) {
    report_.Add("[3] user feed, a different page each request (no cache)",
                Fmt("%.0f req/s, p99 %.2f ms = %.2fx bare", feed_miss.rps, feed_miss.p99_ms,
                    feed_miss.rps / base_miss.rps),
                "", "info");
  }
  if (tl_miss.ok > 0) {
    report_.Add("[5] timeline, a different deep page each request (no cache)",
                Fmt("%.0f req/s, p99 %.2f ms", tl_miss.rps, tl_miss.p99_ms), "", "info");
  }
  report_.Add(Fmt("[6] RSS with %s, under the reads", DataSetName().c_str()), Fmt("%.2f MiB", rss_kib / 1024.0),
              "<= 48 MiB", Verdict(rss_kib > 0 && rss_kib <= 48 * 1024));
  report_.Note(Fmt("issue 3 feed: %zu-byte body with %" PRId64 " items; offbrand %" PRIu64
                   " ok in %.2f s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, failures: %s",
                   feed_body.size(), feed_items, feed.ok, feed.seconds, feed.p50_ms, feed.p99_ms,
                   feed.max_ms, feed.failed ? feed.FailureSummary().c_str() : "none"));
  report_.Note(Fmt("issue 3 bare: %" PRIu64 " ok in %.2f s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, "
                   "failures: %s (bare server in a forked process; both servers %d worker threads)",
                   base.ok, base.seconds, base.p50_ms, base.p99_ms, base.max_ms,
                   base.failed ? base.FailureSummary().c_str() : "none", kServerThreads));
  report_.Note(Fmt("issue 5 timeline: %zu-byte page with %" PRId64 " items; %" PRIu64
                   " ok in %.2f s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, failures: %s",
                   timeline_body.size(), timeline_items, tl.ok, tl.seconds, tl.p50_ms, tl.p99_ms,
                   tl.max_ms, tl.failed ? tl.FailureSummary().c_str() : "none"));
  report_.Note(Fmt("issues 3/5 without the page cache: user feed %" PRIu64 " ok, p50 %.2f ms, p99 %.2f ms "
                   "(bare %.0f req/s); deep timeline pages %" PRIu64 " ok, p50 %.2f ms, p99 %.2f ms; "
                   "failures: %s / %s",
                   feed_miss.ok, feed_miss.p50_ms, feed_miss.p99_ms, base_miss.rps, tl_miss.ok,
                   tl_miss.p50_ms, tl_miss.p99_ms,
                   feed_miss.failed ? feed_miss.FailureSummary().c_str() : "none",
                   tl_miss.failed ? tl_miss.FailureSummary().c_str() : "none"));
  report_.Note(Fmt("issue 6 RSS under reads (%d HTTP threads): VmRSS %" PRId64 " KiB after the user-feed "
                   "run, %" PRId64 " KiB after the timeline run (RssAnon %" PRId64 " KiB), peak VmHWM %"
                   PRId64 " KiB",
                   kServerThreads, rss_after_feed, rss_kib, anon_kib, hwm_kib));
}

void Bench::RunMain() {
  {
    // The write benchmark has a data dir of its own, so that the issue 6
    // data set below is exactly what it says, however fast the writes ran.
    const std::string dir = Dir("writes");
    fs::copy(Dir("seed"), dir, fs::copy_options::recursive);
    Server w(opt_, dir, Dir("writes-server.log"));
    if (!w.Start({{"OFFBRAND_HTTP_THREADS", std::to_string(kServerThreads)}})) {
      Fatal("server did not start");
    }
    WriteBenchHttp(w);
    if (w.StopGracefully() != 0) report_.Note("warning: server did not exit 0 on SIGTERM");
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  StoreBaselines();
  const std::string dir = Dir("main");
  fs::copy(Dir("seed"), dir, fs::copy_options::recursive);
  Server s(opt_, dir, Dir("main-server.log"));
  if (!s.Start({{"OFFBRAND_HTTP_THREADS", std::to_string(kServerThreads)}})) {
    Fatal("server did not start");
  }
  FillDataSet(s);
  RestartTiming(s);
  ReadBenches(s);
  if (s.StopGracefully() != 0) report_.Note("warning: server did not exit 0 on SIGTERM");
}

// Issue 4: a backlog made offline, then drained into the double.
void Bench::RunDrain() {
  const std::string dir = Dir("drain");
  fs::copy(Dir("seed"), dir, fs::copy_options::recursive);
  Server s(opt_, dir, Dir("drain-server.log"));
  if (!s.Start({{"OFFBRAND_HTTP_THREADS", std::to_string(kServerThreads)}})) {
    Fatal("server did not start (drain)");
  }
  const uint64_t colls = static_cast<uint64_t>(kUsers) * kBacklogCollectionsPerUser;
  Progress(Fmt("issue 4: backlog of %" PRIu64 " collections and %" PRIu64 " links, server offline",
               colls, colls * kBacklogLinksEach));
  std::vector<std::pair<uint64_t, int>> ids(colls);
  std::string error;
  const auto setup_start = Clock::now();
  uint64_t failed = ForEachParallel(
      s.port(), kSetupConnections, colls,
      [&](httplib::Client& c, uint64_t i, std::string* err) {
        const int user = static_cast<int>(i % kUsers);
        std::string body;
        bool retried = false;
        int st = HttpSendRetry(c, "POST", "/api/v1/collections", CollectionBody(Fmt("d%" PRIu64, i)),
                               tokens_.at(UserName(user)), &body, &retried);
        int64_t id = st == 201 ? JsonU64(body, "id") : -1;
        if (id <= 0) {
          *err = Fmt("create collection: %d %s", st, body.substr(0, 200).c_str());
          return false;
        }
        ids[i] = {static_cast<uint64_t>(id), user};
        return true;
      },
      &error);
  if (failed != 0) Fatal("backlog: " + error);
  failed = ForEachParallel(
      s.port(), kSetupConnections, colls * kBacklogLinksEach,
      [&](httplib::Client& c, uint64_t i, std::string* err) {
        const auto& [cid, user] = ids[i % colls];
        std::string body = "{\"url\":\"https://example.org/d/" + std::to_string(i) +
                           "\",\"title\":\"Backlog link " + std::to_string(i) + "\"}";
        std::string reply;
        bool retried = false;
        int st = HttpSendRetry(c, "POST", "/api/v1/collections/" + std::to_string(cid) + "/items",
                               body, tokens_.at(UserName(user)), &reply, &retried);
        if (st != 201 && !(retried && st == 409)) {
          *err = Fmt("add link: %d %s", st, reply.substr(0, 200).c_str());
          return false;
        }
        return true;
      },
      &error);
  if (failed != 0) Fatal("backlog: " + error);
  report_.Note(Fmt("issue 4 set-up: %" PRIu64 " writes over HTTP in %.1f s", colls * (1 + kBacklogLinksEach),
                   Since(setup_start)));
  const std::string retries = TakeTransportErrors();
  if (!retries.empty()) report_.Note("issue 4 set-up: requests repeated after no reply: " + retries);
  auto admin = MakeClient(s.port());
  std::string sync_body;
  int st = HttpGet(*admin, "/api/v1/sync", tokens_.at("admin"), &sync_body);
  const int64_t backlog = st == 200 ? JsonU64(sync_body, "pending") : -1;
  if (backlog <= 0) Fatal(Fmt("GET /api/v1/sync: %d %s", st, sync_body.substr(0, 300).c_str()));
  s.StopGracefully();

  // The double, with 50 ms added to every answer.
  const int double_port = FreePort();
  // Enough workers for every connection the engine keeps (one each).
  pid_t dbl = Spawn({opt_.double_binary, "--port", std::to_string(double_port), "--api-key",
                     kStreamKey, "--api-secret", kStreamSecret, "--threads",
                     std::to_string(kDrainDoubleThreads)},
                    {}, Dir("double.log"));
  if (dbl < 0 || !WaitFor200(double_port, "/__state", 10'000, 5000, dbl)) {
    Fatal("the Stream double did not start; log tail:\n" + LogTail(Dir("double.log")));
  }
  {
    auto c = MakeClient(double_port);
    std::string reply;
    // The double reports Stream's published per-minute limits by default;
    // this workload needs ~1,020 add requests (1,000 Collections feeds of 8
    // links), just over the default 1,000/min, and the engine honours
    // X-Ratelimit-Remaining: 0 by holding that endpoint until the minute's
    // reset. Measured is the engine, as on a plan with higher limits.
    int cs = HttpSend(*c, "POST", "/__control",
                      "{\"delay_ms\":" + std::to_string(kStreamDelayMs) +
                          ",\"rate_limit_per_minute\":" + std::to_string(kDrainRateLimitPerMinute) +
                          "}",
                      "", &reply);
    if (cs != 200 && cs != 204) Fatal(Fmt("double /__control: %d %s", cs, reply.c_str()));
  }

  Progress(Fmt("issue 4: draining %" PRId64 " records into the double (+%" PRId64 " ms per answer)",
               backlog, kStreamDelayMs));
  auto t0 = Clock::now();
  if (!s.Start({{"OFFBRAND_HTTP_THREADS", std::to_string(kServerThreads)},
                {"OFFBRAND_STREAM_API_KEY", kStreamKey},
                {"OFFBRAND_STREAM_API_SECRET", kStreamSecret},
                {"OFFBRAND_STREAM_APP_ID", "1"},
                {"OFFBRAND_STREAM_BASE_URL",
                 "http://127.0.0.1:" + std::to_string(double_port) + "/api/v1.0/"}})) {
    Fatal("server did not start with Stream keys");
  }
  admin = MakeClient(s.port());
  int64_t pending = backlog, in_flight = 0, dead = 0;
  std::string last_error;
  double drained_s = 0;
  for (;;) {
    st = HttpGet(*admin, "/api/v1/sync", tokens_.at("admin"), &sync_body);
    drained_s = Since(t0);
    if (st == 200) {
      pending = JsonU64(sync_body, "pending");
      in_flight = JsonU64(sync_body, "in_flight");
      dead = JsonU64(sync_body, "dead");
      last_error = JsonString(sync_body, "last_error");
      if (pending == 0) break;
    }
    if (drained_s * 1000 > kDrainTimeoutMs) break;
    usleep(20'000);
  }
  const int64_t sent = backlog - std::max<int64_t>(pending, 0);
  const double rate = drained_s > 0 ? static_cast<double>(sent) / drained_s : 0;
  std::string state;
  {
    auto c = MakeClient(double_port);
    HttpGet(*c, "/__state", "", &state);
  }
  const int64_t activities = JsonU64(state, "activity_count");
  std::string by_op;  // "activity.add 812, follow 1022, ..."
  {
    simdjson::dom::parser p;
    simdjson::dom::object ops;
    if (p.parse(state)["requests"].get(ops) == simdjson::SUCCESS) {
      for (auto field : ops) {
        uint64_t n = 0;
        if (field.value.get(n) != simdjson::SUCCESS) continue;
        by_op += (by_op.empty() ? "" : ", ") + std::string(field.key) + " " + std::to_string(n);
      }
    }
  }
  const int64_t requests = JsonU64(state, "total_requests");
  s.StopGracefully();
  Stop(dbl, SIGTERM, 5000);

  report_.Add("[4] outbox drain into the double, +50 ms per answer", Fmt("%.0f records/s", rate),
              ">= 1,000/s", Verdict(pending == 0 && rate >= 1000));
  report_.Note(Fmt("issue 4: backlog %" PRId64 " records (%" PRIu64 " collection creates = add + "
                   "Timeline follow each, %" PRIu64 " link adds, plus the accounts' user and "
                   "self-follow records); %s in %.2f s from exec (includes start-up); %.0f records/s "
                   "= %.0fx the naive one-request-per-record sender (%.0f/s)",
                   backlog, colls, colls * kBacklogLinksEach,
                   pending == 0 ? "drained" : Fmt("%" PRId64 " still pending", pending).c_str(),
                   drained_s, rate, rate / kNaiveRecordsPerS, kNaiveRecordsPerS));
  report_.Note(Fmt("issue 4: the double advertised X-Ratelimit-Limit %" PRId64 "/min per "
                   "endpoint (Stream's default is 1,000 for adds; this backlog needs ~1,020 add "
                   "requests, so at the default, add requests not yet started when Remaining "
                   "reaches 0 wait for the minute's reset)",
                   kDrainRateLimitPerMinute));
  report_.Note(Fmt("issue 4: double holds %" PRId64 " activities after %" PRId64
                   " API requests [%s] (%.1f records per request); dead letters %" PRId64
                   ", in flight %" PRId64 "%s",
                   activities, requests, by_op.c_str(),
                   requests > 0 ? static_cast<double>(sent) / static_cast<double>(requests) : 0.0,
                   dead, in_flight, last_error.empty() ? "" : (", last error: " + last_error).c_str()));
}

void Bench::BinarySize() {
  const std::string copy = Dir("offbrand-stripped");
  std::error_code ec;
  fs::copy_file(opt_.binary, copy, fs::copy_options::overwrite_existing, ec);
  struct stat orig {};
  stat(opt_.binary.c_str(), &orig);
  int st = ec ? -1 : RunToExit({"/usr/bin/strip", copy}, {}, Dir("strip.log"), 30'000);
  struct stat stripped {};
  if (st != 0 || stat(copy.c_str(), &stripped) != 0) {
    report_.Add("[6] stripped binary size", "n/a (strip failed)", "", "info");
    return;
  }
  report_.Add("[6] stripped binary size", Fmt("%.2f MiB", stripped.st_size / 1048576.0), "", "info");
  report_.Note(Fmt("issue 6 binary: %" PRId64 " bytes as built, %" PRId64 " bytes stripped "
                   "(dynamically linked against Debian's libraries)",
                   static_cast<int64_t>(orig.st_size), static_cast<int64_t>(stripped.st_size)));
}

std::string Header(const Options& opt) {
  struct statfs sfs {};
  std::string fs_note;
  if (statfs(opt.work.c_str(), &sfs) == 0) {
    const uint64_t magic = static_cast<uint64_t>(sfs.f_type);
    fs_note = magic == 0x01021994 ? "tmpfs (fsync is free: the write figures mean little)"
              : magic == 0xEF53   ? "ext2/3/4"
                                  : Fmt("fs magic 0x%" PRIx64, magic);
  }
  char when[64];
  time_t now = time(nullptr);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
  std::string load;
  std::ifstream("/proc/loadavg") >> load;
  return Fmt("offbrand benchmark, %s, %u cores (load average %s at start), data in %s (%s)", when,
             std::thread::hardware_concurrency(), load.c_str(), opt.work.c_str(), fs_note.c_str());
}

int Bench::Run() {
  auto t0 = Clock::now();
  std::error_code ec;
  fs::remove_all(opt_.work, ec);
  fs::create_directories(opt_.work);
  const std::string header = Header(opt_);
  printf("%s\n", header.c_str());
  if (opt_.only == "store") {
    StoreBaselines();
  } else if (opt_.only == "drain") {
    Seed();
    RunDrain();
  } else {
    Seed();
    RunMain();
    RunDrain();
    BinarySize();
  }
  report_.Note(Fmt("total run time %.0f s; load runs %.0f s each; %d connections; offbrand with "
                   "OFFBRAND_HTTP_THREADS=%d for the load runs",
                   Since(t0), opt_.seconds, kConnections, kServerThreads));
  const std::string text = report_.Render(header);
  printf("\n%s", text.c_str());
  if (opt_.only.empty() || opt_.out_given) {  // a partial run keeps the full results
    std::ofstream out(opt_.out);
    out << text;
    if (!out) fprintf(stderr, "offbrand_bench: cannot write %s\n", opt_.out.c_str());
    else printf("\n(written to %s)\n", opt_.out.c_str());
  }
  if (!opt_.keep) fs::remove_all(opt_.work, ec);
  return 0;
}

void Usage() {
  fprintf(stderr,
          "usage: offbrand_bench --binary PATH --double PATH [--work DIR] [--out FILE]\n"
          "                      [--seconds N] [--keep] [--only store|drain]\n"
          "  --work DIR   scratch data (default <binary dir>/bench-work; must not be tmpfs)\n"
          "  --out FILE   results file (default <binary dir>/bench-results.txt)\n"
          "  --seconds N  length of each load run (default 5)\n"
          "  --keep       keep the scratch data and logs\n"
          "  --only store run only the in-process store baselines (quick)\n"
          "  --only drain run only the issue 4 outbox drain (with the account seeding)\n");
}

}  // namespace
}  // namespace offbrand::bench

int main(int argc, char** argv) {
  using offbrand::bench::Options;
  namespace fs = std::filesystem;
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        offbrand::bench::Usage();
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--binary") opt.binary = value();
    else if (a == "--double") opt.double_binary = value();
    else if (a == "--work") opt.work = value();
    else if (a == "--out") {
      opt.out = value();
      opt.out_given = true;
    }
    else if (a == "--seconds") opt.seconds = std::atof(value().c_str());
    else if (a == "--keep") opt.keep = true;
    else if (a == "--only") opt.only = value();
    else {
      offbrand::bench::Usage();
      return 2;
    }
  }
  if (opt.binary.empty() || opt.double_binary.empty() || opt.seconds <= 0) {
    offbrand::bench::Usage();
    return 2;
  }
  std::error_code ec;
  opt.binary = fs::absolute(opt.binary, ec).string();
  opt.double_binary = fs::absolute(opt.double_binary, ec).string();
  const std::string bin_dir = fs::path(opt.binary).parent_path().string();
  if (opt.work.empty()) opt.work = bin_dir + "/bench-work";
  if (opt.out.empty()) opt.out = bin_dir + "/bench-results.txt";
  opt.work = fs::absolute(opt.work, ec).string();
  signal(SIGPIPE, SIG_IGN);
  return offbrand::bench::Bench(opt).Run();
}
