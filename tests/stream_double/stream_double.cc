#include "stream_double.h"

#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>
#include <simdjson.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

// The double checks tokens with the client's own JWT code (sync/ is not on
// this target's include path, hence the relative include).
#include "jwt.h"

namespace offbrand {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;  // key -> compact JSON value
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::string_view kApiPrefix = "/api/v1.0/";
constexpr size_t kActivityBytesMax = 10 * 1024;
constexpr size_t kVerbBytesMax = 255;
// With a charset parameter cpp-httplib does not compress answers: its brotli
// (picked whenever a client accepts br, as curl does) cost the double more
// CPU than everything else it does together.
constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr int64_t kCopyLimitDefault = 100;
constexpr int64_t kCopyLimitMax = 1000;
constexpr int64_t kReadLimitDefault = 25;
constexpr int64_t kReadLimitMax = 100;
constexpr size_t kPayloadBytesMax = 4u << 20;
constexpr int kRebindAttemptsMax = 100;  // x 20 ms when reopening a port
constexpr time_t kKeepAliveTimeoutSec = 2;
constexpr int kListenWaitMsMax = 5000;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "YYYY-MM-DDTHH:MM:SS.ffffff" (Stream's activity time), optionally with "Z".
std::string TimeString(int64_t us, bool zone) {
  const time_t secs = static_cast<time_t>(us / 1'000'000);
  struct tm tm_utc;
  gmtime_r(&secs, &tm_utc);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%s", tm_utc.tm_year + 1900,
                tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min, tm_utc.tm_sec,
                static_cast<int>(us % 1'000'000), zone ? "Z" : "");
  return buf;
}

std::string NewUuid() {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
void Key(Writer& w, std::string_view s) {
  w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
void Raw(Writer& w, std::string_view json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}
std::string Done(const rapidjson::StringBuffer& b) { return std::string(b.GetString(), b.GetSize()); }

std::string SerializeFields(const Fields& fields) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  for (const auto& [k, v] : fields) {
    Key(w, k);
    Raw(w, v);
  }
  w.EndObject();
  return Done(buffer);
}

// Splits a JSON object into its fields (values re-serialized compactly).
bool ParseObjectFields(std::string_view json, Fields* out) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get(obj) != simdjson::SUCCESS) return false;
  out->clear();
  for (auto field : obj) {
    out->emplace_back(std::string(field.key), simdjson::minify(field.value));
  }
  return true;
}

Fields::iterator FindField(Fields* fields, std::string_view key) {
  return std::find_if(fields->begin(), fields->end(),
                      [&](const auto& f) { return f.first == key; });
}

// Stream's partial update "set" with optional dotted keys ("a.b" sets b inside
// object a, creating it). False when a path runs through a non-object.
bool SetPath(Fields* fields, std::string_view path, const std::string& value) {
  const size_t dot = path.find('.');
  auto it = FindField(fields, path.substr(0, dot));
  if (dot == std::string_view::npos) {
    if (it == fields->end()) {
      fields->emplace_back(std::string(path), value);
    } else {
      it->second = value;
    }
    return true;
  }
  Fields inner;
  if (it != fields->end() && !ParseObjectFields(it->second, &inner)) return false;
  if (!SetPath(&inner, path.substr(dot + 1), value)) return false;
  if (it == fields->end()) {
    fields->emplace_back(std::string(path.substr(0, dot)), SerializeFields(inner));
  } else {
    it->second = SerializeFields(inner);
  }
  return true;
}

void UnsetPath(Fields* fields, std::string_view path) {
  const size_t dot = path.find('.');
  auto it = FindField(fields, path.substr(0, dot));
  if (it == fields->end()) return;
  if (dot == std::string_view::npos) {
    fields->erase(it);
    return;
  }
  Fields inner;
  if (!ParseObjectFields(it->second, &inner)) return;
  UnsetPath(&inner, path.substr(dot + 1));
  it->second = SerializeFields(inner);
}

// Decodes %XX escapes; false for a malformed escape.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = hex(in[i + 1]);
    const int lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Finds this request's connection among the process's sockets (local and peer
// ports match) and shuts it down: the client sees the connection close with
// no answer. See the header for why it is done this way.
void DropConnection(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (struct dirent* entry = readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof local;
    socklen_t peer_len = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    auto port_of = [](const sockaddr_storage& a) -> int {
      if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
      if (a.ss_family == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
      }
      return -1;
    };
    if (port_of(peer) == req.remote_port &&
        (req.local_port <= 0 || port_of(local) == req.local_port)) {
      shutdown(fd, SHUT_RDWR);
      break;
    }
  }
  closedir(dir);
}

}  // namespace


// ---- internal types ---------------------------------------------------------

namespace stream_double_internal {

struct Activity {
  std::string id;
  std::string foreign_id;
  std::string time;
  Fields fields;      // everything but "id"
  int64_t seq = 0;    // insertion order, the tie-break for equal times
  int feed_refs = 0;  // feeds holding it; at 0 it is deleted
};

struct User {
  std::string id;
  std::string data;  // JSON object
  std::string created_at;
  std::string updated_at;
};

struct Route {
  enum class Kind {
    kUnknown, kUserAdd, kUser, kFeed, kFeedItem, kFollow, kUnfollow, kEnrichFeed, kActivity,
    kActivities, kFollowMany
  };
  Kind kind = Kind::kUnknown;
  std::string op = "unknown";  // request counter name
  std::string feed;            // "<g>:<id>" for feed routes
  std::string feed_claim;      // "<g><id>"
  std::string item;            // activity id or foreign id, user id, or follow target
  std::string bad;             // non-empty: the path is malformed, and why
};

struct Reply {
  int status = 200;
  std::string body;
  int64_t retry_after_s = -1;  // 429 only
};

class Listener {
 public:
  Listener() : server(std::make_unique<httplib::Server>()) {}
  ~Listener() { Stop(); }
  void Stop() {
    server->stop();
    if (thread.joinable()) thread.join();
  }
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
};

}  // namespace stream_double_internal

namespace {

using stream_double_internal::Activity;
using stream_double_internal::Reply;
using stream_double_internal::Route;
using stream_double_internal::User;
using stream_double_internal::Listener;

Reply Error(int status, int code, std::string_view exception, std::string_view detail,
            std::string_view field = {}) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "code");
  w.Int(code);
  Key(w, "detail");
  Str(w, detail);
  Key(w, "exception");
  Str(w, exception);
  Key(w, "status_code");
  w.Int(status);
  if (!field.empty()) {
    Key(w, "exception_fields");
    w.StartObject();
    Key(w, field);
    w.StartArray();
    Str(w, detail);
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  return Reply{status, Done(buffer)};
}

