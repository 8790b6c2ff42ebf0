// CurlTransport: the real Transport, libcurl's multi interface over a pool of
// reused easy handles, so connections to Stream stay alive between requests
// (curl's connection cache lives in the multi handle) and up to
// `max_in_flight` requests run concurrently, driven by the thread that calls
// Poll (no thread of its own).
//
// Outcomes: every started request is reported once. An HTTP answer of any
// status is a response (status, lowercased headers, body). No answer (refused,
// DNS failure, timeout, connection reset, a body over response_body_bytes_max)
// gives status 0, `error` naming curl's reason and `maybe_delivered` telling
// whether any byte of the request was sent (curl's CURLINFO_REQUEST_SIZE > 0):
// a timeout or reset after sending may still be applied by the server.
// Redirects are not followed.
//
// Lost acknowledgements: libcurl itself resends a request, once, on a fresh
// connection when a *reused* keep-alive connection closes before any byte of
// the answer arrived (its "connection died, retrying a fresh connect"). For
// Stream that is safe (every write we send is keyed), but it means a request
// may reach the server twice while the caller sees one outcome.
//
// Thread-safety: Start/Poll/in_flight from one thread at a time (the sync
// thread); Interrupt and Cancel from any thread at any time. Cancel is sticky:
// after it, every unfinished and later request is reported "cancelled"
// (shutdown). The destructor abandons whatever still runs; it must not run
// concurrently with Poll.
#ifndef OFFBRAND_SYNC_CURL_TRANSPORT_H_
#define OFFBRAND_SYNC_CURL_TRANSPORT_H_

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "offbrand/transport.h"

namespace offbrand {

struct CurlTransportOptions {
  int64_t timeout_ms = 10'000;         // whole request (CURLOPT_TIMEOUT_MS)
  int64_t connect_timeout_ms = 5'000;  // TCP+TLS set-up; capped at timeout_ms
  size_t max_in_flight = 16;           // concurrent requests (and pooled handles)
  size_t response_body_bytes_max = 8u << 20;  // larger answers fail with status 0
};

class CurlTransport final : public Transport {
 public:
  explicit CurlTransport(CurlTransportOptions options = {});
  ~CurlTransport() override;
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  size_t max_in_flight() const override { return options_.max_in_flight; }
  size_t in_flight() const override { return transfers_.size() + early_.size(); }
  // Methods: GET, POST, PUT, DELETE (any other token is sent as given).
  void Start(uint64_t tag, HttpRequest request) override;
  void Poll(int64_t wait_ms, std::vector<Completion>* done) override;
  // Wakes a waiting Poll (curl_multi_wakeup; within ~100 ms at worst).
  void Interrupt() override;
  void Cancel() override;

 private:
  struct Transfer;
  // Configures a pooled handle for t->request and adds it to the multi.
  void Begin(Transfer* t);
  // The outcome of a transfer curl has finished.
  void Finish(Transfer* t, CURLcode code);
  // Takes a transfer out of the multi and frees its handle and headers.
  void Release(Transfer* t);
  // Moves every finished transfer (per curl_multi_info_read) to *done.
  void Harvest(std::vector<Completion>* done);
  // Reports every transfer as cancelled (after Cancel()).
  void CancelAll(std::vector<Completion>* done);
  CURL* AcquireHandle();
  void ReleaseHandle(CURL* easy);

  // Constant after construction.
  const CurlTransportOptions options_;
  CURLM* const multi_;

  std::atomic<bool> cancelled_{false};
  std::atomic<bool> interrupted_{false};
  // Used only by the Poll thread.
  std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;  // started, unreported
  std::vector<Completion> early_;  // reported at the next Poll (started after Cancel)
  std::vector<CURL*> idle_handles_;
};

}  // namespace offbrand

#endif  // OFFBRAND_SYNC_CURL_TRANSPORT_H_
