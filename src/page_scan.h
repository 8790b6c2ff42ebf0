// Newest-first pages over id-ordered LMDB keys, shared by the collection
// lists (collections.cc) and the offline feed reads (feeds.cc, follows.cc),
// and the small helpers those reads share.
//
// Keys scanned are `prefix` + a big-endian u64 id (the kCollections rows
// with an empty prefix, or an index such as kCollectionsByAuthor with the
// author's U64Key as prefix). A page is the `limit` largest ids below the
// cursor's id, so pages stay stable while rows are added: new rows get larger
// ids and only ever appear before page 1.
//
// Thread-safety: works inside one caller-owned transaction.
#ifndef OFFBRAND_PAGE_SCAN_H_
#define OFFBRAND_PAGE_SCAN_H_

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "http_server.h"
#include "json.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

// A u64 id as an 8-byte big-endian key, on the stack.
class PageIdKey {
 public:
  explicit PageIdKey(uint64_t id) {
    for (int i = 0; i < 8; ++i) bytes_[i] = static_cast<char>(id >> (8 * (7 - i)));
  }
  operator std::string_view() const { return std::string_view(bytes_, sizeof(bytes_)); }

 private:
  char bytes_[8];
};

// Point reads of rows keyed by a u64 id through one cursor, for reads that
// fetch many rows of one database in one transaction: LMDB answers a seek
// that lands on the page its cursor is on by searching that page alone, so
// nearby ids (a feed page's newest items) skip the descent from the root.
class RowReader {
 public:
  RowReader(const Txn& txn, Db db) : cursor_(txn.OpenCursor(db)) {}
  // OK with *value (valid until the transaction ends) or NotFound.
  Status Get(uint64_t id, std::string_view* value) {
    const PageIdKey key(id);
    if (!cursor_.Seek(key) || cursor_.key() != std::string_view(key)) return Status::NotFound();
    *value = cursor_.value();
    return Status::Ok();
  }

 private:
  Cursor cursor_;
};

// Bytes to reserve for a feed page of `limit` entries (an enriched activity
// is about 400 bytes), so the page is written without regrowing.
constexpr size_t FeedPageBytesHint(int limit) {
  return 64 + static_cast<size_t>(limit > 0 ? limit : 0) * 512;
}

// Sends `out` as the JSON response (its text is moved into the response,
// not copied again as ctx.SendJson(out.str()) would).
inline void SendJsonOut(RequestContext& ctx, int status, JsonOut& out) {
  ctx.res.status = status;
  ctx.res.body = out.Release();
  if (!ctx.res.headers.empty()) ctx.res.headers.erase("Content-Type");
  ctx.res.set_header("Content-Type", "application/json");
}

// Sends a finished JSON body kept elsewhere (a copy goes into the response).
inline void SendCachedJson(RequestContext& ctx, const std::string& body) {
  ctx.res.status = 200;
  ctx.res.body = body;
  if (!ctx.res.headers.empty()) ctx.res.headers.erase("Content-Type");
  ctx.res.set_header("Content-Type", "application/json");
}

// The exclusive upper bound of a page: every id when `cursor` is empty, else
// the ids below the last id of the previous page. 422 for a bad cursor.
inline Status PageBefore(const std::string& cursor, uint64_t* before) {
  if (cursor.empty()) {
    *before = std::numeric_limits<uint64_t>::max();
    return Status::Ok();
  }
  return DecodeCursor(cursor, before);
}

// ?limit= and ?cursor= of a newest-first page: *limit, and *before the
// exclusive upper id (PageBefore). 422 for a bad limit or cursor.
inline Status NewestFirstPageParams(RequestContext& ctx, int* limit, uint64_t* before) {
  std::string cursor;
  if (Status s = ctx.PageParams(limit, &cursor); !s.ok()) return s;
  return PageBefore(cursor, before);
}

// Calls visit(id, value) for up to `limit` entries of `db` whose key is
// `prefix` + u64 id with id < `before`, largest id first. `value` is valid
// only during the call. *next is set to the last visited id when entries
// remain beyond the page, else 0 (no next page). Stops at the first non-OK
// Status returned by `visit` and returns it.
template <typename Visit>
Status ScanNewestFirst(const Txn& txn, Db db, std::string_view prefix, uint64_t before,
                       int limit, uint64_t* next, Visit&& visit) {
  *next = 0;
  if (before == 0 || limit <= 0) return Status::Ok();
  std::string seek(prefix);
  PutU64BE(&seek, before - 1);
  Cursor cursor = txn.OpenCursor(db);
  const size_t key_size = prefix.size() + 8;
  auto in_range = [&]() {
    const std::string_view key = cursor.key();
    return key.size() == key_size && key.substr(0, prefix.size()) == prefix;
  };
  int taken = 0;
  uint64_t last = 0;
  for (bool ok = cursor.SeekLE(seek); ok && in_range(); ok = cursor.Prev()) {
    if (taken == limit) {
      *next = last;
      break;
    }
    last = GetU64BE(cursor.key().substr(prefix.size()));
    if (Status s = visit(last, cursor.value()); !s.ok()) return s;
    ++taken;
  }
  return Status::Ok();
}

}  // namespace offbrand

#endif  // OFFBRAND_PAGE_SCAN_H_
