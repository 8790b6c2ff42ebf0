// systemd notification (sd_notify(3)) for Type=notify and the watchdog.
// libsystemd's calls already do nothing without $NOTIFY_SOCKET, so the
// server runs the same outside systemd.
#include <systemd/sd-daemon.h>

#include <string>

#include "offbrand/log.h"
#include "ops.h"

namespace offbrand {

namespace {

// sd_notify's state is newline-separated assignments: a status with a
// newline would inject another one.
std::string OneLine(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

void Notify(const std::string& state) {
  int rc = sd_notify(0, state.c_str());
  if (rc < 0) OB_LOG(kDebug, "sd_notify failed: %d", rc);
}

}  // namespace

void NotifyReady() { Notify("READY=1"); }

void NotifyStopping() { Notify("STOPPING=1"); }

void NotifyStatus(const std::string& status) { Notify("STATUS=" + OneLine(status)); }

void NotifyWatchdog() { Notify("WATCHDOG=1"); }

uint64_t WatchdogIntervalUs() {
  uint64_t usec = 0;
  // > 0 only when $WATCHDOG_USEC is set (and $WATCHDOG_PID names us).
  if (sd_watchdog_enabled(0, &usec) <= 0) return 0;
  return usec;
}

}  // namespace offbrand
