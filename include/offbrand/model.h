// Model: the rows we store, their binary encodings, the permission bits and
// roles of the seed app, validation rules (SPEC section 3) and the time and
// gravatar formats shared with Stream.
//
// Encodings are versioned (first byte) so a later schema can read old rows.
// Decode functions return false on bytes that are not a valid row.
//
// Thread-safety: plain values and pure functions.
#ifndef OFFBRAND_MODEL_H_
#define OFFBRAND_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace offbrand {

// ---- permissions and roles (seed APP.md) ------------------------------------
enum Permission : uint32_t {
  kPermFollow = 1,
  kPermComment = 2,
  kPermWrite = 4,
  kPermModerate = 8,
  kPermAdmin = 16,
};
enum class Role : uint8_t { kUser = 1, kModerator = 2, kAdministrator = 3 };
uint32_t RolePermissions(Role role);
const char* RoleName(Role role);                 // "User", "Moderator", "Administrator"
bool ParseRole(std::string_view name, Role* role);

// ---- rows -------------------------------------------------------------------
struct User {
  uint64_t id = 0;
  std::string username;       // as typed; unique case-insensitively
  std::string email;          // lowercased
  std::string password_hash;  // Argon2id string (crypto_pwhash_str)
  Role role = Role::kUser;
  bool confirmed = false;
  std::string name;
  std::string about_me;
  int64_t member_since_us = 0;
  int64_t last_seen_us = 0;
  // Bumped when the password changes; tokens signed before carry the old
  // value and are refused (reset links become single use by construction).
  uint64_t auth_epoch = 0;
  bool Can(uint32_t perm) const { return (RolePermissions(role) & perm) == perm; }
  bool is_admin() const { return Can(kPermAdmin); }
};

struct Session {
  uint64_t user_id = 0;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  bool api_token = false;  // issued for the Authorization header
};

struct Collection {
  uint64_t id = 0;
  uint64_t author_id = 0;
  std::string name;
  std::string description;
  int64_t created_us = 0;   // fixed forever; the Stream `time`
  std::string stream_id;    // Stream activity id once known
};

struct Item {  // "Content" in the seed app: a link in a collection
  uint64_t id = 0;
  uint64_t collection_id = 0;
  uint64_t author_id = 0;
  std::string url;
  std::string title;
  std::string description;
  std::string image;
  int64_t created_us = 0;
  std::string stream_id;
};

std::string EncodeUser(const User& u);
bool DecodeUser(std::string_view bytes, User* u);
std::string EncodeSession(const Session& s);
bool DecodeSession(std::string_view bytes, Session* s);
std::string EncodeCollection(const Collection& c);
bool DecodeCollection(std::string_view bytes, Collection* c);
std::string EncodeItem(const Item& i);
bool DecodeItem(std::string_view bytes, Item* i);

// ---- formats ----------------------------------------------------------------
// Stream's time: "YYYY-MM-DDTHH:MM:SS.ffffff", UTC, no zone.
std::string FormatStreamTime(int64_t unix_us);
// Our API's time: ISO-8601 UTC with microseconds and "Z".
std::string FormatIsoTime(int64_t unix_us);
// https://secure.gravatar.com/avatar/<md5(lowercased email)>?s=<size>&d=identicon&r=g
std::string GravatarUrl(std::string_view email, int size);
std::string ToLower(std::string_view s);

// Foreign ids and Stream references.
std::string CollectionForeignId(uint64_t id);  // "Collection:<id>"
std::string ItemForeignId(uint64_t id);        // "Content:<id>"
std::string StreamUserRef(uint64_t user_id);   // "SU:<id>"

// ---- validation (SPEC section 3) ---------------------------------------------
constexpr size_t kUsernameBytesMax = 64;
constexpr size_t kEmailBytesMax = 64;
constexpr size_t kPasswordBytesMin = 8;
constexpr size_t kPasswordBytesMax = 1024;
constexpr size_t kNameBytesMax = 64;
constexpr size_t kAboutMeBytesMax = 4096;
constexpr size_t kCollectionNameBytesMax = 64;
constexpr size_t kCollectionDescriptionBytesMax = 256;
constexpr size_t kItemTitleBytesMax = 256;
constexpr size_t kItemDescriptionBytesMax = 1024;
constexpr size_t kUrlBytesMax = 2048;

// Valid UTF-8 with no control characters (tab and newline allowed when
// `multiline`).
bool IsCleanText(std::string_view s, bool multiline = false);
bool IsValidUsername(std::string_view s);  // ^[A-Za-z][A-Za-z0-9_.]*$, 1..64
bool IsValidEmail(std::string_view s);     // one '@', non-empty parts, a dot in the domain, <=64
bool IsValidHttpUrl(std::string_view s);   // absolute http(s) with a host, <=2048, no spaces

}  // namespace offbrand

#endif  // OFFBRAND_MODEL_H_