Reply InputError(std::string_view detail, std::string_view field = {}) {
  return Error(400, 4, "InputException", detail, field);
}
Reply NotFound(std::string_view detail) { return Error(404, 16, "DoesNotExist", detail); }
Reply Ok(int status, std::string body) { return Reply{status, std::move(body)}; }

// Takes one from a fault counter: true when the fault applies to this request.
bool Consume(int64_t* count) {
  if (*count == 0) return false;
  if (*count > 0) --*count;
  return true;
}

int64_t RateLimitFor(const std::string& op) {
  if (op == "activity.add") return 1000;
  if (op == "activity.remove") return 300;
  if (op == "activity.update") return 250;
  return 1000;
}

// A follow's target must be "<slug>:<id>" and differ from the follower.
Reply CheckFollow(const std::string& feed, const std::string& target) {
  const size_t colon = target.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == target.size() ||
      target.find(':', colon + 1) != std::string::npos) {
    return InputError("target must be \"<slug>:<id>\"", "target");
  }
  if (target == feed) return InputError("a feed cannot follow itself", "target");
  return Reply{};
}

Route ParseRoute(const httplib::Request& req) {
  Route r;
  std::string_view target = req.target;
  target = target.substr(0, target.find('?'));
  if (target.rfind(kApiPrefix, 0) != 0) {
    r.bad = "unknown path";
    return r;
  }
  target.remove_prefix(kApiPrefix.size());
  if (target.empty() || target.back() != '/') {
    r.bad = "paths end in '/'";  // Stream would redirect; clients must not rely on that
    return r;
  }
  std::vector<std::string> seg;
  size_t start = 0;
  while (start < target.size()) {
    const size_t slash = target.find('/', start);
    std::string decoded;
    if (!PercentDecode(target.substr(start, slash - start), &decoded)) {
      r.bad = "malformed percent-encoding";
      return r;
    }
    seg.push_back(std::move(decoded));
    start = slash + 1;
  }
  const std::string& m = req.method;
  const size_t n = seg.size();
  auto feed = [&](size_t i) {
    if (seg[i].empty() || seg[i + 1].empty()) r.bad = "empty feed slug or id";
    r.feed = seg[i] + ":" + seg[i + 1];
    r.feed_claim = seg[i] + seg[i + 1];
  };
  if (n == 1 && seg[0] == "user" && m == "POST") {
    r.kind = Route::Kind::kUserAdd;
    r.op = "user.add";
  } else if (n == 2 && seg[0] == "user" && (m == "GET" || m == "PUT" || m == "DELETE")) {
    r.kind = Route::Kind::kUser;
    r.item = seg[1];
    r.op = m == "GET" ? "user.get" : m == "PUT" ? "user.update" : "user.delete";
  } else if (n == 3 && seg[0] == "feed" && (m == "POST" || m == "GET")) {
    r.kind = Route::Kind::kFeed;
    feed(1);
    r.op = m == "POST" ? "activity.add" : "feed.get";
  } else if (n == 4 && seg[0] == "feed" && m == "POST" &&
             (seg[3] == "following" || seg[3] == "follows")) {
    r.kind = Route::Kind::kFollow;
    feed(1);
    r.op = "follow";
  } else if (n == 5 && seg[0] == "feed" && m == "DELETE" &&
             (seg[3] == "following" || seg[3] == "follows")) {
    r.kind = Route::Kind::kUnfollow;
    feed(1);
    r.item = seg[4];
    r.op = "unfollow";
  } else if (n == 4 && seg[0] == "feed" && m == "DELETE") {
    r.kind = Route::Kind::kFeedItem;
    feed(1);
    r.item = seg[3];
    r.op = "activity.remove";
  } else if (n == 4 && seg[0] == "enrich" && seg[1] == "feed" && m == "GET") {
    r.kind = Route::Kind::kEnrichFeed;
    feed(2);
    r.op = "feed.get";
  } else if (n == 1 && seg[0] == "activity" && m == "POST") {
    r.kind = Route::Kind::kActivity;
    r.op = "activity.update";
  } else if (n == 1 && seg[0] == "follow_many" && m == "POST") {
    r.kind = Route::Kind::kFollowMany;
    r.op = "follow_many";
  } else if (n == 1 && seg[0] == "activities" && m == "GET") {
    r.kind = Route::Kind::kActivities;
    r.op = "activities.get";
  } else {
    r.bad = "no such endpoint";
  }
  if (!r.bad.empty()) r.kind = Route::Kind::kUnknown;
  return r;
}

// True when the (already parsed) JSON value is a string; copies it.
bool AsString(simdjson::dom::element e, std::string* out) {
  std::string_view v;
  if (e.get(v) != simdjson::SUCCESS) return false;
  *out = std::string(v);
  return true;
}

// A validated activity from an add request.
struct NewActivity {
  Fields fields;  // without "id"
  std::string foreign_id;
  std::string time;  // empty: server time
};

// Checks one activity object of an add; on failure *error is the reply.
bool ValidateActivity(simdjson::dom::element e, const std::string& poison, NewActivity* out,
                      Reply* error) {
  simdjson::dom::object obj;
  if (e.get(obj) != simdjson::SUCCESS) {
    *error = InputError("an activity must be an object");
    return false;
  }
  if (simdjson::minify(e).size() > kActivityBytesMax) {
    *error = InputError("activity is larger than 10 KB");
    return false;
  }
  for (const char* required : {"actor", "verb", "object"}) {
    simdjson::dom::element value;
    std::string v;
    if (obj[required].get(value) != simdjson::SUCCESS || !AsString(value, &v) || v.empty()) {
      *error = InputError(std::string(required) + " is required (a non-empty string)", required);
      return false;
    }
    if (std::string_view(required) == "verb" && v.size() > kVerbBytesMax) {
      *error = InputError("verb is longer than 255 bytes", "verb");
      return false;
    }
  }
  for (auto field : obj) {
    if (field.key == "id") continue;  // server-made
    if (field.key == "foreign_id" && !AsString(field.value, &out->foreign_id)) {
      *error = InputError("foreign_id must be a string", "foreign_id");
      return false;
    }
    if (field.key == "time" && !AsString(field.value, &out->time)) {
      *error = InputError("time must be a string", "time");
      return false;
    }
    out->fields.emplace_back(std::string(field.key), simdjson::minify(field.value));
  }
  if (!poison.empty() && out->foreign_id == poison) {
    *error = InputError("activity rejected (poison_foreign_id fault)", "foreign_id");
    return false;
  }
  return true;
}

}  // namespace

// ---- lifecycle ----------------------------------------------------------------

