// The /api/v1/auth endpoints: register, confirm, login and logout, password
// change and reset, email change (SPEC section 3 auth rows and section 7).
//
// Password hashing and verification (Argon2id) always run outside any
// transaction, on the hasher's bounded slots. Email tokens are signed,
// expire after an hour and are single use (kUsedTokens or auth_epoch).
#include <string>

#include "account_util.h"
#include "accounts.h"
#include "crypto.h"
#include "http_server.h"
#include "json.h"
#include "mailer.h"
#include "offbrand/log.h"
#include "throttle.h"
#include "users_db.h"

namespace offbrand {

namespace {

constexpr size_t kThrottleKeyBytesMax = 128;

int64_t NowMs(const RequestContext& ctx) { return ctx.svc.clock->NowMs(); }

int64_t LastSeenOf(const RequestContext& ctx, uint64_t id) {
  return ctx.svc.last_seen != nullptr ? ctx.svc.last_seen->Get(id) : 0;
}

// {"user": <user object with email>}
std::string UserEnvelope(const RequestContext& ctx, const User& user) {
  JsonOut out;
  out.BeginObject().Key("user").Raw(UserJsonString(user, true, LastSeenOf(ctx, user.id)));
  out.EndObject();
  return out.str();
}

void SendMessage(RequestContext& ctx, int status, const char* message) {
  JsonOut out;
  out.BeginObject().Field("message", message).EndObject();
  ctx.SendJson(status, out.str());
}

// Printable ASCII only, so a log line cannot be forged or split.
std::string LogSafe(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kThrottleKeyBytesMax)) {
    out += (c > ' ' && c < 127) ? c : '?';
  }
  return out.empty() ? "-" : out;
}

std::string AccountKey(std::string_view email) {
  return "login:" + ToLower(email.substr(0, kThrottleKeyBytesMax));
}
std::string AddressKey(const RequestContext& ctx) { return "addr:" + ctx.ClientAddress(); }

Status RateLimited(RequestContext& ctx, int64_t retry_after_s) {
  ctx.res.set_header("Retry-After", std::to_string(retry_after_s));
  return Status::Error(Status::Code::kRateLimited, "rate_limited",
                       "too many failed attempts; try again later");
}

// 429 when the account or the client address is locked out.
Status CheckThrottle(RequestContext& ctx, const std::string& account_key) {
  int64_t now_s = NowMs(ctx) / 1000;
  int64_t wait_s = std::max(ctx.svc.throttle->RetryAfter(account_key, now_s),
                            ctx.svc.throttle->RetryAfter(AddressKey(ctx), now_s));
  return wait_s > 0 ? RateLimited(ctx, wait_s) : Status::Ok();
}

// Counts a failed password check and writes the fail2ban line.
void RecordFailedPassword(RequestContext& ctx, const std::string& account_key,
                          std::string_view account) {
  int64_t now_s = NowMs(ctx) / 1000;
  ctx.svc.throttle->RecordFailure(account_key, now_s);
  ctx.svc.throttle->RecordFailure(AddressKey(ctx), now_s);
  OB_LOG(kWarning, "auth: login failed for %s from %s", LogSafe(account).c_str(),
         LogSafe(ctx.ClientAddress()).c_str());
}

// Verifies against a fixed hash when there is no account, so an unknown email
// costs the same time as a wrong password. 503 busy when the hasher is.
Result<bool> VerifyPassword(PasswordHasher& hasher, const User* user,
                            const std::string& password) {
  if (user == nullptr) {
    Result<bool> ignored = hasher.Verify(DummyPasswordHash(), password);
    if (!ignored.ok()) return ignored.status();
    return false;
  }
  return hasher.Verify(user->password_hash, password);
}

// VerifyPassword, answering a wrong password with `wrong` after counting it.
Status CheckPassword(RequestContext& ctx, const User* user, const std::string& password,
                     const std::string& account_key, std::string_view account, Status wrong) {
  Result<bool> ok = VerifyPassword(*ctx.svc.hasher, user, password);
  if (!ok.ok()) return ok.status();
  if (*ok) return Status::Ok();
  RecordFailedPassword(ctx, account_key, account);
  return wrong;
}

