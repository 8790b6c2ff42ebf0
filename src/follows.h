// Follows: user->user (Notifications:<me> follows User:<them>) and
// user->collection (Timeline:<me> follows Collections:<cid>), their counts,
// the outbox records they imply and the indexes that serve the offline
// Timeline and Notifications feeds. Routes in follows.cc.
//
// Follow functions are idempotent: following twice writes and queues nothing
// the second time. Self-follows (a user of themselves, an author of their
// collection) are stored like any follow but never counted or listed.
//
// Derived rows, written in the same transaction as what they derive from:
//  - kFollowCounts: the number of rows under each first id of the four follow
//    indexes, so counts are one lookup instead of a scan of every follower.
//  - Feed heads. A feed is a merge of sources newest first: the timeline's
//    sources are the collections the owner follows (entries: their items),
//    notifications' are the users the owner follows (entries: their
//    collections). kFeedSources holds each source's head, the largest entry
//    id it ever had; kFeedHeads holds (feed, owner, head, source) for every
//    follow of a source that has a head. A feed page walks the owner's heads
//    newest first and seeks into a source only once its head could still
//    beat the page's next entry, so the first page costs O(page) lookups
//    instead of one per followed source. Ids only grow, so a head only
//    rises when an entry is added; deleting entries leaves it as an upper
//    bound (never too low, so never hides an entry).
//    Maintenance: adding an entry rewrites the head row of every follower of
//    its source (O(followers)); follow and unfollow write one row.
//
// Thread-safety: free functions over a caller-owned transaction.
#ifndef OFFBRAND_FOLLOWS_H_
#define OFFBRAND_FOLLOWS_H_

#include <cstdint>
#include <functional>
#include <string>

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

// Removes every follow row of a collection being deleted, queueing unfollows,
// and its feed source row.
Status DropCollectionFollowersInTxn(WriteTxn& txn, const Config& config, uint64_t collection_id);
// Removes every follow row from or to a user being deleted, queueing
// unfollows, and their feed source row.
Status DropUserFollowsInTxn(WriteTxn& txn, const Config& config, uint64_t user_id);

// Feed maintenance hooks for collections.cc, each called in the transaction
// that writes the index row, after it. `item_id` / `collection_id` must be
// the largest id of its kind so far (ids come from NextId).
//
// Item `item_id` was added to collection `collection_id` (kItemsByCollection).
Status NoteItemAddedInTxn(WriteTxn& txn, uint64_t collection_id, uint64_t item_id);
// Collection `collection_id` was created by `author_id` (kCollectionsByAuthor).
Status NoteCollectionCreatedInTxn(WriteTxn& txn, uint64_t author_id, uint64_t collection_id);

// Rebuilds kFollowCounts, kFeedSources and kFeedHeads from the follow rows
// and the id indexes (the schema migration that introduced them). Replaces
// whatever those databases held.
Status RebuildFollowIndexesInTxn(WriteTxn& txn);

// For `offbrand check`: compares the derived rows with what they derive
// from. Every counter must equal its rows; every source with entries must
// have a head no lower than its newest entry (higher is fine: entries may
// have been deleted); every follow of a source with a head must have its
// head row and every head row its follow and its source's head. Calls
// problem(text) for each mismatch and returns how many there were.
uint64_t CheckFollowIndexes(const Txn& txn, const std::function<void(const std::string&)>& problem);

// Counts without self-follows; one lookup each.
uint64_t CollectionFollowerCount(const Txn& txn, uint64_t collection_id, uint64_t author_id);
uint64_t UserFollowerCount(const Txn& txn, uint64_t user_id);
uint64_t UserFollowingCount(const Txn& txn, uint64_t user_id);
bool Follows(const Txn& txn, uint64_t follower, uint64_t followed);

}  // namespace offbrand

#endif  // OFFBRAND_FOLLOWS_H_
