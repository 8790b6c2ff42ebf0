// Account helpers shared by accounts.cc, auth_routes.cc and user_routes.cc:
// field validators answering the SPEC error objects, session revocation, the
// Stream user-update record and account mail. Private to src/.
//
// Thread-safety: free functions; the *InTxn ones use the caller's transaction.
#ifndef OFFBRAND_ACCOUNT_UTIL_H_
#define OFFBRAND_ACCOUNT_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "offbrand/config.h"
#include "offbrand/model.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define ACCT_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::offbrand::Status acct_status_ = (expr);   \
    if (!acct_status_.ok()) return acct_status_; \
  } while (0)

namespace offbrand {

class Mailer;

// Email links expire after an hour (SPEC section 7).
constexpr int64_t kEmailTokenLifetimeMs = 3600 * 1000;
constexpr int64_t kSessionLifetimeMs = 24 * 3600 * 1000ll;
constexpr int64_t kRememberedSessionLifetimeMs = 30 * 24 * 3600 * 1000ll;

// Each returns OK or 422 invalid_field naming `field`.
Status ValidateUsername(std::string_view username, const char* field = "username");
// Checks and lowercases *email in place.
Status NormalizeEmail(std::string* email, const char* field = "email");
Status ValidatePassword(std::string_view password, const char* field = "password");
Status ValidateName(std::string_view name, const char* field = "name");
Status ValidateAboutMe(std::string_view about_me, const char* field = "about_me");

// The public base URL without a trailing slash.
std::string PublicBaseUrl(const Config& config);

// Queues the Stream user update (kUserUpdate, body StreamUserUpdateBody).
Status QueueUserUpdateInTxn(WriteTxn& txn, const User& user);
// Deletes every session of `user_id` except the one keyed `keep_key` (may be
// empty). Scans kSessions: sessions are few on a self-hosted server.
Status RevokeSessionsInTxn(WriteTxn& txn, uint64_t user_id, std::string_view keep_key);

// Queues a mail whose body carries `link`; the mailer logs or sends it.
void SendLinkMail(Mailer* mailer, const std::string& to, const std::string& subject,
                  const std::string& text, const std::string& link);

// The SPEC user object as a string (WriteUserJson).
std::string UserJsonString(const User& user, bool with_email, int64_t last_seen_us);

}  // namespace offbrand

#endif  // OFFBRAND_ACCOUNT_UTIL_H_