StreamDouble::StreamDouble(StreamDoubleOptions options) : options_(std::move(options)) {
  if (sodium_init() < 0) std::abort();
  // Clients that give up (timeouts, dropped connections) make httplib write to
  // closed sockets; that must be EPIPE, not a process-killing signal.
  signal(SIGPIPE, SIG_IGN);
}

StreamDouble::~StreamDouble() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  sleep_cv_.notify_all();
  std::vector<std::unique_ptr<Listener>> listeners;
  {
    std::lock_guard<std::mutex> lock(life_mu_);
    listeners = std::move(retired_);
    listeners.push_back(std::move(api_));
    listeners.push_back(std::move(control_));
  }
  for (auto& l : listeners) {
    if (l) l->server->stop();
  }
  listeners.clear();  // joins every listener thread (and so every handler)
}

std::unique_ptr<StreamDouble::Listener> StreamDouble::MakeListener(bool api, int port, Status* status) {
  auto listener = std::make_unique<Listener>();
  httplib::Server* srv = listener->server.get();
  const int threads = std::max(16, options_.threads);
  srv->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  srv->set_keep_alive_timeout(kKeepAliveTimeoutSec);
  srv->set_keep_alive_max_count(1000);
  srv->set_payload_max_length(kPayloadBytesMax);
  srv->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        const Reply r = Error(500, -1, "InternalServerError", "the test double threw");
        res.status = r.status;
        res.set_content(r.body, kJsonType);
      });
  auto admin = [this](const httplib::Request& req, httplib::Response& res) { HandleAdmin(req, res); };
  srv->Get("/__state", admin);
  srv->Post("/__control", admin);
  srv->Post("/__reset", admin);
  if (api) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      HandleApi(req, res);
    };
    const char* pattern = R"(/api/[\s\S]*)";
    srv->Get(pattern, handler);
    srv->Post(pattern, handler);
    srv->Put(pattern, handler);
    srv->Delete(pattern, handler);
  }
  int bound = -1;
  if (port == 0) {
    bound = srv->bind_to_any_port(options_.host);
  } else {
    // Reopening after `refuse`: the old socket is closed, but give the
    // kernel a moment if the port is still held.
    for (int i = 0; i < kRebindAttemptsMax && bound < 0; ++i) {
      if (srv->bind_to_port(options_.host, port)) {
        bound = port;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  if (bound <= 0) {
    *status = Status::Error(Status::Code::kUnavailable, "bind_failed",
                            "cannot listen on " + options_.host + ":" + std::to_string(port));
    return nullptr;
  }
  listener->port = bound;
  listener->thread = std::thread([srv] { srv->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs; wait for it so that a
  // quick refuse or destruction cannot leave the thread listening forever.
  for (int i = 0; !srv->is_running(); ++i) {
    if (i == kListenWaitMsMax) {
      *status = Status::Error(Status::Code::kUnavailable, "listen_failed",
                              "the listener did not start on port " + std::to_string(bound));
      return nullptr;  // ~Listener: stop() now works or the thread already ended
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  *status = Status::Ok();
  return listener;
}

Status StreamDouble::Start() {
  std::lock_guard<std::mutex> lock(life_mu_);
  Status s;
  api_ = MakeListener(true, options_.port, &s);
  if (!s.ok()) return s;
  port_ = api_->port;
  if (options_.control_port >= 0) {
    control_ = MakeListener(false, options_.control_port, &s);
    if (!s.ok()) return s;
    control_port_ = control_->port;
  }
  return Status::Ok();
}

std::string StreamDouble::base_url() const {
  return "http://" + options_.host + ":" + std::to_string(port_) + std::string(kApiPrefix);
}

bool StreamDouble::SleepMs(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !sleep_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
}

// ---- faults -------------------------------------------------------------------

Status StreamDouble::SetRefuse(bool refuse) {
  if (refuse) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      faults_.refuse = true;  // requests on kept-alive connections are dropped
    }
    std::lock_guard<std::mutex> lock(life_mu_);
    if (api_) {
      api_->server->stop();  // closes the listening socket now; joined later
      retired_.push_back(std::move(api_));
    }
    return Status::Ok();
  }
  std::lock_guard<std::mutex> lock(life_mu_);
  if (!api_ && port_ != 0) {
    Status s;
    api_ = MakeListener(true, port_, &s);
    if (!s.ok()) return s;
  }
  std::lock_guard<std::mutex> state_lock(mu_);
  faults_.refuse = false;
  return Status::Ok();
}

Status StreamDouble::SetFaults(const StreamDoubleFaults& faults) {
  bool was_refusing = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_refusing = faults_.refuse;
    faults_ = faults;
    faults_.refuse = was_refusing;
  }
  if (faults.refuse != was_refusing) return SetRefuse(faults.refuse);
  return Status::Ok();
}

StreamDoubleFaults StreamDouble::faults() const {
  std::lock_guard<std::mutex> lock(mu_);
  return faults_;
}

void StreamDouble::ClearFaults() { (void)SetFaults(StreamDoubleFaults{}); }

void StreamDouble::SetHangMs(int64_t ms, bool then_apply) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.hang_ms = ms;
  faults_.hang_then_apply = then_apply;
}
void StreamDouble::SetDelayMs(int64_t ms) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.delay_ms = ms;
}
void StreamDouble::FailNext(int status, int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.fail_status = status;
  faults_.fail_count = count;
}
void StreamDouble::RateLimitNext(int64_t count, int64_t reset_s) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.rate_limit_count = count;
  faults_.rate_limit_reset_s = reset_s;
}
void StreamDouble::DropNext(int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.drop_after_processing = count;
}
void StreamDouble::SetPoisonForeignId(std::string foreign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.poison_foreign_id = std::move(foreign_id);
}
void StreamDouble::SetRejectCredentials(bool reject) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.reject_credentials = reject;
}

