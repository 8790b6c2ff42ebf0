// Proves that outbox records survive their binary encoding for every
// operation, that invalid or corrupt records are refused (before writing and
// after reading) without crashing, that dead letters move, come back under
// their own sequence with their attempts, and block their entity while they
// exist, and that undecodable records are quarantined and attributed.
#define BOOST_TEST_MODULE outbox_test
#include <boost/test/unit_test.hpp>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "offbrand/outbox.h"
#include "offbrand/store.h"
#include "test_support.h"

namespace offbrand {

std::ostream& operator<<(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
std::ostream& operator<<(std::ostream& os, OutboxOp op) { return os << OutboxOpName(op); }

namespace {

using test::TempDir;

const std::vector<OutboxOp> kAllOps = {
    OutboxOp::kUserAdd,       OutboxOp::kUserUpdate,     OutboxOp::kUserDelete,
    OutboxOp::kActivityAdd,   OutboxOp::kActivityUpdate, OutboxOp::kActivityRemove,
    OutboxOp::kFollow,        OutboxOp::kUnfollow,
};

bool IsUserOp(OutboxOp op) {
  return op == OutboxOp::kUserAdd || op == OutboxOp::kUserUpdate || op == OutboxOp::kUserDelete;
}
bool IsActivityOp(OutboxOp op) {
  return op == OutboxOp::kActivityAdd || op == OutboxOp::kActivityUpdate ||
         op == OutboxOp::kActivityRemove;
}
bool HasBody(OutboxOp op) {
  return op == OutboxOp::kUserAdd || op == OutboxOp::kUserUpdate || op == OutboxOp::kActivityAdd ||
         op == OutboxOp::kActivityUpdate || op == OutboxOp::kFollow;
}

// A valid record of `op`, shaped like the producers make them.
OutboxRecord ValidRecord(OutboxOp op) {
  OutboxRecord r;
  r.op = op;
  if (IsUserOp(op)) {
    r.foreign_id = "42";
    r.entity = UserEntity("42");
    if (op == OutboxOp::kUserAdd) {
      r.body = R"({"id":"42","data":{"username":"ada","gravatar":"https://g/x?s=40"}})";
    } else if (op == OutboxOp::kUserUpdate) {
      r.body = R"({"data":{"username":"ada2","gravatar":"https://g/y?s=40"}})";
    }
  } else if (IsActivityOp(op)) {
    r.feed_group = "User";
    r.feed_id = "42";
    r.foreign_id = "Collection:7";
    r.time = "2024-05-06T07:08:09.123456";
    r.entity = "Collection:7";
    if (op == OutboxOp::kActivityAdd) {
      r.body = R"({"actor":"42","verb":"post","object":"Collection:7","foreign_id":"Collection:7"})";
    } else if (op == OutboxOp::kActivityUpdate) {
      r.body = R"({"foreign_id":"Collection:7","time":"2024-05-06T07:08:09.123456","set":{"name":"x"},"unset":[]})";
    }
  } else {
    r.feed_group = "Timeline";
    r.feed_id = "42";
    r.foreign_id = "Collections:7";
    r.entity = FollowEntity("Timeline", "42", "Collections:7");
    if (op == OutboxOp::kFollow) r.body = R"({"target":"Collections:7","activity_copy_limit":20})";
  }
  return r;
}

void ExpectSame(const OutboxRecord& a, const OutboxRecord& b) {
  BOOST_TEST(a.seq == b.seq);
  BOOST_TEST(a.op == b.op);
  BOOST_TEST(a.feed_group == b.feed_group);
  BOOST_TEST(a.feed_id == b.feed_id);
  BOOST_TEST(a.foreign_id == b.foreign_id);
  BOOST_TEST(a.time == b.time);
  BOOST_TEST(a.body == b.body);
  BOOST_TEST(a.entity == b.entity);
  BOOST_TEST(a.attempts == b.attempts);
  BOOST_TEST(a.created_ms == b.created_ms);
  BOOST_TEST(a.next_attempt_ms == b.next_attempt_ms);
  BOOST_TEST(a.last_error == b.last_error);
  BOOST_TEST(a.stream_id == b.stream_id);
}

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  StoreOptions options;
  options.dir = dir;
  options.map_size_bytes = 8ull << 20;
  auto store = Store::Open(options);
  BOOST_REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return std::move(*store);
}

// Enqueues `rec` in its own write; returns it with seq and created_ms set.
OutboxRecord Enqueue(Store& store, OutboxRecord rec) {
  OutboxRecord out;
  Status s = store.Write([&](WriteTxn& txn) {
    out = rec;
    return EnqueueOutbox(txn, &out);
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return out;
}

BOOST_AUTO_TEST_CASE(OpNamesRoundTrip) {
  for (OutboxOp op : kAllOps) {
    OutboxOp parsed = OutboxOp::kUserAdd;
    BOOST_TEST(ParseOutboxOp(OutboxOpName(op), &parsed), OutboxOpName(op));
    BOOST_TEST(parsed == op);
  }
  OutboxOp untouched = OutboxOp::kFollow;
  BOOST_TEST(!ParseOutboxOp("activity.explode", &untouched));
  BOOST_TEST(!ParseOutboxOp("", &untouched));
  BOOST_TEST(untouched == OutboxOp::kFollow);
  BOOST_TEST(std::string(OutboxOpName(OutboxOp::kActivityAdd)) == "activity.add");
}

BOOST_AUTO_TEST_CASE(EntityKeysAreSpelledOneWay) {
  BOOST_TEST(UserEntity("42") == "user:42");
  BOOST_TEST(FollowEntity("Timeline", "42", "Collections:7") == "follow:Timeline:42>Collections:7");
}

BOOST_AUTO_TEST_CASE(EncodeDecodeRoundTripsEveryOp) {
  for (OutboxOp op : kAllOps) {
    BOOST_TEST_CONTEXT(OutboxOpName(op)) {
      OutboxRecord r = ValidRecord(op);
      r.seq = 0x0102030405060708ull;
      r.attempts = 7;
      r.created_ms = 1'700'000'000'123;
      r.next_attempt_ms = -5;  // signed fields keep their sign
      r.last_error = "503 \"ServiceUnavailable\": try\nlater \xc3\xa9";
      r.stream_id = std::string("with\0nul", 8);
      BOOST_REQUIRE(CheckOutboxRecord(r).ok());
      const std::string bytes = EncodeOutboxRecord(r);
      Result<OutboxRecord> back = DecodeOutboxRecord(U64Key(r.seq), bytes);
      BOOST_REQUIRE_MESSAGE(back.ok(), back.status().ToString());
      ExpectSame(r, *back);
    }
  }
}

BOOST_AUTO_TEST_CASE(DecodeTakesTheSequenceFromTheKey) {
  OutboxRecord r = ValidRecord(OutboxOp::kActivityAdd);
  r.seq = 5;
  Result<OutboxRecord> back = DecodeOutboxRecord(U64Key(99), EncodeOutboxRecord(r));
  BOOST_REQUIRE(back.ok());
  BOOST_TEST(back->seq == 99u);
}

BOOST_AUTO_TEST_CASE(CheckRejectsRecordsMissingRequiredFields) {
  for (OutboxOp op : kAllOps) {
    BOOST_TEST_CONTEXT(OutboxOpName(op)) {
      BOOST_TEST(CheckOutboxRecord(ValidRecord(op)).ok());
      {
        OutboxRecord r = ValidRecord(op);
        r.entity.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no entity");
      }
      {
        OutboxRecord r = ValidRecord(op);
        r.foreign_id.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no foreign_id");
      }
      if (HasBody(op)) {
        OutboxRecord r = ValidRecord(op);
        r.body.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no body");
      }
      if (!IsUserOp(op)) {
        OutboxRecord r = ValidRecord(op);
        r.feed_group.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no feed group");
        r = ValidRecord(op);
        r.feed_id.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no feed id");
      }
      if (op == OutboxOp::kActivityAdd || op == OutboxOp::kActivityUpdate) {
        OutboxRecord r = ValidRecord(op);
        r.time.clear();
        BOOST_TEST(!CheckOutboxRecord(r).ok(), "no time");
      }
    }
  }
  OutboxRecord unknown = ValidRecord(OutboxOp::kUserDelete);
  unknown.op = static_cast<OutboxOp>(0);
  BOOST_TEST(!CheckOutboxRecord(unknown).ok());
  unknown.op = static_cast<OutboxOp>(200);
  BOOST_TEST(!CheckOutboxRecord(unknown).ok());
}

BOOST_AUTO_TEST_CASE(EnqueueRefusesAnInvalidRecordAndWritesNothing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  OutboxRecord bad = ValidRecord(OutboxOp::kActivityAdd);
  bad.body.clear();
  Status s = store->Write([&](WriteTxn& txn) {
    Status put = txn.Put(Db::kMeta, "row", "x");
    if (!put.ok()) return put;
    OutboxRecord rec = bad;
    return EnqueueOutbox(txn, &rec);
  });
  BOOST_TEST(!s.ok());
  BOOST_TEST(test::OutboxRecords(*store).empty());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  BOOST_TEST(!(*txn)->Has(Db::kMeta, "row"));
}

BOOST_AUTO_TEST_CASE(EnqueueSetsSequenceAndCreationTime) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  int64_t now_ms = 0;
  OutboxRecord rec = ValidRecord(OutboxOp::kUserAdd);
  Status s = store->Write([&](WriteTxn& txn) {
    now_ms = txn.now_ms();
    rec = ValidRecord(OutboxOp::kUserAdd);
    return EnqueueOutbox(txn, &rec);
  });
  BOOST_REQUIRE(s.ok());
  BOOST_TEST(rec.seq >= 1u);
  BOOST_TEST(rec.created_ms == now_ms);
  std::vector<OutboxRecord> recs = test::OutboxRecords(*store);
  BOOST_REQUIRE(recs.size() == 1u);
  ExpectSame(rec, recs[0]);
}

BOOST_AUTO_TEST_CASE(DecodeOfGarbageFailsCleanly) {
  OutboxRecord r = ValidRecord(OutboxOp::kActivityAdd);
  r.last_error = "500 boom";
  const std::string good = EncodeOutboxRecord(r);
  // Every truncation of a valid encoding is refused.
  for (size_t n = 0; n < good.size(); ++n) {
    Result<OutboxRecord> back = DecodeOutboxRecord(U64Key(1), good.substr(0, n));
    BOOST_TEST(!back.ok(), "prefix of " << n << " bytes decoded");
    if (!back.ok()) BOOST_TEST(back.status().code() == Status::Code::kInternal);
  }
  // Trailing bytes are refused too.
  BOOST_TEST(!DecodeOutboxRecord(U64Key(1), good + "x").ok());
  // Keys that are not 8-byte sequences.
  BOOST_TEST(!DecodeOutboxRecord("", good).ok());
  BOOST_TEST(!DecodeOutboxRecord("1234567", good).ok());
  BOOST_TEST(!DecodeOutboxRecord("123456789", good).ok());
  // An unknown format version.
  std::string versioned = good;
  versioned[0] = static_cast<char>(versioned[0] + 100);
  BOOST_TEST(!DecodeOutboxRecord(U64Key(1), versioned).ok());
  // Random bytes and random corruptions: never a crash (ASan watches), and
  // whatever does decode satisfies the record invariants.
  std::mt19937 rng(1234);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes.resize(rng() % 64);
      for (char& c : bytes) c = static_cast<char>(rng());
    } else {
      bytes = good;
      for (int flips = 0; flips < 3; ++flips) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    Result<OutboxRecord> back = DecodeOutboxRecord(U64Key(1), bytes);
    if (back.ok()) BOOST_TEST(CheckOutboxRecord(*back).ok());
  }
}

BOOST_AUTO_TEST_CASE(MoveToDeadRetryDeadAndDropDead) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  OutboxRecord a = Enqueue(*store, ValidRecord(OutboxOp::kActivityAdd));
  OutboxRecord b = Enqueue(*store, ValidRecord(OutboxOp::kUserAdd));
  OutboxRecord c = Enqueue(*store, ValidRecord(OutboxOp::kFollow));
  BOOST_REQUIRE(a.seq < b.seq);
  BOOST_REQUIRE(b.seq < c.seq);

  // The oldest record fails for good.
  OutboxRecord failed = a;
  failed.attempts = 9;
  failed.next_attempt_ms = 12345;
  failed.last_error = "400 InputException: bad activity";
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, failed); }).ok());
  std::vector<OutboxRecord> outbox = test::OutboxRecords(*store);
  std::vector<OutboxRecord> dead = test::DeadRecords(*store);
  BOOST_REQUIRE(outbox.size() == 2u);
  BOOST_TEST(outbox[0].seq == b.seq);
  BOOST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].seq == a.seq);
  BOOST_TEST(dead[0].last_error == failed.last_error);
  BOOST_TEST(dead[0].attempts == 9u);
  {
    auto txn = store->BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(EntityIsDead(**txn, a.entity));
    BOOST_TEST(!EntityIsDead(**txn, b.entity));
    BOOST_TEST(!EntityIsDead(**txn, c.entity));
  }

  // Retried: back in the outbox under its own (older) sequence, before b and
  // c, due at once and without the old error, but with its attempts kept.
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return RetryDead(txn, a.seq); }).ok());
  outbox = test::OutboxRecords(*store);
  BOOST_REQUIRE(outbox.size() == 3u);
  BOOST_TEST(outbox[0].seq == a.seq);
  BOOST_TEST(outbox[0].attempts == 9u);
  BOOST_TEST(outbox[0].last_error.empty());
  BOOST_TEST(outbox[0].next_attempt_ms == 0);
  BOOST_TEST(outbox[0].body == a.body);
  BOOST_TEST(outbox[1].seq == b.seq);
  BOOST_TEST(outbox[2].seq == c.seq);
  BOOST_TEST(test::DeadRecords(*store).empty());
  {
    auto txn = store->BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(!EntityIsDead(**txn, a.entity));
  }

  // Retrying or dropping what is not dead is NotFound and changes nothing.
  Status missing = store->Write([&](WriteTxn& txn) { return RetryDead(txn, a.seq); });
  BOOST_TEST(missing.IsNotFound());
  missing = store->Write([&](WriteTxn& txn) { return DropDead(txn, 999); });
  BOOST_TEST(missing.IsNotFound());
  BOOST_TEST(test::OutboxRecords(*store).size() == 3u);

  // Dropped: gone from both databases, the entity unblocked.
  OutboxRecord c_failed = c;
  c_failed.last_error = "403 NotAllowedException";
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, c_failed); }).ok());
  {
    auto txn = store->BeginRead();
    BOOST_REQUIRE(txn.ok());
    BOOST_TEST(EntityIsDead(**txn, c.entity));
  }
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return DropDead(txn, c.seq); }).ok());
  BOOST_TEST(test::DeadRecords(*store).empty());
  outbox = test::OutboxRecords(*store);
  BOOST_REQUIRE(outbox.size() == 2u);
  BOOST_TEST(outbox[0].seq == a.seq);
  BOOST_TEST(outbox[1].seq == b.seq);
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  BOOST_TEST(!EntityIsDead(**txn, c.entity));
}

