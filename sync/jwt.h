// JSON Web Tokens for Stream (CONTRACT.md "Tokens"): HS256, keyed with the
// Stream API secret, base64url without padding, compact JSON.
//
// MakeJwt signs a claims object as given (the caller writes the claims; the
// helpers below spell the shapes Stream expects, with the key order of the
// official SDKs). Tokens carry no `exp` or `iat`: the SDKs' server tokens do
// not either (golden-requests.json), so a token for a given claims string is
// the same bytes forever and may be cached.
//
// VerifyJwt is the other half, used by the Stream test double and by tests.
//
// Thread-safety: all functions are thread-safe (libsodium is initialised once
// on first use).
#ifndef OFFBRAND_SYNC_JWT_H_
#define OFFBRAND_SYNC_JWT_H_

#include <string>
#include <string_view>

namespace offbrand {

// The JOSE header every token carries, byte for byte.
inline constexpr std::string_view kJwtHeaderJson = R"({"alg":"HS256","typ":"JWT"})";

// Returns "<b64url(header)>.<b64url(claims_json)>.<b64url(HMAC-SHA256)>".
// `claims_json` is embedded verbatim (it should be compact JSON); `secret` may
// have any length. Never fails.
std::string MakeJwt(std::string_view secret, std::string_view claims_json);

// True when `token` is three base64url (unpadded) parts, its signature is the
// HMAC-SHA256 of "<part1>.<part2>" under `secret` (compared in constant time)
// and its header is JSON naming alg "HS256". On success *claims_json (when not
// null) holds the decoded claims text; on failure it is left unchanged.
// Does not look inside the claims (no exp/nbf checks: Stream's tokens have none).
bool VerifyJwt(std::string_view secret, std::string_view token, std::string* claims_json);

// {"resource":<resource>,"action":<action>,"feed_id":<feed_id>} in that key
// order, e.g. ServerTokenClaims("*", "*", "User42"). Strings are JSON-escaped.
std::string ServerTokenClaims(std::string_view resource, std::string_view action,
                              std::string_view feed_id);

// {"user_id":<user_id>}: the browser token of SPEC's /stream/credentials.
std::string UserTokenClaims(std::string_view user_id);

// base64url without padding (RFC 4648 section 5), and its inverse. Decode
// returns false (leaving *out unchanged) for characters outside the alphabet,
// padding, or an impossible length.
std::string Base64UrlEncode(std::string_view bytes);
bool Base64UrlDecode(std::string_view text, std::string* out);

}  // namespace offbrand

#endif  // OFFBRAND_SYNC_JWT_H_
