// Logging to stderr with journald priority prefixes.
#include "offbrand/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <algorithm>
#include <cstring>

namespace offbrand {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<void (*)(const char*, size_t)> g_sink{nullptr};
}  // namespace

void SetLogSinkForTest(void (*sink)(const char* line, size_t len)) { g_sink = sink; }

bool SetLogLevel(const char* name) {
  LogLevel level;
  if (strcmp(name, "debug") == 0) {
    level = LogLevel::kDebug;
  } else if (strcmp(name, "info") == 0) {
    level = LogLevel::kInfo;
  } else if (strcmp(name, "warning") == 0 || strcmp(name, "warn") == 0) {
    level = LogLevel::kWarning;
  } else if (strcmp(name, "error") == 0) {
    level = LogLevel::kError;
  } else {
    return false;
  }
  g_level = static_cast<int>(level);
  return true;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(); }

void LogLine(LogLevel level, const char* fmt, ...) {
  char buf[2048];
  int n = snprintf(buf, sizeof(buf), "<%d>", static_cast<int>(level));
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : std::min<size_t>(m, sizeof(buf) - n - 2));
  // One line per event: fold embedded newlines.
  for (size_t i = n; i < len; ++i) {
    if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' ';
  }
  if (auto sink = g_sink.load(std::memory_order_relaxed)) sink(buf, len);
  buf[len++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, len);
  (void)ignored;
}

}  // namespace offbrand
