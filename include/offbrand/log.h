// Logging: one line per event to stderr, journald style ("<N>" priority
// prefix, see sd-daemon(3)), so systemd files each line at its level.
// Never log secrets, tokens or passwords.
//
// Thread-safety: thread-safe; each line is written with one write(2).
#ifndef OFFBRAND_LOG_H_
#define OFFBRAND_LOG_H_

#include <cstddef>

namespace offbrand {

enum class LogLevel { kError = 3, kWarning = 4, kInfo = 6, kDebug = 7 };

// Lines above `level` are dropped. Parses "debug", "info", "warning",
// "error"; returns false for anything else.
bool SetLogLevel(const char* name);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Tests: also hands every line written (with its "<N>" prefix, without the
// newline) to `sink`; nullptr removes it. The sink must be thread-safe.
void SetLogSinkForTest(void (*sink)(const char* line, size_t len));

}  // namespace offbrand

#define OB_LOG(level, ...)                                                   \
  do {                                                                       \
    if (::offbrand::LogEnabled(::offbrand::LogLevel::level))                 \
      ::offbrand::LogLine(::offbrand::LogLevel::level, __VA_ARGS__);         \
  } while (0)

#endif  // OFFBRAND_LOG_H_
