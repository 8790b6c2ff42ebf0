// Users in LMDB: loading, finding and writing user rows with their indexes,
// and the JSON shapes of a user shared by every module.
//
// Thread-safety: free functions over a caller-owned transaction.
#ifndef OFFBRAND_USERS_DB_H_
#define OFFBRAND_USERS_DB_H_

#include <string_view>

#include "json.h"
#include "offbrand/model.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

// NotFound (404 not_found, "no such user") when absent.
Result<User> LoadUser(const Txn& txn, uint64_t id);
Result<User> FindUserByName(const Txn& txn, std::string_view username);   // case-insensitive
Result<User> FindUserByEmail(const Txn& txn, std::string_view email);     // case-insensitive

// Writes `user` and its username/email indexes. When `before` is given (an
// update) stale index entries are removed. 409 duplicate_username /
// duplicate_email (with field) when another user holds the name or email.
Status PutUser(WriteTxn& txn, const User& user, const User* before);
// Deletes the row and its indexes (not the user's content: see accounts).
Status DeleteUserRow(WriteTxn& txn, const User& user);

// {id, username, gravatar} with the size-40 gravatar: a feed actor, a
// collection's author.
void WriteActorJson(JsonOut& out, const User& user);
// The SPEC user object; `with_email` for themselves and admins. `last_seen_us`
// overrides the row's value when the in-memory one is newer (see LastSeen).
void WriteUserJson(JsonOut& out, const User& user, bool with_email, int64_t last_seen_us);

}  // namespace offbrand

#endif  // OFFBRAND_USERS_DB_H_
