// ConnectionServer: parking of incomplete and idle connections on one epoll
// thread, deadlines, connection caps and lingering close (see the header).
#include "http_connections.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "offbrand/log.h"

namespace offbrand {

namespace {

// A whole request of the largest size we wait for fits in the receive buffer
// (the kernel doubles this value), so a parked client is never stalled by a
// closed TCP window.
constexpr int kReceiveBufferBytes = 256 * 1024;
constexpr size_t kStreamBufferBytes = 4096;
constexpr size_t kDrainBytesMax = 1 << 20;  // discarded while lingering
constexpr int kParkerTickMs = 100;
// StopAccepting waits at most this long for the accept loop to empty the
// listen queue.
constexpr int64_t kAcceptDrainMsMax = 500;
constexpr int kEventsMax = 64;
// After a reply, a worker with nothing queued waits this long for the next
// request on the same connection before parking it: a kept-alive client
// usually sends it within tens of microseconds, and serving it in place
// saves the hand-over to the parking thread and back (two wake-ups and
// four system calls a request).
constexpr int64_t kNextRequestWaitUs = 5'000;

thread_local std::chrono::steady_clock::time_point t_request_start;
thread_local bool t_close_after = false;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// poll(2) for `events` up to `timeout_ms` (<= 0: just look).
bool WaitFor(int fd, short events, int64_t timeout_ms) {
  pollfd p{fd, events, 0};
  const int64_t deadline = NowMs() + std::max<int64_t>(timeout_ms, 0);
  for (;;) {
    const int64_t left = std::max<int64_t>(deadline - NowMs(), 0);
    int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
    if (rc > 0) return true;
    if (rc == 0 && NowMs() >= deadline) return false;
    if (rc < 0 && errno != EINTR) return false;
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void Address(const sockaddr_storage& ss, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    *port = ntohs(a->sin6_port);
  }
  *ip = buf;
}

// Best effort: a short reply on a socket we are about to close.
void SendCanned(int fd, const char* reply) {
  ssize_t ignored = send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)ignored;
}

constexpr const char* k408 =
    "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    "Content-Length: 82\r\n\r\n"
    "{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request did not arrive in time\"}}";
constexpr const char* k431 =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    "Content-Type: application/json\r\nContent-Length: 80\r\n\r\n"
    "{\"error\":{\"code\":\"headers_too_large\",\"message\":\"the request headers are too long\"}}";
constexpr const char* k503 =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    "Content-Type: application/json\r\nContent-Length: 77\r\n\r\n"
    "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections\"}}";

}  // namespace

// ---- RequestFraming -------------------------------------------------------------

Framing RequestFraming(std::string_view peeked, size_t header_bytes_max, size_t body_bytes_max,
                       size_t* bytes_needed) {
  *bytes_needed = 0;
  const size_t end = peeked.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return peeked.size() > header_bytes_max ? Framing::kTooLarge : Framing::kIncomplete;
  }
  if (end + 4 > header_bytes_max) return Framing::kTooLarge;
  const size_t body_start = end + 4;
  std::string_view rest = peeked.substr(0, end + 2);
  rest.remove_prefix(std::min(rest.size(), rest.find("\r\n") + 2));  // the request line
  std::string_view length;
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = Trim(line.substr(colon + 1));
    if (IEquals(name, "Content-Length")) {
      if (!length.empty() && length != value) return Framing::kComplete;  // refused by the worker
      length = value;
    } else if (IEquals(name, "Transfer-Encoding") ||
               (IEquals(name, "Expect") && IEquals(value, "100-continue"))) {
      return Framing::kComplete;  // the worker refuses it, or answers 100 and reads
    }
  }
  if (length.empty()) return Framing::kComplete;  // no body
  if (length.size() > 9 || !std::all_of(length.begin(), length.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return Framing::kComplete;  // malformed or huge: refused without reading
  }
  const size_t body = std::stoul(std::string(length));
  if (body > body_bytes_max) return Framing::kComplete;  // 413 without reading
  const size_t total = body_start + body;
  if (peeked.size() >= total) return Framing::kComplete;
  *bytes_needed = total;
  return Framing::kIncomplete;
}

