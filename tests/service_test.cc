// Proves offbrand runs as a long-lived service: SIGTERM/SIGINT during a burst
// of writes exit 0 with every acknowledged write durable and no reply lost, a
// hot backup taken during writes restores into a working server, `offbrand
// check` passes on healthy data and names the broken invariant otherwise, a
// newer schema is refused and an older one migrated, /healthz /readyz
// /metrics report real state, and systemd hears READY=1, STATUS= and
// WATCHDOG=1 on $NOTIFY_SOCKET. Most cases drive the real binary.
#define BOOST_TEST_MODULE service_test
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "collections.h"
#include "offbrand/model.h"
#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "ops.h"
#include "test_support.h"

namespace offbrand::test {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kApi = "/api/v1";
const std::string kAdminName = "admin";
const std::string kAdminEmail = "admin@example.com";
const std::string kAdminPassword = "correct horse battery staple";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::map<std::string, std::string> DataEnv(const std::string& data_dir) {
  return {{"OFFBRAND_DATA_DIR", data_dir}, {"OFFBRAND_LOG_LEVEL", "warning"}};
}

std::unique_ptr<Store> OpenStoreAt(const std::string& dir) {
  StoreOptions options;
  options.dir = dir;
  options.map_size_bytes = 16ull << 20;
  auto store = Store::Open(options);
  BOOST_REQUIRE_MESSAGE(store.ok(), "Store::Open " << dir << ": " << store.status().ToString());
  return std::move(*store);
}

// Creates the confirmed administrator through the CLI (works with or without
// a server running on the dir).
void CreateAdminWithCli(const TempDir& tmp, const std::string& data_dir) {
  const std::string password_file = tmp.Sub("admin-password");
  {
    std::ofstream f(password_file);
    f << kAdminPassword << "\n";
  }
  std::string out;
  int rc = RunCli({"user", "create", "--username", kAdminName, "--email", kAdminEmail, "--admin",
                   "--password-file", password_file},
                  DataEnv(data_dir), &out);
  BOOST_REQUIRE_MESSAGE(rc == 0, "offbrand user create: exit " << rc << ": " << out);
}

std::string Login(const TestApi& api) {
  HttpReply r = api.Post(kApi + "/auth/login", R"({"email":")" + kAdminEmail +
                                                   R"(","password":")" + kAdminPassword + R"("})");
  BOOST_REQUIRE_MESSAGE(r.status == 200, "login: " << r.status << " " << r.body);
  return r.json().at("token").str();
}

// Every collection name of `author`, through the paginated list.
std::set<std::string> CollectionNames(const TestApi& api, const std::string& author) {
  std::set<std::string> names;
  std::string cursor;
  for (int page = 0; page < 10'000; ++page) {
    std::string path = kApi + "/collections?author=" + author + "&limit=100";
    if (!cursor.empty()) path += "&cursor=" + cursor;
    HttpReply r = api.Get(path);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "list collections: " << r.status << " " << r.body);
    Json j = r.json();
    Json items = j.at("items");
    for (size_t i = 0; i < items.size(); ++i) names.insert(items.at(i).at("name").str());
    if (!j.has("next") || j.at("next").is_null()) break;
    cursor = j.at("next").str();
  }
  return names;
}

size_t CountOccurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// ---- a burst of durable writes from several client threads ---------------------

// What the clients saw, by kind of outcome. A request is "refused" when no
// connection could be made (the listener is gone: fine during shutdown) and
// "cut" when a connection was made but no reply came back.
struct BurstOutcome {
  std::set<std::string> acked;     // 201 received: must be durable
  std::set<std::string> rejected;  // a non-2xx reply: must not be stored
  std::set<std::string> refused;
  std::set<std::string> cut;
  std::vector<std::string> cut_errors;
};

