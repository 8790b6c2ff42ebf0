// Metrics: request counters and latency histograms in Prometheus text format.
#include "metrics.h"

#include <cstdio>

namespace offbrand {

void Metrics::RecordRequest(const std::string& name, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  Route& r = routes_[name];
  r.by_status[status]++;
  r.count++;
  r.sum_s += seconds;
  for (size_t i = 0; i < kLatencyBucketsS.size(); ++i) {
    if (seconds <= kLatencyBucketsS[i]) r.buckets[i]++;
  }
}

std::string Metrics::Render(const std::string& extra) const {
  std::string out;
  char line[256];
  std::lock_guard<std::mutex> lock(mu_);
  out += "# HELP offbrand_http_requests_total HTTP requests answered, by route and status.\n";
  out += "# TYPE offbrand_http_requests_total counter\n";
  for (const auto& [name, r] : routes_) {
    for (const auto& [status, n] : r.by_status) {
      snprintf(line, sizeof(line), "offbrand_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
               name.c_str(), status, static_cast<unsigned long long>(n));
      out += line;
    }
  }
  out += "# HELP offbrand_http_request_duration_seconds Time from a complete request to its reply.\n";
  out += "# TYPE offbrand_http_request_duration_seconds histogram\n";
  for (const auto& [name, r] : routes_) {
    for (size_t i = 0; i < kLatencyBucketsS.size(); ++i) {
      snprintf(line, sizeof(line),
               "offbrand_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
               name.c_str(), kLatencyBucketsS[i], static_cast<unsigned long long>(r.buckets[i]));
      out += line;
    }
    snprintf(line, sizeof(line),
             "offbrand_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
             "offbrand_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
             "offbrand_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
             name.c_str(), static_cast<unsigned long long>(r.count), name.c_str(), r.sum_s,
             name.c_str(), static_cast<unsigned long long>(r.count));
    out += line;
  }
  out += extra;
  return out;
}

}  // namespace offbrand
