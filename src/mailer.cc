// Mailer: a queue drained by one thread; libcurl SMTP when configured, else
// the mail's link is logged (offline mode, `make run`).
#include "mailer.h"

#include <curl/curl.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "offbrand/log.h"

namespace offbrand {

namespace {

constexpr int64_t kRetryDelayMsMin = 2'000;
constexpr int64_t kRetryDelayMsMax = 600'000;
constexpr long kSmtpTimeoutS = 60;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first http(s) URL in `body`, which is what a person needs from the mail.
std::string FirstLink(const std::string& body) {
  size_t start = body.find("http://");
  size_t https = body.find("https://");
  if (start == std::string::npos || (https != std::string::npos && https < start)) start = https;
  if (start == std::string::npos) return "(no link)";
  size_t end = body.find_first_of(" \t\r\n", start);
  return body.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// RFC 5322 message with CRLF line ends.
std::string FormatMessage(const Config& config, const Mail& mail) {
  char date[64];
  time_t now = time(nullptr);
  struct tm tm_utc;
  gmtime_r(&now, &tm_utc);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm_utc);
  std::string msg;
  msg += "Date: " + std::string(date) + "\r\n";
  msg += "To: <" + mail.to + ">\r\n";
  msg += "From: <" + config.smtp_from + ">\r\n";
  msg += "Subject: " + mail.subject + "\r\n";
  msg += "MIME-Version: 1.0\r\n";
  msg += "Content-Type: text/plain; charset=utf-8\r\n";
  msg += "Content-Transfer-Encoding: 8bit\r\n\r\n";
  for (char c : mail.body) {
    if (c == '\n') msg += "\r\n";
    else if (c != '\r') msg += c;
  }
  msg += "\r\n";
  return msg;
}

struct Upload {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadMessage(char* buffer, size_t size, size_t nitems, void* user) {
  auto* upload = static_cast<Upload*>(user);
  size_t room = size * nitems;
  size_t left = upload->data->size() - upload->offset;
  size_t n = std::min(room, left);
  memcpy(buffer, upload->data->data() + upload->offset, n);
  upload->offset += n;
  return n;
}

}  // namespace

Mailer::Mailer(const Config& config) : config_(config) {}

Mailer::~Mailer() {
  Stop();
  std::lock_guard<std::mutex> lock(mu_);
  for (const Mail& mail : queue_) {
    OB_LOG(kWarning, "mail to %s dropped at shutdown: %s", mail.to.c_str(), mail.subject.c_str());
  }
  queue_.clear();
}

void Mailer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Mailer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Mailer::Enqueue(Mail mail) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kQueueMailsMax) {
      OB_LOG(kError, "mail to %s dropped: the mail queue is full", mail.to.c_str());
      ++failed_;
      return false;
    }
    mail.attempts = 0;
    mail.next_attempt_ms = 0;
    queue_.push_back(std::move(mail));
  }
  cv_.notify_all();
  return true;
}

void Mailer::SetObserver(std::function<void(const Mail&)> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::move(observer);
}

uint64_t Mailer::sent() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mu_));
  return sent_;
}

uint64_t Mailer::failed() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mu_));
  return failed_;
}

// Takes the first mail that is due, sends it without the lock, then puts it
// back with a backoff if the send failed.
void Mailer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    int64_t now = NowMs();
    auto due = std::find_if(queue_.begin(), queue_.end(),
                            [now](const Mail& m) { return m.next_attempt_ms <= now; });
    if (due == queue_.end()) {
      if (queue_.empty()) {
        cv_.wait(lock);
      } else {
        int64_t next = std::min_element(queue_.begin(), queue_.end(),
                                        [](const Mail& a, const Mail& b) {
                                          return a.next_attempt_ms < b.next_attempt_ms;
                                        })->next_attempt_ms;
        cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(next - now, 1)));
      }
      continue;
    }
    Mail mail = std::move(*due);
    queue_.erase(due);
    std::function<void(const Mail&)> observer = mail.attempts == 0 ? observer_ : nullptr;
    lock.unlock();

    if (observer) observer(mail);
    std::string error;
    bool ok = Send(mail, &error);

    lock.lock();
    if (ok) {
      ++sent_;
      continue;
    }
    ++mail.attempts;
    if (mail.attempts >= kAttemptsMax) {
      ++failed_;
      OB_LOG(kError, "mail to %s failed %d times, giving up: %s", mail.to.c_str(), mail.attempts,
             error.c_str());
      continue;
    }
    int64_t delay = std::min(kRetryDelayMsMax, kRetryDelayMsMin << (mail.attempts - 1));
    mail.next_attempt_ms = NowMs() + delay;
    OB_LOG(kWarning, "mail to %s failed (attempt %d), retrying in %lld s: %s", mail.to.c_str(),
           mail.attempts, static_cast<long long>(delay / 1000), error.c_str());
    queue_.push_back(std::move(mail));
  }
}

bool Mailer::Send(const Mail& mail, std::string* error) {
  if (config_.smtp_url.empty()) {
    // Offline mode: the documented exception to "no tokens in logs".
    OB_LOG(kInfo, "mail to %s: %s: %s", mail.to.c_str(), mail.subject.c_str(),
           FirstLink(mail.body).c_str());
    return true;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    *error = "curl_easy_init failed";
    return false;
  }
  std::string message = FormatMessage(config_, mail);
  Upload upload{&message};
  std::string from = "<" + config_.smtp_from + ">";
  std::string rcpt = "<" + mail.to + ">";
  struct curl_slist* recipients = curl_slist_append(nullptr, rcpt.c_str());
  char curl_error[CURL_ERROR_SIZE] = {};

  // The URL may carry credentials (smtp://user:pass@host:587): never log it.
  curl_easy_setopt(curl, CURLOPT_URL, config_.smtp_url.c_str());
  curl_easy_setopt(curl, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));
  curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from.c_str());
  curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, recipients);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadMessage);
  curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, kSmtpTimeoutS);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(recipients);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    *error = curl_error[0] != '\0' ? curl_error : curl_easy_strerror(rc);
    return false;
  }
  OB_LOG(kInfo, "mail to %s sent: %s", mail.to.c_str(), mail.subject.c_str());
  return true;
}

}  // namespace offbrand