Status StreamDouble::ApplyControlJson(std::string_view json) {
  auto bad = [](std::string message) {
    return Status::BadRequest("bad_control", std::move(message));
  };
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get(obj) != simdjson::SUCCESS) return bad("not a JSON object");
  StreamDoubleFaults f = faults();
  bool clear = false;
  if (obj["clear"].get(clear) == simdjson::SUCCESS && clear) {
    f = StreamDoubleFaults{};
  }
  for (auto field : obj) {
    const std::string_view k = field.key;
    auto get_int = [&](int64_t* out) {
      return field.value.get(*out) == simdjson::SUCCESS;
    };
    int64_t n = 0;
    bool ok = true;
    if (k == "clear") {
      ok = field.value.is_bool();
    } else if (k == "refuse") {
      ok = field.value.get(f.refuse) == simdjson::SUCCESS;
    } else if (k == "reject_credentials") {
      ok = field.value.get(f.reject_credentials) == simdjson::SUCCESS;
    } else if (k == "hang_ms") {
      ok = get_int(&f.hang_ms);
    } else if (k == "hang_then_apply") {
      ok = field.value.get(f.hang_then_apply) == simdjson::SUCCESS;
    } else if (k == "rate_limit_per_minute") {
      ok = get_int(&f.rate_limit_per_minute) && f.rate_limit_per_minute >= 0;
    } else if (k == "delay_ms") {
      ok = get_int(&f.delay_ms);
    } else if (k == "fail_status") {
      ok = get_int(&n) && n >= 100 && n <= 599;
      f.fail_status = static_cast<int>(n);
    } else if (k == "fail_count") {
      ok = get_int(&f.fail_count);
    } else if (k == "rate_limit" || k == "rate_limit_count") {
      ok = get_int(&f.rate_limit_count);
    } else if (k == "rate_limit_reset_s") {
      ok = get_int(&f.rate_limit_reset_s);
    } else if (k == "drop_after_processing") {
      ok = get_int(&f.drop_after_processing);
    } else if (k == "poison_foreign_id") {
      ok = AsString(field.value, &f.poison_foreign_id);
    } else {
      return bad("unknown fault \"" + std::string(k) + "\"");
    }
    if (!ok) return bad("wrong type or range for \"" + std::string(k) + "\"");
  }
  return SetFaults(f);
}

// ---- state --------------------------------------------------------------------

void StreamDouble::Reset() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    users_.clear();
    activities_.clear();
    by_key_.clear();
    feeds_.clear();
    following_.clear();
    followers_.clear();
    request_counts_.clear();
    total_requests_ = 0;
    rate_windows_.clear();
  }
  ClearFaults();
}

std::string StreamDouble::StateJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateJsonLocked();
}

std::vector<DoubleActivity> StreamDouble::FeedActivities(std::string_view group,
                                                         std::string_view feed_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DoubleActivity> out;
  for (const std::string& id : SortedFeed(std::string(group) + ":" + std::string(feed_id))) {
    const Activity& a = *activities_.at(id);
    out.push_back(DoubleActivity{a.id, a.foreign_id, a.time, ActivityJson(a, false)});
  }
  return out;
}

bool StreamDouble::HasUser(std::string_view user_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return users_.count(std::string(user_id)) != 0;
}

std::string StreamDouble::UserData(std::string_view user_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = users_.find(std::string(user_id));
  return it == users_.end() ? std::string() : it->second->data;
}

bool StreamDouble::IsFollowing(std::string_view source_feed, std::string_view target_feed) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = following_.find(std::string(source_feed));
  return it != following_.end() && it->second.count(std::string(target_feed)) != 0;
}

int64_t StreamDouble::RequestCount(std::string_view op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = request_counts_.find(op);
  return it == request_counts_.end() ? 0 : it->second;
}

int64_t StreamDouble::TotalRequests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_requests_;
}

std::string StreamDouble::FaultsJsonLocked() const {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  const StreamDoubleFaults& f = faults_;
  w.StartObject();
  Key(w, "refuse");
  w.Bool(f.refuse);
  Key(w, "hang_ms");
  w.Int64(f.hang_ms);
  Key(w, "hang_then_apply");
  w.Bool(f.hang_then_apply);
  Key(w, "rate_limit_per_minute");
  w.Int64(f.rate_limit_per_minute);
  Key(w, "delay_ms");
  w.Int64(f.delay_ms);
  Key(w, "fail_status");
  w.Int(f.fail_status);
  Key(w, "fail_count");
  w.Int64(f.fail_count);
  Key(w, "rate_limit_count");
  w.Int64(f.rate_limit_count);
  Key(w, "rate_limit_reset_s");
  w.Int64(f.rate_limit_reset_s);
  Key(w, "drop_after_processing");
  w.Int64(f.drop_after_processing);
  Key(w, "poison_foreign_id");
  Str(w, f.poison_foreign_id);
  Key(w, "reject_credentials");
  w.Bool(f.reject_credentials);
  w.EndObject();
  return Done(buffer);
}

std::string StreamDouble::UserJson(const User& u) const {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "id");
  Str(w, u.id);
  Key(w, "data");
  Raw(w, u.data);
  Key(w, "created_at");
  Str(w, u.created_at);
  Key(w, "updated_at");
  Str(w, u.updated_at);
  w.EndObject();
  return Done(buffer);
}

std::string StreamDouble::ActivityJson(const Activity& a, bool enrich) const {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "id");
  Str(w, a.id);
  for (const auto& [k, v] : a.fields) {
    Key(w, k);
    std::string actor;
    if (enrich && k == "actor" && v.rfind("\"SU:", 0) == 0) {
      simdjson::dom::parser parser;
      simdjson::padded_string padded(v);
      simdjson::dom::element e;
      if (parser.parse(padded).get(e) == simdjson::SUCCESS && AsString(e, &actor)) {
        const std::string user_id = actor.substr(3);
        auto it = users_.find(user_id);
        if (it != users_.end()) {
          Raw(w, UserJson(*it->second));
        } else {
          w.StartObject();
          Key(w, "error");
          Str(w, "ReferenceNotFound");
          Key(w, "id");
          Str(w, user_id);
          Key(w, "reference");
          Str(w, actor);
          Key(w, "reference_type");
          Str(w, "user");
          Key(w, "reference_id");
          Str(w, user_id);
          w.EndObject();
        }
        continue;
      }
    }
    Raw(w, v);
  }
  w.EndObject();
  return Done(buffer);
}

std::vector<std::string> StreamDouble::SortedFeed(const std::string& feed) const {
  std::vector<const Activity*> list;
  auto it = feeds_.find(feed);
  if (it != feeds_.end()) {
    for (const auto& entry : it->second) list.push_back(activities_.at(entry.first).get());
  }
  std::sort(list.begin(), list.end(), [](const Activity* a, const Activity* b) {
    if (a->time != b->time) return a->time > b->time;  // ISO strings sort by time
    return a->seq > b->seq;
  });
  std::vector<std::string> ids;
  ids.reserve(list.size());
  for (const Activity* a : list) ids.push_back(a->id);
  return ids;
}

