// The /api/v1/me and /api/v1/users endpoints: own profile, the directory of
// confirmed users, profiles with follow counts, admin edits and deletion.
#include <cstdint>
#include <optional>
#include <string>

#include "account_util.h"
#include "accounts.h"
#include "follows.h"
#include "http_server.h"
#include "json.h"
#include "users_db.h"

namespace offbrand {

namespace {

int64_t LastSeenOf(const RequestContext& ctx, uint64_t id) {
  return ctx.svc.last_seen != nullptr ? ctx.svc.last_seen->Get(id) : 0;
}

bool SeesEmail(const RequestContext& ctx, const User& user) {
  const Viewer* v = ctx.viewer();
  return v != nullptr && (v->user.id == user.id || v->user.is_admin());
}

// Unconfirmed accounts are private: only admins see them.
bool Visible(const RequestContext& ctx, const User& user) {
  return user.confirmed || (ctx.viewer() != nullptr && ctx.viewer()->user.is_admin());
}

// Appends `members` (",\"k\":v...") inside a serialized object.
std::string WithMembers(std::string object_json, const std::string& members) {
  if (object_json.empty() || object_json.back() != '}') return object_json;
  object_json.pop_back();
  object_json += members;
  object_json += '}';
  return object_json;
}

const char* BoolText(bool b) { return b ? "true" : "false"; }

// 409 last_admin when `admin_id` is the only Administrator: demoting or
// deleting them would leave nobody able to administer the server. Scans
// kUsers (users are few on a self-hosted server).
Status RefuseLastAdmin(const Txn& txn, uint64_t admin_id) {
  Cursor c = txn.OpenCursor(Db::kUsers);
  for (bool ok = c.First(); ok; ok = c.Next()) {
    User u;
    if (!DecodeUser(c.value(), &u)) return Status::Internal("a user row does not decode");
    if (u.id != admin_id && u.role == Role::kAdministrator) return Status::Ok();
  }
  return Status::Conflict("last_admin",
                          "this is the last administrator; make another one first");
}

Status GetMe(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin());
  const User& user = ctx.viewer()->user;
  ctx.SendJson(200, UserJsonString(user, true, LastSeenOf(ctx, user.id)));
  return Status::Ok();
}

Status PatchMe(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin());
  RequestJson body;
  ACCT_RETURN_IF_ERROR(ctx.ParseJson(&body, {"name", "about_me"}));
  std::string name, about_me;
  const bool has_name = body.Has("name") && !body.IsNull("name");
  const bool has_about = body.Has("about_me") && !body.IsNull("about_me");
  ACCT_RETURN_IF_ERROR(body.String("name", &name, false));
  ACCT_RETURN_IF_ERROR(body.String("about_me", &about_me, false));
  if (has_name) ACCT_RETURN_IF_ERROR(ValidateName(name));
  if (has_about) ACCT_RETURN_IF_ERROR(ValidateAboutMe(about_me));
  const uint64_t id = ctx.viewer()->user.id;
  User updated;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = LoadUser(txn, id);
    if (!u.ok()) return u.status();
    User before = *u;
    if (has_name) u->name = name;
    if (has_about) u->about_me = about_me;
    ACCT_RETURN_IF_ERROR(PutUser(txn, *u, &before));
    updated = *u;
    return Status::Ok();
  }));
  ctx.SendJson(200, UserJsonString(updated, true, LastSeenOf(ctx, id)));
  return Status::Ok();
}

