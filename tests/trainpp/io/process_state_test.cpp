// process_state.safetensors (io/process_state.hpp): capturing and restoring the random generators, the
// round trip of the loop's running sums, and the reader's refusal of files that are not exactly a
// process state.

#include <trainpp/io/process_state.hpp>
#include <trainpp/io/checkpoint_dir.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace process_state_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-process-state-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

/// Restoring moves the global CPU generator, which other test cases draw from: this puts it back.
struct KeepCpuGenerator {
  torch::Tensor saved = [] {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  }();
  KeepCpuGenerator() = default;
  KeepCpuGenerator(const KeepCpuGenerator&) = delete;
  KeepCpuGenerator& operator=(const KeepCpuGenerator&) = delete;
  ~KeepCpuGenerator() {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(saved);
  }
};

TEST_CASE("the process state round-trips the random generator and the loop's sums") {
  TempDir dir;
  torch::manual_seed(123);
  (void)torch::rand({10});
  auto captured = trainpp::capture_rng_state();
  const auto expected = torch::rand({5});  // what the generator yields after the capture
  captured.tr_loss = torch::tensor(3.25f);
  captured.total_loss_scalar = 0.1 + 0.2;  // not representable exactly in decimal: must survive bit for bit
  captured.globalstep_last_logged = 30;
  captured.scheduler_steps = 31;
  const auto path = dir.path / trainpp::process_state_name(0, 1);
  CHECK(path.filename() == "process_state.safetensors");
  CHECK(trainpp::process_state_name(3, 4) == "process_state_3.safetensors");
  trainpp::save_process_state(path, captured);

  torch::manual_seed(999);  // move the generator elsewhere
  const auto loaded = trainpp::load_process_state(path);
  trainpp::restore_rng_state(loaded, path.string());
  CHECK(torch::equal(torch::rand({5}), expected));
  CHECK(loaded.tr_loss.item<float>() == 3.25f);
  CHECK(loaded.total_loss_scalar == 0.1 + 0.2);
  CHECK(loaded.globalstep_last_logged == 30);
  CHECK(loaded.scheduler_steps == 31);
  CHECK(loaded.rank == 0);
  CHECK(loaded.world_size == 1);

  // A generator state of the wrong size is refused before it reaches the generator.
  auto broken = loaded;
  broken.cpu_rng = torch::zeros({7}, torch::kUInt8);
  CHECK(message_of([&] { trainpp::restore_rng_state(broken, "p.safetensors"); }).find("rng.cpu holds 7 bytes") !=
        std::string::npos);
}

TEST_CASE("process_state: rank, world size and CUDA generator states round-trip, an unset loss as 0") {
  TempDir dir;
  trainpp::ProcessState s;
  s.cpu_rng = torch::arange(16, torch::kUInt8);
  // The file stores whatever states it is given, device by device, in index order.
  s.cuda_rng = {torch::full({8}, 1, torch::kUInt8), torch::full({8}, 2, torch::kUInt8)};
  s.rank = 2;
  s.world_size = 4;
  s.total_loss_scalar = -1.5;
  const auto path = dir.path / trainpp::process_state_name(s.rank, s.world_size);
  trainpp::save_process_state(path, s);
  const auto back = trainpp::load_process_state(path);
  CHECK(back.rank == 2);
  CHECK(back.world_size == 4);
  CHECK(torch::equal(back.cpu_rng, s.cpu_rng));
  REQUIRE(back.cuda_rng.size() == 2);
  CHECK(torch::equal(back.cuda_rng[0], s.cuda_rng[0]));
  CHECK(torch::equal(back.cuda_rng[1], s.cuda_rng[1]));
  CHECK(back.total_loss_scalar == -1.5);
  CHECK((back.tr_loss.scalar_type() == torch::kFloat32));
  CHECK(back.tr_loss.dim() == 0);
  CHECK(back.tr_loss.item<float>() == 0.0f);

  // A loss kept as a one-element double tensor is stored as the float32 scalar the reader expects.
  s.tr_loss = torch::tensor({2.5}, torch::kFloat64);
  trainpp::save_process_state(path, s);
  const auto again = trainpp::load_process_state(path);
  CHECK(again.tr_loss.dim() == 0);
  CHECK(again.tr_loss.item<float>() == 2.5f);
}