// Client threads creating collections (one durable write each) with fresh
// connections until Stop() or until the server stops answering.
class WriteBurst {
 public:
  WriteBurst(int port, std::string token, std::string prefix, int threads)
      : port_(port), token_(std::move(token)), prefix_(std::move(prefix)) {
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { Run(t); });
  }
  ~WriteBurst() { Join(); }

  uint64_t acked_count() const { return acked_count_.load(); }
  // Names acknowledged so far (a snapshot).
  std::set<std::string> AckedSoFar() {
    std::lock_guard<std::mutex> lock(mu_);
    return outcome_.acked;
  }
  void Stop() { stop_ = true; }
  BurstOutcome Join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    std::lock_guard<std::mutex> lock(mu_);
    return outcome_;
  }

 private:
  void Run(int t) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int i = 0; !stop_ && std::chrono::steady_clock::now() < deadline; ++i) {
      const std::string name = prefix_ + "-" + std::to_string(t) + "-" + std::to_string(i);
      httplib::Client cli("127.0.0.1", port_);
      cli.set_connection_timeout(2, 0);
      cli.set_read_timeout(20, 0);
      cli.set_write_timeout(5, 0);
      httplib::Headers headers = {{"Authorization", "Bearer " + token_}};
      auto res = cli.Post((kApi + "/collections").c_str(), headers,
                          R"({"name":")" + name + R"(","description":"burst"})",
                          "application/json");
      std::lock_guard<std::mutex> lock(mu_);
      if (res && res->status == 201) {
        outcome_.acked.insert(name);
        acked_count_++;
      } else if (res) {
        outcome_.rejected.insert(name);
      } else if (res.error() == httplib::Error::Connection) {
        outcome_.refused.insert(name);
        return;  // the listener is closed: the server is going away
      } else {
        outcome_.cut.insert(name);
        outcome_.cut_errors.push_back(httplib::to_string(res.error()));
        return;
      }
    }
  }

  const int port_;
  const std::string token_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_count_{0};
  std::mutex mu_;
  BurstOutcome outcome_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

void WaitForAcks(const WriteBurst& burst, uint64_t n) {
  for (int i = 0; i < 600 && burst.acked_count() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_REQUIRE_MESSAGE(burst.acked_count() >= n,
                        "only " << burst.acked_count() << " writes acknowledged in 30 s");
}

// Signal `sig` in the middle of a write burst: exit 0, then after a restart
// exactly the acknowledged writes are there, and the server's request log
// shows no request that was answered without its client getting the reply.
void StopDuringWriteBurst(int sig) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  CreateAdminWithCli(tmp, data);
  BurstOutcome outcome;
  std::string first_log;
  {
    ServerProcess server(data);
    server.Start();
    const std::string token = Login(server.api());
    WriteBurst burst(server.port(), token, "burst", 4);
    WaitForAcks(burst, 40);
    server.Kill(sig);
    outcome = burst.Join();
    const int status = server.Wait();
    first_log = server.log();
    BOOST_TEST_MESSAGE("signal " << sig << ": acked " << outcome.acked.size() << ", rejected "
                                 << outcome.rejected.size() << ", refused "
                                 << outcome.refused.size() << ", cut " << outcome.cut.size());
    BOOST_CHECK_MESSAGE(status == 0, "exit status " << status << " after signal " << sig
                                                    << "; log:\n" << first_log);
  }
  BOOST_CHECK(outcome.rejected.empty());

  // Every request the server answered was answered to its client: the
  // request log counts exactly the replies the clients received.
  // (ServerProcess runs at OFFBRAND_LOG_LEVEL=info, which logs requests.)
  const size_t answered = CountOccurrences(first_log, "POST /api/v1/collections ");
  BOOST_CHECK_EQUAL(answered, outcome.acked.size() + outcome.rejected.size());

  ServerProcess again(data);
  again.Start();
  const std::set<std::string> stored = CollectionNames(again.api(), kAdminName);
  for (const std::string& name : outcome.acked) {
    BOOST_CHECK_MESSAGE(stored.count(name) == 1, "acknowledged write " << name << " was lost");
  }
  for (const std::string& name : stored) {
    BOOST_CHECK_MESSAGE(outcome.acked.count(name) == 1,
                        "write " << name << " was committed but its client never got the reply");
  }
  // No request was cut: the server stops accepting first, then serves
  // every request that arrives on an open connection with Connection:
  // close (src/http_connections.h, shutdown drains), so the clients' next
  // attempts are refused connections, never resets after a request.
  BOOST_CHECK_EQUAL(outcome.cut.size(), 0u);
  again.Kill(SIGTERM);
  BOOST_CHECK_EQUAL(again.Wait(), 0);
}

