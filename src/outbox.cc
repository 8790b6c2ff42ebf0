// Outbox records: encoding, checks, enqueue and dead letters.
#include "offbrand/outbox.h"

#include "codec.h"
#include "json.h"

namespace offbrand {

namespace {
constexpr uint8_t kRecordV1 = 1;
constexpr const char* kOpNames[] = {
    "", "user.add", "user.update", "user.delete", "activity.add",
    "activity.update", "activity.remove", "feed.follow", "feed.unfollow",
};
constexpr int kOpCount = 8;
}  // namespace

const char* OutboxOpName(OutboxOp op) {
  const int i = static_cast<int>(op);
  return (i >= 1 && i <= kOpCount) ? kOpNames[i] : "unknown";
}

bool ParseOutboxOp(std::string_view name, OutboxOp* op) {
  for (int i = 1; i <= kOpCount; ++i) {
    if (name == kOpNames[i]) {
      *op = static_cast<OutboxOp>(i);
      return true;
    }
  }
  return false;
}

std::string UserEntity(std::string_view user_id) { return "user:" + std::string(user_id); }

std::string FollowEntity(std::string_view group, std::string_view feed_id,
                         std::string_view target) {
  std::string s = "follow:";
  s.append(group).append(":").append(feed_id).append(">").append(target);
  return s;
}

Status CheckOutboxRecord(const OutboxRecord& r) {
  auto bad = [&](const char* why) {
    return Status::Internal(std::string("invalid outbox record (") + OutboxOpName(r.op) +
                            "): " + why);
  };
  const int op = static_cast<int>(r.op);
  if (op < 1 || op > kOpCount) return bad("unknown operation");
  if (r.entity.empty()) return bad("no entity");
  switch (r.op) {
    case OutboxOp::kUserAdd:
    case OutboxOp::kUserUpdate:
      if (r.foreign_id.empty() || r.body.empty()) return bad("user id and body required");
      break;
    case OutboxOp::kUserDelete:
      if (r.foreign_id.empty()) return bad("user id required");
      break;
    case OutboxOp::kActivityAdd:
    case OutboxOp::kActivityUpdate:
      if (r.feed_group.empty() || r.feed_id.empty() || r.foreign_id.empty() || r.time.empty() ||
          r.body.empty()) {
        return bad("feed, foreign_id, time and body required");
      }
      break;
    case OutboxOp::kActivityRemove:
      if (r.feed_group.empty() || r.feed_id.empty() || r.foreign_id.empty()) {
        return bad("feed and foreign_id required");
      }
      break;
    case OutboxOp::kFollow:
      if (r.feed_group.empty() || r.feed_id.empty() || r.foreign_id.empty() || r.body.empty()) {
        return bad("feed, target and body required");
      }
      break;
    case OutboxOp::kUnfollow:
      if (r.feed_group.empty() || r.feed_id.empty() || r.foreign_id.empty()) {
        return bad("feed and target required");
      }
      break;
  }
  return Status::Ok();
}

std::string EncodeOutboxRecord(const OutboxRecord& r) {
  Encoder e;
  e.U8(kRecordV1).U8(static_cast<uint8_t>(r.op)).Str(r.feed_group).Str(r.feed_id)
      .Str(r.foreign_id).Str(r.time).Str(r.body).Str(r.entity).U32(r.attempts)
      .I64(r.created_ms).I64(r.next_attempt_ms).Str(r.last_error).Str(r.stream_id);
  return e.Take();
}

Result<OutboxRecord> DecodeOutboxRecord(std::string_view key, std::string_view value) {
  OutboxRecord r;
  if (key.size() != 8) return Status::Internal("outbox key is not a sequence number");
  r.seq = GetU64BE(key);
  Decoder d(value);
  uint8_t version, op;
  if (!d.U8(&version) || version != kRecordV1 || !d.U8(&op) || !d.Str(&r.feed_group) ||
      !d.Str(&r.feed_id) || !d.Str(&r.foreign_id) || !d.Str(&r.time) || !d.Str(&r.body) ||
      !d.Str(&r.entity) || !d.U32(&r.attempts) || !d.I64(&r.created_ms) ||
      !d.I64(&r.next_attempt_ms) || !d.Str(&r.last_error) || !d.Str(&r.stream_id) || !d.done()) {
    return Status::Internal("outbox record " + std::to_string(r.seq) + " is corrupt");
  }
  r.op = static_cast<OutboxOp>(op);
  Status s = CheckOutboxRecord(r);
  if (!s.ok()) return s;
  return r;
}

Status EnqueueOutbox(WriteTxn& txn, OutboxRecord* rec) {
  rec->created_ms = txn.now_ms();
  Status s = CheckOutboxRecord(*rec);
  if (!s.ok()) return s;
  Result<uint64_t> seq = txn.NextId("outbox");
  if (!seq.ok()) return seq.status();
  rec->seq = *seq;
  // Sequences only grow, so MDB_APPEND holds (a dead letter moved back keeps
  // its old, smaller number and is written with Put instead).
  return txn.Append(Db::kOutbox, U64Key(rec->seq), EncodeOutboxRecord(*rec));
}

Status MoveToDead(WriteTxn& txn, const OutboxRecord& rec) {
  Status s = CheckOutboxRecord(rec);
  if (!s.ok()) return s;
  const std::string key = U64Key(rec.seq);
  s = txn.Put(Db::kDead, key, EncodeOutboxRecord(rec));
  if (!s.ok()) return s;
  s = txn.Del(Db::kOutbox, key);
  return s.IsNotFound() ? Status::Ok() : s;
}

Status QuarantineOutbox(WriteTxn& txn, uint64_t seq) {
  const std::string key = U64Key(seq);
  std::string_view value;
  Status s = txn.Get(Db::kOutbox, key, &value);
  if (s.IsNotFound()) return Status::NotFound("no outbox record " + std::to_string(seq));
  if (!s.ok()) return s;
  const std::string bytes(value);  // `value` dies with the next write
  s = txn.Put(Db::kDead, key, bytes);
  if (!s.ok()) return s;
  return txn.Del(Db::kOutbox, key);
}

Status RetryDead(WriteTxn& txn, uint64_t seq) {
  const std::string key = U64Key(seq);
  std::string_view value;
  Status s = txn.Get(Db::kDead, key, &value);
  if (!s.ok()) return Status::NotFound("no dead letter " + std::to_string(seq));
  Result<OutboxRecord> rec = DecodeOutboxRecord(key, value);
  if (!rec.ok()) {
    return Status::Conflict("corrupt_dead_letter",
                            "dead letter " + std::to_string(seq) +
                                " is not a valid record and cannot be retried (drop it): " +
                                rec.status().message());
  }
  // attempts stays: see outbox.h.
  rec->next_attempt_ms = 0;
  rec->last_error.clear();
  s = txn.Put(Db::kOutbox, key, EncodeOutboxRecord(*rec));
  if (!s.ok()) return s;
  return txn.Del(Db::kDead, key);
}

Status DropDead(WriteTxn& txn, uint64_t seq) {
  Status s = txn.Del(Db::kDead, U64Key(seq));
  if (s.IsNotFound()) return Status::NotFound("no dead letter " + std::to_string(seq));
  return s;
}

bool EntityIsDead(const Txn& txn, std::string_view entity) {
  Cursor c = txn.OpenCursor(Db::kDead);
  for (bool ok = c.First(); ok; ok = c.Next()) {
    std::string_view e;
    if (PeekOutboxEntity(c.value(), &e) && e == entity) return true;
  }
  return false;
}

namespace {
// Reads a length-prefixed string field as a view (codec.h's layout).
bool ViewStr(std::string_view* in, std::string_view* out) {
  if (in->size() < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<uint8_t>((*in)[i]);
  in->remove_prefix(4);
  if (in->size() < n) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}
}  // namespace

bool PeekOutboxEntity(std::string_view value, std::string_view* entity) {
  // version, op, then feed_group, feed_id, foreign_id, time, body, entity.
  if (value.size() < 2 || static_cast<uint8_t>(value[0]) != kRecordV1) return false;
  std::string_view in = value.substr(2);
  std::string_view field;
  for (int i = 0; i < 6; ++i) {
    if (!ViewStr(&in, &field)) return false;
  }
  if (field.empty()) return false;
  *entity = field;
  return true;
}

std::string CorruptRecordJson(std::string_view key, std::string_view value, const Status& why) {
  JsonOut out;
  out.BeginObject();
  out.Key("seq").Uint(key.size() == 8 ? GetU64BE(key) : 0);
  out.Key("corrupt").Bool(true);
  std::string_view entity;
  out.Field("entity", PeekOutboxEntity(value, &entity) ? std::string(entity) : "", true);
  out.Field("error", why.message());
  out.EndObject();
  return out.str();
}

std::string OutboxRecordJson(const OutboxRecord& r) {
  JsonOut out;
  out.BeginObject();
  out.Key("seq").Uint(r.seq);
  out.Field("op", OutboxOpName(r.op));
  out.Field("feed", r.feed_group.empty() ? "" : r.feed_group + ":" + r.feed_id, true);
  out.Field("foreign_id", r.foreign_id, true);
  out.Field("time", r.time, true);
  out.Field("entity", r.entity);
  out.Key("attempts").Uint(r.attempts);
  out.Key("created_ms").Int(r.created_ms);
  out.Key("next_attempt_ms").Int(r.next_attempt_ms);
  out.Field("last_error", r.last_error, true);
  out.Key("body");
  if (r.body.empty()) {
    out.Null();
  } else {
    out.Raw(r.body);
  }
  out.EndObject();
  return out.str();
}

}  // namespace offbrand
