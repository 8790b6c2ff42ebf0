// Clock: the only source of time for code that a simulation must control.
//
// Thread-safety: implementations are thread-safe.
#ifndef OFFBRAND_CLOCK_H_
#define OFFBRAND_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace offbrand {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in microseconds since the Unix epoch.
  virtual int64_t NowUs() const = 0;
  int64_t NowMs() const { return NowUs() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t NowUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const SystemClock& Instance() {
    static const SystemClock clock;
    return clock;
  }
};

// A clock moved by hand (simulation and tests). Jumps may go backwards.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_us = 1'600'000'000'000'000) : now_us_(now_us) {}
  int64_t NowUs() const override { return now_us_.load(); }
  void AdvanceMs(int64_t ms) { now_us_ += ms * 1000; }
  void SetUs(int64_t us) { now_us_ = us; }

 private:
  std::atomic<int64_t> now_us_;
};

}  // namespace offbrand

#endif  // OFFBRAND_CLOCK_H_