// Runs `offbrand serve` with `env` for at most `timeout_ms`; returns its exit
// status (-1 when it had to be killed) and its output.
int RunServeBriefly(const TempDir& tmp, const std::map<std::string, std::string>& env,
                    int timeout_ms, std::string* output) {
  const std::string out_path = tmp.Sub("serve.out");
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("OFFBRAND_", 0) == 0 || kv.rfind("NOTIFY_SOCKET=", 0) == 0) continue;
    env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string binary = OFFBRAND_BINARY, serve = "serve";
  char* argv[] = {binary.data(), serve.data(), nullptr};

  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  int status = 0, rc = -1;
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (rc == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  std::ifstream in(out_path);
  std::stringstream ss;
  ss << in.rdbuf();
  *output = ss.str();
  return rc;
}

// A unix datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    BOOST_REQUIRE(path.size() < sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    BOOST_REQUIRE_MESSAGE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
                          "bind " << path << ": " << strerror(errno));
    timeval tv{0, 100'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  // Collects messages until one contains `needle` or `timeout_ms` passes.
  bool WaitFor(const std::string& needle, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      for (const auto& m : messages_) {
        if (Contains(m, needle)) return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
    }
  }
  std::string All() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m + "] ";
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> messages_;
};

// Parses the value of one un-labelled or labelled series line of /metrics;
// -1 when absent.
double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// A data dir with users, a collection with links and follows, written by the
// real domain code through an in-process server.
void Populate(const std::string& dir) {
  TestServer server(dir);
  TestApi api = server.api();
  const std::string alice = server.SignUp("alice");
  const std::string bob = server.SignUp("bob");
  HttpReply c = api.Post(kApi + "/collections", R"({"name":"reading","description":"things"})",
                         alice);
  BOOST_REQUIRE_MESSAGE(c.status == 201, "create collection: " << c.status << " " << c.body);
  const std::string cid = std::to_string(c.json().at("id").num());
  for (int i = 0; i < 3; ++i) {
    HttpReply r = api.Post(kApi + "/collections/" + cid + "/items",
                           R"({"url":"https://example.com/)" + std::to_string(i) +
                               R"(","title":"link )" + std::to_string(i) + R"("})",
                           alice);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "add item: " << r.status << " " << r.body);
  }
  HttpReply f = api.Put(kApi + "/users/alice/follow", "{}", bob);
  BOOST_REQUIRE_MESSAGE(f.status / 100 == 2, "follow user: " << f.status << " " << f.body);
  HttpReply fc = api.Put(kApi + "/collections/" + cid + "/follow", "{}", bob);
  BOOST_REQUIRE_MESSAGE(fc.status / 100 == 2, "follow collection: " << fc.status << " " << fc.body);
}

// Copies `golden` (through an LMDB backup) into `dir`, applies `corrupt` and
// returns CheckInvariants' verdict and report.
Status CorruptAndCheck(Store& golden, const std::string& dir,
                       const std::function<Status(WriteTxn&)>& corrupt, std::string* report) {
  Status b = golden.Backup(dir);
  BOOST_REQUIRE_MESSAGE(b.ok(), b.ToString());
  auto store = OpenStoreAt(dir);
  Status w = store->WriteDirect(corrupt);
  BOOST_REQUIRE_MESSAGE(w.ok(), "corrupting: " << w.ToString());
  return CheckInvariants(*store, report);
}

// The first key of `db`, copied.
std::string FirstKey(Store& store, Db db) {
  auto txn = store.BeginRead();
  BOOST_REQUIRE(txn.ok());
  Cursor c = (*txn)->OpenCursor(db);
  BOOST_REQUIRE_MESSAGE(c.First(), DbName(db) << " is empty");
  return std::string(c.key());
}

}  // namespace

// ---- schema ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(NewStoreIsStampedWithTheCurrentSchema) {
  TempDir tmp;
  auto store = OpenStoreAt(tmp.path());
  Status s = CheckAndMigrateSchema(*store);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  BOOST_CHECK_EQUAL(SchemaVersion(**txn), kSchemaVersion);
}

