// Proves that our HS256 tokens are byte-identical to Stream's (the CONTRACT.md
// test vector), that VerifyJwt accepts exactly the tokens made with the right
// secret, and that the claim helpers spell the SDKs' claims.
#define BOOST_TEST_MODULE jwt_test
#include <boost/test/unit_test.hpp>

#include <sodium.h>

#include <string>

#include "jwt.h"

namespace offbrand {
namespace {

constexpr char kVectorSecret[] = "abcdefghijklmnop";
constexpr char kVectorToken[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiNDIifQ."
    "fJP44ZlP7bly-2HvbPxBO7WUGJhc1i2hpj4TnXmtYLE";

BOOST_AUTO_TEST_CASE(MakeJwtReproducesContractTestVector) {
  BOOST_TEST(UserTokenClaims("42") == R"({"user_id":"42"})");
  BOOST_TEST(MakeJwt(kVectorSecret, UserTokenClaims("42")) == kVectorToken);
}

BOOST_AUTO_TEST_CASE(VerifyAcceptsContractVectorAndReturnsClaims) {
  std::string claims;
  BOOST_TEST(VerifyJwt(kVectorSecret, kVectorToken, &claims));
  BOOST_TEST(claims == R"({"user_id":"42"})");
}

BOOST_AUTO_TEST_CASE(VerifyRoundTripsServerClaims) {
  const std::string claims = ServerTokenClaims("*", "*", "User42");
  BOOST_TEST(claims == R"({"resource":"*","action":"*","feed_id":"User42"})");
  const std::string token = MakeJwt("a secret of another length, 40 bytes...", claims);
  std::string out = "untouched";
  BOOST_TEST(VerifyJwt("a secret of another length, 40 bytes...", token, &out));
  BOOST_TEST(out == claims);
  BOOST_TEST(VerifyJwt("a secret of another length, 40 bytes...", token, nullptr));
}

BOOST_AUTO_TEST_CASE(ClaimsAreJsonEscaped) {
  BOOST_TEST(ServerTokenClaims("activities", "*", "a\"b\\c") ==
             R"({"resource":"activities","action":"*","feed_id":"a\"b\\c"})");
}

BOOST_AUTO_TEST_CASE(TamperedSignatureIsRejected) {
  std::string token = kVectorToken;
  token.back() = token.back() == 'E' ? 'F' : 'E';
  std::string out = "untouched";
  BOOST_TEST(!VerifyJwt(kVectorSecret, token, &out));
  BOOST_TEST(out == "untouched");
}

BOOST_AUTO_TEST_CASE(TamperedClaimsAreRejected) {
  // Same header and signature, claims for user 43.
  const std::string forged = std::string("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.") +
                             Base64UrlEncode(R"({"user_id":"43"})") + "." +
                             "fJP44ZlP7bly-2HvbPxBO7WUGJhc1i2hpj4TnXmtYLE";
  BOOST_TEST(!VerifyJwt(kVectorSecret, forged, nullptr));
}

BOOST_AUTO_TEST_CASE(WrongSecretIsRejected) {
  BOOST_TEST(!VerifyJwt("abcdefghijklmnoq", kVectorToken, nullptr));
  BOOST_TEST(!VerifyJwt("", kVectorToken, nullptr));
}

BOOST_AUTO_TEST_CASE(MalformedTokensAreRejected) {
  BOOST_TEST(!VerifyJwt(kVectorSecret, "", nullptr));
  BOOST_TEST(!VerifyJwt(kVectorSecret, "abc", nullptr));
  BOOST_TEST(!VerifyJwt(kVectorSecret, "a.b", nullptr));
  BOOST_TEST(!VerifyJwt(kVectorSecret, std::string(kVectorToken) + ".x", nullptr));
  BOOST_TEST(!VerifyJwt(kVectorSecret, std::string("Bearer ") + kVectorToken, nullptr));
  // Padding is not base64url-without-padding.
  BOOST_TEST(!VerifyJwt(kVectorSecret, std::string(kVectorToken) + "=", nullptr));
}

BOOST_AUTO_TEST_CASE(OtherAlgHeaderIsRejectedEvenWithValidMac) {
  // A token correctly MACed with the secret whose header names another alg.
  const std::string signing_input = Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                                    Base64UrlEncode(R"({"user_id":"42"})");
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(kVectorSecret),
                              sizeof kVectorSecret - 1);
  crypto_auth_hmacsha256_update(
      &state, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  const std::string token =
      signing_input + "." + Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), sizeof mac));
  BOOST_TEST(!VerifyJwt(kVectorSecret, token, nullptr));
  BOOST_TEST(!VerifyJwt(kVectorSecret, signing_input + ".", nullptr));
}

BOOST_AUTO_TEST_CASE(Base64UrlRoundTripsAllByteValues) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (size_t len = 0; len < 8; ++len) {
    const std::string part = bytes.substr(250 - len, len);
    std::string decoded;
    const std::string encoded = Base64UrlEncode(part);
    BOOST_TEST(encoded.find_first_of("+/=") == std::string::npos);
    BOOST_TEST(Base64UrlDecode(encoded, &decoded));
    BOOST_TEST(decoded == part);
  }
  std::string decoded = "untouched";
  BOOST_TEST(!Base64UrlDecode("ab+/", &decoded));
  BOOST_TEST(decoded == "untouched");
}

}  // namespace
}  // namespace offbrand
