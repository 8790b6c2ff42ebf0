// Accounts: user creation, confirmation and deletion with their Stream outbox
// records, the shared validators, and the last_seen coalescer.
#include "accounts.h"

#include <vector>

#include "account_util.h"
#include "collections.h"
#include "crypto.h"
#include "follows.h"
#include "json.h"
#include "mailer.h"
#include "offbrand/outbox.h"
#include "users_db.h"

namespace offbrand {

// ---- validators ----------------------------------------------------------------

Status ValidateUsername(std::string_view username, const char* field) {
  if (username.empty() || username.size() > kUsernameBytesMax) {
    return Status::Invalid(field, "a username has 1 to 64 characters");
  }
  if (!IsValidUsername(username)) {
    return Status::Invalid(field,
                           "a username starts with a letter and has only letters, digits, "
                           "dots and underscores");
  }
  return Status::Ok();
}

Status NormalizeEmail(std::string* email, const char* field) {
  if (email->empty() || email->size() > kEmailBytesMax) {
    return Status::Invalid(field, "an email address has 1 to 64 characters");
  }
  if (!IsCleanText(*email) || !IsValidEmail(*email)) {
    return Status::Invalid(field, "this is not a valid email address");
  }
  *email = ToLower(*email);
  return Status::Ok();
}

Status ValidatePassword(std::string_view password, const char* field) {
  if (password.size() < kPasswordBytesMin || password.size() > kPasswordBytesMax) {
    return Status::Invalid(field, "a password has 8 to 1024 characters");
  }
  if (!IsCleanText(password)) {
    return Status::Invalid(field, "a password must be valid UTF-8 without control characters");
  }
  return Status::Ok();
}

Status ValidateName(std::string_view name, const char* field) {
  if (name.size() > kNameBytesMax) return Status::Invalid(field, "a name has at most 64 characters");
  if (!IsCleanText(name)) {
    return Status::Invalid(field, "a name must be valid UTF-8 without control characters");
  }
  return Status::Ok();
}

Status ValidateAboutMe(std::string_view about_me, const char* field) {
  if (about_me.size() > kAboutMeBytesMax) {
    return Status::Invalid(field, "about me has at most 4096 characters");
  }
  if (!IsCleanText(about_me, /*multiline=*/true)) {
    return Status::Invalid(field, "about me must be valid UTF-8 without control characters");
  }
  return Status::Ok();
}

std::string PublicBaseUrl(const Config& config) {
  std::string url = config.public_url;
  if (url.empty()) url = "http://" + config.listen_host + ":" + std::to_string(config.listen_port);
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// ---- outbox and sessions ------------------------------------------------------------

namespace {

Status QueueUserRecord(WriteTxn& txn, OutboxOp op, const User& user, std::string body) {
  OutboxRecord rec;
  rec.op = op;
  rec.foreign_id = std::to_string(user.id);
  rec.entity = UserEntity(rec.foreign_id);
  rec.body = std::move(body);
  return EnqueueOutbox(txn, &rec);
}

void WriteStreamUserData(JsonOut& out, const User& user) {
  out.Key("data").BeginObject();
  out.Field("username", user.username);
  out.Field("gravatar", GravatarUrl(user.email, 40));
  out.EndObject();
}

}  // namespace

std::string StreamUserAddBody(const User& user) {
  JsonOut out;
  out.BeginObject().Field("id", std::to_string(user.id));
  WriteStreamUserData(out, user);
  out.EndObject();
  return out.str();
}

std::string StreamUserUpdateBody(const User& user) {
  JsonOut out;
  out.BeginObject();
  WriteStreamUserData(out, user);
  out.EndObject();
  return out.str();
}

Status QueueUserUpdateInTxn(WriteTxn& txn, const User& user) {
  return QueueUserRecord(txn, OutboxOp::kUserUpdate, user, StreamUserUpdateBody(user));
}

Status RevokeSessionsInTxn(WriteTxn& txn, uint64_t user_id, std::string_view keep_key) {
  std::vector<std::string> doomed;
  {
    Cursor c = txn.OpenCursor(Db::kSessions);
    for (bool ok = c.First(); ok; ok = c.Next()) {
      Session s;
      if (DecodeSession(c.value(), &s) && s.user_id == user_id && c.key() != keep_key) {
        doomed.emplace_back(c.key());
      }
    }
  }
  for (const std::string& key : doomed) {
    Status s = txn.Del(Db::kSessions, key);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  return Status::Ok();
}

void SendLinkMail(Mailer* mailer, const std::string& to, const std::string& subject,
                  const std::string& text, const std::string& link) {
  if (mailer == nullptr) return;
  Mail mail;
  mail.to = to;
  mail.subject = subject;
  mail.body = text + "\n\n" + link + "\n\nThis link is valid for one hour.\n";
  mailer->Enqueue(std::move(mail));
}

std::string UserJsonString(const User& user, bool with_email, int64_t last_seen_us) {
  JsonOut out;
  WriteUserJson(out, user, with_email, last_seen_us);
  return out.str();
}

// ---- accounts -------------------------------------------------------------------

Result<User> CreateUser(Store& store, const Config& config, PasswordHasher& hasher,
                        const std::string& username, const std::string& email_in,
                        const std::string& password, bool admin, bool confirmed) {
  ACCT_RETURN_IF_ERROR(ValidateUsername(username));
  std::string email = email_in;
  ACCT_RETURN_IF_ERROR(NormalizeEmail(&email));
  ACCT_RETURN_IF_ERROR(ValidatePassword(password));

  // A cheap early answer for duplicates before spending an Argon2id hash;
  // PutUser checks again authoritatively inside the write.
  {
    auto read = store.BeginRead();
    if (!read.ok()) return read.status();
    if (FindUserByName(**read, username).ok()) {
      return Status::Conflict("duplicate_username", "this username is taken", "username");
    }
    if (FindUserByEmail(**read, email).ok()) {
      return Status::Conflict("duplicate_email", "this email address is already registered",
                              "email");
    }
  }

  Result<std::string> hash = hasher.Hash(password);
  if (!hash.ok()) return hash.status();

  const bool is_admin = admin || (!config.admin_email.empty() && email == ToLower(config.admin_email));
  User created;
  Status s = store.Write([&](WriteTxn& txn) -> Status {
    Result<uint64_t> id = txn.NextId("user");
    if (!id.ok()) return id.status();
    User u;
    u.id = *id;
    u.username = username;
    u.email = email;
    u.password_hash = *hash;
    u.role = is_admin ? Role::kAdministrator : Role::kUser;
    u.confirmed = false;
    u.member_since_us = txn.now_ms() * 1000;
    u.last_seen_us = u.member_since_us;
    ACCT_RETURN_IF_ERROR(PutUser(txn, u, nullptr));
    if (confirmed) ACCT_RETURN_IF_ERROR(ConfirmUserInTxn(txn, config, &u));
    created = u;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return created;
}

Status ConfirmUserInTxn(WriteTxn& txn, const Config& config, User* user) {
  if (user->confirmed) return Status::Ok();
  User before = *user;
  user->confirmed = true;
  Status s = PutUser(txn, *user, &before);
  if (!s.ok()) {
    *user = before;
    return s;
  }
  ACCT_RETURN_IF_ERROR(QueueUserRecord(txn, OutboxOp::kUserAdd, *user, StreamUserAddBody(*user)));
  return FollowUserInTxn(txn, config, user->id, user->id);
}

Status DeleteUserInTxn(WriteTxn& txn, const Config& config, const User& user) {
  ACCT_RETURN_IF_ERROR(DeleteUserCollectionsInTxn(txn, config, user.id));
  ACCT_RETURN_IF_ERROR(DropUserFollowsInTxn(txn, config, user.id));
  ACCT_RETURN_IF_ERROR(RevokeSessionsInTxn(txn, user.id, {}));
  ACCT_RETURN_IF_ERROR(DeleteUserRow(txn, user));
  // Users exist on Stream only once confirmed.
  if (user.confirmed) ACCT_RETURN_IF_ERROR(QueueUserRecord(txn, OutboxOp::kUserDelete, user, {}));
  return Status::Ok();
}

// ---- LastSeen -------------------------------------------------------------------

void LastSeen::Touch(uint64_t user_id, int64_t now_us) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t& v = pending_[user_id];
  if (now_us > v) v = now_us;
}

int64_t LastSeen::Get(uint64_t user_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(user_id);
  return it == pending_.end() ? 0 : it->second;
}

// Values stay readable through Get() while they are being written and are
// forgotten only once the row holds them (unless touched again meanwhile).
Status LastSeen::Flush(Store& store) {
  std::unordered_map<uint64_t, int64_t> snapshot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot = pending_;
  }
  if (snapshot.empty()) return Status::Ok();
  Status s = store.Write([&snapshot](WriteTxn& txn) -> Status {
    for (const auto& [id, seen_us] : snapshot) {
      Result<User> u = LoadUser(txn, id);
      if (!u.ok()) {
        if (u.status().IsNotFound()) continue;  // deleted meanwhile
        return u.status();
      }
      if (u->last_seen_us >= seen_us) continue;
      u->last_seen_us = seen_us;
      ACCT_RETURN_IF_ERROR(txn.Put(Db::kUsers, U64Key(id), EncodeUser(*u)));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, seen_us] : snapshot) {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second == seen_us) pending_.erase(it);
  }
  return Status::Ok();
}

}  // namespace offbrand
