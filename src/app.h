// App: the whole server assembled from Config: store, HTTP server, mailer,
// sync engine, last_seen flusher. Used by `offbrand serve` and by tests that
// run a server in-process.
//
// Thread-safety: Start/Stop from one controlling thread; Stop is also safe
// from a signal-watching thread.
#ifndef OFFBRAND_APP_H_
#define OFFBRAND_APP_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "http_server.h"
#include "offbrand/config.h"
#include "offbrand/status.h"
#include "offbrand/transport.h"

namespace offbrand {

class App {
 public:
  // Opens the store (checking and migrating the schema), creates the
  // services and binds the listening socket. Nothing runs yet.
  static Result<std::unique_ptr<App>> Open(Config config);
  ~App();  // Stop()

  // Starts the background threads and serves on a thread of its own.
  Status Start();
  // Blocks until Stop() (or a fatal listener error).
  void Wait();
  // Stops accepting, lets in-flight requests finish, stops sync after its
  // current request, flushes last_seen, closes the store. Idempotent.
  void Stop();

  int port() const { return server_->port(); }
  // False once the listener stopped, by Stop() or by a fatal error.
  bool listening() const { return server_ && server_->running(); }
  Services& services() { return services_; }
  const Config& config() const { return config_; }

 private:
  App() = default;
  void Housekeeping();

  Config config_;
  Services services_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<class Metrics> metrics_;
  std::unique_ptr<class Mailer> mailer_;
  std::unique_ptr<class PasswordHasher> hasher_;
  std::unique_ptr<class Throttle> throttle_;
  std::unique_ptr<class LastSeen> last_seen_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<class SyncEngine> sync_;
  std::unique_ptr<HttpServer> server_;
  std::thread serve_thread_;
  std::thread housekeeping_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::atomic<bool> stopped_{false};
};

}  // namespace offbrand

#endif  // OFFBRAND_APP_H_