TEST_CASE("process_state: a file that is not exactly a process state is refused, naming it") {
  TempDir dir;
  const auto valid_path = dir.path / "valid.safetensors";
  trainpp::ProcessState s;
  s.cpu_rng = torch::zeros({16}, torch::kUInt8);
  s.tr_loss = torch::tensor(1.0f);
  trainpp::save_process_state(valid_path, s);
  const auto valid = trainpp::load_safetensors(valid_path);

  struct Bad {
    std::function<void(std::map<std::string, torch::Tensor>&, std::map<std::string, std::string>&)> patch;
    std::string phrase;
  };
  using Tensors = std::map<std::string, torch::Tensor>;
  using Meta = std::map<std::string, std::string>;
  const std::vector<Bad> cases{
      {[](Tensors&, Meta& m) { m.erase("trainpp.process_state"); },
       "not a trainpp process state: the metadata lacks \"trainpp.process_state\""},
      {[](Tensors&, Meta& m) { m["trainpp.process_state"] = "2"; }, "unsupported process state version"},
      {[](Tensors&, Meta& m) { m["rank"] = "-1"; }, "metadata \"rank\" must be a non-negative integer, got \"-1\""},
      {[](Tensors&, Meta& m) { m["world_size"] = "4x"; }, "metadata \"world_size\" must be a non-negative integer"},
      {[](Tensors&, Meta& m) { m["rank"] = "4", m["world_size"] = "4"; }, "rank 4 is not below world_size 4"},
      {[](Tensors&, Meta& m) { m["world_size"] = "0"; }, "rank 0 is not below world_size 0"},
      {[](Tensors& t, Meta&) { t.erase("loop.scheduler_steps"); },
       "the process state lacks the tensor \"loop.scheduler_steps\""},
      {[](Tensors& t, Meta&) { t["loop.tr_loss"] = torch::tensor(1.0, torch::kFloat64); },
       "tensor \"loop.tr_loss\" must be a 0-dimensional Float, got 0 Double"},
      {[](Tensors& t, Meta&) { t["rng.cpu"] = torch::zeros({4, 4}, torch::kUInt8); },
       "tensor \"rng.cpu\" must be a 1-dimensional Byte, got 2 Byte"},
      {[](Tensors& t, Meta&) { t["loop.globalstep_last_logged"] = torch::tensor(-3, torch::kInt64); },
       "loop counters must not be negative"},
      {[](Tensors& t, Meta&) { t["loop.extra"] = torch::zeros({1}); }, "unexpected tensor \"loop.extra\" in a process state"},
      // CUDA states are numbered from 0 without gaps: a lone second one is not read as a device's.
      {[](Tensors& t, Meta&) { t["rng.cuda:1"] = torch::zeros({8}, torch::kUInt8); },
       "unexpected tensor \"rng.cuda:1\" in a process state"},
  };
  const auto path = dir.path / "process_state.safetensors";
  for (const auto& c : cases) {
    Tensors tensors(valid.tensors.begin(), valid.tensors.end());
    Meta meta = valid.metadata;
    c.patch(tensors, meta);
    trainpp::save_safetensors(path, {tensors.begin(), tensors.end()}, meta);
    const auto message = message_of([&] { (void)trainpp::load_process_state(path); });
    CHECK_MESSAGE(message.starts_with(path.string() + ": "), message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
}

TEST_CASE("process_state: CUDA states for devices this machine lacks only warn, the CPU state is restored") {
  // With a device, the bogus state below would be applied to it.
  if (torch::cuda::is_available()) TRAINPP_SKIP_TEST("needs a machine without CUDA devices");
  const KeepCpuGenerator keep;
  torch::manual_seed(7);
  auto s = trainpp::capture_rng_state();
  CHECK(s.cuda_rng.empty());
  const auto expected = torch::rand({4});
  s.cuda_rng = {torch::zeros({16}, torch::kUInt8)};
  torch::manual_seed(8);
  trainpp::restore_rng_state(s, "p.safetensors");
  CHECK(torch::equal(torch::rand({4}), expected));
}

}  // namespace process_state_test
