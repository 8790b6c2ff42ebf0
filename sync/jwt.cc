#include "jwt.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>
#include <sodium.h>

#include <cstdlib>

namespace offbrand {
namespace {

constexpr int kB64Variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

void EnsureSodium() {
  // sodium_init is idempotent and thread-safe, but it is cheaper to ask once;
  // a failure (no entropy source) is unrecoverable for every user of sodium.
  static const bool initialised = [] { return sodium_init() >= 0; }();
  if (!initialised) std::abort();
}

std::string HmacSha256(std::string_view key, std::string_view message) {
  EnsureSodium();
  crypto_auth_hmacsha256_state state;
  // The init/update/final form accepts keys of any length (the one-shot
  // crypto_auth_hmacsha256 wants exactly 32 bytes).
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(message.data()),
                                message.size());
  std::string mac(crypto_auth_hmacsha256_BYTES, '\0');
  crypto_auth_hmacsha256_final(&state, reinterpret_cast<unsigned char*>(mac.data()));
  sodium_memzero(&state, sizeof state);
  return mac;
}

bool HeaderIsHs256(std::string_view header_json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(header_json);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return false;
  std::string_view alg;
  if (doc["alg"].get(alg) != simdjson::SUCCESS) return false;
  return alg == "HS256";
}

}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  EnsureSodium();
  const size_t max_len = sodium_base64_encoded_len(bytes.size(), kB64Variant);
  std::string out(max_len, '\0');
  sodium_bin2base64(out.data(), max_len, reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), kB64Variant);
  out.resize(std::char_traits<char>::length(out.c_str()));  // drop the terminator
  return out;
}

bool Base64UrlDecode(std::string_view text, std::string* out) {
  EnsureSodium();
  std::string bin(text.size() * 3 / 4 + 3, '\0');
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(bin.data()), bin.size(), text.data(),
                        text.size(), /*ignore=*/nullptr, &bin_len, &end, kB64Variant) != 0) {
    return false;
  }
  if (end != text.data() + text.size()) return false;  // trailing garbage
  bin.resize(bin_len);
  *out = std::move(bin);
  return true;
}

std::string MakeJwt(std::string_view secret, std::string_view claims_json) {
  std::string token = Base64UrlEncode(kJwtHeaderJson);
  token += '.';
  token += Base64UrlEncode(claims_json);
  const std::string mac = HmacSha256(secret, token);
  token += '.';
  token += Base64UrlEncode(mac);
  return token;
}

bool VerifyJwt(std::string_view secret, std::string_view token, std::string* claims_json) {
  const size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return false;
  const size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return false;
  }
  std::string signature;
  if (!Base64UrlDecode(token.substr(dot2 + 1), &signature) ||
      signature.size() != crypto_auth_hmacsha256_BYTES) {
    return false;
  }
  const std::string expected = HmacSha256(secret, token.substr(0, dot2));
  if (sodium_memcmp(signature.data(), expected.data(), expected.size()) != 0) return false;
  std::string header;
  std::string claims;
  if (!Base64UrlDecode(token.substr(0, dot1), &header) || !HeaderIsHs256(header) ||
      !Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1), &claims)) {
    return false;
  }
  if (claims_json != nullptr) *claims_json = std::move(claims);
  return true;
}

namespace {

void WriteString(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace

std::string ServerTokenClaims(std::string_view resource, std::string_view action,
                              std::string_view feed_id) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("resource");
  WriteString(w, resource);
  w.Key("action");
  WriteString(w, action);
  w.Key("feed_id");
  WriteString(w, feed_id);
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string UserTokenClaims(std::string_view user_id) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("user_id");
  WriteString(w, user_id);
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace offbrand