// ---- ConnStream ----------------------------------------------------------------

namespace {

// One connection's socket as an httplib::Stream: buffered reads that give up
// at the request deadline, writes that give up after the write timeout.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(int fd, std::string remote_ip, int remote_port, int64_t write_timeout_ms)
      : fd_(fd),
        remote_ip_(std::move(remote_ip)),
        remote_port_(remote_port),
        write_timeout_ms_(write_timeout_ms) {}

  void set_read_deadline_ms(int64_t deadline_ms) { read_deadline_ms_ = deadline_ms; }
  bool buffered() const { return off_ < len_; }

  bool is_readable() const override {
    return buffered() || WaitFor(fd_, POLLIN, read_deadline_ms_ - NowMs());
  }
  bool is_writable() const override { return WaitFor(fd_, POLLOUT, write_timeout_ms_); }

  ssize_t read(char* ptr, size_t size) override {
    if (buffered()) {
      size_t n = std::min(size, len_ - off_);
      memcpy(ptr, buf_ + off_, n);
      off_ += n;
      return static_cast<ssize_t>(n);
    }
    if (size >= sizeof(buf_)) return Recv(ptr, size);
    ssize_t n = Recv(buf_, sizeof(buf_));
    if (n <= 0) return n;
    off_ = 0;
    len_ = static_cast<size_t>(n);
    return read(ptr, size);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t sent = 0;
    while (sent < size) {
      ssize_t n = send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitFor(fd_, POLLOUT, write_timeout_ms_)) return -1;
      } else {
        return -1;
      }
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    if (local_port_ < 0) {  // once per connection, not per request
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      local_port_ = 0;
      if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        Address(ss, &local_ip_, &local_port_);
      }
    }
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return fd_; }

 private:
  ssize_t Recv(char* ptr, size_t size) {
    for (;;) {
      ssize_t n = recv(fd_, ptr, size, MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (WaitFor(fd_, POLLIN, read_deadline_ms_ - NowMs())) continue;
      }
      return -1;
    }
  }

  const int fd_;
  const std::string remote_ip_;
  const int remote_port_;
  const int64_t write_timeout_ms_;
  int64_t read_deadline_ms_ = 0;
  mutable std::string local_ip_;
  mutable int local_port_ = -1;
  char buf_[kStreamBufferBytes];
  size_t off_ = 0, len_ = 0;
};

}  // namespace

struct ConnectionServer::Conn {
  Conn(int fd, std::string ip, int port, int64_t write_timeout_ms)
      : fd(fd), address(ip), stream(fd, std::move(ip), port, write_timeout_ms) {}
  const int fd;
  const std::string address;
  ConnStream stream;
  int64_t deadline_ms = 0;     // parked: closed at this time
  bool request_begun = false;  // bytes of the next request have arrived
  bool draining = false;       // half-closed by us, discarding input
  size_t requests = 0;
  size_t drained_bytes = 0;
  size_t lowat = 1;            // SO_RCVLOWAT now set
};

// The task queue httplib's accept loop uses: our worker pool, and a
// shutdown that stops the parking thread before the workers.
class ConnectionServer::Pool : public httplib::TaskQueue {
 public:
  explicit Pool(ConnectionServer* server) : server_(server) {}
  void enqueue(std::function<void()> fn) override { server_->Enqueue(std::move(fn)); }
  void shutdown() override {
    server_->Drain();
    server_->StopParker();
    server_->pool_->shutdown();
  }

 private:
  ConnectionServer* server_;
};

// cpp-httplib (built with brotli) answers `Accept-Encoding: br` with brotli at
// its default quality 11: about 5 ms of CPU for a 3 KB reply here, far more
// on a Pi, for every browser request. gzip (zlib's default level) costs a
// few percent of that, so a client offering both gets gzip, and one
// offering only br gets the reply uncompressed.
static void OfferNoBrotli(httplib::Request& req) {
  auto it = req.headers.find("Accept-Encoding");
  if (it == req.headers.end() || it->second.find("br") == std::string::npos) return;
  const bool gzip = it->second.find("gzip") != std::string::npos;
  req.headers.erase("Accept-Encoding");
  if (gzip) req.headers.emplace("Accept-Encoding", "gzip");
}

