// Crypto: random tokens, hashing, signed single-purpose tokens and bounded
// Argon2id password hashing, all through libsodium.
//
// Thread-safety: functions are thread-safe; PasswordHasher is thread-safe.
#ifndef OFFBRAND_CRYPTO_H_
#define OFFBRAND_CRYPTO_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "offbrand/status.h"

namespace offbrand {

// Calls sodium_init once; false when libsodium cannot initialise.
bool CryptoInit();
// 256-bit random token, base64url without padding.
std::string RandomToken();
// Lowercase hex SHA-256 of `data` (keys for stored token hashes).
std::string Sha256Hex(std::string_view data);
std::string Md5Hex(std::string_view data);  // gravatar only (OpenSSL)

// Signed tokens for email links: payload "<purpose>|<user id>|<epoch>|<expiry
// ms>|<extra>" + HMAC-SHA256 with the secret key, base64url. Single use is
// enforced by the caller (kUsedTokens) and by the user's auth_epoch.
struct SignedToken {
  std::string purpose;  // "confirm", "reset", "email"
  uint64_t user_id = 0;
  uint64_t epoch = 0;
  int64_t expires_ms = 0;
  std::string extra;    // e.g. the new email address
};
std::string MakeSignedToken(std::string_view secret_key, const SignedToken& token);
// 400 invalid_token when malformed, badly signed, of another purpose or
// expired (at `now_ms`).
Status VerifySignedToken(std::string_view secret_key, std::string_view text,
                         std::string_view purpose, int64_t now_ms, SignedToken* out);

// A fixed Argon2id hash, computed once (outside any PasswordHasher), to
// verify against when an account does not exist.
const std::string& DummyPasswordHash();

// Argon2id (crypto_pwhash_str, interactive limits) with at most
// `concurrent_max` hashes at once: a burst of logins waits instead of
// allocating 64 MiB per attempt on a 1 GiB Pi. The wait is bounded too, so a
// burst cannot park every HTTP worker here: at most `waiters_max` callers
// wait, each for at most `wait_ms`; beyond that Hash and Verify fail at once
// with 503 `busy` (the HTTP layer adds Retry-After).
constexpr int kPasswordHashWaitersPerSlot = 4;
constexpr int64_t kPasswordHashWaitMs = 5'000;
constexpr int64_t kBusyRetryAfterS = 2;

class PasswordHasher {
 public:
  explicit PasswordHasher(int concurrent_max)
      : PasswordHasher(concurrent_max, concurrent_max * kPasswordHashWaitersPerSlot,
                       kPasswordHashWaitMs) {}
  PasswordHasher(int concurrent_max, int waiters_max, int64_t wait_ms)
      : waiters_max_(waiters_max), wait_ms_(wait_ms), slots_(concurrent_max) {}

  // The PHC string of `password`; 503 busy, or 500 when libsodium fails.
  Result<std::string> Hash(std::string_view password);
  // Whether `password` matches `hash` (false for a malformed hash); 503 busy.
  Result<bool> Verify(std::string_view hash, std::string_view password);

  // The most hashes that ever ran at once (instrumentation; never above
  // concurrent_max), and the number of callers refused as busy.
  int peak_running() const;
  uint64_t busy_refusals() const;

 private:
  Status Acquire();
  void Release();
  const int waiters_max_;
  const int64_t wait_ms_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int slots_;            // guarded by mu_
  int waiting_ = 0;      // guarded by mu_
  int running_ = 0;      // guarded by mu_
  int peak_running_ = 0; // guarded by mu_
  uint64_t busy_ = 0;    // guarded by mu_
};

}  // namespace offbrand

#endif  // OFFBRAND_CRYPTO_H_