BOOST_AUTO_TEST_CASE(UnversionedStoreWithDataIsMigratedAndKeepsItsRows) {
  TempDir tmp;
  auto store = OpenStoreAt(tmp.path());
  Status w = store->Write([](WriteTxn& txn) {
    return txn.Put(Db::kUsersByName, "someone", U64Key(1));
  });
  BOOST_REQUIRE(w.ok());
  {
    auto txn = store->BeginRead();
    BOOST_REQUIRE_EQUAL(SchemaVersion(**txn), 0u);
  }
  Status s = CheckAndMigrateSchema(*store);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  auto txn = store->BeginRead();
  BOOST_CHECK_EQUAL(SchemaVersion(**txn), kSchemaVersion);
  BOOST_CHECK((*txn)->Has(Db::kUsersByName, "someone"));
}

// A v1 store keyed its duplicate-url index by collection id + raw url; the
// v1 -> v2 step rebuilds it from the item rows.
BOOST_AUTO_TEST_CASE(VersionOneUrlIndexIsRebuiltByTheMigration) {
  TempDir tmp;
  const std::string dir = tmp.Sub("data");
  Populate(dir);  // 3 links, written at the current version
  auto store = OpenStoreAt(dir);
  Status w = store->Write([](WriteTxn& txn) -> Status {
    std::vector<std::string> keys;
    std::vector<Item> items;
    {
      Cursor c = txn.OpenCursor(Db::kItemUrls);
      for (bool ok = c.First(); ok; ok = c.Next()) keys.emplace_back(c.key());
      Cursor i = txn.OpenCursor(Db::kItems);
      for (bool ok = i.First(); ok; ok = i.Next()) {
        Item item;
        if (!DecodeItem(i.value(), &item)) return Status::Internal("item does not decode");
        items.push_back(item);
      }
    }
    for (const std::string& k : keys) {
      if (Status s = txn.Del(Db::kItemUrls, k); !s.ok()) return s;
    }
    for (const Item& item : items) {  // the v1 layout
      if (Status s = txn.Put(Db::kItemUrls, U64Key(item.collection_id) + item.url, U64Key(item.id));
          !s.ok()) {
        return s;
      }
    }
    return txn.Put(Db::kMeta, "schema_version", U64Key(1));
  });
  BOOST_REQUIRE_MESSAGE(w.ok(), w.ToString());
  std::string report;
  BOOST_REQUIRE(!CheckInvariants(*store, &report).ok());  // v1 keys are not v2 keys

  Status s = CheckAndMigrateSchema(*store);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  report.clear();
  s = CheckInvariants(*store, &report);
  BOOST_CHECK_MESSAGE(s.ok(), report);
  auto txn = store->BeginRead();
  BOOST_CHECK_EQUAL(SchemaVersion(**txn), kSchemaVersion);
  BOOST_CHECK_EQUAL((*txn)->Count(Db::kItemUrls), 3u);
  Cursor c = (*txn)->OpenCursor(Db::kItemUrls);
  for (bool ok = c.First(); ok; ok = c.Next()) BOOST_CHECK_EQUAL(c.key().size(), kItemUrlKeyBytes);
}

BOOST_AUTO_TEST_CASE(NewerSchemaIsRefusedWithAClearMessageAndLeftUntouched) {
  TempDir tmp;
  auto store = OpenStoreAt(tmp.path());
  Status w = store->Write([](WriteTxn& txn) {
    return txn.Put(Db::kMeta, "schema_version", U64Key(kSchemaVersion + 1));
  });
  BOOST_REQUIRE(w.ok());
  Status s = CheckAndMigrateSchema(*store);
  BOOST_REQUIRE(!s.ok());
  BOOST_CHECK(s.code() == Status::Code::kUnavailable);
  BOOST_CHECK_MESSAGE(Contains(s.message(), "has schema " + std::to_string(kSchemaVersion + 1)),
                      s.message());
  BOOST_CHECK_MESSAGE(Contains(s.message(), "supports up to " + std::to_string(kSchemaVersion)),
                      s.message());
  BOOST_CHECK_MESSAGE(Contains(s.message(), "upgrade offbrand"), s.message());
  auto txn = store->BeginRead();
  BOOST_CHECK_EQUAL(SchemaVersion(**txn), kSchemaVersion + 1);
}