std::string StreamDouble::StateJsonLocked() const {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "users");
  w.StartObject();
  for (const auto& [id, user] : users_) {
    Key(w, id);
    Raw(w, UserJson(*user));
  }
  w.EndObject();
  Key(w, "feeds");
  w.StartObject();
  for (const auto& entry : feeds_) {
    Key(w, entry.first);
    w.StartArray();
    for (const std::string& id : SortedFeed(entry.first)) {
      Raw(w, ActivityJson(*activities_.at(id), false));
    }
    w.EndArray();
  }
  w.EndObject();
  Key(w, "follows");
  w.StartArray();
  for (const auto& [source, targets] : following_) {
    for (const std::string& target : targets) {
      w.StartObject();
      Key(w, "source");
      Str(w, source);
      Key(w, "target");
      Str(w, target);
      w.EndObject();
    }
  }
  w.EndArray();
  Key(w, "activity_count");
  w.Uint64(activities_.size());
  Key(w, "requests");
  w.StartObject();
  for (const auto& [op, count] : request_counts_) {
    Key(w, op);
    w.Int64(count);
  }
  w.EndObject();
  Key(w, "total_requests");
  w.Int64(total_requests_);
  Key(w, "faults");
  Raw(w, FaultsJsonLocked());
  w.EndObject();
  return Done(buffer);
}

// ---- feed membership ----------------------------------------------------------

void StreamDouble::LinkActivity(const std::string& feed, const std::string& id,
                                const std::string& via) {
  std::set<std::string>& vias = feeds_[feed][id];
  if (vias.empty()) ++activities_.at(id)->feed_refs;
  vias.insert(via);
}

void StreamDouble::UnlinkVia(const std::string& feed, const std::string& id,
                             const std::string& via) {
  auto fit = feeds_.find(feed);
  if (fit == feeds_.end()) return;
  auto it = fit->second.find(id);
  if (it == fit->second.end() || it->second.erase(via) == 0 || !it->second.empty()) return;
  fit->second.erase(it);
  ReleaseActivity(id);
}

void StreamDouble::DropFromFeed(const std::string& feed, const std::string& id) {
  auto fit = feeds_.find(feed);
  if (fit == feeds_.end() || fit->second.erase(id) == 0) return;
  ReleaseActivity(id);
}

void StreamDouble::ReleaseActivity(const std::string& id) {
  auto it = activities_.find(id);
  if (it == activities_.end() || --it->second->feed_refs > 0) return;
  const Activity& a = *it->second;
  auto key = by_key_.find({a.foreign_id, a.time});
  if (key != by_key_.end() && key->second == id) by_key_.erase(key);
  activities_.erase(it);
}

// ---- HTTP -----------------------------------------------------------------------

void StreamDouble::HandleAdmin(const httplib::Request& req, httplib::Response& res) {
  if (req.path == "/__state") {
    res.set_content(StateJson(), kJsonType);
  } else if (req.path == "/__reset") {
    Reset();
    res.set_content("{}", kJsonType);
  } else {  // /__control
    const Status s = ApplyControlJson(req.body);
    if (!s.ok()) {
      res.status = 400;
      res.set_content("{\"error\":\"" + s.message() + "\"}", kJsonType);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    res.set_content(FaultsJsonLocked(), kJsonType);
  }
}

void StreamDouble::HandleApi(const httplib::Request& req, httplib::Response& res) {
  const auto started = std::chrono::steady_clock::now();
  const Route route = ParseRoute(req);
  int64_t hang_ms = 0;
  bool hang_then_apply = false;
  bool refusing = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++total_requests_;
    ++request_counts_[route.op];
    refusing = faults_.refuse;
    hang_ms = faults_.hang_ms;
    hang_then_apply = faults_.hang_then_apply;
  }
  // Before each drop: what the client would see if the socket were not found.
  res.status = 503;
  if (refusing) {  // a request on a connection accepted before the port closed
    DropConnection(req);
    return;
  }
  if (hang_ms > 0) {
    // Unapplied unless told otherwise (see "slow modes" in the header).
    if (!SleepMs(hang_ms) || !hang_then_apply) {
      DropConnection(req);
      return;
    }
  }

  Reply reply;
  bool drop = false;
  int64_t delay_ms = 0;
  int64_t limit = 0;
  int64_t remaining = 0;
  int64_t reset_s = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now_s = NowUs() / 1'000'000;
    const int64_t minute = now_s / 60;
    limit = faults_.rate_limit_per_minute > 0 ? faults_.rate_limit_per_minute
                                              : RateLimitFor(route.op);
    const int64_t used = ++rate_windows_[{route.op, minute}];
    remaining = std::max<int64_t>(0, limit - used);
    reset_s = (minute + 1) * 60;
    if (rate_windows_.size() > 256) {
      for (auto it = rate_windows_.begin(); it != rate_windows_.end();) {
        it = it->first.second < minute ? rate_windows_.erase(it) : std::next(it);
      }
    }

    if (faults_.reject_credentials) {
      reply = Error(401, 2, "ApiKeyException", "api key rejected (reject_credentials fault)");
    } else if (Consume(&faults_.fail_count)) {
      reply = Error(faults_.fail_status, -1,
                    faults_.fail_status == 503 ? "ServiceUnavailable" : "InternalServerError",
                    "injected failure (fail_status fault)");
    } else if (Consume(&faults_.rate_limit_count)) {
      reply = Error(429, 9, "RateLimitReached", "rate limit reached (rate_limit fault)");
      reply.retry_after_s = faults_.rate_limit_reset_s;
      remaining = 0;
      reset_s = now_s + faults_.rate_limit_reset_s;
    } else if (!route.bad.empty()) {
      reply = Error(404, 16, "DoesNotExist", route.bad + ": " + req.method + " " + req.path);
    } else {
      reply = Authenticate(req, route);
      if (reply.status == 200) {
        reply = Dispatch(req, route);
        drop = Consume(&faults_.drop_after_processing);
      }
    }
    delay_ms = faults_.delay_ms;
  }
  if (drop) {
    DropConnection(req);
    return;
  }
  if (delay_ms > 0 && !SleepMs(delay_ms)) {
    DropConnection(req);
    return;
  }

  // Every Stream answer says how long it took.
  if (!reply.body.empty() && reply.body.back() == '}') {
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - started).count();
    char duration[64];
    std::snprintf(duration, sizeof duration, "%s\"duration\":\"%.2fms\"}",
                  reply.body.size() > 2 ? "," : "", ms);
    reply.body.pop_back();
    reply.body += duration;
  }
  res.status = reply.status;
  res.set_header("X-Ratelimit-Limit", std::to_string(limit));
  res.set_header("X-Ratelimit-Remaining", std::to_string(remaining));
  res.set_header("X-Ratelimit-Reset", std::to_string(reset_s));
  if (reply.retry_after_s >= 0) res.set_header("Retry-After", std::to_string(reply.retry_after_s));
  res.set_content(reply.body, kJsonType);
}

