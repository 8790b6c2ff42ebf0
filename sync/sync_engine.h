// SyncEngine: the background thread that replays the outbox to Stream
// (SPEC section 5). People never wait on it; it never holds a transaction
// across a network call; a restart resumes from LMDB alone.
//
// It is a pipeline, not a sequence of rounds: up to kRequestsInFlightMax
// requests are in flight at once, each finished request is acknowledged as
// soon as it is answered, and the freed slot is refilled at once. A "step"
// (RunOnce) does, in this order:
//   1. collect the requests that finished (Transport::Poll, no waiting) and
//      judge each answer;
//   2. when slots are free and the planned queue runs short, scan the
//      outbox in sequence order and plan requests: compaction (an update
//      merges into a pending add of the same activity, repeated updates
//      merge, an add that never left plus its remove drop both, likewise
//      follow+unfollow and user add+delete), then batching of independent
//      records (up to kBatchActivitiesMax adds to one feed, up to
//      kBatchChangesMax changes in one partial update, up to
//      kBatchFollowsMax follows in one follow_many), oldest first;
//   3. start planned requests whose records are durably marked (attempts +
//      1), up to the free slots;
//   4. unless a commit is under way, one write transaction that
//      acknowledges what was answered (sent records leave the outbox, the
//      stream_id of each add is stored on its row in the same transaction,
//      400/409 move the record at fault to the dead letters, failures store
//      the record's next attempt time) and marks the next planned requests.
// With its own thread the engine runs that transaction on a committer
// thread, so the network never waits for an fsync; the store's group commit
// (Store::Write) lets it share the fsync with concurrent HTTP writes.
//
// Ordering: records of one entity (a foreign_id, a user, a follow edge) are
// sent strictly in sequence order and never two at once: an entity with a
// request planned or in flight is skipped by the scan (with all its later
// records), and so is an entity with a dead letter (it waits for an
// operator) or whose head record waits for its next attempt.
//
// Failures: network errors, timeouts and 5xx back off per entity (the head
// record's next_attempt_ms, exponential with full jitter, capped at
// OFFBRAND_SYNC_RETRY_MAX_MS), so one record that keeps failing does not slow
// the others. Only when Stream as a whole looks down (a connection cannot be
// made, or kDownStreakMin requests in a row over at least two entities failed
// that way with no answer in between) does the whole engine back off, and it
// then resumes with one probe request at a time until Stream answers. 429 and
// X-Ratelimit-Remaining: 0 (read on every response) hold every request of
// that endpoint (Stream limits each endpoint separately) until the reset
// time; 401/403 pause everything ("Stream rejected our credentials").
//
// Late application (residual risk): a request that timed out or lost its
// connection after sending may still be applied by Stream later. Retrying it
// is harmless (every write is keyed), but sending the entity's NEXT record
// (say, the remove after an add) before the late one lands could reorder
// them on Stream. The engine therefore holds that entity for a grace period
// (OFFBRAND_STREAM_TIMEOUT_MS, clamped to 1..60 s) after such a failure. The
// hold lives in memory: a restart within the grace period, or a request
// applied later than the grace period, can still reorder; that window is
// accepted.
//
// Thread-safety: Start/Stop/Wake/GetStatus/last_loop_ms are thread-safe.
// RunOnce is for the simulation (it commits inline, deterministically) and
// must not be used once Start was called.
#ifndef OFFBRAND_SYNC_ENGINE_H_
#define OFFBRAND_SYNC_ENGINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "offbrand/clock.h"
#include "offbrand/config.h"
#include "offbrand/status.h"
#include "offbrand/store.h"
#include "offbrand/transport.h"

namespace offbrand {

constexpr size_t kBatchActivitiesMax = 100;
constexpr size_t kBatchChangesMax = 100;
constexpr size_t kBatchFollowsMax = 100;
// Requests in flight at once (also bounded by Transport::max_in_flight).
constexpr size_t kRequestsInFlightMax = 64;
// The thread never waits longer than this between steps (watchdog), however
// long a request may take.
constexpr int64_t kLoopWaitMsMax = 1000;
// Transient failures in a row (over >= 2 entities) after which Stream as a
// whole is considered down.
constexpr int kDownStreakMin = 3;

// The X-Ratelimit-* state Stream last reported for one endpoint.
struct RateLimitState {
  std::string operation;        // "activity.add", "follow", "user", ...
  int64_t limit = -1;           // -1: not reported
  int64_t remaining = -1;
  int64_t reset_unix_s = -1;
  int64_t held_until_ms = 0;    // > now: requests of this endpoint wait
};

struct SyncStatus {
  bool configured = false;       // Stream keys present
  // "" when running; "Stream is not configured (no API key/secret)" when
  // !configured; "Stream rejected our credentials" after a 401/403.
  std::string paused_reason;
  bool credentials_rejected = false;
  uint64_t pending = 0;          // records in the outbox
  int64_t oldest_pending_age_ms = 0;
  uint64_t in_flight = 0;        // records in requests not yet answered
  uint64_t requests_in_flight = 0;
  uint64_t dead = 0;             // dead letters
  int64_t last_success_ms = 0;   // wall time of the last 2xx, 0 = never
  // The last failure; cleared once requests succeed again and no entity is
  // waiting for a retry.
  std::string last_error;
  int64_t next_attempt_ms = 0;   // when backing off globally: when the next try is due
  bool stream_down = false;      // backing off because Stream looks down
  std::vector<RateLimitState> rate_limits;  // endpoints Stream reported on
  // Counters since start, by outcome.
  uint64_t sent_ok = 0;          // records acknowledged by Stream
  uint64_t sent_retry = 0;       // records whose send failed and will retry
  uint64_t sent_dead = 0;        // records moved to dead letters
  uint64_t compacted = 0;        // records folded away without a request
  uint64_t quarantined = 0;      // undecodable records moved to dead letters
  uint64_t requests = 0;         // HTTP requests made
};

class SyncEngine {
 public:
  // Writes the Stream activity id of an add onto its row (collections.h's
  // SetStreamIdInTxn in production).
  using StreamIdSink = std::function<Status(WriteTxn&, std::string_view foreign_id,
                                            std::string_view stream_id)>;

  // `transport` may be null: Stream is not configured and the outbox only
  // accumulates (GetStatus says so). Nothing is owned except the thread; the
  // transport must outlive the engine.
  SyncEngine(Store& store, const Config& config, Transport* transport, const Clock& clock,
             StreamIdSink sink);
  ~SyncEngine();  // Stop()
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  void Start();
  // Abandons the requests in flight (Transport::Cancel): their records were
  // not acknowledged and stay in the outbox. Returns after the thread exited.
  void Stop();
  // Something was enqueued (or a dead letter retried): scan soon. Cheap;
  // called after commits.
  void Wake();
  SyncStatus GetStatus() const;
  // Clock time (ms since the epoch) when the loop last went round (0 before
  // the first step), for the watchdog: a value far in the past means the
  // thread is stuck. The loop goes round at least every kLoopWaitMsMax.
  int64_t last_loop_ms() const;

  // One step (see the file comment) at clock time now; returns the clock
  // time at which the next step is due if nothing happens earlier. While
  // requests are in flight a step is also due whenever one finishes.
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
