// Mailer: sends account mail (confirmation, reset, email change) from its own
// queue and thread, never on the request path. With OFFBRAND_SMTP_URL set it
// sends through libcurl SMTP and retries failures with backoff; without it the
// mail (with its link) is logged, which is how `make run` shows confirmation
// links.
//
// Thread-safety: Enqueue is thread-safe.
#ifndef OFFBRAND_MAILER_H_
#define OFFBRAND_MAILER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "offbrand/config.h"

namespace offbrand {

struct Mail {
  std::string to;
  std::string subject;
  std::string body;
  int attempts = 0;
  int64_t next_attempt_ms = 0;
};

class Mailer {
 public:
  static constexpr size_t kQueueMailsMax = 10'000;
  static constexpr int kAttemptsMax = 8;

  explicit Mailer(const Config& config);
  ~Mailer();  // stops the thread; unsent mail is logged as dropped
  void Start();
  void Stop();
  // False when the queue is full (the mail is dropped and logged).
  bool Enqueue(Mail mail);
  // For tests: every mail handed to the transport or logger, in order.
  void SetObserver(std::function<void(const Mail&)> observer);
  uint64_t sent() const;
  uint64_t failed() const;

 private:
  void Loop();
  bool Send(const Mail& mail, std::string* error);
  const Config& config_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Mail> queue_;                    // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::function<void(const Mail&)> observer_; // guarded by mu_
  uint64_t sent_ = 0, failed_ = 0;            // guarded by mu_
  std::thread thread_;
};

}  // namespace offbrand

#endif  // OFFBRAND_MAILER_H_