Reply StreamDouble::Authenticate(const httplib::Request& req, const Route& route) const {
  if (!req.has_param("api_key") || req.get_param_value("api_key") != options_.api_key) {
    return Error(401, 2, "ApiKeyException", "api_key not found or not valid");
  }
  if (req.get_header_value("stream-auth-type") != "jwt") {
    return Error(401, 3, "SignatureException", "stream-auth-type must be jwt");
  }
  std::string claims_json;
  if (!VerifyJwt(options_.api_secret, req.get_header_value("Authorization"), &claims_json)) {
    return Error(401, 3, "SignatureException",
                 "signature invalid (Authorization must be the bare JWT signed with the secret)");
  }
  simdjson::dom::parser parser;
  simdjson::padded_string padded(claims_json);
  simdjson::dom::object claims;
  if (parser.parse(padded).get(claims) != simdjson::SUCCESS) {
    return Error(401, 3, "SignatureException", "token claims are not a JSON object");
  }
  std::string resource;
  std::string action;
  std::string feed_id;
  simdjson::dom::element e;
  if (claims["resource"].get(e) == simdjson::SUCCESS) AsString(e, &resource);
  if (claims["action"].get(e) == simdjson::SUCCESS) AsString(e, &action);
  if (claims["feed_id"].get(e) == simdjson::SUCCESS) AsString(e, &feed_id);
  auto denied = [](const std::string& why) { return Error(403, 17, "NotAllowed", why); };
  if (resource.empty() || action.empty() || feed_id.empty()) {
    return denied("a server token (resource, action, feed_id) is required");
  }
  const std::string& m = req.method;
  const bool action_ok = action == "*" || (action == "read" && m == "GET") ||
                         (action == "write" && (m == "POST" || m == "PUT")) ||
                         (action == "delete" && m == "DELETE");
  if (!action_ok) return denied("token action \"" + action + "\" does not allow " + m);
  using Kind = Route::Kind;
  switch (route.kind) {
    case Kind::kUserAdd:
    case Kind::kUser:
      if (resource != "*" && resource != "users") return denied("token resource is not users");
      if (feed_id != "*") return denied("user endpoints need feed_id \"*\"");
      break;
    case Kind::kFollowMany:
      if (resource != "*" && resource != "follower") return denied("token resource is not follower");
      if (feed_id != "*") return denied("follow_many needs feed_id \"*\"");
      break;
    case Kind::kActivity:
    case Kind::kActivities:
      if (resource != "*" && resource != "activities") {
        return denied("token resource is not activities");
      }
      if (feed_id != "*") return denied("activity endpoints need feed_id \"*\"");
      break;
    case Kind::kFollow:
    case Kind::kUnfollow:
      if (resource != "*" && resource != "follower") return denied("token resource is not follower");
      if (feed_id != "*" && feed_id != route.feed_claim) {
        return denied("token is for feed " + feed_id + ", not " + route.feed_claim);
      }
      break;
    case Kind::kFeed:
    case Kind::kFeedItem:
    case Kind::kEnrichFeed:
      if (resource != "*" && resource != "feed") return denied("token resource is not feed");
      if (feed_id != "*" && feed_id != route.feed_claim) {
        return denied("token is for feed " + feed_id + ", not " + route.feed_claim);
      }
      break;
    case Kind::kUnknown:
      return denied("unknown endpoint");
  }
  return Reply{};
}

Reply StreamDouble::Dispatch(const httplib::Request& req, const Route& route) {
  using Kind = Route::Kind;
  switch (route.kind) {
    case Kind::kUserAdd:
    case Kind::kUser:
      return UserOp(req, route);
    case Kind::kFeed:
      if (req.method == "POST") return AddActivities(route.feed, req.body);
      return ReadFeed(req, route.feed, false);
    case Kind::kEnrichFeed:
      return ReadFeed(req, route.feed, true);
    case Kind::kFeedItem:
      return RemoveActivity(route.feed, route.item, req.get_param_value("foreign_id") == "1");
    case Kind::kFollow:
      return Follow(route.feed, req.body);
    case Kind::kFollowMany:
      return FollowMany(req);
    case Kind::kUnfollow: {
      const std::string keep = req.get_param_value("keep_history");
      return Unfollow(route.feed, route.item, keep == "1" || keep == "true");
    }
    case Kind::kActivity:
      return UpdateActivities(req.body);
    case Kind::kActivities:
      return GetActivities(req);
    case Kind::kUnknown:
      break;
  }
  return NotFound("no such endpoint");
}

// ---- operations (mu_ held) ----------------------------------------------------------

Reply StreamDouble::AddActivities(const std::string& feed, std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return InputError("invalid JSON body");
  std::vector<NewActivity> items;
  simdjson::dom::array batch;
  const bool is_batch = doc["activities"].get(batch) == simdjson::SUCCESS;
  Reply error;
  if (is_batch) {
    for (simdjson::dom::element e : batch) {
      items.emplace_back();
      if (!ValidateActivity(e, faults_.poison_foreign_id, &items.back(), &error)) return error;
    }
    if (items.empty()) return InputError("activities must not be empty", "activities");
  } else {
    items.emplace_back();
    if (!ValidateActivity(doc, faults_.poison_foreign_id, &items.back(), &error)) return error;
  }

  std::vector<const Activity*> stored;
  for (NewActivity& item : items) {
    if (item.time.empty()) {  // server time: a new activity every time
      last_server_time_us_ = std::max(NowUs(), last_server_time_us_ + 1);
      item.time = TimeString(last_server_time_us_, false);
      item.fields.emplace_back("time", "\"" + item.time + "\"");
    }
    Activity* a = nullptr;
    auto key = by_key_.end();
    if (!item.foreign_id.empty()) key = by_key_.find({item.foreign_id, item.time});
    if (key != by_key_.end()) {
      a = activities_.at(key->second).get();
      a->fields = std::move(item.fields);  // replaced in place, same id
    } else {
      auto fresh = std::make_unique<Activity>();
      fresh->id = NewUuid();
      fresh->foreign_id = item.foreign_id;
      fresh->time = item.time;
      fresh->fields = std::move(item.fields);
      fresh->seq = ++insert_seq_;
      a = fresh.get();
      if (!a->foreign_id.empty()) by_key_[{a->foreign_id, a->time}] = a->id;
      activities_[a->id] = std::move(fresh);
    }
    LinkActivity(feed, a->id, "");
    auto followers = followers_.find(feed);
    if (followers != followers_.end()) {
      for (const std::string& follower : followers->second) LinkActivity(follower, a->id, feed);
    }
    stored.push_back(a);
  }
  if (!is_batch) return Ok(201, ActivityJson(*stored.front(), false));
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "activities");
  w.StartArray();
  for (const Activity* a : stored) Raw(w, ActivityJson(*a, false));
  w.EndArray();
  w.EndObject();
  return Ok(201, Done(buffer));
}

