// Collections and their links (items): domain operations shared with other
// modules. Routes live in collections.cc (RegisterCollectionRoutes) and the
// feed reads in feeds.cc.
//
// Every *InTxn function writes rows, indexes and outbox records in the
// caller's write transaction; the caller commits (Store::Write).
//
// Thread-safety: free functions over a caller-owned transaction.
#ifndef OFFBRAND_COLLECTIONS_H_
#define OFFBRAND_COLLECTIONS_H_

#include <cstdint>
#include <string_view>

#include "json.h"
#include "offbrand/config.h"
#include "offbrand/model.h"
#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

Result<Collection> LoadCollection(const Txn& txn, uint64_t id);  // 404 not_found
Result<Item> LoadItem(const Txn& txn, uint64_t id);              // 404 not_found

// The duplicate-url index (Db::kItemUrls). A url may be up to kUrlBytesMax
// bytes, more than an LMDB key holds (511), so entries are keyed by
// collection id (u64) + SHA-256 of the url (32 bytes) + item id (u64), with
// an empty value: 48-byte keys whatever the url. Two urls with the same hash
// (never seen, but not assumed away) are two entries under one 40-byte
// prefix; a lookup compares each entry's item url with the one asked for.
constexpr size_t kItemUrlPrefixBytes = 8 + 32;
constexpr size_t kItemUrlKeyBytes = kItemUrlPrefixBytes + 8;
// The 40-byte prefix shared by every link of `collection_id` whose url
// hashes like `url`.
std::string ItemUrlPrefix(uint64_t collection_id, std::string_view url);
// The entry of item `item_id` with `url` in `collection_id`.
std::string ItemUrlKey(uint64_t collection_id, std::string_view url, uint64_t item_id);
// The id of the link of `collection_id` whose url is exactly `url`, or 0
// when there is none. Entries whose item row is missing or has another url
// are passed over (`offbrand check` reports them).
uint64_t FindItemByUrl(const Txn& txn, uint64_t collection_id, std::string_view url);

// Deletes a collection, its items, its follower rows (queueing the unfollows
// they imply, via follows.h) and queues the Stream removes (the collection's
// activity from User:<author>, each item's from Collections:<id>).
Status DeleteCollectionInTxn(WriteTxn& txn, const Config& config, const Collection& c);
// Deletes every collection authored by `user_id` (user deletion).
Status DeleteUserCollectionsInTxn(WriteTxn& txn, const Config& config, uint64_t user_id);

// Called by the sync engine when Stream reported the activity id of an add:
// stores it on the row named by `foreign_id` ("Collection:<id>" or
// "Content:<id>"). A row that no longer exists is not an error.
Status SetStreamIdInTxn(WriteTxn& txn, std::string_view foreign_id, std::string_view stream_id);

// The SPEC collection object (author enriched, follower_count without the
// author's self-follow) and item object.
void WriteCollectionJson(const Txn& txn, JsonOut& out, const Collection& c);
void WriteItemJson(JsonOut& out, const Item& i);

// The Stream activity bodies (compact JSON), shared by the outbox producers
// and the offline feed reads so both show the same fields.
std::string CollectionActivityJson(const Config& config, const Collection& c);
std::string ItemActivityJson(const Config& config, const Item& i, const Collection& c);

}  // namespace offbrand

#endif  // OFFBRAND_COLLECTIONS_H_