BOOST_AUTO_TEST_CASE(ServeRefusesADataDirWithANewerSchema) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  {
    auto store = OpenStoreAt(data);
    Status w = store->Write([](WriteTxn& txn) {
      return txn.Put(Db::kMeta, "schema_version", U64Key(kSchemaVersion + 1));
    });
    BOOST_REQUIRE(w.ok());
  }
  std::string out;
  std::map<std::string, std::string> env = DataEnv(data);
  env["OFFBRAND_LISTEN"] = "127.0.0.1:" + std::to_string(FreePort());
  const int rc = RunServeBriefly(tmp, env, 20'000, &out);
  BOOST_CHECK_MESSAGE(rc > 0 && rc < 128, "offbrand serve exit " << rc << "; output: " << out);
  BOOST_CHECK_MESSAGE(Contains(out, "upgrade offbrand"), out);
  BOOST_CHECK_MESSAGE(Contains(out, "has schema " + std::to_string(kSchemaVersion + 1)), out);
}

BOOST_AUTO_TEST_CASE(ReadOnlyCommandsRefuseANewerSchemaToo) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  {
    auto store = OpenStoreAt(data);
    Status w = store->Write([](WriteTxn& txn) {
      return txn.Put(Db::kMeta, "schema_version", U64Key(kSchemaVersion + 1));
    });
    BOOST_REQUIRE(w.ok());
  }
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"outbox", "status"}, {"outbox", "list"},
        {"backup", tmp.Sub("copy")}, {"check"}}) {
    std::string out;
    const int rc = RunCli(cmd, DataEnv(data), &out);
    BOOST_CHECK_MESSAGE(rc != 0, cmd[0] << " exit " << rc);
    BOOST_CHECK_MESSAGE(Contains(out, "upgrade offbrand"), cmd[0] << ": " << out);
  }
}

// ---- invariants -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(CheckInvariantsPassesOnDataWrittenByTheServer) {
  TempDir tmp;
  Populate(tmp.path());
  auto store = OpenStoreAt(tmp.path());
  std::string report;
  Status s = CheckInvariants(*store, &report);
  BOOST_CHECK_MESSAGE(s.ok(), s.ToString() << "\n" << report);
  BOOST_CHECK_MESSAGE(Contains(report, "checked 2 users, 1 collections, 3 links"), report);
  BOOST_CHECK_MESSAGE(Contains(report, ": 0 problems"), report);
}

BOOST_AUTO_TEST_CASE(CheckInvariantsNamesEachKindOfBrokenInvariant) {
  TempDir tmp;
  const std::string golden_dir = tmp.Sub("golden");
  Populate(golden_dir);
  auto golden = OpenStoreAt(golden_dir);
  {
    std::string report;
    BOOST_REQUIRE_MESSAGE(CheckInvariants(*golden, &report).ok(), report);
  }

  struct Case {
    const char* what;
    std::function<Status(WriteTxn&)> corrupt;
    std::vector<std::string> expect;  // substrings of the report
  };
  const std::string follow_key = FirstKey(*golden, Db::kFollowers);
  const std::string collection_key = FirstKey(*golden, Db::kCollections);
  const std::string item_url_key = FirstKey(*golden, Db::kItemUrls);
  const std::string cf_key = FirstKey(*golden, Db::kCollectionFollows);
  const std::vector<Case> cases = {
      {"username index entry deleted",
       [](WriteTxn& txn) { return txn.Del(Db::kUsersByName, "alice"); },
       {"users_by_name: missing entry \"alice\""}},
      {"email index points to a missing user",
       [](WriteTxn& txn) { return txn.Put(Db::kUsersByEmail, "ghost@example.com", U64Key(999)); },
       {"users_by_email: entry \"ghost@example.com\" points to missing user 999"}},
      {"follower mirror deleted",
       [&](WriteTxn& txn) { return txn.Del(Db::kFollowers, follow_key); },
       {"followers: missing mirror"}},
      {"collection follower mirror deleted",
       [&](WriteTxn& txn) {
         return txn.Del(Db::kCollectionFollowers,
                        U64PairKey(GetU64BE(std::string_view(cf_key).substr(8)),
                                   GetU64BE(cf_key)));
       },
       {"collection_followers: missing mirror"}},
      {"collection row deleted under its items",
       [&](WriteTxn& txn) { return txn.Del(Db::kCollections, collection_key); },
       {"belongs to missing collection", "collections_by_author", "collection_follows"}},
      {"item url index deleted",
       [&](WriteTxn& txn) { return txn.Del(Db::kItemUrls, item_url_key); },
       {"item_urls: missing entry for item"}},
      {"garbage outbox record",
       [](WriteTxn& txn) { return txn.Put(Db::kOutbox, U64Key(1ull << 40), "garbage"); },
       {"outbox: record 1099511627776 does not decode"}},
      {"outbox record for a link that was never created",
       [](WriteTxn& txn) {
         OutboxRecord rec;
         rec.op = OutboxOp::kActivityRemove;
         rec.feed_group = "Collections";
         rec.feed_id = "1";
         rec.foreign_id = "Content:999999";
         rec.entity = rec.foreign_id;
         return EnqueueOutbox(txn, &rec);
       },
       {"Content:999999 was never created"}},
      {"id counter behind the rows",
       [](WriteTxn& txn) { return txn.Put(Db::kMeta, "next_id:user", U64Key(1)); },
       {"next_id:user is 1", "ids would be reused"}},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::string report;
    Status s = CorruptAndCheck(*golden, tmp.Sub("case" + std::to_string(n++)), c.corrupt, &report);
    BOOST_CHECK_MESSAGE(!s.ok(), c.what << ": check passed; report:\n" << report);
    for (const std::string& e : c.expect) {
      BOOST_CHECK_MESSAGE(Contains(report, e), c.what << ": report lacks '" << e << "':\n"
                                                      << report);
    }
    BOOST_CHECK_MESSAGE(!Contains(report, ": 0 problems"), c.what << ":\n" << report);
  }
}

