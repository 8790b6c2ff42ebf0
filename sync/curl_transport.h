// CurlTransport: the real Transport, libcurl's multi interface over a pool of
// reused easy handles, so connections to Stream stay alive between batches
// (curl's connection cache lives in the multi handle) and up to
// `max_in_flight` requests run concurrently on the calling thread.
//
// Outcomes: every request gets an HttpResponse. An HTTP answer of any status
// is a response (status, lowercased headers, body). No answer (refused,
// DNS failure, timeout, connection reset, a body over response_body_bytes_max)
// gives status 0 and `error` naming curl's reason. Redirects are not followed.
//
// Lost acknowledgements: libcurl itself resends a request, once, on a fresh
// connection when a *reused* keep-alive connection closes before any byte of
// the answer arrived (its "connection died, retrying a fresh connect"). For
// Stream that is safe (every write we send is keyed), but it means a request
// may reach the server twice while the caller sees one outcome.
//
// Thread-safety: Perform is called by one thread at a time (the sync thread);
// Cancel may be called from any thread at any time. Cancel is sticky: after
// it, every Perform returns at once with "cancelled" outcomes (shutdown).
// The destructor must not run concurrently with Perform.
#ifndef OFFBRAND_SYNC_CURL_TRANSPORT_H_
#define OFFBRAND_SYNC_CURL_TRANSPORT_H_

#include <curl/curl.h>

#include <atomic>
#include <cstdint>
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

  // See Transport::Perform. `responses` is resized to requests.size().
  // Methods: GET, POST, PUT, DELETE (any other token is sent as given).
  void Perform(const std::vector<HttpRequest>& requests,
               std::vector<HttpResponse>* responses) override;
  // Wakes a running Perform (within ~100 ms at worst) and makes it and every
  // later Perform finish with status 0, error "cancelled" for unfinished requests.
  void Cancel() override;

 private:
  struct Transfer;
  // Configures a pooled handle for `req` and adds it to the multi.
  void Start(const HttpRequest& req, Transfer* t);
  // Records the outcome of a transfer curl has finished and frees its handle.
  void Finish(Transfer* t, CURLcode code);
  // Takes a transfer out of the multi without an outcome (cancellation).
  void Abandon(Transfer* t);
  CURL* AcquireHandle();
  void ReleaseHandle(CURL* easy);

  // Constant after construction.
  const CurlTransportOptions options_;
  CURLM* const multi_;

  std::atomic<bool> cancelled_{false};
  std::vector<CURL*> idle_handles_;  // used only by the Perform thread
};

}  // namespace offbrand

#endif  // OFFBRAND_SYNC_CURL_TRANSPORT_H_
