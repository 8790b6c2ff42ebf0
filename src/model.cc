// Model: row encodings, roles, formats and validation.
#include "offbrand/model.h"

#include <ctime>

#include "codec.h"
#include "crypto.h"

namespace offbrand {

namespace {
constexpr uint8_t kUserV1 = 1;
constexpr uint8_t kSessionV1 = 1;
constexpr uint8_t kCollectionV1 = 1;
constexpr uint8_t kItemV1 = 1;
}  // namespace

uint32_t RolePermissions(Role role) {
  const uint32_t user = kPermFollow | kPermComment | kPermWrite;
  switch (role) {
    case Role::kUser: return user;
    case Role::kModerator: return user | kPermModerate;
    case Role::kAdministrator: return 31;
  }
  return 0;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kUser: return "User";
    case Role::kModerator: return "Moderator";
    case Role::kAdministrator: return "Administrator";
  }
  return "User";
}

bool ParseRole(std::string_view name, Role* role) {
  if (name == "User") *role = Role::kUser;
  else if (name == "Moderator") *role = Role::kModerator;
  else if (name == "Administrator") *role = Role::kAdministrator;
  else return false;
  return true;
}

std::string EncodeUser(const User& u) {
  Encoder e;
  e.U8(kUserV1).U64(u.id).Str(u.username).Str(u.email).Str(u.password_hash)
      .U8(static_cast<uint8_t>(u.role)).U8(u.confirmed ? 1 : 0).Str(u.name).Str(u.about_me)
      .I64(u.member_since_us).I64(u.last_seen_us).U64(u.auth_epoch);
  return e.Take();
}

bool DecodeUser(std::string_view bytes, User* u) {
  Decoder d(bytes);
  uint8_t version, role, confirmed;
  if (!d.U8(&version) || version != kUserV1) return false;
  if (!d.U64(&u->id) || !d.Str(&u->username) || !d.Str(&u->email) ||
      !d.Str(&u->password_hash) || !d.U8(&role) || !d.U8(&confirmed) || !d.Str(&u->name) ||
      !d.Str(&u->about_me) || !d.I64(&u->member_since_us) || !d.I64(&u->last_seen_us) ||
      !d.U64(&u->auth_epoch) || !d.done()) {
    return false;
  }
  if (role < 1 || role > 3) return false;
  u->role = static_cast<Role>(role);
  u->confirmed = confirmed != 0;
  return true;
}

std::string EncodeSession(const Session& s) {
  Encoder e;
  e.U8(kSessionV1).U64(s.user_id).I64(s.created_ms).I64(s.expires_ms).U8(s.api_token ? 1 : 0);
  return e.Take();
}

bool DecodeSession(std::string_view bytes, Session* s) {
  Decoder d(bytes);
  uint8_t version, api;
  if (!d.U8(&version) || version != kSessionV1) return false;
  if (!d.U64(&s->user_id) || !d.I64(&s->created_ms) || !d.I64(&s->expires_ms) || !d.U8(&api) ||
      !d.done()) {
    return false;
  }
  s->api_token = api != 0;
  return true;
}

std::string EncodeCollection(const Collection& c) {
  Encoder e;
  e.U8(kCollectionV1).U64(c.id).U64(c.author_id).Str(c.name).Str(c.description)
      .I64(c.created_us).Str(c.stream_id);
  return e.Take();
}

bool DecodeCollection(std::string_view bytes, Collection* c) {
  Decoder d(bytes);
  uint8_t version;
  return d.U8(&version) && version == kCollectionV1 && d.U64(&c->id) && d.U64(&c->author_id) &&
         d.Str(&c->name) && d.Str(&c->description) && d.I64(&c->created_us) &&
         d.Str(&c->stream_id) && d.done();
}

std::string EncodeItem(const Item& i) {
  Encoder e;
  e.U8(kItemV1).U64(i.id).U64(i.collection_id).U64(i.author_id).Str(i.url).Str(i.title)
      .Str(i.description).Str(i.image).I64(i.created_us).Str(i.stream_id);
  return e.Take();
}

bool DecodeItem(std::string_view bytes, Item* i) {
  Decoder d(bytes);
  uint8_t version;
  return d.U8(&version) && version == kItemV1 && d.U64(&i->id) && d.U64(&i->collection_id) &&
         d.U64(&i->author_id) && d.Str(&i->url) && d.Str(&i->title) && d.Str(&i->description) &&
         d.Str(&i->image) && d.I64(&i->created_us) && d.Str(&i->stream_id) && d.done();
}

namespace {
std::string FormatTime(int64_t unix_us, bool zulu) {
  time_t secs = static_cast<time_t>(unix_us / 1'000'000);
  int64_t frac = unix_us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[48];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lld%s", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<long long>(frac), zulu ? "Z" : "");
  return buf;
}
}  // namespace

std::string FormatStreamTime(int64_t unix_us) { return FormatTime(unix_us, false); }
std::string FormatIsoTime(int64_t unix_us) { return FormatTime(unix_us, true); }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string GravatarUrl(std::string_view email, int size) {
  return "https://secure.gravatar.com/avatar/" + Md5Hex(ToLower(email)) +
         "?s=" + std::to_string(size) + "&d=identicon&r=g";
}

std::string CollectionForeignId(uint64_t id) { return "Collection:" + std::to_string(id); }
std::string ItemForeignId(uint64_t id) { return "Content:" + std::to_string(id); }
std::string StreamUserRef(uint64_t user_id) { return "SU:" + std::to_string(user_id); }

bool IsCleanText(std::string_view s, bool multiline) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) {
        if (!(multiline && (c == '\n' || c == '\t' || c == '\r'))) return false;
      }
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and out-of-range code points are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    // C1 control characters.
    if (cp >= 0x80 && cp <= 0x9f) return false;
    i += len;
  }
  return true;
}

bool IsValidUsername(std::string_view s) {
  if (s.empty() || s.size() > kUsernameBytesMax) return false;
  auto alpha = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (!alpha(s[0])) return false;
  for (char c : s) {
    if (!(alpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '.')) return false;
  }
  return true;
}

bool IsValidEmail(std::string_view s) {
  if (s.empty() || s.size() > kEmailBytesMax || !IsCleanText(s)) return false;
  const size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0 || s.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  std::string_view domain = s.substr(at + 1);
  if (domain.empty() || domain.find('.') == std::string_view::npos || domain.front() == '.' ||
      domain.back() == '.') {
    return false;
  }
  for (char c : s) {
    if (c == ' ' || c == '<' || c == '>' || c == ',' || c == ';' || c == '"') return false;
  }
  return true;
}

bool IsValidHttpUrl(std::string_view s) {
  if (s.empty() || s.size() > kUrlBytesMax || !IsCleanText(s)) return false;
  std::string_view rest;
  if (s.substr(0, 7) == "http://") rest = s.substr(7);
  else if (s.substr(0, 8) == "https://") rest = s.substr(8);
  else return false;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
        c == '{' || c == '|' || c == '}') {
      return false;
    }
  }
  const size_t end = rest.find_first_of("/?#");
  std::string_view host = rest.substr(0, end);
  const size_t at = host.rfind('@');
  if (at != std::string_view::npos) host = host.substr(at + 1);
  return !host.empty() && host.front() != ':' && host.front() != '.';
}

}  // namespace offbrand