// ---- the real binary ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(VersionAndServeHelpSucceed) {
  std::string out;
  BOOST_CHECK_EQUAL(RunCli({"version"}, {}, &out), 0);
  BOOST_CHECK_MESSAGE(Contains(out, "offbrand "), out);
  out.clear();
  BOOST_CHECK_EQUAL(RunCli({"serve", "--help"}, {}, &out), 0);
  BOOST_CHECK_MESSAGE(Contains(out, "serve"), out);
}

BOOST_AUTO_TEST_CASE(SigtermDuringAWriteBurstExitsZeroAndKeepsEveryAcknowledgedWrite) {
  StopDuringWriteBurst(SIGTERM);
}

BOOST_AUTO_TEST_CASE(SigintDuringAWriteBurstExitsZeroAndKeepsEveryAcknowledgedWrite) {
  StopDuringWriteBurst(SIGINT);
}

BOOST_AUTO_TEST_CASE(BackupDuringWritesRestoresIntoAWorkingServer) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  const std::string backup = tmp.Sub("backup");
  const std::string restored = tmp.Sub("restored");
  CreateAdminWithCli(tmp, data);
  // A generated secret key, as `offbrand serve` writes one when
  // OFFBRAND_SECRET_KEY is unset (the test servers set it, so write it here).
  {
    std::ofstream key(data + "/secret_key");
    key << "generated-secret-key-of-this-data-dir\n";
  }
  std::set<std::string> before_backup;
  BurstOutcome outcome;
  {
    ServerProcess server(data);
    server.Start();
    WriteBurst burst(server.port(), Login(server.api()), "bk", 3);
    WaitForAcks(burst, 30);
    before_backup = burst.AckedSoFar();
    std::string out;
    const int rc = RunCli({"backup", backup}, DataEnv(data), &out);
    BOOST_REQUIRE_MESSAGE(rc == 0, "offbrand backup: exit " << rc << ": " << out);
    // The copy holds password and session hashes: owner-only, like the
    // data file. The generated secret key travels with it.
    struct stat st;
    BOOST_REQUIRE(stat((backup + "/data.mdb").c_str(), &st) == 0);
    BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
    BOOST_REQUIRE(stat((backup + "/secret_key").c_str(), &st) == 0);
    BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
    BOOST_CHECK(ReadFile(backup + "/secret_key") == ReadFile(data + "/secret_key"));
    const uint64_t at_backup = burst.acked_count();
    // Writes kept flowing while the copy was taken.
    WaitForAcks(burst, at_backup + 10);
    burst.Stop();
    outcome = burst.Join();
    server.Kill(SIGTERM);
    BOOST_CHECK_EQUAL(server.Wait(), 0);
  }

  // Restore = copy the backup as a new data dir.
  std::filesystem::copy(backup, restored, std::filesystem::copy_options::recursive);
  std::string out;
  BOOST_CHECK_MESSAGE(RunCli({"check"}, DataEnv(restored), &out) == 0,
                      "offbrand check on the restored copy:\n" << out);
  ServerProcess server(restored);
  server.Start();
  const std::string token = Login(server.api());  // the admin user is there
  HttpReply me = server.api().Get(kApi + "/me", token);
  BOOST_CHECK_EQUAL(me.status, 200);
  const std::set<std::string> stored = CollectionNames(server.api(), kAdminName);
  for (const std::string& name : before_backup) {
    BOOST_CHECK_MESSAGE(stored.count(name) == 1, name << " was acknowledged before the backup "
                                                         "started but is not in it");
  }
  for (const std::string& name : stored) {
    BOOST_CHECK_MESSAGE(outcome.acked.count(name) + outcome.cut.count(name) == 1,
                        name << " is in the backup but was never written");
  }
  BOOST_TEST_MESSAGE("backup: " << before_backup.size() << " acked before, " << stored.size()
                                << " in the copy, " << outcome.acked.size() << " acked in all");
  server.Kill(SIGTERM);
  BOOST_CHECK_EQUAL(server.Wait(), 0);
}

