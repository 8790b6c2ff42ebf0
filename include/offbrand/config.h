// Config: every setting of SPEC section 2, read from the environment and an
// optional file of OFFBRAND_*=value lines (systemd EnvironmentFile= format);
// the environment wins over the file.
//
// Thread-safety: a plain value, constant after LoadConfig.
#ifndef OFFBRAND_CONFIG_H_
#define OFFBRAND_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "offbrand/status.h"

namespace offbrand {

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;              // 0: pick a free port (tests)
  std::string data_dir = "./data";
  std::string public_url;              // default http://<listen>
  std::string secret_key;              // from the env or <data_dir>/secret_key
  std::string admin_email;             // lowercased
  std::string stream_api_key;
  std::string stream_api_secret;       // never logged
  std::string stream_app_id;
  std::string stream_base_url = "https://api.stream-io-api.com/api/v1.0/";
  std::string stream_location;
  int64_t stream_timeout_ms = 10'000;
  int64_t sync_retry_max_ms = 300'000;
  std::string feed_user = "User";
  std::string feed_collections = "Collections";
  std::string feed_timeline = "Timeline";
  std::string feed_notifications = "Notifications";
  std::string smtp_url;
  std::string smtp_from = "offbrand@localhost";
  std::string log_level = "info";      // debug, info, warning, error
  // OFFBRAND_TRUSTED_PROXIES: comma-separated IP addresses of reverse proxies
  // (nginx, caddy). A request from one of them is attributed to the last
  // X-Forwarded-For hop (throttling, the fail2ban line), and they are exempt
  // from the per-address connection cap. Default: none (the peer address).
  std::vector<std::string> trusted_proxies;

  // Limits (not in SPEC's list; settable for tests and small machines).
  // HTTP worker threads: requests processed at once. Connections waiting
  // for a request do not hold one (see src/http_connections.h).
  int http_threads = 32;
  int password_hashes_max = 2;         // concurrent Argon2id hashes
  // HTTP connection limits (src/http_connections.h): a request must arrive
  // whole within the deadline of its first byte; idle keep-alive
  // connections close after the idle timeout; a connection serves at most
  // so many requests (the last reply says Connection: close).
  int64_t http_request_deadline_ms = 10'000;
  int64_t http_idle_timeout_ms = 5'000;
  size_t http_requests_per_connection_max = 1'000;
  size_t http_connections_per_address_max = 128;
  uint64_t map_size_bytes = 64ull << 20;
  // Links in one collection and collections of one person: far beyond use,
  // so that one request's work stays bounded (a rename queues one Stream
  // update per link; deleting a user deletes every collection and link).
  // Reaching one is 409 too_many_links / too_many_collections.
  uint64_t items_per_collection_max = 10'000;
  uint64_t collections_per_user_max = 1'000;
  // Tests only: passed to StoreOptions::commit_fault_for_test.
  std::function<int()> commit_fault_for_test;

  bool stream_configured() const {
    return !stream_api_key.empty() && !stream_api_secret.empty();
  }
};

// Parses "KEY=value" lines (comments with #, blank lines, optional quotes).
// Fails with a message naming the line for a malformed line.
Status ParseEnvFile(const std::string& text, std::map<std::string, std::string>* out);

// Stream's rule for a feed group slug, which every OFFBRAND_FEED_* name
// must follow: 1-64 ASCII letters, digits or underscores (Stream's SDKs
// check `\w+`; a ':' or '/' would break feed ids and paths).
constexpr size_t kFeedGroupBytesMax = 64;
bool IsValidFeedGroup(const std::string& name);

// Builds the Config from `file` (may be empty) and the process environment.
// Reads OFFBRAND_STREAM_API_SECRET_FILE and the systemd credential
// $CREDENTIALS_DIRECTORY/stream_api_secret when the secret is not set
// directly. Does not touch the data dir (see EnsureSecretKey). Fails with
// 400 bad_config naming the variable for a bad value, including a feed group
// name that is not a slug (IsValidFeedGroup) or is used for two groups.
Result<Config> LoadConfig(const std::string& file);

// Fills config->secret_key from <data_dir>/secret_key, generating the file
// (mode 0600, 32 random bytes as base64url) when absent and no key was configured.
Status EnsureSecretKey(Config* config);

}  // namespace offbrand

#endif  // OFFBRAND_CONFIG_H_
