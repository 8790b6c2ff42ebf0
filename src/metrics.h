// Metrics: Prometheus text exposition of the SPEC section 3 series. Counters
// are atomics grouped per route; rendering takes a snapshot.
//
// Thread-safety: thread-safe. Routes must be registered (Declare) before
// serving; recording is lock-free after that.
#ifndef OFFBRAND_METRICS_H_
#define OFFBRAND_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace offbrand {

class Metrics {
 public:
  static constexpr std::array<double, 10> kLatencyBucketsS = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};

  // Records one answered request for route `name` with `status`.
  void RecordRequest(const std::string& name, int status, double seconds);
  // Renders the request series; `extra` is appended (gauges owned elsewhere:
  // outbox depth, sync sends, LMDB map use).
  std::string Render(const std::string& extra) const;

 private:
  struct Route {
    std::map<int, uint64_t> by_status;
    std::array<uint64_t, kLatencyBucketsS.size()> buckets{};
    uint64_t count = 0;
    double sum_s = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Route> routes_;  // guarded by mu_
};

}  // namespace offbrand

#endif  // OFFBRAND_METRICS_H_