Status MakeEmailToken(const RequestContext& ctx, const char* purpose, const User& user,
                      const std::string& extra, std::string* token) {
  if (ctx.svc.config->secret_key.empty()) return Status::Internal("no secret key is configured");
  SignedToken t;
  t.purpose = purpose;
  t.user_id = user.id;
  t.epoch = user.auth_epoch;
  t.expires_ms = NowMs(ctx) + kEmailTokenLifetimeMs;
  t.extra = extra;
  *token = MakeSignedToken(ctx.svc.config->secret_key, t);
  return Status::Ok();
}

Status SendConfirmation(RequestContext& ctx, const User& user) {
  std::string token;
  ACCT_RETURN_IF_ERROR(MakeEmailToken(ctx, "confirm", user, {}, &token));
  SendLinkMail(ctx.svc.mailer, user.email, "Confirm your account",
               "Welcome to offbrand, " + user.username + "! Confirm your account here:",
               PublicBaseUrl(*ctx.svc.config) + "/confirm?token=" + token);
  return Status::Ok();
}

Status InvalidToken(const char* why = "this link is invalid or has expired") {
  return Status::BadRequest("invalid_token", why);
}

Status MarkTokenUsed(WriteTxn& txn, const std::string& token_key, int64_t expires_ms) {
  if (txn.Has(Db::kUsedTokens, token_key)) return InvalidToken("this link was already used");
  return txn.Put(Db::kUsedTokens, token_key, U64Key(static_cast<uint64_t>(expires_ms)));
}

// ---- handlers ------------------------------------------------------------------

Status Register(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"username", "email", "password"}));
  std::string username, email, password;
  ACCT_RETURN_IF_ERROR(body.String("username", &username, true));
  ACCT_RETURN_IF_ERROR(body.String("email", &email, true));
  ACCT_RETURN_IF_ERROR(body.String("password", &password, true));
  Result<User> user = CreateUser(*ctx.svc.store, *ctx.svc.config, *ctx.svc.hasher, username, email,
                                 password, /*admin=*/false, /*confirmed=*/false);
  if (!user.ok()) return user.status();
  ACCT_RETURN_IF_ERROR(SendConfirmation(ctx, *user));
  ctx.SendJson(201, UserEnvelope(ctx, *user));
  return Status::Ok();
}

// The body's "token", verified as signed by us for `purpose` and unexpired;
// *token_key (when wanted) is the key that marks it used (single use).
Status VerifyBodyToken(const RequestContext& ctx, const RequestJson& body, const char* purpose,
                       SignedToken* t, std::string* token_key) {
  std::string token;
  ACCT_RETURN_IF_ERROR(body.String("token", &token, true));
  ACCT_RETURN_IF_ERROR(
      VerifySignedToken(ctx.svc.config->secret_key, token, purpose, NowMs(ctx), t));
  if (token_key != nullptr) *token_key = Sha256Hex(token);
  return Status::Ok();
}

Status Confirm(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"token"}));
  SignedToken t;
  std::string token_key;
  ACCT_RETURN_IF_ERROR(VerifyBodyToken(ctx, body, "confirm", &t, &token_key));
  const Config& config = *ctx.svc.config;
  User confirmed;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = LoadUser(txn, t.user_id);
    if (!u.ok()) return u.status().IsNotFound() ? InvalidToken() : u.status();
    ACCT_RETURN_IF_ERROR(MarkTokenUsed(txn, token_key, t.expires_ms));
    ACCT_RETURN_IF_ERROR(ConfirmUserInTxn(txn, config, &*u));
    confirmed = *u;
    return Status::Ok();
  }));
  ctx.SendJson(200, UserEnvelope(ctx, confirmed));
  return Status::Ok();
}