// A dead letter keeps its number: a new record enqueued after a retry still
// gets a larger sequence than everything before.
BOOST_AUTO_TEST_CASE(EnqueueAfterRetryKeepsSequencesIncreasing) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  OutboxRecord a = Enqueue(*store, ValidRecord(OutboxOp::kActivityAdd));
  OutboxRecord b = Enqueue(*store, ValidRecord(OutboxOp::kActivityRemove));
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, b); }).ok());
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return RetryDead(txn, b.seq); }).ok());
  OutboxRecord c = Enqueue(*store, ValidRecord(OutboxOp::kUserDelete));
  BOOST_TEST(c.seq > b.seq);
  std::vector<OutboxRecord> outbox = test::OutboxRecords(*store);
  BOOST_REQUIRE(outbox.size() == 3u);
  BOOST_TEST(outbox[0].seq == a.seq);
  BOOST_TEST(outbox[1].seq == b.seq);
  BOOST_TEST(outbox[2].seq == c.seq);
}

BOOST_AUTO_TEST_CASE(MoveToDeadRefusesAnInvalidRecord) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  OutboxRecord a = Enqueue(*store, ValidRecord(OutboxOp::kActivityAdd));
  OutboxRecord broken = a;
  broken.entity.clear();
  Status s = store->Write([&](WriteTxn& txn) { return MoveToDead(txn, broken); });
  BOOST_TEST(!s.ok());
  BOOST_TEST(test::OutboxRecords(*store).size() == 1u);
  BOOST_TEST(test::DeadRecords(*store).empty());
}