// ---- ConnectionServer ---------------------------------------------------------

ConnectionServer::ConnectionServer(ConnectionOptions options)
    : options_(std::move(options)),
      unlimited_(options_.unlimited_addresses.begin(), options_.unlimited_addresses.end()) {
  new_task_queue = [this] {
    pool_ = std::make_unique<httplib::ThreadPool>(static_cast<size_t>(options_.threads));
    StartParker();
    return new Pool(this);
  };
  keep_alive_max_count_ = options_.requests_per_connection_max;
  // Advertised in the Keep-Alive header of each reply.
  keep_alive_timeout_sec_ = std::max<time_t>(1, options_.idle_timeout_ms / 1000);
  read_timeout_sec_ = options_.request_deadline_ms / 1000;
  write_timeout_sec_ = options_.write_timeout_ms / 1000;
  set_socket_options([](socket_t sock) {
    httplib::default_socket_options(sock);
    int bytes = kReceiveBufferBytes;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));  // inherited on accept
  });
}

ConnectionServer::~ConnectionServer() {
  stop();
  StopParker();
}

void ConnectionServer::StopAccepting() {
  const socket_t sock = svr_sock_.load();
  if (sock == INVALID_SOCKET) return;
  // A listening socket cannot refuse new handshakes and keep its queue:
  // closing it resets every connection still queued, whose clients may have
  // sent a request already. So first drop every new packet at the socket
  // (a one-instruction classic BPF filter: new clients' SYNs go unanswered,
  // they retry and then find the port closed), then let the accept loop
  // take what is queued, then close.
  sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  sock_fprog prog{1, drop_all};
  if (setsockopt(sock, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
    OB_LOG(kWarning, "http: cannot filter the listening socket: %s", strerror(errno));
    return;
  }
  const int64_t give_up = NowMs() + kAcceptDrainMsMax;
  while (NowMs() < give_up) {
    pollfd p{sock, POLLIN, 0};
    if (poll(&p, 1, 0) == 0) return;  // nothing queued
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool ConnectionServer::SetListenBacklog(int backlog) {
  const socket_t sock = svr_sock_.load();
  return sock != INVALID_SOCKET && ::listen(sock, backlog) == 0;  // Linux updates it in place
}

std::chrono::steady_clock::time_point ConnectionServer::CurrentRequestStart() {
  return t_request_start;
}

void ConnectionServer::CloseAfterCurrentRequest() { t_close_after = true; }

ConnectionServer::Stats ConnectionServer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.open = open_;
  s.parked = parked_.size();
  s.timed_out = timed_out_.load();
  s.refused = refused_.load();
  return s;
}

bool ConnectionServer::process_and_close_socket(socket_t sock) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  std::string ip;
  int port = 0;
  if (getpeername(sock, reinterpret_cast<sockaddr*>(&ss), &len) == 0) Address(ss, &ip, &port);
  bool accepted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_address_.find(ip);
    const size_t mine = it == per_address_.end() ? 0 : it->second;
    if (!stopping_ && open_ < options_.connections_max &&
        (mine < options_.connections_per_address_max || unlimited_.count(ip) != 0)) {
      per_address_[ip]++;
      ++open_;
      accepted = true;
    }
  }
  if (!accepted) {
    if (!stopping_flag_.load()) {
      refused_++;
      SendCanned(sock, k503);
      if (options_.on_rejected) options_.on_rejected(ip, 503);
    }
    shutdown(sock, SHUT_RDWR);
    close(sock);
    return true;
  }
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Conn* c = new Conn(sock, std::move(ip), port, options_.write_timeout_ms);
  c->deadline_ms = NowMs() + options_.idle_timeout_ms;
  Serve(c, /*complete=*/false);
  return true;
}

