// Shared parts of the offline feed reads (feeds.cc: a user's and a
// collection's feed; follows.cc: the timeline and notifications).
//
// Thread-safety: an ActorCache belongs to one request (one thread).
#ifndef OFFBRAND_FEEDS_H_
#define OFFBRAND_FEEDS_H_

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
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

}  // namespace offbrand

#endif  // OFFBRAND_FEEDS_H_