Reply StreamDouble::UpdateActivities(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return InputError("invalid JSON body");
  simdjson::dom::array changes;
  if (doc["changes"].get(changes) != simdjson::SUCCESS || changes.size() == 0) {
    return InputError("changes must be a non-empty array", "changes");
  }
  // Stage every change on copies; commit only if all apply.
  std::map<std::string, Fields> staged;
  std::vector<std::string> order;
  for (simdjson::dom::element change : changes) {
    simdjson::dom::object c;
    if (change.get(c) != simdjson::SUCCESS) return InputError("a change must be an object");
    std::string id;
    std::string foreign_id;
    std::string time;
    simdjson::dom::element e;
    if (c["id"].get(e) == simdjson::SUCCESS) {
      if (!AsString(e, &id)) return InputError("id must be a string", "id");
    } else if (c["foreign_id"].get(e) != simdjson::SUCCESS || !AsString(e, &foreign_id) ||
               c["time"].get(e) != simdjson::SUCCESS || !AsString(e, &time)) {
      return InputError("a change needs id, or foreign_id and time", "foreign_id");
    }
    if (!faults_.poison_foreign_id.empty() && foreign_id == faults_.poison_foreign_id) {
      return InputError("change rejected (poison_foreign_id fault)", "foreign_id");
    }
    if (id.empty()) {
      auto key = by_key_.find({foreign_id, time});
      if (key == by_key_.end()) {
        return NotFound("activity with foreign_id " + foreign_id + " and time " + time +
                        " does not exist");
      }
      id = key->second;
    }
    auto it = activities_.find(id);
    if (it == activities_.end()) return NotFound("activity " + id + " does not exist");
    if (!faults_.poison_foreign_id.empty() &&
        it->second->foreign_id == faults_.poison_foreign_id) {
      return InputError("change rejected (poison_foreign_id fault)", "foreign_id");
    }
    auto [slot, inserted] = staged.emplace(id, it->second->fields);
    if (inserted) order.push_back(id);
    Fields& fields = slot->second;
    auto is_protected = [](std::string_view k) {
      const std::string_view top = k.substr(0, k.find('.'));
      return top == "id" || top == "foreign_id" || top == "time";
    };
    simdjson::dom::object set;
    if (c["set"].get(e) == simdjson::SUCCESS) {
      if (e.get(set) != simdjson::SUCCESS) return InputError("set must be an object", "set");
      for (auto field : set) {
        if (field.key.empty() || is_protected(field.key)) {
          return InputError("cannot set \"" + std::string(field.key) + "\"", "set");
        }
        if (!SetPath(&fields, field.key, simdjson::minify(field.value))) {
          return InputError("cannot set \"" + std::string(field.key) + "\": not an object", "set");
        }
      }
    }
    simdjson::dom::array unset;
    if (c["unset"].get(e) == simdjson::SUCCESS) {
      if (e.get(unset) != simdjson::SUCCESS) return InputError("unset must be an array", "unset");
      for (simdjson::dom::element u : unset) {
        std::string path;
        if (!AsString(u, &path) || path.empty() || is_protected(path)) {
          return InputError("unset entries must be names of custom fields", "unset");
        }
        UnsetPath(&fields, path);
      }
    }
  }
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "activities");
  w.StartArray();
  for (const std::string& id : order) {
    Activity& a = *activities_.at(id);
    a.fields = std::move(staged[id]);
    Raw(w, ActivityJson(a, false));
  }
  w.EndArray();
  w.EndObject();
  return Ok(201, Done(buffer));
}

Reply StreamDouble::RemoveActivity(const std::string& feed, const std::string& key,
                                   bool by_foreign_id) {
  std::vector<std::string> ids;
  auto fit = feeds_.find(feed);
  if (fit != feeds_.end()) {
    for (const auto& entry : fit->second) {
      const Activity& a = *activities_.at(entry.first);
      if (by_foreign_id ? a.foreign_id == key : a.id == key) ids.push_back(a.id);
    }
  }
  for (const std::string& id : ids) {
    // Copies first: the feed's own link keeps the activity alive meanwhile.
    auto followers = followers_.find(feed);
    if (followers != followers_.end()) {
      for (const std::string& follower : followers->second) UnlinkVia(follower, id, feed);
    }
    DropFromFeed(feed, id);
  }
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "removed");
  Str(w, key);
  w.EndObject();
  return Ok(200, Done(buffer));
}

Reply StreamDouble::Follow(const std::string& feed, std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::object obj;
  if (parser.parse(padded).get(obj) != simdjson::SUCCESS) return InputError("invalid JSON body");
  std::string target;
  simdjson::dom::element e;
  if (obj["target"].get(e) != simdjson::SUCCESS || !AsString(e, &target)) {
    return InputError("target is required", "target");
  }
  int64_t copy_limit = kCopyLimitDefault;
  if (obj["activity_copy_limit"].get(e) == simdjson::SUCCESS &&
      (e.get(copy_limit) != simdjson::SUCCESS || copy_limit < 0 || copy_limit > kCopyLimitMax)) {
    return InputError("activity_copy_limit must be 0..1000", "activity_copy_limit");
  }
  if (Reply bad = CheckFollow(feed, target); bad.status != 200) return bad;
  return FollowChecked(feed, target, copy_limit);
}

Reply StreamDouble::FollowMany(const httplib::Request& req) {
  int64_t copy_limit = kCopyLimitDefault;
  if (req.has_param("activity_copy_limit")) {
    const std::string text = req.get_param_value("activity_copy_limit");
    char* end = nullptr;
    copy_limit = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || copy_limit < 0 || copy_limit > kCopyLimitMax) {
      return InputError("activity_copy_limit must be 0..1000", "activity_copy_limit");
    }
  }
  simdjson::dom::parser parser;
  simdjson::padded_string padded(req.body);
  simdjson::dom::array pairs;
  if (parser.parse(padded).get(pairs) != simdjson::SUCCESS) {
    return InputError("the body must be a JSON array of {source, target}");
  }
  // All or nothing: validate every pair first.
  std::vector<std::pair<std::string, std::string>> edges;
  for (simdjson::dom::element p : pairs) {
    simdjson::dom::object o;
    simdjson::dom::element e;
    std::string source, target;
    if (p.get(o) != simdjson::SUCCESS || o["source"].get(e) != simdjson::SUCCESS ||
        !AsString(e, &source) || o["target"].get(e) != simdjson::SUCCESS ||
        !AsString(e, &target)) {
      return InputError("every follow needs a string source and target");
    }
    if (Reply bad = CheckFollow(source, target); bad.status != 200) return bad;
    if (Reply bad = CheckFollow(target, source); bad.status != 200) return bad;
    edges.emplace_back(std::move(source), std::move(target));
  }
  for (const auto& [source, target] : edges) (void)FollowChecked(source, target, copy_limit);
  return Ok(201, "{}");
}

