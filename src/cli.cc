// The offbrand command line.
#include "cli.h"

#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "accounts.h"
#include "app.h"
#include "crypto.h"
#include "offbrand/log.h"
#include "offbrand/outbox.h"
#include "ops.h"
#include "sync_engine.h"
#include "users_db.h"

namespace offbrand {

namespace {

const char kUsage[] =
    "usage: offbrand [--config FILE] COMMAND\n"
    "\n"
    "commands:\n"
    "  serve                      run the server (see: offbrand serve --help)\n"
    "  user create --username U --email E [--admin] [--password-file F]\n"
    "                             create a confirmed user (password from F's first line,\n"
    "                             else from standard input)\n"
    "  user confirm USERNAME      confirm a user without mail\n"
    "  outbox status              pending and dead counts, oldest pending age\n"
    "  outbox list [--dead] [--limit N]\n"
    "                             print outbox (or dead-letter) records as JSON lines\n"
    "  outbox retry ID            move dead letter ID back into the outbox\n"
    "  outbox drop ID             delete dead letter ID\n"
    "  backup DEST                consistent compacted hot copy of the data into DEST\n"
    "  check                      verify the database invariants\n"
    "  version                    print the version\n";

const char kServeHelp[] =
    "usage: offbrand serve [--config FILE]\n"
    "\n"
    "Serves the HTTP API. Configuration comes from OFFBRAND_* environment variables,\n"
    "or from FILE (lines of OFFBRAND_NAME=value, the format of systemd's\n"
    "EnvironmentFile=); the environment wins. Main settings:\n"
    "  OFFBRAND_LISTEN            host:port (127.0.0.1:8080)\n"
    "  OFFBRAND_DATA_DIR          LMDB data directory (./data)\n"
    "  OFFBRAND_PUBLIC_URL        base URL used in mailed links\n"
    "  OFFBRAND_ADMIN_EMAIL       this account becomes Administrator\n"
    "  OFFBRAND_STREAM_API_KEY, OFFBRAND_STREAM_API_SECRET[_FILE], OFFBRAND_STREAM_APP_ID\n"
    "                             Stream credentials; without them the outbox waits\n"
    "  OFFBRAND_SMTP_URL, OFFBRAND_SMTP_FROM   mail; without them links are logged\n"
    "  OFFBRAND_LOG_LEVEL         debug, info, warning, error\n"
    "Signals: SIGTERM/SIGINT stop gracefully; SIGHUP logs the sync status and\n"
    "flushes last_seen (configuration is not reloaded: restart to change it).\n";

int Fail(const std::string& message) {
  fprintf(stderr, "offbrand: %s\n", message.c_str());
  return 1;
}

// Opens the store of the configured data dir for a CLI command.
Result<std::unique_ptr<Store>> OpenStore(const Config& config, bool read_only) {
  StoreOptions options;
  options.dir = config.data_dir;
  options.read_only = read_only;
  options.map_size_bytes = config.map_size_bytes;
  auto store = Store::Open(options);
  if (!store.ok()) return store;
  if (!read_only) {
    Status s = CheckAndMigrateSchema(**store);
    if (!s.ok()) return s;
    return store;
  }
  // A read-only command never migrates, but must not misread a layout it
  // does not know either.
  Status s = CheckSchemaReadable(**store);
  if (!s.ok()) return s;
  return store;
}

// `offbrand backup DEST`: the compacted LMDB copy plus the generated
// secret_key (which signs mailed links), so that DEST is a whole data dir.
int Backup(const Config& config, const std::string& dest) {
  auto store = OpenStore(config, true);
  if (!store.ok()) return Fail(store.status().message());
  Status s = (*store)->Backup(dest);
  if (!s.ok()) return Fail(s.message());
  const std::string key_path = config.data_dir + "/secret_key";
  std::ifstream key_in(key_path, std::ios::binary);
  if (key_in) {
    const mode_t old_mask = umask(077);
    std::ofstream key_out(dest + "/secret_key", std::ios::binary | std::ios::trunc);
    key_out << key_in.rdbuf();
    key_out.close();
    umask(old_mask);
    if (!key_out) return Fail("backup: cannot write " + dest + "/secret_key");
  }
  printf("backup written to %s (restore: stop offbrand, copy it as the data dir)\n", dest.c_str());
  return 0;
}

int Serve(const Config& config) {
  // Signals are taken by sigwait in this thread; block them before any other
  // thread exists so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // One malloc arena per worker thread would multiply RSS on a small Pi;
  // two arenas keep contention low on its few cores.
  mallopt(M_ARENA_MAX, 2);

  auto app = App::Open(config);
  if (!app.ok()) return Fail(app.status().message());
  Status s = (*app)->Start();
  if (!s.ok()) return Fail(s.message());
  for (;;) {
    struct timespec timeout = {1, 0};
    const int sig = sigtimedwait(&set, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      OB_LOG(kInfo, "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGHUP) {
      SyncStatus st = (*app)->services().sync->GetStatus();
      OB_LOG(kInfo, "SIGHUP: outbox %llu pending, %llu dead%s%s",
             static_cast<unsigned long long>(st.pending), static_cast<unsigned long long>(st.dead),
             st.paused_reason.empty() ? "" : ", paused: ", st.paused_reason.c_str());
      Status f = (*app)->services().last_seen->Flush(*(*app)->services().store);
      if (!f.ok()) OB_LOG(kWarning, "last_seen flush failed: %s", f.ToString().c_str());
      continue;
    }
    if (!(*app)->listening()) {
      // The listener died on its own (not through Stop): exit non-zero so
      // systemd's Restart= brings the service back.
      OB_LOG(kError, "http: the listener stopped unexpectedly; exiting");
      (*app)->Stop();
      return 1;
    }
    // A failed store keeps serving reads; /readyz reports the failure and
    // the watchdog stops pinging, so systemd restarts us.
  }
  (*app)->Stop();
  return 0;
}

bool ReadPassword(const std::string& file, std::string* password) {
  std::string line;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in || !std::getline(in, line)) return false;
  } else if (!std::getline(std::cin, line)) {
    return false;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  *password = line;
  return true;
}

int UserCommand(Config& config, const std::vector<std::string>& args) {
  if (args.empty()) return Fail("user: expected create or confirm");
  if (!CryptoInit()) return Fail("libsodium failed to initialise");
  if (args[0] == "create") {
    std::string username, email, password_file;
    bool admin = false;
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--admin") admin = true;
      else if (args[i] == "--username" && i + 1 < args.size()) username = args[++i];
      else if (args[i] == "--email" && i + 1 < args.size()) email = args[++i];
      else if (args[i] == "--password-file" && i + 1 < args.size()) password_file = args[++i];
      else return Fail("user create: unexpected argument '" + args[i] + "'");
    }
    if (username.empty() || email.empty()) return Fail("user create: --username and --email are required");
    std::string password;
    if (!ReadPassword(password_file, &password)) return Fail("user create: cannot read the password");
    auto store = OpenStore(config, false);
    if (!store.ok()) return Fail(store.status().message());
    PasswordHasher hasher(1);
    auto user = CreateUser(**store, config, hasher, username, email, password, admin, true);
    if (!user.ok()) {
      return Fail("user create: " + user.status().message() +
                  (user.status().field().empty() ? "" : " (" + user.status().field() + ")"));
    }
    printf("created user %s (id %llu, %s, confirmed)\n", user->username.c_str(),
           static_cast<unsigned long long>(user->id), RoleName(user->role));
    return 0;
  }
  if (args[0] == "confirm") {
    if (args.size() != 2) return Fail("user confirm: expected USERNAME");
    auto store = OpenStore(config, false);
    if (!store.ok()) return Fail(store.status().message());
    const std::string name = args[1];
    bool was_confirmed = false;
    Status s = (*store)->Write([&](WriteTxn& txn) {
      Result<User> user = FindUserByName(txn, name);
      if (!user.ok()) return user.status();
      was_confirmed = user->confirmed;
      return ConfirmUserInTxn(txn, config, &*user);
    });
    if (!s.ok()) return Fail("user confirm: " + s.message());
    printf("user %s %s\n", name.c_str(), was_confirmed ? "was already confirmed" : "confirmed");
    return 0;
  }
  return Fail("user: unknown subcommand '" + args[0] + "'");
}

bool ParseSeq(const std::string& s, uint64_t* seq) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *seq = v;
  return true;
}

