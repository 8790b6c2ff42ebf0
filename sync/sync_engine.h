// SyncEngine: the background thread that replays the outbox to Stream
// (SPEC section 5). People never wait on it; it never holds a transaction
// across a network call; a restart resumes from LMDB alone.
//
// Each round: read a bounded window of the outbox in sequence order, skip
// entities that are blocked (a dead letter, or an earlier record of the same
// entity in this round), compact what waits (an update merges into a pending
// add of the same activity, repeated updates merge, an add that never left
// plus its remove drop both), group independent records into batches (up to
// kBatchActivitiesMax adds to one feed, up to kBatchChangesMax changes in one
// partial update), send them concurrently through the Transport, then
// acknowledge in one write transaction: sent records leave the outbox, the
// stream_id of each add is stored on its row, 400/409 move a record to the
// dead letters, 401/403 pause everything, network errors / 5xx / 429 back off.
//
// Thread-safety: Start/Stop/Wake/GetStatus are thread-safe. RunOnce is for
// the simulation and must not run concurrently with the thread.
#ifndef OFFBRAND_SYNC_ENGINE_H_
#define OFFBRAND_SYNC_ENGINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "offbrand/clock.h"
#include "offbrand/config.h"
#include "offbrand/status.h"
#include "offbrand/store.h"
#include "offbrand/transport.h"

namespace offbrand {

constexpr size_t kBatchActivitiesMax = 100;
constexpr size_t kBatchChangesMax = 100;
// The thread never sleeps longer than this between rounds (watchdog).
constexpr int64_t kLoopWaitMsMax = 1000;

struct SyncStatus {
  bool configured = false;       // Stream keys present
  std::string paused_reason;     // "" when running; e.g. "Stream rejected our credentials"
  uint64_t pending = 0;          // records in the outbox
  int64_t oldest_pending_age_ms = 0;
  uint64_t in_flight = 0;        // records in requests not yet answered
  uint64_t dead = 0;             // dead letters
  int64_t last_success_ms = 0;   // wall time of the last 2xx, 0 = never
  std::string last_error;
  int64_t next_attempt_ms = 0;   // when backing off: when the next try is due
  // Counters since start, by outcome.
  uint64_t sent_ok = 0;          // records acknowledged by Stream
  uint64_t sent_retry = 0;       // records whose send failed and will retry
  uint64_t sent_dead = 0;        // records moved to dead letters
  uint64_t compacted = 0;        // records folded away without a request
  uint64_t requests = 0;         // HTTP requests made
};

class SyncEngine {
 public:
  // Writes the Stream activity id of an add onto its row (collections.h's
  // SetStreamIdInTxn in production).
  using StreamIdSink = std::function<Status(WriteTxn&, std::string_view foreign_id,
                                            std::string_view stream_id)>;

  // `transport` may be null: Stream is not configured and the outbox only
  // accumulates (GetStatus says so). Nothing is owned except the thread.
  SyncEngine(Store& store, const Config& config, Transport* transport, const Clock& clock,
             StreamIdSink sink);
  ~SyncEngine();  // Stop()
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  void Start();
  // Finishes or abandons (Transport::Cancel) the current request; records
  // that were not acknowledged stay in the outbox. Returns after the thread
  // exited.
  void Stop();
  // Something was enqueued: run a round soon (cheap; called after commits).
  void Wake();
  SyncStatus GetStatus() const;
  // Clock time (ms since the epoch) when the loop last went round (0 before
  // the first round), for the watchdog: a value far in the past means the
  // thread is stuck. The loop goes round at least every kLoopWaitMsMax.
  int64_t last_loop_ms() const;

  // One round at clock time now; returns the clock time (ms) at which the
  // next round is due if nothing wakes it earlier.
  int64_t RunOnce();

  // Seeds the PRNG behind the backoff jitter (default: std::random_device),
  // so a simulation replays exactly. Call before Start/RunOnce.
  void SetRandomSeed(uint64_t seed);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace offbrand

#endif  // OFFBRAND_SYNC_ENGINE_H_
