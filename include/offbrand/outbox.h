// The outbox: durable records of what Stream must be told, written in the same
// write transaction as the rows they describe and replayed by the sync thread
// (sync/sync_engine.h).
//
// A record is self-contained: the sender builds the HTTP request from the
// record alone (operation, feed, foreign id, time and the JSON body that Stream
// will receive), so no row needs to exist any more when it is sent (a deleted
// collection's remove is still deliverable).
//
// Ordering: records are keyed by a 64-bit sequence (big-endian, from the
// "next_id:outbox" counter, never reused). Records with the same `entity` are
// delivered strictly in sequence order; records of different entities may be
// batched and sent concurrently.
//
// Thread-safety: free functions over a caller-owned transaction.
#ifndef OFFBRAND_OUTBOX_H_
#define OFFBRAND_OUTBOX_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

enum class OutboxOp : uint8_t {
  kUserAdd = 1,     // POST user/?get_or_create=true   body {"id","data"}
  kUserUpdate,      // PUT user/<foreign_id>/          body {"data"}
  kUserDelete,      // DELETE user/<foreign_id>/
  kActivityAdd,     // POST feed/<group>/<feed_id>/    body = the activity
  kActivityUpdate,  // POST activity/                  body = one change {"foreign_id","time","set","unset"}
  kActivityRemove,  // DELETE feed/<group>/<feed_id>/<foreign_id>/?foreign_id=1
  kFollow,          // POST feed/<group>/<feed_id>/following/ body {"target","activity_copy_limit"}
  kUnfollow,        // DELETE feed/<group>/<feed_id>/following/<foreign_id>/
};
const char* OutboxOpName(OutboxOp op);  // "activity.add", ...
bool ParseOutboxOp(std::string_view name, OutboxOp* op);

struct OutboxRecord {
  uint64_t seq = 0;          // assigned by Enqueue
  OutboxOp op = OutboxOp::kActivityAdd;
  std::string feed_group;    // activity and follow ops: the (source) feed group, e.g. "User"
  std::string feed_id;       // activity and follow ops: the feed id, e.g. "42"
  // Activity ops: the activity's foreign_id ("Collection:7").
  // User ops: the Stream user id ("42").
  // Follow ops: the target feed "<group>:<id>" ("Collections:7").
  std::string foreign_id;
  std::string time;          // activity ops: Stream time string; else empty
  std::string body;          // JSON body sent to Stream; empty for DELETEs
  // Ordering key: records of one entity go in sequence order. Activities:
  // the foreign_id; users: "user:<id>"; follows: "follow:<group>:<id>><target>".
  std::string entity;
  uint32_t attempts = 0;
  int64_t created_ms = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;    // "<http status> <stream exception>: <detail>" or a network error
  std::string stream_id;     // dead letters: nothing; reserved for diagnostics
};

// Entity keys, so every producer spells them the same way.
std::string UserEntity(std::string_view user_id);
std::string FollowEntity(std::string_view group, std::string_view feed_id,
                         std::string_view target);

// Serializes a record (binary, versioned). Decode checks the encoding and the
// record's invariants (CheckOutboxRecord) and fails with kInternal when the
// stored bytes are not a valid record.
std::string EncodeOutboxRecord(const OutboxRecord& rec);
Result<OutboxRecord> DecodeOutboxRecord(std::string_view key, std::string_view value);
// The invariants of a record of its op (which fields must be set). A failure
// is a programmer error in the producer, reported rather than written.
Status CheckOutboxRecord(const OutboxRecord& rec);

// Assigns rec->seq and rec->created_ms (txn.now_ms()) and writes the record.
Status EnqueueOutbox(WriteTxn& txn, OutboxRecord* rec);
// The entity of a stored record, read without decoding the rest and without
// checking the record's invariants, so that a record that fails
// DecodeOutboxRecord can still be attributed. False when even the fields up
// to the entity cannot be read (or it is empty); *entity then is untouched.
// The view points into `value`.
bool PeekOutboxEntity(std::string_view value, std::string_view* entity);

// Moves a record (with its last_error) to the dead-letter database.
Status MoveToDead(WriteTxn& txn, const OutboxRecord& rec);
// Moves the stored bytes of outbox record `seq`, whatever they hold, to the
// dead letters unchanged (quarantine of a record that does not decode: it
// then blocks its entity like any dead letter, and an operator can drop it).
// NotFound when the outbox has no such record.
Status QuarantineOutbox(WriteTxn& txn, uint64_t seq);
// Moves a dead letter back into the outbox under its original sequence number
// with next_attempt_ms and last_error cleared. `attempts` is kept: attempts > 0
// means the record may have reached Stream, which compaction relies on (an add
// that may have landed is never dropped together with its remove).
// NotFound when there is no such dead letter; kConflict
// ("corrupt_dead_letter") when its bytes are not a valid record (it can only
// be dropped).
Status RetryDead(WriteTxn& txn, uint64_t seq);
// Deletes a dead letter (valid or not). NotFound when there is none.
Status DropDead(WriteTxn& txn, uint64_t seq);
// True when `entity` has a dead letter (its later records must wait).
// Dead letters are few, so this scans kDead (corrupt ones are attributed with
// PeekOutboxEntity).
bool EntityIsDead(const Txn& txn, std::string_view entity);

// JSON for people (CLI `outbox list`, /sync/dead).
std::string OutboxRecordJson(const OutboxRecord& rec);
// JSON for a stored record that does not decode:
// {"seq":N,"corrupt":true,"entity":<peeked entity or null>,"error":<why>}.
std::string CorruptRecordJson(std::string_view key, std::string_view value,
                              const Status& why);

}  // namespace offbrand

#endif  // OFFBRAND_OUTBOX_H_
