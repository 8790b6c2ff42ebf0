// ConnectionServer: cpp-httplib's Server with our own connection handling, so
// that slow or idle clients cost a file descriptor, never a worker thread.
//
// cpp-httplib 0.11.4 gives each accepted connection a worker for its whole
// life: the worker waits for every byte of every request with a per-recv
// timeout and no overall deadline, and waits out each keep-alive idle period.
// Forty clients trickling one header byte every few seconds held every worker
// for minutes. Here instead:
//
//   * A connection is handed to a worker only once a complete request is in
//     its socket buffer (request line, headers and, for a Content-Length body
//     of at most `body_bytes_max`, the body), found with recv(MSG_PEEK).
//     Until then, and between keep-alive requests, it is "parked": one
//     epoll thread watches all parked connections. (A worker that has
//     nothing queued first waits up to 5 ms for the next request of the
//     connection it just served: kept-alive clients usually send it at
//     once, and serving it in place skips two thread hand-overs.)
//   * A request must arrive completely within `request_deadline_ms` of its
//     first byte, an idle connection is closed after `idle_timeout_ms`
//     (advertised in the Keep-Alive header), and a worker's reads and writes
//     time out after `request_deadline_ms` / `write_timeout_ms` too (they
//     only wait for pipelined or chunked requests, or a slow reader).
//   * Open connections are capped in total and per client address (except
//     `unlimited_addresses`, the trusted proxies); over the cap a new
//     connection is closed at once.
//   * A connection the server closes is half-closed first (FIN) and drained
//     briefly, so a reply already sent is not destroyed by a TCP reset.
//   * Shutdown drains: once stop() closed the listener, every request that
//     has arrived or arrives within `drain_ms` on an open connection is
//     still served (its reply says Connection: close); idle connections are
//     half-closed at the end of that window. Only then do the parking thread
//     and the workers stop. A request is never read and then dropped.
//
// Lifetime: the parking thread runs while Listen()/listen_after_bind() runs;
// stop() drains (above), then ends it before the worker pool is shut down.
//
// Thread-safety: as httplib::Server. The static Current*() functions refer to
// the request being processed on the calling worker thread.
#ifndef OFFBRAND_HTTP_CONNECTIONS_H_
#define OFFBRAND_HTTP_CONNECTIONS_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace offbrand {

struct ConnectionOptions {
  int threads = 8;                          // worker threads
  int64_t request_deadline_ms = 10'000;     // first byte to complete request
  int64_t idle_timeout_ms = 5'000;          // between keep-alive requests
  int64_t write_timeout_ms = 10'000;        // each write of a reply
  int64_t linger_ms = 1'000;                // draining after the server closes
  int64_t drain_ms = 1'000;                 // shutdown: late requests still served
  size_t connections_max = 4'096;           // open connections, all clients
  size_t connections_per_address_max = 128; // open connections of one address
  size_t requests_per_connection_max = 1'000;
  size_t header_bytes_max = 32 * 1024;      // request line and headers
  size_t body_bytes_max = 64 * 1024;        // bodies waited for while parked
  std::vector<std::string> unlimited_addresses;  // exempt from the per-address cap
  // Called for a connection closed before a complete request arrived
  // (status 408) or refused (503 over a cap, 431 headers too long), which
  // httplib never sees: for metrics and the request log.
  std::function<void(const std::string& address, int status)> on_rejected;
};

// How much of a request is in `peeked` (the start of a connection's unread
// bytes). kComplete: hand it to a worker (also for requests the worker will
// refuse: headers over the limit are kTooLarge). kIncomplete: *bytes_needed
// is the total needed when known (a Content-Length body), else 0.
enum class Framing { kIncomplete, kComplete, kTooLarge };
Framing RequestFraming(std::string_view peeked, size_t header_bytes_max, size_t body_bytes_max,
                       size_t* bytes_needed);

class ConnectionServer : public httplib::Server {
 public:
  explicit ConnectionServer(ConnectionOptions options);
  ~ConnectionServer() override;

  struct Stats {
    uint64_t open = 0;       // connections now open
    uint64_t parked = 0;     // of which parked
    uint64_t timed_out = 0;  // closed for the request deadline (total)
    uint64_t refused = 0;    // closed at accept over a cap (total)
  };
  Stats stats() const;

  // Shutdown, before stop(): new connections are no longer completed (their
  // SYNs are dropped, so clients retry and then find the port closed),
  // and the connections already queued are accepted. After it, stop()
  // closes the listener without resetting a connection a client thinks is
  // open. Waits at most half a second.
  void StopAccepting();

  // Sets the listen backlog of the bound socket (call after bind_to_port).
  // The packaged libcpp-httplib.so is built with a backlog of 5, so a burst
  // of connects saw SYNs dropped and retried a second later;
  // CPPHTTPLIB_LISTEN_BACKLOG in our build cannot change that.
  bool SetListenBacklog(int backlog);

  // When the current request (on this worker thread) began processing.
  static std::chrono::steady_clock::time_point CurrentRequestStart();
  // Closes the connection after the current reply (e.g. its body was not read).
  static void CloseAfterCurrentRequest();

 private:
  struct Conn;
  class Pool;

  bool process_and_close_socket(socket_t sock) override;
  // Serves requests on c while whole ones are there (`complete`: one is,
  // known from a peek), then parks or closes it. Runs on a worker.
  void Serve(Conn* c, bool complete);
  // Queues `fn` on the worker pool, counted in queued_.
  void Enqueue(std::function<void()> fn);
  // Peeks at c's unread bytes (RequestFraming); *eof when the peer closed
  // or the socket failed, *available the bytes seen.
  Framing Peek(Conn* c, bool* eof, size_t* available, size_t* bytes_needed);
  void Park(Conn* c, bool draining);
  void CloseLater(Conn* c);  // half-close, then drain while parked
  void Close(Conn* c);
  // Answers `reply` (a canned HTTP response) and closes.
  void Reject(Conn* c, const char* reply, int status);
  void StartParker();
  // Shutdown, first step: serve what arrives for up to drain_ms, close idle
  // connections, and wait until no connection is open (or the window, plus
  // the linger and the request deadline of requests in progress, ended).
  void Drain();
  void StopParker();
  void ParkerLoop();

  const ConnectionOptions options_;
  std::unordered_set<std::string> unlimited_;  // constant after construction
  std::unique_ptr<httplib::ThreadPool> pool_;  // while listening
  std::thread parker_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

  mutable std::mutex mu_;
  bool stopping_ = true;                                 // guarded by mu_
  std::unordered_set<Conn*> parked_;                     // guarded by mu_
  std::unordered_map<std::string, size_t> per_address_;  // guarded by mu_
  uint64_t open_ = 0;                                    // guarded by mu_
  std::atomic<bool> stopping_flag_{true};  // stopping_, readable without mu_
  std::atomic<bool> draining_{false};      // Drain() began: replies close
  std::atomic<int64_t> drain_end_ms_{0};   // idle connections close by then
  std::atomic<int> queued_{0};  // jobs waiting for a worker
  std::atomic<uint64_t> timed_out_{0};
  std::atomic<uint64_t> refused_{0};
};

}  // namespace offbrand

#endif  // OFFBRAND_HTTP_CONNECTIONS_H_