BOOST_AUTO_TEST_CASE(CheckCommandPassesOnAHealthyDirAndFailsOnABrokenIndex) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  CreateAdminWithCli(tmp, data);
  {
    ServerProcess server(data);
    server.Start();
    const std::string token = Login(server.api());
    HttpReply r = server.api().Post(kApi + "/collections",
                                    R"({"name":"links","description":"mine"})", token);
    BOOST_REQUIRE_MESSAGE(r.status == 201, r.status << " " << r.body);
    std::string out;
    // `check` runs next to the server (LMDB is multi-process safe).
    BOOST_CHECK_MESSAGE(RunCli({"check"}, DataEnv(data), &out) == 0, "check failed:\n" << out);
    BOOST_CHECK_MESSAGE(Contains(out, "0 problems"), out);
    server.Kill(SIGTERM);
    BOOST_CHECK_EQUAL(server.Wait(), 0);
  }
  {
    auto store = OpenStoreAt(data);
    Status s = store->WriteDirect([](WriteTxn& txn) {
      return txn.Del(Db::kUsersByName, kAdminName);
    });
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  std::string out;
  const int rc = RunCli({"check"}, DataEnv(data), &out);
  BOOST_CHECK_NE(rc, 0);
  BOOST_CHECK_MESSAGE(Contains(out, "users_by_name: missing entry \"admin\""), out);
  BOOST_CHECK_MESSAGE(Contains(out, "1 problem"), out);
}

