// Operations: schema versioning and migration, invariant checks, systemd
// notification and the watchdog. Used by App (serve) and the CLI.
//
// Thread-safety: functions are thread-safe; Notifier is thread-safe.
#ifndef OFFBRAND_OPS_H_
#define OFFBRAND_OPS_H_

#include <cstdint>
#include <string>

#include "offbrand/status.h"
#include "offbrand/store.h"

namespace offbrand {

constexpr uint64_t kSchemaVersion = 2;

// Writes kSchemaVersion into a new store; migrates an older one step by step;
// refuses (kUnavailable, "data dir <dir> has schema N, this offbrand supports
// up to M: upgrade offbrand") a newer one.
Status CheckAndMigrateSchema(Store& store);
// Reads the schema version (0 when unset).
uint64_t SchemaVersion(const Txn& txn);

// `offbrand check`: verifies invariants (every index entry points to a row
// that points back, every row has its index entries, follower rows mirror
// follow rows, items belong to existing collections, outbox and dead-letter
// records decode and are sensible, counters exceed existing ids). Appends one
// line per problem to *report; OK when there are none.
Status CheckInvariants(Store& store, std::string* report);

// sd_notify wrappers: no-ops without $NOTIFY_SOCKET (not under systemd).
void NotifyReady();
void NotifyStopping();
void NotifyStatus(const std::string& status);
void NotifyWatchdog();
// The watchdog interval systemd asks for (0 when none): ping at half of it.
uint64_t WatchdogIntervalUs();

}  // namespace offbrand

#endif  // OFFBRAND_OPS_H_