Status ResendConfirmation(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin(/*allow_unconfirmed=*/true));
  const User& user = ctx.viewer()->user;
  if (user.confirmed) {
    return Status::Conflict("already_confirmed", "this account is already confirmed");
  }
  // Bound the mail one account can cause.
  const std::string key = "mail:" + std::to_string(user.id);
  int64_t now_s = NowMs(ctx) / 1000;
  int64_t wait_s = ctx.svc.throttle->RetryAfter(key, now_s);
  if (wait_s > 0) return RateLimited(ctx, wait_s);
  ctx.svc.throttle->RecordFailure(key, now_s);
  ACCT_RETURN_IF_ERROR(SendConfirmation(ctx, user));
  SendMessage(ctx, 202, "a new confirmation link was sent");
  return Status::Ok();
}

Status Login(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"email", "password", "remember"}));
  std::string email, password;
  bool remember = false;
  ACCT_RETURN_IF_ERROR(body.String("email", &email, true));
  ACCT_RETURN_IF_ERROR(body.String("password", &password, true));
  ACCT_RETURN_IF_ERROR(body.Bool("remember", &remember, false));
  if (password.size() > kPasswordBytesMax) {
    return Status::Invalid("password", "a password has 8 to 1024 characters");
  }
  const std::string account_key = AccountKey(email);
  ACCT_RETURN_IF_ERROR(CheckThrottle(ctx, account_key));

  std::optional<User> user;
  if (email.size() <= kEmailBytesMax) {
    auto read = ctx.svc.store->BeginRead();
    if (!read.ok()) return read.status();
    Result<User> found = FindUserByEmail(**read, ToLower(email));
    if (found.ok()) {
      user = *found;
    } else if (!found.status().IsNotFound()) {
      return found.status();
    }
  }
  // Outside any transaction: Argon2id takes tens of milliseconds.
  ACCT_RETURN_IF_ERROR(CheckPassword(
      ctx, user ? &*user : nullptr, password, account_key, ToLower(email),
      Status::Error(Status::Code::kUnauthenticated, "invalid_credentials",
                    "wrong email or password")));
  ctx.svc.throttle->RecordSuccess(account_key);

  const std::string token = RandomToken();
  const std::string key = Sha256Hex(token);
  const int64_t lifetime_ms = remember ? kRememberedSessionLifetimeMs : kSessionLifetimeMs;
  const uint64_t user_id = user->id;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    if (!txn.Has(Db::kUsers, U64Key(user_id))) {
      return Status::Error(Status::Code::kUnauthenticated, "invalid_credentials",
                           "wrong email or password");
    }
    Session s;
    s.user_id = user_id;
    s.created_ms = txn.now_ms();
    s.expires_ms = s.created_ms + lifetime_ms;
    s.api_token = true;
    return txn.Put(Db::kSessions, key, EncodeSession(s));
  }));
  if (ctx.svc.last_seen != nullptr) ctx.svc.last_seen->Touch(user_id, ctx.svc.clock->NowUs());
  // Without "remember me" a browser-session cookie (gone when the browser
  // closes); the server-side session still ends after kSessionLifetimeMs.
  ctx.SetSessionCookie(token, remember ? lifetime_ms / 1000 : 0);

  JsonOut out;
  out.BeginObject().Field("token", token);
  out.Key("user").Raw(UserJsonString(*user, true, LastSeenOf(ctx, user_id)));
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

Status Logout(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin(/*allow_unconfirmed=*/true));
  const std::string key = ctx.viewer()->session_key;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&key](WriteTxn& txn) -> Status {
    Status s = txn.Del(Db::kSessions, key);
    return s.IsNotFound() ? Status::Ok() : s;
  }));
  ctx.ClearSessionCookie();
  ctx.SendNoContent();
  return Status::Ok();
}

