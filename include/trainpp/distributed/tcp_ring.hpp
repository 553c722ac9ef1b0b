#pragma once
// TcpRing: collectives for CPU tensors over plain TCP sockets arranged in a ring, with c10d's
// TCPStore as the rendezvous. Why our own: LibTorch's Gloo backend is compiled into libtorch, but the
// pip wheel and several LibTorch distributions ship no Gloo headers, so a C++ program cannot create
// one. The ring allreduce moves 2(N-1)/N of a tensor per process, as Gloo's ring does.

#include <trainpp/detail/error.hpp>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trainpp {

namespace detail {

/// A socket file descriptor, closed with its owner.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_ = -1;
};

inline std::string errno_text() { return std::strerror(errno); }

}  // namespace detail

/// The ring: process r sends to r + 1 and receives from r - 1 (mod N). Collectives run one at a time,
/// in the order they were started, on a communication thread of their own, so that a caller can start
/// one and go on computing (DataParallel's gradient buckets during backward).
class TcpRing {
 public:
  /// Connects the ring. Every process publishes its listening address in `store` and connects to its
  /// successor; fails with a trainpp::Error after `timeout`.
  TcpRing(c10::intrusive_ptr<c10d::Store> store, int rank, int size, const std::string& master_addr,
          std::chrono::milliseconds timeout)
      : rank_(rank), size_(size), timeout_(timeout) {
    if (size_ > 1) connect(std::move(store), master_addr);
    worker_ = std::thread([this] { run(); });
  }
  TcpRing(const TcpRing&) = delete;
  TcpRing& operator=(const TcpRing&) = delete;
  ~TcpRing() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }

  /// Sums `tensor` across the ring in place, after the collectives started before it.
  [[nodiscard]] std::shared_future<void> all_reduce_sum(torch::Tensor tensor) {
    return enqueue([this, tensor]() mutable { on_host(tensor, [&](torch::Tensor& t) { ring_all_reduce(t); }); });
  }
  /// Copies rank `root`'s `tensor` into everyone's, in place.
  [[nodiscard]] std::shared_future<void> broadcast(torch::Tensor tensor, int root) {
    return enqueue([this, tensor, root]() mutable { on_host(tensor, [&](torch::Tensor& t) { ring_broadcast(t, root); }); });
  }
  /// Sums `input` (size × output.numel() elements) across the ring and leaves part r of the sum in
  /// process r's `output` (ZeRO's gradient reduce-scatter).
  [[nodiscard]] std::shared_future<void> reduce_scatter_sum(torch::Tensor output, torch::Tensor input) {
    return enqueue([this, output, input]() mutable {
      auto work = input.to(torch::kCPU).contiguous().clone();  // reduced in place: never the caller's
      ring_reduce_scatter(work);
      torch::NoGradGuard no_grad;
      output.view(-1).copy_(work.view(-1).narrow(0, rank_ * output.numel(), output.numel()));
    });
  }
  /// Fills `outputs[r]` (each shaped as `input`) with rank r's `input`.
  [[nodiscard]] std::shared_future<void> all_gather(std::vector<torch::Tensor> outputs, torch::Tensor input) {
    return enqueue([this, outputs, input]() mutable { ring_all_gather(outputs, input); });
  }

 private:
  using Task = std::packaged_task<void()>;

  std::shared_future<void> enqueue(std::function<void()> body) {
    Task task(std::move(body));
    auto future = task.get_future().share();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
    return future;
  }

  void run() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();  // an exception lands in the task's future
    }
  }

  /// Runs `op` on a contiguous CPU copy of `tensor` when it is not one, and writes the result back.
  template <class Op>
  void on_host(torch::Tensor& tensor, Op&& op) {
    if (broken_) throw error("rank {}: the process ring is broken by an earlier failure", rank_);
    torch::NoGradGuard no_grad;
    if (tensor.is_cpu() && tensor.is_contiguous()) {
      op(tensor);
      return;
    }
    auto host = tensor.to(torch::kCPU).contiguous();
    op(host);
    tensor.copy_(host);
  }

  // ---- connecting ---------------------------------------------------------------------------------

  void connect(c10::intrusive_ptr<c10d::Store> store, const std::string& master_addr) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    detail::Socket listener(::socket(AF_INET, SOCK_STREAM, 0));
    if (listener.get() < 0) fail("cannot create a socket: {}", detail::errno_text());
    const int one = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    address.sin_port = 0;  // any free port: published through the store
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener.get(), 4) != 0)
      fail("cannot listen for the ring: {}", detail::errno_text());
    socklen_t length = sizeof address;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length);
    const std::string me = local_address_towards(master_addr) + ":" + std::to_string(ntohs(address.sin_port));
    const std::string prefix = "trainpp/ring/";
    store->set(prefix + std::to_string(rank_), std::vector<uint8_t>(me.begin(), me.end()));
    const int next = (rank_ + 1) % size_;
    std::vector<uint8_t> raw;
    try {
      raw = store->get(prefix + std::to_string(next));
    } catch (const std::exception& e) {
      fail("rank {} did not publish its ring address in time: {}", next, detail::first_line(e.what()));
    }
    const std::string peer(raw.begin(), raw.end());
    const auto colon = peer.rfind(':');
    if (colon == std::string::npos) fail("rank {} published a malformed ring address '{}'", next, peer);

    // Connect to the successor (retrying while it starts listening) and accept the predecessor.
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(std::stoi(peer.substr(colon + 1))));
    if (::inet_pton(AF_INET, peer.substr(0, colon).c_str(), &to.sin_addr) != 1)
      fail("rank {} published an address that is not IPv4: '{}'", next, peer);
    for (;;) {
      detail::Socket s(::socket(AF_INET, SOCK_STREAM, 0));
      if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
        send_ = std::move(s);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) fail("cannot connect to rank {} at {}: {}", next, peer, detail::errno_text());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const std::int32_t hello = rank_;
    write_all(send_.get(), &hello, sizeof hello, next);
    pollfd waiting{listener.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(&waiting, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 1))) != 1)
      fail("rank {} did not connect within ddp_timeout", (rank_ + size_ - 1) % size_);
    recv_ = detail::Socket(::accept(listener.get(), nullptr, nullptr));
    if (recv_.get() < 0) fail("cannot accept rank {}: {}", (rank_ + size_ - 1) % size_, detail::errno_text());
    std::int32_t who = -1;
    read_all(recv_.get(), &who, sizeof who, (rank_ + size_ - 1) % size_);
    if (who != (rank_ + size_ - 1) % size_) fail("expected rank {} to connect, got rank {}", (rank_ + size_ - 1) % size_, who);
    for (int fd : {send_.get(), recv_.get()}) {
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  }

  /// The address of this machine on the route to `master` (the loopback address for a local master).
  static std::string local_address_towards(const std::string& master) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(master.c_str(), "9", &hints, &found) != 0 || found == nullptr) return "127.0.0.1";
    detail::Socket probe(::socket(AF_INET, SOCK_DGRAM, 0));
    std::string out = "127.0.0.1";
    if (::connect(probe.get(), found->ai_addr, found->ai_addrlen) == 0) {
      sockaddr_in self{};
      socklen_t length = sizeof self;
      char text[INET_ADDRSTRLEN] = {};
      if (::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&self), &length) == 0 &&
          ::inet_ntop(AF_INET, &self.sin_addr, text, sizeof text) != nullptr)
        out = text;
    }
    ::freeaddrinfo(found);
    return out;
  }

  // ---- moving bytes -------------------------------------------------------------------------------

  /// Sends `out` to the successor while receiving `in` from the predecessor: both at once, so that
  /// neither side's socket buffer filling up can deadlock the ring.
  void exchange(const void* out, std::size_t out_bytes, void* in, std::size_t in_bytes) {
    auto* o = static_cast<const char*>(out);
    auto* i = static_cast<char*>(in);
    std::size_t sent = 0, received = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (sent < out_bytes || received < in_bytes) {
      pollfd fds[2] = {{send_.get(), static_cast<short>(sent < out_bytes ? POLLOUT : 0), 0},
                       {recv_.get(), static_cast<short>(received < in_bytes ? POLLIN : 0), 0}};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) fail("no progress within ddp_timeout ({} s): another process is stuck or gone",
                                  std::chrono::duration_cast<std::chrono::seconds>(timeout_).count());
      const int ready = ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
      if (ready < 0 && errno != EINTR) fail("poll failed: {}", detail::errno_text());
      if (ready <= 0) continue;
      if (sent < out_bytes && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const auto n = ::send(send_.get(), o + sent, out_bytes - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          fail("the connection to rank {} failed (it probably exited): {}", (rank_ + 1) % size_, detail::errno_text());
        if (n > 0) sent += static_cast<std::size_t>(n);
      }
      if (received < in_bytes && (fds[1].revents & (POLLIN | POLLERR | POLLHUP))) {
        const auto n = ::recv(recv_.get(), i + received, in_bytes - received, 0);
        if (n == 0) fail("rank {} closed the connection (it probably exited)", (rank_ + size_ - 1) % size_);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          fail("the connection from rank {} failed: {}", (rank_ + size_ - 1) % size_, detail::errno_text());
        if (n > 0) received += static_cast<std::size_t>(n);
      }
    }
  }
  void write_all(int fd, const void* data, std::size_t bytes, int peer) {
    auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const auto n = ::send(fd, p, bytes, MSG_NOSIGNAL);
      if (n <= 0) fail("cannot write to rank {}: {}", peer, detail::errno_text());
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }
  void read_all(int fd, void* data, std::size_t bytes, int peer) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
      const auto n = ::recv(fd, p, bytes, 0);
      if (n <= 0) fail("cannot read from rank {}: {}", peer, n == 0 ? std::string("closed") : detail::errno_text());
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }

  // ---- the collectives ----------------------------------------------------------------------------

  /// Chunk c of n elements split in size_ parts: [begin, end).
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> chunk(std::int64_t n, int c) const {
    const std::int64_t base = n / size_, extra = n % size_;
    const std::int64_t begin = c * base + std::min<std::int64_t>(c, extra);
    return {begin, begin + base + (c < extra ? 1 : 0)};
  }

  /// Reduce-scatter then all-gather around the ring: after step s of the first phase, chunk
  /// (rank - s - 1) holds the sum of s + 2 processes' values; after N - 1 steps each process owns one
  /// complete chunk, which the second phase passes around.
  void ring_all_reduce(torch::Tensor& t) {
    if (size_ == 1 || t.numel() == 0) return;
    auto flat = t.view(-1);
    const auto n = flat.numel();
    const auto item = static_cast<std::size_t>(flat.element_size());
    // One receive buffer, kept between calls: a step's buckets would otherwise allocate one each.
    if (!scratch_.defined() || scratch_.scalar_type() != flat.scalar_type() || scratch_.numel() < n / size_ + 1)
      scratch_ = torch::empty({n / size_ + 1}, flat.options());
    auto& scratch = scratch_;
    auto* base = static_cast<char*>(flat.data_ptr());
    for (int s = 0; s < size_ - 1; ++s) {
      const auto [sb, se] = chunk(n, ((rank_ - s) % size_ + size_) % size_);
      const auto [rb, re] = chunk(n, ((rank_ - s - 1) % size_ + size_) % size_);
      exchange(base + sb * item, static_cast<std::size_t>(se - sb) * item, scratch.data_ptr(),
               static_cast<std::size_t>(re - rb) * item);
      flat.narrow(0, rb, re - rb).add_(scratch.narrow(0, 0, re - rb));
    }
    for (int s = 0; s < size_ - 1; ++s) {
      const auto [sb, se] = chunk(n, ((rank_ - s + 1) % size_ + size_) % size_);
      const auto [rb, re] = chunk(n, ((rank_ - s) % size_ + size_) % size_);
      exchange(base + sb * item, static_cast<std::size_t>(se - sb) * item, base + rb * item,
               static_cast<std::size_t>(re - rb) * item);
    }
  }

  /// The first phase of ring_all_reduce on equal parts, shifted by one so that process r ends up
  /// with the complete sum of part r.
  void ring_reduce_scatter(torch::Tensor& t) {
    if (broken_) throw error("rank {}: the process ring is broken by an earlier failure", rank_);
    if (size_ == 1 || t.numel() == 0) return;
    auto flat = t.view(-1);
    const auto part = flat.numel() / size_;
    const auto item = static_cast<std::size_t>(flat.element_size());
    if (!scratch_.defined() || scratch_.scalar_type() != flat.scalar_type() || scratch_.numel() < part + 1)
      scratch_ = torch::empty({part + 1}, flat.options());
    auto* base = static_cast<char*>(flat.data_ptr());
    const auto bytes = static_cast<std::size_t>(part) * item;
    for (int s = 0; s < size_ - 1; ++s) {
      const int send = ((rank_ - s - 1) % size_ + size_) % size_;
      const int receive = ((rank_ - s - 2) % size_ + size_) % size_;
      exchange(base + send * part * static_cast<std::int64_t>(item), bytes, scratch_.data_ptr(), bytes);
      flat.narrow(0, receive * part, part).add_(scratch_.narrow(0, 0, part));
    }
  }

  /// The root's bytes travel the ring: each process receives from its predecessor and forwards,
  /// except the one before the root.
  void ring_broadcast(torch::Tensor& t, int root) {
    if (size_ == 1 || t.numel() == 0) return;
    const auto bytes = static_cast<std::size_t>(t.numel() * t.element_size());
    const int distance = ((rank_ - root) % size_ + size_) % size_;  // hops from the root
    if (distance != 0) exchange(nullptr, 0, t.data_ptr(), bytes);
    if (distance != size_ - 1) exchange(t.data_ptr(), bytes, nullptr, 0);
  }

  void ring_all_gather(std::vector<torch::Tensor>& outputs, const torch::Tensor& input) {
    torch::NoGradGuard no_grad;
    if (broken_) throw error("rank {}: the process ring is broken by an earlier failure", rank_);
    std::vector<torch::Tensor> host(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) host[static_cast<std::size_t>(r)] = torch::empty(input.sizes(), input.options().device(torch::kCPU));
    host[static_cast<std::size_t>(rank_)].copy_(input);
    const auto bytes = static_cast<std::size_t>(input.numel() * input.element_size());
    for (int s = 0; s < size_ - 1; ++s) {
      const int send_from = ((rank_ - s) % size_ + size_) % size_;
      const int recv_into = ((rank_ - s - 1) % size_ + size_) % size_;
      exchange(host[static_cast<std::size_t>(send_from)].data_ptr(), bytes,
               host[static_cast<std::size_t>(recv_into)].data_ptr(), bytes);
    }
    for (int r = 0; r < size_; ++r) outputs[static_cast<std::size_t>(r)].copy_(host[static_cast<std::size_t>(r)]);
  }

  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> format, A&&... args) {
    broken_ = true;
    throw error("rank {}: {}", rank_, fmt::format(format, std::forward<A>(args)...));
  }

  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_;
  detail::Socket send_, recv_;
  bool broken_ = false;
  torch::Tensor scratch_;  ///< ring_all_reduce's receive buffer (communication thread only)

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace trainpp
