// Users in LMDB: rows, indexes and their JSON.
#include "users_db.h"

namespace offbrand {

namespace {
Status NoSuchUser() { return Status::NotFound("no such user"); }
}  // namespace

Result<User> LoadUser(const Txn& txn, uint64_t id) {
  std::string_view v;
  if (!txn.Get(Db::kUsers, U64Key(id), &v).ok()) return NoSuchUser();
  User u;
  if (!DecodeUser(v, &u)) return Status::Internal("user row " + std::to_string(id) + " is corrupt");
  return u;
}

namespace {
Result<User> FindBy(const Txn& txn, Db index, std::string_view key) {
  std::string_view v;
  if (!txn.Get(index, ToLower(key), &v).ok() || v.size() != 8) return NoSuchUser();
  return LoadUser(txn, GetU64BE(v));
}
}  // namespace

Result<User> FindUserByName(const Txn& txn, std::string_view username) {
  if (username.empty() || username.size() > kUsernameBytesMax) return NoSuchUser();
  return FindBy(txn, Db::kUsersByName, username);
}

Result<User> FindUserByEmail(const Txn& txn, std::string_view email) {
  if (email.empty() || email.size() > kEmailBytesMax) return NoSuchUser();
  return FindBy(txn, Db::kUsersByEmail, email);
}

Status PutUser(WriteTxn& txn, const User& user, const User* before) {
  const std::string id_key = U64Key(user.id);
  const std::string name_key = ToLower(user.username);
  const std::string email_key = ToLower(user.email);
  std::string_view holder;
  if (txn.Get(Db::kUsersByName, name_key, &holder).ok() && holder != id_key) {
    return Status::Conflict("duplicate_username", "that username is taken", "username");
  }
  if (txn.Get(Db::kUsersByEmail, email_key, &holder).ok() && holder != id_key) {
    return Status::Conflict("duplicate_email", "that email is already registered", "email");
  }
  Status s;
  if (before != nullptr) {
    const std::string old_name = ToLower(before->username);
    const std::string old_email = ToLower(before->email);
    if (old_name != name_key) {
      s = txn.Del(Db::kUsersByName, old_name);
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    if (old_email != email_key) {
      s = txn.Del(Db::kUsersByEmail, old_email);
      if (!s.ok() && !s.IsNotFound()) return s;
    }
  }
  s = txn.Put(Db::kUsers, id_key, EncodeUser(user));
  if (!s.ok()) return s;
  s = txn.Put(Db::kUsersByName, name_key, id_key);
  if (!s.ok()) return s;
  return txn.Put(Db::kUsersByEmail, email_key, id_key);
}

Status DeleteUserRow(WriteTxn& txn, const User& user) {
  for (auto [db, key] : {std::pair{Db::kUsersByName, ToLower(user.username)},
                         std::pair{Db::kUsersByEmail, ToLower(user.email)},
                         std::pair{Db::kUsers, U64Key(user.id)}}) {
    Status s = txn.Del(db, key);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  return Status::Ok();
}

void WriteActorJson(JsonOut& out, const User& user) {
  out.BeginObject();
  out.Key("id").Uint(user.id);
  out.Field("username", user.username);
  out.Field("gravatar", GravatarUrl(user.email, 40));
  out.EndObject();
}

void WriteUserJson(JsonOut& out, const User& user, bool with_email, int64_t last_seen_us) {
  out.BeginObject();
  out.Key("id").Uint(user.id);
  out.Field("username", user.username);
  out.Field("name", user.name);
  out.Field("about_me", user.about_me);
  out.Field("gravatar", GravatarUrl(user.email, 100));
  out.Field("role", RoleName(user.role));
  out.Key("confirmed").Bool(user.confirmed);
  out.Field("member_since", FormatIsoTime(user.member_since_us));
  const int64_t seen = std::max(user.last_seen_us, last_seen_us);
  out.Key("last_seen");
  if (seen > 0) {
    out.String(FormatIsoTime(seen));
  } else {
    out.Null();
  }
  if (with_email) out.Field("email", user.email);
  out.EndObject();
}

}  // namespace offbrand