Status ChangePassword(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin(/*allow_unconfirmed=*/true));
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"old_password", "password"}));
  std::string old_password, password;
  ACCT_RETURN_IF_ERROR(body.String("old_password", &old_password, true));
  ACCT_RETURN_IF_ERROR(body.String("password", &password, true));
  ACCT_RETURN_IF_ERROR(ValidatePassword(password));
  const User viewer = ctx.viewer()->user;
  const std::string session_key = ctx.viewer()->session_key;
  const std::string account_key = AccountKey(viewer.email);
  ACCT_RETURN_IF_ERROR(CheckThrottle(ctx, account_key));
  ACCT_RETURN_IF_ERROR(CheckPassword(ctx, &viewer, old_password, account_key, viewer.email,
                                     Status::Invalid("old_password",
                                                     "the current password is wrong")));
  Result<std::string> hash = ctx.svc.hasher->Hash(password);
  if (!hash.ok()) return hash.status();
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = LoadUser(txn, viewer.id);
    if (!u.ok()) return u.status();
    if (u->password_hash != viewer.password_hash) {
      return Status::Conflict("password_changed", "the password was changed meanwhile");
    }
    User before = *u;
    u->password_hash = *hash;
    u->auth_epoch = before.auth_epoch + 1;
    ACCT_RETURN_IF_ERROR(PutUser(txn, *u, &before));
    // Other devices must sign in again; this one stays signed in.
    return RevokeSessionsInTxn(txn, viewer.id, session_key);
  }));
  ctx.SendNoContent();
  return Status::Ok();
}

Status RequestReset(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"email"}));
  std::string email;
  ACCT_RETURN_IF_ERROR(body.String("email", &email, true));
  ACCT_RETURN_IF_ERROR(NormalizeEmail(&email));
  // Bound the mail one address receives; known and unknown addresses are
  // treated alike, so the answer reveals nothing.
  const std::string key = "reset:" + email;
  int64_t now_s = NowMs(ctx) / 1000;
  if (ctx.svc.throttle->RetryAfter(key, now_s) == 0) {
    ctx.svc.throttle->RecordFailure(key, now_s);
    auto read = ctx.svc.store->BeginRead();
    if (!read.ok()) return read.status();
    Result<User> user = FindUserByEmail(**read, email);
    read->reset();
    if (user.ok()) {
      std::string token;
      ACCT_RETURN_IF_ERROR(MakeEmailToken(ctx, "reset", *user, {}, &token));
      SendLinkMail(ctx.svc.mailer, user->email, "Reset your password",
                   "Someone asked to reset the password of your offbrand account. If it was "
                   "you, choose a new password here:",
                   PublicBaseUrl(*ctx.svc.config) + "/reset?token=" + token);
    }
  }
  SendMessage(ctx, 202, "if an account has this address, a reset link was sent to it");
  return Status::Ok();
}

Status ConfirmReset(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"token", "password"}));
  SignedToken t;  // single use through auth_epoch, which the reset bumps
  ACCT_RETURN_IF_ERROR(VerifyBodyToken(ctx, body, "reset", &t, nullptr));
  std::string password;
  ACCT_RETURN_IF_ERROR(body.String("password", &password, true));
  ACCT_RETURN_IF_ERROR(ValidatePassword(password));
  {  // Refuse a spent link before paying for a hash.
    auto read = ctx.svc.store->BeginRead();
    if (!read.ok()) return read.status();
    Result<User> u = LoadUser(**read, t.user_id);
    if (!u.ok() || u->auth_epoch != t.epoch) return InvalidToken();
  }
  Result<std::string> hash = ctx.svc.hasher->Hash(password);
  if (!hash.ok()) return hash.status();
  std::string email;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = LoadUser(txn, t.user_id);
    if (!u.ok()) return u.status().IsNotFound() ? InvalidToken() : u.status();
    if (u->auth_epoch != t.epoch) return InvalidToken();
    User before = *u;
    u->password_hash = *hash;
    u->auth_epoch = before.auth_epoch + 1;  // spends this link and every older one
    ACCT_RETURN_IF_ERROR(PutUser(txn, *u, &before));
    email = u->email;
    return RevokeSessionsInTxn(txn, u->id, {});
  }));
  ctx.svc.throttle->RecordSuccess(AccountKey(email));
  ctx.SendNoContent();
  return Status::Ok();
}

