#include "curl_transport.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>

namespace offbrand {
namespace {

// Longest wait inside curl_multi_poll, so a Cancel or Interrupt is noticed
// promptly even if its wakeup raced with the start of the poll.
constexpr int kPollIntervalMs = 100;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) std::abort();
  });
}

std::string Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

HttpResponse Cancelled(bool maybe_delivered) {
  HttpResponse r;
  r.error = "cancelled";
  r.maybe_delivered = maybe_delivered;
  return r;
}

}  // namespace

// One request in flight; heap-allocated so its address (curl's PRIVATE and
// callback data) is stable.
struct CurlTransport::Transfer {
  uint64_t tag = 0;
  HttpRequest request;  // owns the body curl reads from
  HttpResponse response;
  CURL* easy = nullptr;  // non-null while in the multi
  curl_slist* headers = nullptr;
  size_t body_bytes_max = 0;
  bool body_too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {};

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    if (t->response.body.size() + n > t->body_bytes_max) {
      t->body_too_large = true;
      return 0;  // curl fails the transfer with CURLE_WRITE_ERROR
    }
    t->response.body.append(data, n);
    return n;
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t n = size * count;
    const std::string_view line(data, n);
    if (line.rfind("HTTP/", 0) == 0) {
      // A new status line (e.g. after "100 Continue"): keep only the final answer's headers.
      t->response.headers.clear();
      return n;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return n;  // the blank line ending the block
    std::string name(Trim(line.substr(0, colon)));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    t->response.headers.emplace_back(std::move(name), Trim(line.substr(colon + 1)));
    return n;
  }

  // Whether any byte of the request went out (so the server may apply it).
  bool SentSomething() const {
    long bytes = 0;
    if (easy == nullptr) return false;
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &bytes);
    return bytes > 0;
  }
};

CurlTransport::CurlTransport(CurlTransportOptions options)
    : options_(options), multi_((GlobalInit(), curl_multi_init())) {
  if (multi_ == nullptr) std::abort();  // out of memory
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(std::max<size_t>(1, options_.max_in_flight)));
}

CurlTransport::~CurlTransport() {
  for (auto& [tag, t] : transfers_) {
    if (t->easy != nullptr) Release(t.get());
  }
  transfers_.clear();
  for (CURL* easy : idle_handles_) curl_easy_cleanup(easy);
  curl_multi_cleanup(multi_);
}

void CurlTransport::Interrupt() {
  interrupted_.store(true);
  curl_multi_wakeup(multi_);  // thread-safe by libcurl's contract
}

void CurlTransport::Cancel() {
  cancelled_.store(true);
  curl_multi_wakeup(multi_);
}

CURL* CurlTransport::AcquireHandle() {
  if (!idle_handles_.empty()) {
    CURL* easy = idle_handles_.back();
    idle_handles_.pop_back();
    curl_easy_reset(easy);  // options only; the multi keeps the connections
    return easy;
  }
  CURL* easy = curl_easy_init();
  if (easy == nullptr) std::abort();  // out of memory
  return easy;
}

void CurlTransport::ReleaseHandle(CURL* easy) {
  if (idle_handles_.size() < options_.max_in_flight) {
    idle_handles_.push_back(easy);
  } else {
    curl_easy_cleanup(easy);
  }
}

void CurlTransport::Start(uint64_t tag, HttpRequest request) {
  assert(transfers_.count(tag) == 0 && "tag already in flight");
  if (cancelled_.load()) {
    early_.push_back({tag, Cancelled(false)});
    return;
  }
  auto t = std::make_unique<Transfer>();
  t->tag = tag;
  t->request = std::move(request);
  Begin(t.get());
  transfers_.emplace(tag, std::move(t));
}

void CurlTransport::Begin(Transfer* t) {
  const HttpRequest& req = t->request;
  CURL* easy = AcquireHandle();
  t->easy = easy;
  t->body_bytes_max = options_.response_body_bytes_max;
  const long timeout_ms = static_cast<long>(std::max<int64_t>(1, options_.timeout_ms));
  const long connect_ms = static_cast<long>(
      std::max<int64_t>(1, std::min(options_.connect_timeout_ms, options_.timeout_ms)));

  curl_easy_setopt(easy, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error_buffer);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, t);

  if (req.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
      // Not copied: the Transfer owns the request until it is reported.
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(req.body.size()));
    }
    if (req.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  for (const auto& [name, value] : req.headers) {
    t->headers = curl_slist_append(t->headers, (name + ": " + value).c_str());
  }
  // No "Expect: 100-continue" round trip for larger bodies; no default type.
  t->headers = curl_slist_append(t->headers, "Expect:");
  if (req.body.empty()) t->headers = curl_slist_append(t->headers, "Content-Type:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);

  curl_multi_add_handle(multi_, easy);
}

void CurlTransport::Finish(Transfer* t, CURLcode code) {
  HttpResponse& r = t->response;
  if (code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    r.status = static_cast<int>(status);
  } else {
    r.status = 0;
    r.maybe_delivered = t->SentSomething();
    if (t->body_too_large) {
      r.error = "response body too large";
    } else {
      r.error = curl_easy_strerror(code);
      if (t->error_buffer[0] != '\0') {
        r.error += ": ";
        r.error += t->error_buffer;
      }
    }
  }
  Release(t);
}

void CurlTransport::Release(Transfer* t) {
  curl_multi_remove_handle(multi_, t->easy);
  ReleaseHandle(t->easy);
  t->easy = nullptr;
  curl_slist_free_all(t->headers);
  t->headers = nullptr;
}

void CurlTransport::Harvest(std::vector<Completion>* done) {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    const CURLcode code = msg->data.result;  // read before the handle is removed
    Finish(t, code);
    auto it = transfers_.find(t->tag);
    done->push_back({t->tag, std::move(t->response)});
    transfers_.erase(it);
  }
}

void CurlTransport::CancelAll(std::vector<Completion>* done) {
  for (auto& [tag, t] : transfers_) {
    const bool sent = t->SentSomething();
    Release(t.get());
    done->push_back({tag, Cancelled(sent)});
  }
  transfers_.clear();
}

void CurlTransport::Poll(int64_t wait_ms, std::vector<Completion>* done) {
  const size_t before = done->size();
  for (Completion& c : early_) done->push_back(std::move(c));
  early_.clear();
  if (interrupted_.exchange(false)) wait_ms = 0;
  const int64_t deadline = SteadyMs() + std::max<int64_t>(0, wait_ms);
  for (;;) {
    if (cancelled_.load()) {
      CancelAll(done);
      return;
    }
    int still_running = 0;
    curl_multi_perform(multi_, &still_running);
    Harvest(done);
    if (done->size() > before || transfers_.empty()) return;
    const int64_t left = deadline - SteadyMs();
    if (left <= 0 || interrupted_.exchange(false)) return;
    curl_multi_poll(multi_, nullptr, 0, static_cast<int>(std::min<int64_t>(left, kPollIntervalMs)),
                    nullptr);
  }
}

}  // namespace offbrand
