// Transport: how the sync engine reaches Stream. The real one is libcurl
// (sync/curl_transport.h); the simulation supplies a fake. Keeping the network
// behind this interface is what lets a seeded simulation drive the engine.
//
// The interface is asynchronous so that the engine can keep several requests
// in flight and acknowledge each as it finishes (a pipeline, not rounds):
// Start() hands a request over and returns at once; Poll() drives the
// transfers and reports the ones that finished, each under the tag given to
// Start(). Every started request is reported exactly once (with an answer, a
// network failure, or "cancelled").
//
// Thread-safety: Start, Poll, in_flight and Perform are called by one thread
// at a time (the sync thread). Interrupt and Cancel may be called from any
// thread at any time.
#ifndef OFFBRAND_TRANSPORT_H_
#define OFFBRAND_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace offbrand {

struct HttpRequest {
  std::string method;   // "GET", "POST", "PUT", "DELETE"
  std::string url;      // absolute, with the query string
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;     // empty: no body
};

struct HttpResponse {
  // 0 when no HTTP answer arrived (connection refused, timeout, reset);
  // `error` then says what happened.
  int status = 0;
  std::string error;
  // Only meaningful when status == 0: true when the request may have reached
  // the server and may be applied there (late) although no answer came back
  // (a timeout after sending, a reset or an empty reply, a cancelled transfer
  // that had begun sending); false when it certainly did not leave (refused,
  // name resolution failed, never started).
  bool maybe_delivered = false;
  // Header names lowercased.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Value of header `name` (lowercase), or empty.
  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

class Transport {
 public:
  struct Completion {
    uint64_t tag = 0;
    HttpResponse response;
  };

  virtual ~Transport() = default;

  // The most requests this transport runs at once. Callers keep
  // in_flight() <= max_in_flight(); starting more is a programmer error.
  virtual size_t max_in_flight() const = 0;
  // Requests started and not yet reported by Poll.
  virtual size_t in_flight() const = 0;
  // Begins `request` (never waits on the network). Its outcome is reported
  // by a later Poll under `tag` (the caller's; not interpreted). After
  // Cancel() the request is reported "cancelled" by the next Poll.
  virtual void Start(uint64_t tag, HttpRequest request) = 0;
  // Drives the transfers and appends every request that finished to *done.
  // When none has finished yet it waits up to `wait_ms` (0: not at all) for
  // one to finish, an Interrupt() or a Cancel(); it returns at once when
  // nothing is in flight.
  virtual void Poll(int64_t wait_ms, std::vector<Completion>* done) = 0;
  // Makes a waiting Poll (current or the next one) return promptly.
  virtual void Interrupt() {}
  // Sticky shutdown: every unfinished and every later request is reported
  // (by Poll) with status 0, error "cancelled"; a waiting Poll returns.
  virtual void Cancel() {}

  // Convenience for tests and tools (not the engine): performs every request,
  // at most max_in_flight() at a time, and waits for all outcomes;
  // (*responses)[i] answers requests[i]. Nothing else may be in flight.
  void Perform(const std::vector<HttpRequest>& requests, std::vector<HttpResponse>* responses) {
    responses->assign(requests.size(), HttpResponse{});
    const size_t limit = max_in_flight() == 0 ? 1 : max_in_flight();
    size_t next = 0, finished = 0;
    std::vector<Completion> done;
    while (finished < requests.size()) {
      while (next < requests.size() && in_flight() < limit) {
        Start(next, requests[next]);
        ++next;
      }
      done.clear();
      Poll(100, &done);
      for (Completion& c : done) {
        if (c.tag < responses->size()) (*responses)[c.tag] = std::move(c.response);
        ++finished;
      }
    }
  }
};

}  // namespace offbrand

#endif  // OFFBRAND_TRANSPORT_H_
