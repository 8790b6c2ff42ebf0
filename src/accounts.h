// Accounts: the operations on users shared by the HTTP routes and the CLI,
// plus the in-memory last_seen coalescer.
//
// Thread-safety: functions take the Store and are thread-safe; LastSeen is
// thread-safe.
#ifndef OFFBRAND_ACCOUNTS_H_
#define OFFBRAND_ACCOUNTS_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "offbrand/config.h"
#include "offbrand/model.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

class PasswordHasher;

// Validates and creates a user (role Administrator when the email equals
// config.admin_email or `admin`). A confirmed user also gets the Stream
// user-add record and the self-follow, in the same transaction.
Result<User> CreateUser(Store& store, const Config& config, PasswordHasher& hasher,
                        const std::string& username, const std::string& email,
                        const std::string& password, bool admin, bool confirmed);
// Marks a user confirmed and queues the Stream user add and self-follow.
// Confirming a confirmed user is OK and queues nothing.
Status ConfirmUserInTxn(WriteTxn& txn, const Config& config, User* user);
// Deletes a user with their collections, items, follows and sessions, and
// queues the Stream deletes.
Status DeleteUserInTxn(WriteTxn& txn, const Config& config, const User& user);

// Stream user data {"username","gravatar"(size 40)}; the user-add body
// {"id","data"} and the user-update body {"data"}.
std::string StreamUserAddBody(const User& user);
std::string StreamUserUpdateBody(const User& user);

// last_seen without a write per request: Touch() records in memory; Flush()
// writes every pending value in one transaction (called every minute by App
// and at shutdown).
class LastSeen {
 public:
  void Touch(uint64_t user_id, int64_t now_us);
  // The newest known value (in memory, else 0).
  int64_t Get(uint64_t user_id) const;
  Status Flush(Store& store);

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, int64_t> pending_;  // guarded by mu_
};

}  // namespace offbrand

#endif  // OFFBRAND_ACCOUNTS_H_
