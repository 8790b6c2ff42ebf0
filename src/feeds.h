// Shared parts of the offline feed reads (feeds.cc: a user's and a
// collection's feed; follows.cc: the timeline and notifications): the
// enriched actors of a page and the cache of finished pages.
#ifndef OFFBRAND_FEEDS_H_
#define OFFBRAND_FEEDS_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "offbrand/model.h"
#include "offbrand/store.h"

namespace offbrand {

// The enriched actors of one feed page, {id, username, gravatar} as
// users_db.h's WriteActorJson writes them, each user loaded and serialized
// once per request. Serializations are also memoized per thread by
// (id, username, email), everything they are made of, so a hit is always
// what WriteActorJson would write now; the memo holds kActorMemoEntries per
// thread and forgets the oldest.
//
// Thread-safety: an ActorCache belongs to one request (one thread).
class ActorCache {
 public:
  static constexpr size_t kActorMemoEntries = 16;

  explicit ActorCache(const Txn& txn) : txn_(txn) {}
  ActorCache(const ActorCache&) = delete;
  ActorCache& operator=(const ActorCache&) = delete;

  // The actor JSON of `user_id`; "" when the user row is gone (the activity
  // then shows the plain "SU:<id>" reference). Valid while this cache lives.
  std::string_view Get(uint64_t user_id);
  // The actor JSON of a user the caller already loaded.
  static std::string ActorJson(const User& user);

 private:
  const Txn& txn_;
  // A page usually has one or two authors: a short list beats a map. A
  // deque, so the views Get returned stay valid as it grows.
  std::deque<std::pair<uint64_t, std::string>> actors_;
};

// Finished feed pages of one LMDB snapshot. A page is a pure function of
// the rows its read transaction sees and of its request (path, query and,
// for the timeline and notifications, the viewer), so a body computed in a
// snapshot is served again only to a read transaction of the same snapshot
// (the same LMDB txn id: no commit, by this process or any other, came in
// between). Once a newer snapshot is seen every older entry is dropped; the
// bodies are bounded by kCacheBytesMax, the oldest going first.
//
// Thread-safety: all methods may be called concurrently.
class FeedPageCache {
 public:
  static constexpr size_t kCacheBytesMax = 2 << 20;    // bodies kept, all together
  static constexpr size_t kEntryBytesMax = 256 << 10;  // larger pages are not kept

  // The body cached for `key` in `snapshot`, or null.
  std::shared_ptr<const std::string> Find(const std::string& key, uint64_t snapshot);
  // Keeps `body` for `key` in `snapshot`; a no-op for a snapshot older than
  // the newest one seen or a body over kEntryBytesMax.
  void Insert(const std::string& key, uint64_t snapshot, std::shared_ptr<const std::string> body);
  // Entries and body bytes held (tests).
  size_t entries() const;
  size_t bytes() const;

 private:
  mutable std::mutex mu_;
  uint64_t snapshot_ = 0;  // guarded by mu_: every entry is of this snapshot
  std::unordered_map<std::string, std::shared_ptr<const std::string>> entries_;  // guarded
  std::deque<std::string> order_;  // guarded: keys, oldest first
  size_t bytes_ = 0;               // guarded
};

// The snapshot id of a read transaction, for FeedPageCache.
uint64_t SnapshotId(const Txn& txn);
// The FeedPageCache key of a page: a route letter, the page's subject (a
// username, a collection id, the viewer's id) and its parameters.
std::string FeedPageKey(char route, std::string_view subject, int limit, uint64_t before);

}  // namespace offbrand

#endif  // OFFBRAND_FEEDS_H_