// Newest first by id; the cursor is the last id of the previous page.
Status ListUsers(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.Authenticate());
  int limit = kPageLimitDefault;
  std::string cursor;
  ACCT_RETURN_IF_ERROR(ctx.PageParams(&limit, &cursor));
  uint64_t before_id = UINT64_MAX;
  if (!cursor.empty()) ACCT_RETURN_IF_ERROR(DecodeCursor(cursor, &before_id));

  auto read = ctx.svc.store->BeginRead();
  if (!read.ok()) return read.status();
  JsonOut out;
  out.BeginObject().Key("items").BeginArray();
  int count = 0;
  uint64_t last_id = 0;
  bool more = false;
  if (before_id > 1) {
    Cursor c = (*read)->OpenCursor(Db::kUsers);
    for (bool ok = c.SeekLE(U64Key(before_id - 1)); ok; ok = c.Prev()) {
      User u;
      if (!DecodeUser(c.value(), &u)) return Status::Internal("a user row does not decode");
      if (!u.confirmed) continue;
      if (count == limit) {
        more = true;
        break;
      }
      out.Raw(UserJsonString(u, SeesEmail(ctx, u), LastSeenOf(ctx, u.id)));
      last_id = u.id;
      ++count;
    }
  }
  out.EndArray();
  WriteNextCursor(out, more, last_id);
  out.EndObject();
  ctx.SendJson(200, out.str());
  return Status::Ok();
}

Status GetUser(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.Authenticate());
  auto read = ctx.svc.store->BeginRead();
  if (!read.ok()) return read.status();
  const Txn& txn = **read;
  Result<User> user = FindUserByName(txn, ctx.Match(1));
  if (!user.ok()) return user.status();
  if (!Visible(ctx, *user)) return Status::NotFound("no such user");
  std::string members = ",\"follower_count\":" + std::to_string(UserFollowerCount(txn, user->id)) +
                        ",\"following_count\":" + std::to_string(UserFollowingCount(txn, user->id));
  if (const Viewer* v = ctx.viewer()) {
    // Everyone follows themselves (hidden, for the timeline); like the
    // counts, the flags leave that out.
    const bool self = v->user.id == user->id;
    members += std::string(",\"following\":") +
               BoolText(!self && Follows(txn, v->user.id, user->id));
    members += std::string(",\"follows_you\":") +
               BoolText(!self && Follows(txn, user->id, v->user.id));
  }
  ctx.SendJson(200, WithMembers(UserJsonString(*user, SeesEmail(ctx, *user),
                                               LastSeenOf(ctx, user->id)),
                                members));
  return Status::Ok();
}

struct AdminEdit {
  std::optional<std::string> username, email, name, about_me;
  std::optional<bool> confirmed;
  std::optional<Role> role;
};

Status ParseAdminEdit(RequestContext& ctx, AdminEdit* edit) {
  RequestJson body;
  ACCT_RETURN_IF_ERROR(
      ctx.ParseJson(&body, {"email", "username", "confirmed", "role", "name", "about_me"}));
  auto text = [&body](const char* field, std::optional<std::string>* out) -> Status {
    std::string v;
    ACCT_RETURN_IF_ERROR(body.String(field, &v, false));
    if (body.Has(field) && !body.IsNull(field)) *out = std::move(v);
    return Status::Ok();
  };
  ACCT_RETURN_IF_ERROR(text("username", &edit->username));
  ACCT_RETURN_IF_ERROR(text("email", &edit->email));
  ACCT_RETURN_IF_ERROR(text("name", &edit->name));
  ACCT_RETURN_IF_ERROR(text("about_me", &edit->about_me));
  std::optional<std::string> role;
  ACCT_RETURN_IF_ERROR(text("role", &role));
  bool confirmed = false;
  ACCT_RETURN_IF_ERROR(body.Bool("confirmed", &confirmed, false));
  if (body.Has("confirmed") && !body.IsNull("confirmed")) edit->confirmed = confirmed;

  if (edit->username) ACCT_RETURN_IF_ERROR(ValidateUsername(*edit->username));
  if (edit->email) ACCT_RETURN_IF_ERROR(NormalizeEmail(&*edit->email));
  if (edit->name) ACCT_RETURN_IF_ERROR(ValidateName(*edit->name));
  if (edit->about_me) ACCT_RETURN_IF_ERROR(ValidateAboutMe(*edit->about_me));
  if (role) {
    Role r;
    if (!ParseRole(*role, &r)) {
      return Status::Invalid("role", "a role is User, Moderator or Administrator");
    }
    edit->role = r;
  }
  return Status::Ok();
}

