// Crypto: libsodium for randomness, SHA-256, HMAC-SHA256 and Argon2id;
// OpenSSL's EVP only for the MD5 that gravatar URLs require.
#include "crypto.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

namespace offbrand {

namespace {

constexpr size_t kTokenBytes = 32;  // 256-bit session and API tokens
constexpr size_t kMacBytes = crypto_auth_hmacsha256_BYTES;
// A signed token's payload never needs more than this; longer input is
// rejected before decoding.
constexpr size_t kSignedTokenCharsMax = 1024;

std::string Base64Url(const unsigned char* data, size_t len) {
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(len, variant), '\0');
  sodium_bin2base64(out.data(), out.size(), data, len, variant);
  out.resize(strlen(out.c_str()));  // drop the terminating NUL
  return out;
}

bool FromBase64Url(std::string_view text, std::vector<unsigned char>* out) {
  out->assign(text.size(), 0);  // decoded is always shorter than encoded
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out->data(), out->size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return false;
  }
  if (end != text.data() + text.size()) return false;
  out->resize(len);
  return true;
}

void Hmac(std::string_view key, std::string_view payload, unsigned char mac[kMacBytes]) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(payload.data()),
                                payload.size());
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof(state));
}

std::string Hex(const unsigned char* data, size_t len) {
  std::string out(len * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, len);
  out.pop_back();
  return out;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return false;  // overflow
    v = next;
  }
  *out = v;
  return true;
}

Status InvalidToken() {
  return Status::BadRequest("invalid_token", "this link is invalid or has expired");
}

}  // namespace

bool CryptoInit() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

std::string RandomToken() {
  CryptoInit();
  unsigned char buf[kTokenBytes];
  randombytes_buf(buf, sizeof(buf));
  return Base64Url(buf, sizeof(buf));
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return Hex(digest, sizeof(digest));
}

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1) {
    return std::string(32, '0');  // cannot happen with a working libcrypto
  }
  return Hex(digest, len);
}

// Layout: base64url(payload || HMAC-SHA256(secret, payload)), one blob so the
// token is a single URL-safe word in a mail link.
std::string MakeSignedToken(std::string_view secret_key, const SignedToken& token) {
  std::string payload = token.purpose + "|" + std::to_string(token.user_id) + "|" +
                        std::to_string(token.epoch) + "|" + std::to_string(token.expires_ms) +
                        "|" + token.extra;
  unsigned char mac[kMacBytes];
  Hmac(secret_key, payload, mac);
  payload.append(reinterpret_cast<const char*>(mac), kMacBytes);
  return Base64Url(reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
}

Status VerifySignedToken(std::string_view secret_key, std::string_view text,
                         std::string_view purpose, int64_t now_ms, SignedToken* out) {
  if (text.empty() || text.size() > kSignedTokenCharsMax) return InvalidToken();
  std::vector<unsigned char> raw;
  if (!FromBase64Url(text, &raw) || raw.size() <= kMacBytes) return InvalidToken();
  std::string_view payload(reinterpret_cast<const char*>(raw.data()), raw.size() - kMacBytes);
  unsigned char expected[kMacBytes];
  Hmac(secret_key, payload, expected);
  if (sodium_memcmp(expected, raw.data() + payload.size(), kMacBytes) != 0) return InvalidToken();

  // "<purpose>|<user id>|<epoch>|<expiry ms>|<extra>"; extra may hold '|'.
  std::string_view parts[4];
  std::string_view rest = payload;
  for (auto& part : parts) {
    size_t bar = rest.find('|');
    if (bar == std::string_view::npos) return InvalidToken();
    part = rest.substr(0, bar);
    rest.remove_prefix(bar + 1);
  }
  SignedToken t;
  t.purpose = std::string(parts[0]);
  uint64_t expires = 0;
  if (!ParseU64(parts[1], &t.user_id) || !ParseU64(parts[2], &t.epoch) ||
      !ParseU64(parts[3], &expires) || expires > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidToken();
  }
  t.expires_ms = static_cast<int64_t>(expires);
  t.extra = std::string(rest);
  if (t.purpose != purpose || t.expires_ms <= now_ms) return InvalidToken();
  *out = std::move(t);
  return Status::Ok();
}

const std::string& DummyPasswordHash() {
  static const std::string hash = [] {
    CryptoInit();
    char out[crypto_pwhash_STRBYTES] = {};
    const char kPassword[] = "offbrand-dummy-password";
    if (crypto_pwhash_str(out, kPassword, sizeof(kPassword) - 1,
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
      return std::string();
    }
    return std::string(out);
  }();
  return hash;
}

// ---- PasswordHasher -----------------------------------------------------------

namespace {
Status Busy() {
  return Status::Error(Status::Code::kUnavailable, "busy",
                       "the server is busy checking passwords; try again in a moment");
}
}  // namespace

Status PasswordHasher::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  if (slots_ == 0) {
    if (waiting_ >= waiters_max_) {
      ++busy_;
      return Busy();
    }
    ++waiting_;
    const bool got = cv_.wait_for(lock, std::chrono::milliseconds(wait_ms_),
                                  [this] { return slots_ > 0; });
    --waiting_;
    if (!got) {
      ++busy_;
      return Busy();
    }
  }
  --slots_;
  peak_running_ = std::max(peak_running_, ++running_);
  return Status::Ok();
}

void PasswordHasher::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++slots_;
    --running_;
  }
  cv_.notify_one();
}

int PasswordHasher::peak_running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_running_;
}

uint64_t PasswordHasher::busy_refusals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

Result<std::string> PasswordHasher::Hash(std::string_view password) {
  CryptoInit();
  char out[crypto_pwhash_STRBYTES];
  Status s = Acquire();
  if (!s.ok()) return s;
  int rc = crypto_pwhash_str(out, password.data(), password.size(),
                             crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE);
  Release();
  if (rc != 0) return Status::Internal("password hashing failed (out of memory?)");
  return std::string(out);
}

Result<bool> PasswordHasher::Verify(std::string_view hash, std::string_view password) {
  CryptoInit();
  // crypto_pwhash_str_verify wants a NUL-terminated string of bounded length.
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  char stored[crypto_pwhash_STRBYTES] = {};
  memcpy(stored, hash.data(), hash.size());
  Status s = Acquire();
  if (!s.ok()) return s;
  int rc = crypto_pwhash_str_verify(stored, password.data(), password.size());
  Release();
  return rc == 0;
}

}  // namespace offbrand