Status RequestEmailChange(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin(/*allow_unconfirmed=*/true));
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"email", "password"}));
  std::string email, password;
  ACCT_RETURN_IF_ERROR(body.String("email", &email, true));
  ACCT_RETURN_IF_ERROR(body.String("password", &password, true));
  ACCT_RETURN_IF_ERROR(NormalizeEmail(&email));
  const User viewer = ctx.viewer()->user;
  if (email == viewer.email) return Status::Invalid("email", "this is already your address");
  {
    auto read = ctx.svc.store->BeginRead();
    if (!read.ok()) return read.status();
    if (FindUserByEmail(**read, email).ok()) {
      return Status::Conflict("duplicate_email", "this email address is already registered",
                              "email");
    }
  }
  const std::string account_key = AccountKey(viewer.email);
  ACCT_RETURN_IF_ERROR(CheckThrottle(ctx, account_key));
  ACCT_RETURN_IF_ERROR(CheckPassword(ctx, &viewer, password, account_key, viewer.email,
                                     Status::Invalid("password", "the password is wrong")));
  std::string token;
  ACCT_RETURN_IF_ERROR(MakeEmailToken(ctx, "email", viewer, email, &token));
  SendLinkMail(ctx.svc.mailer, email, "Confirm your new email address",
               "Confirm that this is the new address of the offbrand account " +
                   viewer.username + ":",
               PublicBaseUrl(*ctx.svc.config) + "/email/confirm?token=" + token);
  SendMessage(ctx, 202, "a confirmation link was sent to the new address");
  return Status::Ok();
}

Status ConfirmEmailChange(RequestContext& ctx) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"token"}));
  SignedToken t;
  std::string token_key;
  ACCT_RETURN_IF_ERROR(VerifyBodyToken(ctx, body, "email", &t, &token_key));
  User changed;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = LoadUser(txn, t.user_id);
    if (!u.ok()) return u.status().IsNotFound() ? InvalidToken() : u.status();
    if (u->auth_epoch != t.epoch) return InvalidToken();
    ACCT_RETURN_IF_ERROR(MarkTokenUsed(txn, token_key, t.expires_ms));
    User before = *u;
    u->email = t.extra;
    // Spends this link and any reset link mailed to the old address.
    u->auth_epoch = before.auth_epoch + 1;
    ACCT_RETURN_IF_ERROR(PutUser(txn, *u, &before));  // 409 if taken meanwhile
    if (u->confirmed && u->email != before.email) ACCT_RETURN_IF_ERROR(QueueUserUpdateInTxn(txn, *u));
    changed = *u;
    return Status::Ok();
  }));
  ctx.SendJson(200, UserEnvelope(ctx, changed));
  return Status::Ok();
}

}  // namespace

void RegisterAuthRoutes(HttpServer& server) {
  server.Route("POST", "/api/v1/auth/register", "auth.register", Register);
  server.Route("POST", "/api/v1/auth/confirm", "auth.confirm", Confirm);
  server.Route("POST", "/api/v1/auth/confirm/resend", "auth.confirm_resend", ResendConfirmation);
  server.Route("POST", "/api/v1/auth/login", "auth.login", Login);
  server.Route("POST", "/api/v1/auth/logout", "auth.logout", Logout);
  server.Route("POST", "/api/v1/auth/password", "auth.password", ChangePassword);
  server.Route("POST", "/api/v1/auth/reset", "auth.reset", RequestReset);
  server.Route("POST", "/api/v1/auth/reset/confirm", "auth.reset_confirm", ConfirmReset);
  server.Route("POST", "/api/v1/auth/email", "auth.email", RequestEmailChange);
  server.Route("POST", "/api/v1/auth/email/confirm", "auth.email_confirm", ConfirmEmailChange);
}

}  // namespace offbrand
