// Config from the environment and an EnvironmentFile-style file.
#include "offbrand/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "crypto.h"
#include "offbrand/model.h"

extern char** environ;

namespace offbrand {

namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string FirstLine(const std::string& text) {
  return Trim(text.substr(0, text.find('\n')));
}

Status ParseInt(const std::string& name, const std::string& value, int64_t lo, int64_t hi,
                int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long v = strtoll(value.c_str(), &end, 10);
  if (errno != 0 || end == value.c_str() || *end != '\0' || v < lo || v > hi) {
    return Status::BadRequest("bad_config", name + " must be an integer in [" +
                                                std::to_string(lo) + ", " + std::to_string(hi) +
                                                "], got '" + value + "'");
  }
  *out = v;
  return Status::Ok();
}

Status ParseListen(const std::string& value, Config* c) {
  const size_t colon = value.rfind(':');
  if (colon == std::string::npos) {
    return Status::BadRequest("bad_config", "OFFBRAND_LISTEN must be host:port, got '" + value + "'");
  }
  std::string host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int64_t port;
  Status s = ParseInt("OFFBRAND_LISTEN port", value.substr(colon + 1), 0, 65535, &port);
  if (!s.ok()) return s;
  c->listen_host = host.empty() ? "0.0.0.0" : host;
  c->listen_port = static_cast<int>(port);
  return Status::Ok();
}

// The feed groups must be slugs, and distinct: two groups under one name
// would merge User:<id> and Collections:<id> into one Stream feed.
Status CheckFeedGroups(const Config& c) {
  const std::pair<const char*, const std::string*> groups[] = {
      {"OFFBRAND_FEED_USER", &c.feed_user},
      {"OFFBRAND_FEED_COLLECTIONS", &c.feed_collections},
      {"OFFBRAND_FEED_TIMELINE", &c.feed_timeline},
      {"OFFBRAND_FEED_NOTIFICATIONS", &c.feed_notifications},
  };
  for (size_t i = 0; i < std::size(groups); ++i) {
    const auto& [name, value] = groups[i];
    if (!IsValidFeedGroup(*value)) {
      return Status::BadRequest(
          "bad_config", std::string(name) + " must be a Stream feed group slug: 1-" +
                            std::to_string(kFeedGroupBytesMax) +
                            " letters, digits or underscores, got '" + *value + "'");
    }
    for (size_t j = 0; j < i; ++j) {
      if (*groups[j].second == *value) {
        return Status::BadRequest("bad_config",
                                  std::string(name) + " and " + groups[j].first +
                                      " must name different feed groups, both are '" + *value +
                                      "'");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsValidFeedGroup(const std::string& name) {
  if (name.empty() || name.size() > kFeedGroupBytesMax) return false;
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_';
    if (!ok) return false;
  }
  return true;
}

Status ParseEnvFile(const std::string& text, std::map<std::string, std::string>* out) {
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.rfind("export ", 0) == 0) t = Trim(t.substr(7));
    const size_t eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::BadRequest("bad_config",
                                "line " + std::to_string(number) + ": expected KEY=value");
    }
    std::string key = Trim(t.substr(0, eq));
    std::string value = Trim(t.substr(eq + 1));
    for (char ch : key) {
      if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_')) {
        return Status::BadRequest("bad_config",
                                  "line " + std::to_string(number) + ": bad name '" + key + "'");
      }
    }
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    (*out)[key] = value;
  }
  return Status::Ok();
}

