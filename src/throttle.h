// Throttle: login attempt limits per account and per client address, in
// memory. After `failures_max` failures within `window_s`, further attempts
// are refused for `lockout_s` (429 with Retry-After). Failures are logged in a
// fixed format a fail2ban filter can match:
//   "auth: login failed for <account> from <address>"
//
// Thread-safety: thread-safe. Memory is bounded by `keys_max` (oldest
// entries are evicted).
#ifndef OFFBRAND_THROTTLE_H_
#define OFFBRAND_THROTTLE_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace offbrand {

class Throttle {
 public:
  struct Options {
    int failures_max = 5;
    int64_t window_s = 300;
    int64_t lockout_s = 300;
    size_t keys_max = 100'000;
  };
  Throttle() : Throttle(Options()) {}
  explicit Throttle(Options options) : options_(options) {}

  // 0 when `key` may try now, else seconds until it may.
  int64_t RetryAfter(const std::string& key, int64_t now_s);
  void RecordFailure(const std::string& key, int64_t now_s);
  void RecordSuccess(const std::string& key);

 private:
  struct Entry {
    int failures = 0;
    int64_t window_start_s = 0;
    int64_t locked_until_s = 0;
  };
  Options options_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace offbrand

#endif  // OFFBRAND_THROTTLE_H_
