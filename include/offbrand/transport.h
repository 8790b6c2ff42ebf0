// Transport: how the sync engine reaches Stream. The real one is libcurl
// (sync/curl_transport.h); the simulation supplies a fake. Keeping the network
// behind this interface is what lets a seeded simulation drive the engine.
//
// Thread-safety: a Transport is used by one thread (the sync thread).
#ifndef OFFBRAND_TRANSPORT_H_
#define OFFBRAND_TRANSPORT_H_

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
  virtual ~Transport() = default;
  // Performs every request, concurrently where the transport can, and fills
  // (*responses)[i] for requests[i]. Returns when all have an outcome or
  // Cancel() was called (unfinished ones then have status 0, error "cancelled").
  virtual void Perform(const std::vector<HttpRequest>& requests,
                       std::vector<HttpResponse>* responses) = 0;
  // Makes a running or later Perform return promptly. Thread-safe.
  virtual void Cancel() {}
};

}  // namespace offbrand

#endif  // OFFBRAND_TRANSPORT_H_
