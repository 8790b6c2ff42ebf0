// Throttle: fixed-window failure counting with a lockout, per key.
#include "throttle.h"

#include <algorithm>

namespace offbrand {

namespace {

// An entry that is neither locked nor inside its counting window holds no
// information and may be dropped.
bool Idle(int64_t locked_until_s, int64_t window_start_s, int64_t window_s, int64_t now_s) {
  return locked_until_s <= now_s && window_start_s + window_s <= now_s;
}

}  // namespace

int64_t Throttle::RetryAfter(const std::string& key, int64_t now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return 0;
  const Entry& e = it->second;
  if (e.locked_until_s > now_s) return e.locked_until_s - now_s;
  if (Idle(e.locked_until_s, e.window_start_s, options_.window_s, now_s)) entries_.erase(it);
  return 0;
}

void Throttle::RecordFailure(const std::string& key, int64_t now_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= options_.keys_max) {
      // Full: drop idle entries; if none, the one whose window began first.
      for (auto i = entries_.begin(); i != entries_.end();) {
        if (Idle(i->second.locked_until_s, i->second.window_start_s, options_.window_s, now_s)) {
          i = entries_.erase(i);
        } else {
          ++i;
        }
      }
      if (entries_.size() >= options_.keys_max && !entries_.empty()) {
        auto oldest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
          return a.second.window_start_s < b.second.window_start_s;
        });
        entries_.erase(oldest);
      }
    }
    it = entries_.emplace(key, Entry{}).first;
    it->second.window_start_s = now_s;
  }
  Entry& e = it->second;
  if (e.window_start_s + options_.window_s <= now_s) {
    e.failures = 0;
    e.window_start_s = now_s;
  }
  ++e.failures;
  if (e.failures >= options_.failures_max) {
    e.locked_until_s = now_s + options_.lockout_s;
    e.failures = 0;
    e.window_start_s = now_s;
  }
}

void Throttle::RecordSuccess(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(key);
}

}  // namespace offbrand