Reply StreamDouble::FollowChecked(const std::string& feed, const std::string& target,
                                  int64_t copy_limit) {
  if (!following_[feed].insert(target).second) return Ok(201, "{}");  // re-follow: no-op
  followers_[target].insert(feed);
  std::vector<std::string> direct;
  auto tit = feeds_.find(target);
  for (const std::string& id : SortedFeed(target)) {
    if (static_cast<int64_t>(direct.size()) >= copy_limit) break;
    if (tit->second.at(id).count("") != 0) direct.push_back(id);
  }
  for (const std::string& id : direct) LinkActivity(feed, id, target);
  return Ok(201, "{}");
}

Reply StreamDouble::Unfollow(const std::string& feed, const std::string& target,
                             bool keep_history) {
  auto fit = following_.find(feed);
  if (fit != following_.end()) {
    fit->second.erase(target);
    if (fit->second.empty()) following_.erase(fit);
  }
  auto rit = followers_.find(target);
  if (rit != followers_.end()) {
    rit->second.erase(feed);
    if (rit->second.empty()) followers_.erase(rit);
  }
  if (!keep_history) {
    std::vector<std::string> copies;
    auto feed_it = feeds_.find(feed);
    if (feed_it != feeds_.end()) {
      for (const auto& [id, vias] : feed_it->second) {
        if (vias.count(target) != 0) copies.push_back(id);
      }
    }
    for (const std::string& id : copies) UnlinkVia(feed, id, target);
  }
  return Ok(200, "{}");
}

Reply StreamDouble::ReadFeed(const httplib::Request& req, const std::string& feed,
                             bool enrich) const {
  int64_t limit = kReadLimitDefault;
  if (req.has_param("limit")) {
    const std::string text = req.get_param_value("limit");
    char* end = nullptr;
    limit = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || limit <= 0) return InputError("limit must be > 0", "limit");
    limit = std::min(limit, kReadLimitMax);
  }
  const std::vector<std::string> ids = SortedFeed(feed);
  size_t start = 0;
  const std::string id_lt = req.get_param_value("id_lt");
  if (!id_lt.empty()) {
    auto pos = std::find(ids.begin(), ids.end(), id_lt);
    start = pos == ids.end() ? ids.size() : static_cast<size_t>(pos - ids.begin()) + 1;
  }
  const size_t end_index = std::min(ids.size(), start + static_cast<size_t>(limit));
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "results");
  w.StartArray();
  for (size_t i = start; i < end_index; ++i) Raw(w, ActivityJson(*activities_.at(ids[i]), enrich));
  w.EndArray();
  Key(w, "next");
  if (end_index < ids.size() && end_index > start) {
    const size_t colon = feed.find(':');
    Str(w, std::string(kApiPrefix) + (enrich ? "enrich/" : "") + "feed/" + feed.substr(0, colon) +
               "/" + feed.substr(colon + 1) + "/?id_lt=" + ids[end_index - 1] +
               "&limit=" + std::to_string(limit));
  } else {
    Str(w, "");
  }
  w.EndObject();
  return Ok(200, Done(buffer));
}

Reply StreamDouble::GetActivities(const httplib::Request& req) const {
  std::vector<std::string> ids;
  if (req.has_param("ids")) {
    ids = SplitComma(req.get_param_value("ids"));
  } else {
    const std::vector<std::string> fids = SplitComma(req.get_param_value("foreign_ids"));
    const std::vector<std::string> times = SplitComma(req.get_param_value("timestamps"));
    if (fids.empty() || fids.size() != times.size()) {
      return InputError("foreign_ids and timestamps must pair up", "foreign_ids");
    }
    for (size_t i = 0; i < fids.size(); ++i) {
      auto it = by_key_.find({fids[i], times[i]});
      if (it != by_key_.end()) ids.push_back(it->second);
    }
  }
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Key(w, "results");
  w.StartArray();
  for (const std::string& id : ids) {
    auto it = activities_.find(id);
    if (it != activities_.end()) Raw(w, ActivityJson(*it->second, false));
  }
  w.EndArray();
  w.EndObject();
  return Ok(200, Done(buffer));
}

Reply StreamDouble::UserOp(const httplib::Request& req, const Route& route) {
  const std::string now = TimeString(NowUs(), true);
  // Reads {"id"?, "data"?} from the body; data defaults to {}.
  auto parse_body = [&](bool want_id, std::string* id, std::string* data) -> Reply {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::object obj;
    if (parser.parse(padded).get(obj) != simdjson::SUCCESS) return InputError("invalid JSON body");
    simdjson::dom::element e;
    if (want_id && (obj["id"].get(e) != simdjson::SUCCESS || !AsString(e, id) || id->empty() ||
                    id->size() > 255)) {
      return InputError("id must be a non-empty string of at most 255 bytes", "id");
    }
    *data = "{}";
    if (obj["data"].get(e) == simdjson::SUCCESS) {
      if (!e.is_object()) return InputError("data must be an object", "data");
      *data = simdjson::minify(e);
    }
    return Reply{};
  };

  if (route.kind == Route::Kind::kUserAdd) {
    std::string id;
    std::string data;
    Reply error = parse_body(true, &id, &data);
    if (error.status != 200) return error;
    auto it = users_.find(id);
    if (it != users_.end()) {
      const std::string goc = req.get_param_value("get_or_create");
      if (goc == "true" || goc == "1") return Ok(200, UserJson(*it->second));
      return Error(409, 22, "Conflict", "user " + id + " already exists");
    }
    auto user = std::make_unique<User>(User{id, data, now, now});
    const std::string json = UserJson(*user);
    users_[id] = std::move(user);
    return Ok(201, json);
  }

  auto it = users_.find(route.item);
  if (it == users_.end()) return NotFound("user " + route.item + " does not exist");
  if (req.method == "GET") return Ok(200, UserJson(*it->second));
  if (req.method == "DELETE") {
    users_.erase(it);
    return Ok(200, "{}");
  }
  std::string unused_id;
  std::string data;
  Reply error = parse_body(false, &unused_id, &data);
  if (error.status != 200) return error;
  it->second->data = data;
  it->second->updated_at = now;
  return Ok(201, UserJson(*it->second));
}

}  // namespace offbrand