BOOST_AUTO_TEST_CASE(OutboxRecordJsonIsValidJsonForEveryOp) {
  for (OutboxOp op : kAllOps) {
    BOOST_TEST_CONTEXT(OutboxOpName(op)) {
      OutboxRecord r = ValidRecord(op);
      r.seq = 17;
      r.attempts = 3;
      r.last_error = "quote \" backslash \\ newline \n tab \t ctrl \x01 end";
      const std::string text = OutboxRecordJson(r);
      test::Json j(text);  // throws (failing the test) when invalid
      BOOST_TEST(j.raw().is_object());
      BOOST_TEST(j.at("seq").num() == 17);
      BOOST_TEST(j.at("op").str() == OutboxOpName(op));
      BOOST_TEST(j.at("foreign_id").str() == r.foreign_id);
      BOOST_TEST(j.at("entity").str() == r.entity);
      BOOST_TEST(j.at("attempts").num() == 3);
      BOOST_TEST(j.at("last_error").str() == r.last_error);
      if (HasBody(op)) {
        BOOST_TEST(j.at("body").dump() == test::Json(r.body).dump());
      }
    }
  }
}

// Regression (audit 2): RetryDead reset attempts to 0, so a dead add that may
// have reached Stream looked "never sent" and was later compacted away with
// its remove, leaving the activity on Stream.
BOOST_AUTO_TEST_CASE(RetryDeadKeepsAttemptsSoAnAddThatMayHaveLandedIsNotCompactedAway) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  OutboxRecord add = Enqueue(*store, ValidRecord(OutboxOp::kActivityAdd));
  add.attempts = 1;
  add.last_error = "400 InputException: rejected";
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return MoveToDead(txn, add); }).ok());
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return RetryDead(txn, add.seq); }).ok());
  const auto outbox = test::OutboxRecords(*store);
  BOOST_REQUIRE(outbox.size() == 1u);
  BOOST_TEST(outbox[0].attempts == 1u);
}