Status AdminPatchUser(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireAdmin());
  AdminEdit edit;
  ACCT_RETURN_IF_ERROR(ParseAdminEdit(ctx, &edit));
  const std::string target = ctx.Match(1);
  const Config& config = *ctx.svc.config;
  User updated;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = FindUserByName(txn, target);
    if (!u.ok()) return u.status();
    const User before = *u;
    if (edit.confirmed && !*edit.confirmed && before.confirmed) {
      // The Stream user exists already; there is no way back to unconfirmed.
      return Status::Invalid("confirmed", "a confirmed account cannot be unconfirmed");
    }
    if (edit.username) u->username = *edit.username;
    if (edit.email) u->email = *edit.email;
    if (edit.name) u->name = *edit.name;
    if (edit.about_me) u->about_me = *edit.about_me;
    if (edit.role) u->role = *edit.role;
    // Reset and email-change links mailed to the old address are spent.
    if (u->email != before.email) u->auth_epoch = before.auth_epoch + 1;
    if (before.role == Role::kAdministrator && u->role != Role::kAdministrator) {
      ACCT_RETURN_IF_ERROR(RefuseLastAdmin(txn, before.id));
    }
    ACCT_RETURN_IF_ERROR(PutUser(txn, *u, &before));  // 409 duplicate_username / _email
    if (edit.confirmed && *edit.confirmed && !before.confirmed) {
      // Queues the add with the new username and email.
      ACCT_RETURN_IF_ERROR(ConfirmUserInTxn(txn, config, &*u));
    } else if (before.confirmed &&
               (u->username != before.username || u->email != before.email)) {
      ACCT_RETURN_IF_ERROR(QueueUserUpdateInTxn(txn, *u));
    }
    updated = *u;
    return Status::Ok();
  }));
  ctx.SendJson(200, UserJsonString(updated, true, LastSeenOf(ctx, updated.id)));
  return Status::Ok();
}

Status DeleteUser(RequestContext& ctx) {
  ACCT_RETURN_IF_ERROR(ctx.RequireLogin());
  const std::string target = ctx.Match(1);
  const User viewer = ctx.viewer()->user;
  const Config& config = *ctx.svc.config;
  bool deleted_self = false;
  ACCT_RETURN_IF_ERROR(ctx.svc.store->Write([&](WriteTxn& txn) -> Status {
    Result<User> u = FindUserByName(txn, target);
    if (!u.ok()) return u.status();
    deleted_self = u->id == viewer.id;
    if (!deleted_self && !viewer.is_admin()) {
      if (!u->confirmed) return Status::NotFound("no such user");
      return Status::Forbidden("forbidden", "only the user or an administrator may do this");
    }
    if (u->role == Role::kAdministrator) ACCT_RETURN_IF_ERROR(RefuseLastAdmin(txn, u->id));
    return DeleteUserInTxn(txn, config, *u);
  }));
  if (deleted_self) ctx.ClearSessionCookie();
  ctx.SendNoContent();
  return Status::Ok();
}

}  // namespace

void RegisterUserRoutes(HttpServer& server) {
  server.Route("GET", "/api/v1/me", "me.get", GetMe);
  server.Route("PATCH", "/api/v1/me", "me.patch", PatchMe);
  server.Route("GET", "/api/v1/users", "users.list", ListUsers);
  server.Route("GET", "/api/v1/users/([^/]+)", "users.get", GetUser);
  server.Route("PATCH", "/api/v1/users/([^/]+)", "users.patch", AdminPatchUser);
  server.Route("DELETE", "/api/v1/users/([^/]+)", "users.delete", DeleteUser);
}

}  // namespace offbrand