int OutboxCommand(Config& config, const std::vector<std::string>& args) {
  if (args.empty()) return Fail("outbox: expected status, list, retry or drop");
  const std::string& sub = args[0];
  if (sub == "status" || sub == "list") {
    auto store = OpenStore(config, true);
    if (!store.ok()) return Fail(store.status().message());
    auto txn = (*store)->BeginRead();
    if (!txn.ok()) return Fail(txn.status().message());
    if (sub == "status") {
      const uint64_t pending = (*txn)->Count(Db::kOutbox);
      const uint64_t dead = (*txn)->Count(Db::kDead);
      int64_t oldest_ms = 0;
      Cursor c = (*txn)->OpenCursor(Db::kOutbox);
      if (c.First()) {
        auto rec = DecodeOutboxRecord(c.key(), c.value());
        if (rec.ok()) oldest_ms = rec->created_ms;
      }
      const int64_t age_s = oldest_ms == 0 ? 0 : (SystemClock::Instance().NowMs() - oldest_ms) / 1000;
      printf("pending %llu\ndead %llu\noldest_pending_age_s %lld\n",
             static_cast<unsigned long long>(pending), static_cast<unsigned long long>(dead),
             static_cast<long long>(age_s));
      return 0;
    }
    bool dead = false;
    uint64_t limit = 1000;
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--dead") dead = true;
      else if (args[i] == "--limit" && i + 1 < args.size() && ParseSeq(args[i + 1], &limit)) ++i;
      else return Fail("outbox list: unexpected argument '" + args[i] + "'");
    }
    Cursor c = (*txn)->OpenCursor(dead ? Db::kDead : Db::kOutbox);
    uint64_t n = 0;
    for (bool ok = c.First(); ok && n < limit; ok = c.Next(), ++n) {
      auto rec = DecodeOutboxRecord(c.key(), c.value());
      if (!rec.ok()) {
        printf("{\"seq\":%llu,\"error\":\"corrupt record\"}\n",
               static_cast<unsigned long long>(GetU64BE(c.key())));
        continue;
      }
      printf("%s\n", OutboxRecordJson(*rec).c_str());
    }
    return 0;
  }
  if (sub == "retry" || sub == "drop") {
    uint64_t seq;
    if (args.size() != 2 || !ParseSeq(args[1], &seq)) return Fail("outbox " + sub + ": expected ID");
    auto store = OpenStore(config, false);
    if (!store.ok()) return Fail(store.status().message());
    Status s = (*store)->Write([&](WriteTxn& txn) {
      return sub == "retry" ? RetryDead(txn, seq) : DropDead(txn, seq);
    });
    if (!s.ok()) return Fail("outbox " + sub + ": " + s.message());
    printf("%s dead letter %llu\n", sub == "retry" ? "requeued" : "dropped",
           static_cast<unsigned long long>(seq));
    return 0;
  }
  return Fail("outbox: unknown subcommand '" + sub + "'");
}

}  // namespace

int CliMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_file;
  if (args.size() >= 2 && args[0] == "--config") {
    config_file = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "version" || command == "--version") {
    printf("offbrand %s\n", OFFBRAND_VERSION);
    return 0;
  }
  if (command == "serve") {
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--help" || args[i] == "-h") {
        fputs(kServeHelp, stdout);
        return 0;
      }
      if (args[i] == "--config" && i + 1 < args.size()) {
        config_file = args[++i];
      } else {
        return Fail("serve: unexpected argument '" + args[i] + "' (see offbrand serve --help)");
      }
    }
  }
  auto config = LoadConfig(config_file);
  if (!config.ok()) return Fail(config.status().message());
  if (!SetLogLevel(config->log_level.c_str())) return Fail("OFFBRAND_LOG_LEVEL must be debug, info, warning or error");
  if (command == "serve") return Serve(*config);
  if (command == "user") return UserCommand(*config, args);
  if (command == "outbox") return OutboxCommand(*config, args);
  if (command == "backup") {
    if (args.size() != 1) return Fail("backup: expected DEST");
    return Backup(*config, args[0]);
  }
  if (command == "check") {
    auto store = OpenStore(*config, true);
    if (!store.ok()) return Fail(store.status().message());
    std::string report;
    Status s = CheckInvariants(**store, &report);
    fputs(report.c_str(), s.ok() ? stdout : stderr);
    if (!s.ok()) return Fail("check: " + s.message());
    return 0;
  }
  return Fail("unknown command '" + command + "'\n" + kUsage);
}

}  // namespace offbrand