Framing ConnectionServer::Peek(Conn* c, bool* eof, size_t* available, size_t* bytes_needed) {
  *eof = false;
  *available = 0;
  *bytes_needed = 0;
  char small[4096];
  ssize_t n = recv(c->fd, small, sizeof(small), MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) {
    *eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    return Framing::kIncomplete;
  }
  *available = static_cast<size_t>(n);
  Framing f = RequestFraming(std::string_view(small, *available), options_.header_bytes_max,
                             options_.body_bytes_max, bytes_needed);
  if (f != Framing::kIncomplete || *available < sizeof(small)) return f;
  thread_local std::vector<char> big;
  big.resize(options_.header_bytes_max + options_.body_bytes_max + 1);
  n = recv(c->fd, big.data(), big.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return Framing::kIncomplete;
  *available = static_cast<size_t>(n);
  return RequestFraming(std::string_view(big.data(), *available), options_.header_bytes_max,
                        options_.body_bytes_max, bytes_needed);
}

void ConnectionServer::Enqueue(std::function<void()> fn) {
  queued_++;
  pool_->enqueue([this, fn = std::move(fn)] {
    queued_--;
    fn();
  });
}

void ConnectionServer::Serve(Conn* c, bool complete) {
  for (;; complete = false) {
    // A request that is all there is served even when stopping (the
    // workers outlive the parker); only waiting for another one stops.
    if (stopping_flag_.load() && !complete) return Close(c);
    if (!complete && !c->stream.buffered()) {
      if (queued_.load() == 0) {
        pollfd p{c->fd, POLLIN, 0};
        const timespec wait{0, kNextRequestWaitUs * 1000};
        (void)ppoll(&p, 1, &wait, nullptr);
      }
      bool eof = false;
      size_t available = 0, needed = 0;
      Framing f = Peek(c, &eof, &available, &needed);
      if (f == Framing::kTooLarge) return Reject(c, k431, 431);
      if (f == Framing::kIncomplete) {
        if (eof) return Close(c);
        if (available > 0 && !c->request_begun) {
          c->request_begun = true;
          c->deadline_ms = NowMs() + options_.request_deadline_ms;
        }
        return Park(c, /*draining=*/false);
      }
    }
    const auto start = std::chrono::steady_clock::now();
    t_request_start = start;
    t_close_after = false;
    c->stream.set_read_deadline_ms(NowMs() + options_.request_deadline_ms);
    ++c->requests;
    const bool close_connection = draining_.load() || stopping_flag_.load() ||
                                  c->requests >= options_.requests_per_connection_max;
    bool connection_closed = false;
    const bool ok =
        process_request(c->stream, close_connection, connection_closed, OfferNoBrotli);
    c->request_begun = false;
    c->deadline_ms = NowMs() + options_.idle_timeout_ms;
    if (!ok || connection_closed || close_connection || t_close_after) return CloseLater(c);
  }
}

void ConnectionServer::Park(Conn* c, bool draining) {
  c->draining = draining;
  if (draining_.load() && !draining && !c->request_begun) {
    c->deadline_ms = std::min(c->deadline_ms, drain_end_ms_.load());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;  // wake on new input only
      ev.data.ptr = c;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) == 0) {
        parked_.insert(c);
        return;
      }
      OB_LOG(kError, "http: cannot watch a connection: %s", strerror(errno));
    }
  }
  Close(c);
}

void ConnectionServer::CloseLater(Conn* c) {
  if (stopping_flag_.load()) return Close(c);  // the parker is gone
  // FIN now; whatever the client still sends is read and dropped for a
  // moment, so our reply is not destroyed by a reset for unread input.
  shutdown(c->fd, SHUT_WR);
  c->deadline_ms = NowMs() + options_.linger_ms;
  Park(c, /*draining=*/true);
}