BOOST_AUTO_TEST_CASE(HealthReadinessAndMetricsReportRealState) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  CreateAdminWithCli(tmp, data);
  ServerProcess server(data);
  server.Start();
  TestApi api = server.api();

  HttpReply h = api.Get("/healthz");
  BOOST_CHECK_EQUAL(h.status, 200);
  BOOST_CHECK_EQUAL(h.json().at("status").str(), "ok");
  HttpReply r = api.Get("/readyz");
  BOOST_CHECK_EQUAL(r.status, 200);
  BOOST_CHECK_EQUAL(r.json().at("status").str(), "ok");
  BOOST_CHECK_EQUAL(r.json().at("sync").at("configured").boolean(), false);
  // Not configured: the engine says why nothing is sent (or null).
  BOOST_CHECK(r.json().at("sync").has("paused_reason"));
  BOOST_CHECK(!r.json().has("detail"));
  BOOST_CHECK_EQUAL(api.Get(kApi + "/healthz").status, 404);  // no /api/v1 prefix

  HttpReply m1 = api.Get("/metrics");
  BOOST_REQUIRE_EQUAL(m1.status, 200);
  BOOST_CHECK_MESSAGE(Contains(m1.header("Content-Type"), "text/plain"), m1.header("Content-Type"));
  for (const char* series :
       {"offbrand_outbox_depth ", "offbrand_outbox_oldest_age_seconds ",
        "offbrand_sync_sends_total{outcome=\"ok\"} ", "offbrand_sync_sends_total{outcome=\"retry\"} ",
        "offbrand_sync_sends_total{outcome=\"dead\"} ",
        "offbrand_sync_sends_total{outcome=\"compacted\"} ", "offbrand_dead_letters ",
        "offbrand_lmdb_map_used_bytes ", "offbrand_lmdb_map_size_bytes ",
        "offbrand_store_commits_total ", "offbrand_store_writes_total ",
        "# TYPE offbrand_outbox_depth gauge", "# TYPE offbrand_store_writes_total counter",
        "offbrand_http_requests_total{route=\"ops.readyz\",status=\"200\"} "}) {
    BOOST_CHECK_MESSAGE(Contains(m1.body, series), "missing " << series << " in:\n" << m1.body);
  }
  BOOST_CHECK_GT(MetricValue(m1.body, "offbrand_lmdb_map_size_bytes"), 0);
  const double depth1 = MetricValue(m1.body, "offbrand_outbox_depth");
  const double writes1 = MetricValue(m1.body, "offbrand_store_writes_total");

  const std::string token = Login(api);
  for (int i = 0; i < 3; ++i) {
    HttpReply c = api.Post(kApi + "/collections",
                           R"({"name":"m)" + std::to_string(i) + R"(","description":"d"})", token);
    BOOST_REQUIRE_EQUAL(c.status, 201);
  }
  HttpReply m2 = api.Get("/metrics");
  BOOST_REQUIRE_EQUAL(m2.status, 200);
  // Stream is not configured: each collection's activity waits in the outbox.
  BOOST_CHECK_GE(MetricValue(m2.body, "offbrand_outbox_depth"), depth1 + 3);
  BOOST_CHECK_GE(MetricValue(m2.body, "offbrand_store_writes_total"), writes1 + 4);
  BOOST_CHECK_GE(MetricValue(m2.body, "offbrand_store_commits_total"), 1);
  BOOST_CHECK_MESSAGE(
      Contains(m2.body, "offbrand_http_requests_total{route=\"collections.create\",status=\"201\"} 3"),
      m2.body);
  BOOST_CHECK_MESSAGE(
      Contains(m2.body, "offbrand_http_requests_total{route=\"ops.metrics\",status=\"200\"} 1"),
      m2.body);
  server.Kill(SIGTERM);
  BOOST_CHECK_EQUAL(server.Wait(), 0);
}

BOOST_AUTO_TEST_CASE(SystemdHearsReadyStatusWatchdogAndStopping) {
  TempDir tmp;
  const std::string data = tmp.Sub("data");
  NotifySocket notify(tmp.Sub("notify.sock"));
  // WATCHDOG_USEC without WATCHDOG_PID: sd_watchdog_enabled accepts it, so
  // the server pings every half second.
  ServerProcess server(data, {{"NOTIFY_SOCKET", tmp.Sub("notify.sock")},
                              {"WATCHDOG_USEC", "1000000"}});
  server.Start();
  BOOST_CHECK_MESSAGE(notify.WaitFor("READY=1", 5'000), "no READY=1: " << notify.All());
  BOOST_CHECK_MESSAGE(notify.WaitFor("STATUS=", 15'000), "no STATUS=: " << notify.All());
  BOOST_CHECK_MESSAGE(notify.WaitFor("outbox", 1), "STATUS= lacks the outbox: " << notify.All());
  BOOST_CHECK_MESSAGE(notify.WaitFor("WATCHDOG=1", 5'000), "no WATCHDOG=1: " << notify.All());
  server.Kill(SIGTERM);
  BOOST_CHECK_EQUAL(server.Wait(), 0);
  BOOST_CHECK_MESSAGE(notify.WaitFor("STOPPING=1", 2'000), "no STOPPING=1: " << notify.All());
}

BOOST_AUTO_TEST_CASE(ServerRunsWithoutSystemd) {
  TempDir tmp;
  ServerProcess server(tmp.Sub("data"));  // no NOTIFY_SOCKET in its environment
  server.Start();
  BOOST_CHECK_EQUAL(server.api().Get("/readyz").status, 200);
  server.Kill(SIGTERM);
  BOOST_CHECK_EQUAL(server.Wait(), 0);
}

}  // namespace offbrand::test
