// stream_double_server: the Stream test double as a process.
//
//   stream_double_server [--port N] [--api-key K] [--api-secret S]
//                        [--control-port [N]] [--host H] [--threads N]
//
// Prints "listening <port>" (and "control <port>" with --control-port) on
// stdout, flushes, and serves until SIGTERM or SIGINT. Port 0 (the default)
// picks a free port. See stream_double.h for the endpoints and faults.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "stream_double.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: stream_double_server [--port N] [--api-key K] [--api-secret S] "
               "[--control-port [N]] [--host H] [--threads N]\n");
}

bool ParsePort(const char* text, int* out) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 0 || v > 65535) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  offbrand::StreamDoubleOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      if (!ParsePort(argv[++i], &options.port)) return Usage(), 2;
    } else if (arg == "--api-key" && has_value) {
      options.api_key = argv[++i];
    } else if (arg == "--api-secret" && has_value) {
      options.api_secret = argv[++i];
    } else if (arg == "--threads" && has_value) {
      int threads = 0;
      if (!ParsePort(argv[++i], &threads) || threads < 16) return Usage(), 2;
      options.threads = threads;
    } else if (arg == "--host" && has_value) {
      options.host = argv[++i];
    } else if (arg == "--control-port") {
      options.control_port = 0;
      if (has_value && argv[i + 1][0] != '-') {
        if (!ParsePort(argv[++i], &options.control_port)) return Usage(), 2;
      }
    } else {
      Usage();
      return 2;
    }
  }

  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and sigwait below is the only receiver.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  offbrand::StreamDouble stream_double(options);
  const offbrand::Status s = stream_double.Start();
  if (!s.ok()) {
    std::fprintf(stderr, "stream_double_server: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("listening %d\n", stream_double.port());
  if (options.control_port >= 0) std::printf("control %d\n", stream_double.control_port());
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  return 0;  // ~StreamDouble stops the listeners and waits for handlers
}