namespace {

// "10.0.0.1, ::1": IP addresses, canonical form (IPv4-mapped IPv6 as IPv4).
Status ParseProxies(const std::string& value, std::vector<std::string>* out) {
  out->clear();
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string::npos) comma = value.size();
    std::string item = value.substr(pos, comma - pos);
    while (!item.empty() && isspace(static_cast<unsigned char>(item.front()))) item.erase(0, 1);
    while (!item.empty() && isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    pos = comma + 1;
    if (item.empty()) continue;
    unsigned char buf[sizeof(in6_addr)];
    char printed[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, item.c_str(), buf) == 1) {
      out->push_back(item);
    } else if (inet_pton(AF_INET6, item.c_str(), buf) == 1) {
      static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (memcmp(buf, kMapped, sizeof(kMapped)) == 0) {
        inet_ntop(AF_INET, buf + 12, printed, sizeof(printed));
      } else {
        inet_ntop(AF_INET6, buf, printed, sizeof(printed));
      }
      out->push_back(printed);
    } else {
      return Status::BadRequest("bad_config",
                                "OFFBRAND_TRUSTED_PROXIES: \"" + item + "\" is not an IP address");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Config> LoadConfig(const std::string& file) {
  std::map<std::string, std::string> vars;
  if (!file.empty()) {
    std::string text;
    if (!ReadFile(file, &text)) {
      return Status::BadRequest("bad_config", "cannot read config file " + file);
    }
    Status s = ParseEnvFile(text, &vars);
    if (!s.ok()) return Status::BadRequest("bad_config", file + ": " + s.message());
  }
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = strchr(*e, '=');
    if (eq == nullptr || strncmp(*e, "OFFBRAND_", 9) != 0) continue;
    vars[std::string(*e, eq - *e)] = eq + 1;
  }

  Config c;
  Status s;
  for (const auto& [key, value] : vars) {
    int64_t n = 0;
    if (key == "OFFBRAND_LISTEN") s = ParseListen(value, &c);
    else if (key == "OFFBRAND_DATA_DIR") c.data_dir = value;
    else if (key == "OFFBRAND_PUBLIC_URL") c.public_url = value;
    else if (key == "OFFBRAND_SECRET_KEY") c.secret_key = value;
    else if (key == "OFFBRAND_ADMIN_EMAIL") c.admin_email = ToLower(value);
    else if (key == "OFFBRAND_STREAM_API_KEY") c.stream_api_key = value;
    else if (key == "OFFBRAND_STREAM_API_SECRET") c.stream_api_secret = value;
    else if (key == "OFFBRAND_STREAM_API_SECRET_FILE") { /* below */ }
    else if (key == "OFFBRAND_STREAM_APP_ID") c.stream_app_id = value;
    else if (key == "OFFBRAND_STREAM_BASE_URL") c.stream_base_url = value;
    else if (key == "OFFBRAND_STREAM_LOCATION") c.stream_location = value;
    else if (key == "OFFBRAND_STREAM_TIMEOUT_MS") {
      s = ParseInt(key, value, 100, 600'000, &n);
      c.stream_timeout_ms = n;
    } else if (key == "OFFBRAND_SYNC_RETRY_MAX_MS") {
      s = ParseInt(key, value, 10, 86'400'000, &n);
      c.sync_retry_max_ms = n;
    } else if (key == "OFFBRAND_FEED_USER") c.feed_user = value;
    else if (key == "OFFBRAND_FEED_COLLECTIONS") c.feed_collections = value;
    else if (key == "OFFBRAND_FEED_TIMELINE") c.feed_timeline = value;
    else if (key == "OFFBRAND_FEED_NOTIFICATIONS") c.feed_notifications = value;
    else if (key == "OFFBRAND_SMTP_URL") c.smtp_url = value;
    else if (key == "OFFBRAND_SMTP_FROM") c.smtp_from = value;
    else if (key == "OFFBRAND_LOG_LEVEL") c.log_level = value;
    else if (key == "OFFBRAND_TRUSTED_PROXIES") s = ParseProxies(value, &c.trusted_proxies);
    else if (key == "OFFBRAND_HTTP_THREADS") {
      s = ParseInt(key, value, 1, 256, &n);
      c.http_threads = static_cast<int>(n);
    } else if (key == "OFFBRAND_PASSWORD_HASHES_MAX") {
      s = ParseInt(key, value, 1, 64, &n);
      c.password_hashes_max = static_cast<int>(n);
    } else if (key == "OFFBRAND_MAP_SIZE_MB") {
      s = ParseInt(key, value, 1, 1 << 20, &n);
      c.map_size_bytes = static_cast<uint64_t>(n) << 20;
    }
    // Unknown OFFBRAND_* names are ignored so that an env file can serve
    // several versions; they are not secrets, so say so at debug level.
    if (!s.ok()) return s;
  }
  if (Status groups = CheckFeedGroups(c); !groups.ok()) return groups;
  if (c.stream_api_secret.empty()) {
    std::string path;
    auto it = vars.find("OFFBRAND_STREAM_API_SECRET_FILE");
    if (it != vars.end()) {
      path = it->second;
    } else if (const char* creds = getenv("CREDENTIALS_DIRECTORY")) {
      std::string candidate = std::string(creds) + "/stream_api_secret";
      if (access(candidate.c_str(), R_OK) == 0) path = candidate;
    }
    if (!path.empty()) {
      std::string text;
      if (!ReadFile(path, &text)) {
        return Status::BadRequest("bad_config", "cannot read the Stream API secret file " + path);
      }
      c.stream_api_secret = FirstLine(text);
    }
  }
  if (c.stream_location.size() > 0 && vars.count("OFFBRAND_STREAM_BASE_URL") == 0) {
    c.stream_base_url = "https://" + c.stream_location + "-api.stream-io-api.com/api/v1.0/";
  }
  if (!c.stream_base_url.empty() && c.stream_base_url.back() != '/') c.stream_base_url += '/';
  if (c.public_url.empty()) {
    c.public_url = "http://" + c.listen_host + ":" + std::to_string(c.listen_port);
  }
  while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  return c;
}

Status EnsureSecretKey(Config* config) {
  if (!config->secret_key.empty()) return Status::Ok();
  const std::string path = config->data_dir + "/secret_key";
  std::string text;
  if (ReadFile(path, &text) && !FirstLine(text).empty()) {
    config->secret_key = FirstLine(text);
    return Status::Ok();
  }
  if (mkdir(config->data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create " + config->data_dir + ": " + strerror(errno));
  }
  std::string key = RandomToken();
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return Status::Internal("cannot create " + path + ": " + strerror(errno));
  std::string line = key + "\n";
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok) return Status::Internal("cannot write " + path);
  config->secret_key = key;
  return Status::Ok();
}

}  // namespace offbrand