BOOST_AUTO_TEST_CASE(PeekOutboxEntityReadsTheEntityOfRecordsThatDoNotDecode) {
  for (OutboxOp op : kAllOps) {
    BOOST_TEST_CONTEXT(OutboxOpName(op)) {
      const OutboxRecord r = ValidRecord(op);
      const std::string bytes = EncodeOutboxRecord(r);
      std::string_view entity;
      BOOST_REQUIRE(PeekOutboxEntity(bytes, &entity));
      BOOST_TEST(entity == r.entity);
      // Trailing garbage: not a record, but still attributable.
      const std::string longer = bytes + "junk";
      BOOST_TEST(!DecodeOutboxRecord(U64Key(1), longer).ok());
      BOOST_REQUIRE(PeekOutboxEntity(longer, &entity));
      BOOST_TEST(entity == r.entity);
    }
  }
  std::string_view entity = "untouched";
  for (const std::string& junk : {std::string(), std::string("\x01"), std::string("\x02" "abc"),
                                  std::string(40, '\xff')}) {
    BOOST_TEST(!PeekOutboxEntity(junk, &entity));
  }
  BOOST_TEST(entity == "untouched");
}

// Regression (audit 5): undecodable records used to be skipped on every
// round; now they are quarantined (moved to the dead letters as they are),
// block their entity, cannot be retried and can be dropped.
BOOST_AUTO_TEST_CASE(QuarantinedRecordBlocksItsEntityAndCanOnlyBeDropped) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  const OutboxRecord good = ValidRecord(OutboxOp::kActivityUpdate);
  const std::string corrupt = EncodeOutboxRecord(good) + "x";
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) {
    return txn.Put(Db::kOutbox, U64Key(7), corrupt);
  }).ok());
  BOOST_TEST(store->Write([&](WriteTxn& txn) { return QuarantineOutbox(txn, 8); }).IsNotFound());
  BOOST_REQUIRE(store->Write([&](WriteTxn& txn) { return QuarantineOutbox(txn, 7); }).ok());
  auto txn = store->BeginRead();
  BOOST_REQUIRE(txn.ok());
  BOOST_TEST((*txn)->Count(Db::kOutbox) == 0u);
  std::string_view value;
  BOOST_REQUIRE((*txn)->Get(Db::kDead, U64Key(7), &value).ok());
  BOOST_TEST(value == corrupt);  // unchanged bytes, for a person to look at
  BOOST_TEST(EntityIsDead(**txn, good.entity));
  const std::string json = CorruptRecordJson(U64Key(7), value, Status::Internal("bad"));
  test::Json j(json);
  BOOST_TEST(j.at("seq").num() == 7);
  BOOST_TEST(j.at("corrupt").boolean());
  BOOST_TEST(j.at("entity").str() == good.entity);
  txn->reset();
  const Status retry = store->Write([&](WriteTxn& w) { return RetryDead(w, 7); });
  BOOST_TEST(retry.code() == Status::Code::kConflict);
  BOOST_TEST(retry.error_code() == "corrupt_dead_letter");
  BOOST_REQUIRE(store->Write([&](WriteTxn& w) { return DropDead(w, 7); }).ok());
  auto after = store->BeginRead();
  BOOST_REQUIRE(after.ok());
  BOOST_TEST(!EntityIsDead(**after, good.entity));
}

}  // namespace
}  // namespace offbrand