void ConnectionServer::Reject(Conn* c, const char* reply, int status) {
  // Consume what is unread first: closing a socket with unread input sends
  // a reset, which can destroy the reply before the client reads it.
  char buf[4096];
  size_t drained = 0;
  ssize_t n;
  while (drained < kDrainBytesMax && (n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
    drained += static_cast<size_t>(n);
  }
  SendCanned(c->fd, reply);
  if (options_.on_rejected) options_.on_rejected(c->address, status);
  shutdown(c->fd, SHUT_WR);
  Close(c);
}

void ConnectionServer::Close(Conn* c) {
  close(c->fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
    auto it = per_address_.find(c->address);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }
  delete c;
}

void ConnectionServer::StartParker() {
  StopParker();  // a previous listen
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  stopping_flag_ = false;
  draining_ = false;
  parker_ = std::thread([this] { ParkerLoop(); });
}

void ConnectionServer::Drain() {
  const int64_t start = NowMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    drain_end_ms_ = start + options_.drain_ms;
    draining_ = true;
    // Idle connections get the drain window at most; a request that
    // arrives in it is served and answered with Connection: close.
    for (Conn* c : parked_) {
      if (!c->draining && !c->request_begun) {
        c->deadline_ms = std::min(c->deadline_ms, start + options_.drain_ms);
      }
    }
  }
  const int64_t give_up = start + options_.drain_ms + options_.linger_ms +
                          options_.request_deadline_ms;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (open_ == 0) return;
    }
    if (NowMs() >= give_up) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(kParkerTickMs));
  }
}

void ConnectionServer::StopParker() {
  std::vector<Conn*> parked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    stopping_flag_ = true;
    parked.assign(parked_.begin(), parked_.end());
    parked_.clear();
  }
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof(one));
    (void)ignored;
  }
  if (parker_.joinable()) parker_.join();
  for (Conn* c : parked) Close(c);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

void ConnectionServer::ParkerLoop() {
  epoll_event events[kEventsMax];
  int64_t last_sweep_ms = NowMs();
  std::vector<Conn*> ready, closing, rejected_408, rejected_431;
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, kEventsMax, kParkerTickMs);
    const int64_t now = NowMs();
    ready.clear();
    closing.clear();
    rejected_408.clear();
    rejected_431.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      auto unpark = [this](Conn* c) {
        parked_.erase(c);
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
      };
      for (int i = 0; i < n; ++i) {
        Conn* c = static_cast<Conn*>(events[i].data.ptr);
        if (c == nullptr) {
          uint64_t v;
          ssize_t ignored = read(wake_fd_, &v, sizeof(v));
          (void)ignored;
          continue;
        }
        if (parked_.count(c) == 0) continue;
        if (c->draining) {
          char buf[4096];
          ssize_t got;
          while ((got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            c->drained_bytes += static_cast<size_t>(got);
          }
          if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
              c->drained_bytes > kDrainBytesMax) {
            unpark(c);
            closing.push_back(c);
          }
          continue;
        }
        bool eof = false;
        size_t available = 0, needed = 0;
        Framing f = Peek(c, &eof, &available, &needed);
        if (available > 0 && !c->request_begun) {
          c->request_begun = true;
          c->deadline_ms = now + options_.request_deadline_ms;
        }
        if (f == Framing::kComplete) {
          unpark(c);
          if (c->lowat != 1) {
            int one = 1;
            setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
            c->lowat = 1;
          }
          ready.push_back(c);
        } else if (f == Framing::kTooLarge) {
          unpark(c);
          rejected_431.push_back(c);
        } else if (eof || (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
          unpark(c);
          closing.push_back(c);
        } else if (needed > available && needed != c->lowat) {
          // Wake only once the whole body is there.
          int lowat = static_cast<int>(needed);
          setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
          c->lowat = needed;
        }
      }
      if (now - last_sweep_ms >= kParkerTickMs) {
        last_sweep_ms = now;
        for (auto it = parked_.begin(); it != parked_.end();) {
          Conn* c = *it;
          if (c->deadline_ms > now) {
            ++it;
            continue;
          }
          it = parked_.erase(it);
          epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
          (c->request_begun && !c->draining ? rejected_408 : closing).push_back(c);
        }
      }
    }
    for (Conn* c : ready) Enqueue([this, c] { Serve(c, /*complete=*/true); });
    for (Conn* c : closing) Close(c);
    for (Conn* c : rejected_408) {
      timed_out_++;
      Reject(c, k408, 408);
    }
    for (Conn* c : rejected_431) Reject(c, k431, 431);
  }
}

}  // namespace offbrand
