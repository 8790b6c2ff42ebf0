// Follows: user->user (Notifications:<me> follows User:<them>) and
// user->collection (Timeline:<me> follows Collections:<cid>), their counts and
// the outbox records they imply. Routes in follows.cc.
//
// Follow functions are idempotent: following twice writes and queues nothing
// the second time. Self-follows (a user of themselves, an author of their
// collection) are stored like any follow but never counted or listed.
//
// Thread-safety: free functions over a caller-owned transaction.
#ifndef OFFBRAND_FOLLOWS_H_
#define OFFBRAND_FOLLOWS_H_

#include <cstdint>

#include "offbrand/config.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

// *changed (optional) tells whether a row was written.
Status FollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower, uint64_t followed,
                       bool* changed = nullptr);
Status UnfollowUserInTxn(WriteTxn& txn, const Config& config, uint64_t follower,
                         uint64_t followed, bool* changed = nullptr);
Status FollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                             uint64_t collection_id, bool* changed = nullptr);
Status UnfollowCollectionInTxn(WriteTxn& txn, const Config& config, uint64_t user,
                               uint64_t collection_id, bool* changed = nullptr);

// Removes every follow row of a collection being deleted, queueing unfollows.
Status DropCollectionFollowersInTxn(WriteTxn& txn, const Config& config, uint64_t collection_id);
// Removes every follow row from or to a user being deleted, queueing unfollows.
Status DropUserFollowsInTxn(WriteTxn& txn, const Config& config, uint64_t user_id);

// Counts without self-follows.
uint64_t CollectionFollowerCount(const Txn& txn, uint64_t collection_id, uint64_t author_id);
uint64_t UserFollowerCount(const Txn& txn, uint64_t user_id);
uint64_t UserFollowingCount(const Txn& txn, uint64_t user_id);
bool Follows(const Txn& txn, uint64_t follower, uint64_t followed);

}  // namespace offbrand

#endif  // OFFBRAND_FOLLOWS_H_
