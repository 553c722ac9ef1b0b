#pragma once
// DataLoader: batches of a Dataset in a seeded, resumable order, built ahead on worker threads and
// delivered on the training device (HF's get_train/eval/test_dataloader + accelerate's prepare).

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/data/collate.hpp>
#include <trainpp/data/dataset.hpp>
#include <trainpp/data/length_grouped_sampler.hpp>
#include <trainpp/data/sampler.hpp>
#include <trainpp/data/shard.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <dlfcn.h>
#endif

namespace trainpp {

/// How a DataLoader batches and delivers (torch DataLoader's arguments that HF sets).
struct DataLoaderOptions {
  std::int64_t batch_size = 8;
  bool shuffle = false;        ///< a fresh seeded order per epoch (RandomSampler) instead of 0..n-1
  bool drop_last = false;      ///< drop the last, incomplete batch
  std::int64_t num_workers = 0;      ///< 0: batches are built on the calling thread, on demand
  std::int64_t prefetch_factor = 2;  ///< batches in flight per worker
  std::int64_t seed = 42;            ///< the data order seed (TrainingArguments::effective_data_seed())
  bool pin_memory = false;           ///< stage host batches in page-locked memory (CUDA targets only)
  torch::Device device = torch::kCPU;  ///< batches are delivered already on this device
  /// Data parallelism: this process's share of every epoch (see shard_batch_positions); {0, 1}: all.
  DataShard shard;
  /// Under a shard: pad the last round so that every process has as many full batches (training, where
  /// every batch ends in a collective); false hands out only real examples (evaluation).
  bool even_batches = true;
  /// The examples' lengths: when set, each epoch follows a LengthGroupedSampler order (seeded with
  /// `seed`, grouping batches of length_group_batch_size) instead of shuffle's or 0..n-1.
  std::shared_ptr<const std::vector<std::int64_t>> group_lengths;
  std::int64_t length_group_batch_size = 8;
  /// The length-grouped order is drawn after the loader's base seed (training), or first (evaluation).
  bool length_group_after_loader_seed = true;
};

namespace detail {

/// Makes the ATen ops of the calling thread single-threaded, leaving every other thread alone.
///
/// Why: torch's DataLoader runs each worker as a process with torch.set_num_threads(1), so workers
/// scale by their number and never fight the training thread for cores. Our workers are threads, and
/// at::set_num_threads is process-wide; with OpenMP (LibTorch's default backend) the thread count is
/// a per-thread setting, which omp_set_num_threads changes for the caller only. (With a full OpenMP
/// team per worker, two workers made CUDA training steps slower than no worker at all.) The function
/// is looked up at run time so that nothing has to link OpenMP; where it is absent this does nothing.
void single_threaded_ops_on_this_thread();

/// One produced batch, or what went wrong producing it.
struct PrefetchSlot {
  Batch batch;
  std::exception_ptr error;
};

/// What the loader and its worker threads share. It lives on the heap so that a DataLoader can move
/// while workers hold a pointer to it. Fields above the mutex change only while no worker runs.
template <class D, class Collate>
struct LoaderCore {
  /// Collates need not be default-constructible (a masked-LM collate has no meaningful default).
  explicit LoaderCore(Collate c) : collate(std::move(c)) {}

  const D* dataset;
  DataLoaderOptions options;
  Collate collate;
  std::size_t num_samples = 0;
  std::size_t num_batches = 0;
  std::int64_t epoch = 0;
  bool pass_finished = false;  ///< next() said nullopt; the following call starts epoch + 1
  torch::Tensor order;         ///< this epoch's permutation (int64, CPU); undefined: sequential or not drawn yet
  torch::Device device = torch::kCPU;  ///< options.device with its index resolved
  /// With a shard of several processes: this process's batches, as positions into the epoch's order.
  std::vector<std::vector<std::int64_t>> shard_batches;

  std::mutex mutex;
  std::condition_variable_any work_ready;   ///< workers wait for room in the window
  std::condition_variable_any batch_ready;  ///< the caller waits for the batch it delivers next
  std::size_t next_deliver = 0;             ///< guarded by mutex while workers run
  std::size_t next_claim = 0;               ///< guarded by mutex
  std::vector<std::optional<PrefetchSlot>> slots;  ///< batch b in slot b % size; guarded by mutex
  std::vector<std::jthread> workers;

  /// The dataset indices of batch b.
  [[nodiscard]] std::vector<std::int64_t> batch_indices(std::size_t b) const;

  /// Batch b, collated, on options.device. With `stream` (a worker's side stream), the copy is
  /// finished before returning, so the caller's stream can use the batch without waiting on ours.
  [[nodiscard]] Batch produce(std::size_t b, const std::optional<c10::Stream>& stream) const;
};

template <class D, class Collate>
std::vector<std::int64_t> LoaderCore<D, Collate>::batch_indices(std::size_t b) const {
    if (options.shard.count > 1) {
      std::vector<std::int64_t> out = shard_batches[b];
      if (order.defined()) {
        const auto* p = order.data_ptr<std::int64_t>();
        for (auto& position : out) position = p[position];
      }
      return out;
    }
    const std::size_t bs = static_cast<std::size_t>(options.batch_size);
    const std::size_t begin = b * bs, end = std::min(begin + bs, num_samples);
    std::vector<std::int64_t> out(end - begin);
    if (order.defined()) {
      const auto* p = order.data_ptr<std::int64_t>();
      std::copy(p + begin, p + end, out.begin());
    } else {
      for (std::size_t i = begin; i < end; ++i) out[i - begin] = static_cast<std::int64_t>(i);
    }
    return out;
  }

template <class D, class Collate>
Batch LoaderCore<D, Collate>::produce(std::size_t b, const std::optional<c10::Stream>& stream) const {
    torch::NoGradGuard no_grad;  // collation needs no autograd; inference tensors would break backward
    const std::vector<std::int64_t> indices = batch_indices(b);
    const bool pin = options.pin_memory && device.is_cuda();
    Batch batch;
    if constexpr (std::is_same_v<Collate, DefaultCollate> && PinnedGatherDataset<D>) {
      batch = dataset->gather(indices, pin);
    } else if constexpr (std::is_same_v<Collate, DefaultCollate> && GatherDataset<D>) {
      batch = dataset->gather(indices);
    } else {
      std::vector<example_t<D>> examples;
      examples.reserve(indices.size());
      for (const std::int64_t i : indices) examples.push_back(dataset->get(static_cast<std::size_t>(i)));
      if constexpr (OrdinalCollateFor<Collate, example_t<D>>)
        batch = collate(std::move(examples), BatchOrdinal{epoch * static_cast<std::int64_t>(num_batches) +
                                                          static_cast<std::int64_t>(b)});
      else
        batch = collate(std::move(examples));
    }
    if (device.is_cpu()) return batch.to(device);
    if (pin)
      for (auto& [key, t] : batch)
        if (t.defined() && t.is_cpu()) t = t.pin_memory();  // no copy when already page-locked
    // From pinned memory the copy is asynchronous on the current stream; pageable memory copies block.
    Batch out = batch.to(device, /*non_blocking=*/pin);
    if (stream) stream->synchronize();
    return out;
  }

}  // namespace detail

/// Batches of dataset `D`, one epoch at a time, in the order of a SequentialSampler or (shuffle) a
/// RandomSampler seeded with options.seed: the same order as accelerate's seedable sampler in PyTorch.
///
/// With num_workers == 0, next() builds each batch when asked. With num_workers > 0, that many threads
/// build whole batches ahead (at most num_workers * prefetch_factor in flight), each copied to the device
/// on the worker's own stream; delivery order and content are identical to num_workers == 0. An
/// exception thrown while building a batch is re-thrown by the next() that would have delivered it.
///
/// `Collate` turns a std::vector of the dataset's examples into a Batch (see CollateFor). With the
/// default collate, a dataset with `gather` (TensorDataset, FashionMnist) builds a batch with one op
/// per key. The loader keeps a reference to the dataset: the dataset must outlive it.
template <Dataset D, class Collate = DefaultCollate>
class DataLoader {
  static_assert(CollateFor<Collate, example_t<D>>,
                "DataLoader: the collate function must be callable as `Batch collate(std::vector<Example>&&) "
                "const` with the dataset's example type (DefaultCollate takes trainpp::Batch examples; pass "
                "a collate for other example types)");

 public:
  /// Throws trainpp::Error on batch_size < 1, num_workers < 0 or prefetch_factor < 1.
  DataLoader(const D& dataset, DataLoaderOptions options, Collate collate = {});
  /// A loader must not outlive its dataset; a temporary would.
  DataLoader(const D&& dataset, DataLoaderOptions options, Collate collate = {}) = delete;

  DataLoader(DataLoader&&) noexcept = default;
  DataLoader& operator=(DataLoader&& other) noexcept;
  ~DataLoader();

  /// len(dataloader): the batches of one epoch, num_samples / batch_size rounded up, or down with drop_last.
  [[nodiscard]] std::size_t num_batches() const { return core_->num_batches; }
  /// The dataset's size.
  [[nodiscard]] std::size_t num_samples() const { return core_->num_samples; }
  [[nodiscard]] const DataLoaderOptions& options() const { return core_->options; }
  /// The epoch whose order the current pass follows.
  [[nodiscard]] std::int64_t epoch() const { return core_->epoch; }
  /// The examples of batch `b` that are not padding: a shard's last round repeats examples from the
  /// start of the epoch so that every process has as many full batches; counted in process order (rank
  /// 0's batch first), as gather_for_metrics truncates the gathered results to the data set's size.
  [[nodiscard]] std::int64_t real_samples(std::size_t b) const {
    const Core& c = *core_;
    const auto bs = c.options.batch_size;
    if (c.options.shard.count <= 1) {
      return std::min<std::int64_t>(bs, static_cast<std::int64_t>(c.num_samples) - static_cast<std::int64_t>(b) * bs);
    }
    const auto global = static_cast<std::int64_t>(b) * c.options.shard.count + c.options.shard.index;
    const auto before = global * bs;
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(c.num_samples) - before, 0,
                                    static_cast<std::int64_t>(c.shard_batches[b].size()));
  }
  /// The index, within the epoch, of the batch the next call to next() delivers.
  [[nodiscard]] std::size_t position() const { return core_->next_deliver; }

  /// Starts a pass over epoch `epoch`'s order from its first batch (HF calls set_epoch every epoch).
  void set_epoch(std::int64_t epoch);

  /// Makes batch `batch_index` of the current epoch the next one delivered, without reading the batches
  /// before it (resuming mid-epoch). batch_index == num_batches() ends the pass. Throws trainpp::Error
  /// beyond that.
  void skip_to(std::size_t batch_index);

  /// The next batch of the epoch, on options.device; nullopt once the epoch is exhausted. A call after
  /// that nullopt starts the next epoch (as accelerate's sampler advances its epoch after each pass).
  [[nodiscard]] std::optional<Batch> next();

  /// Input iteration over the rest of the current pass: `for (const Batch& b : loader)`.
  class iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using iterator_concept = std::input_iterator_tag;

    iterator() = default;
    explicit iterator(DataLoader* loader) : loader_(loader), current_(loader->next()) {}
    iterator(iterator&&) noexcept = default;
    iterator& operator=(iterator&&) noexcept = default;

    [[nodiscard]] Batch& operator*() const { return *current_; }
    iterator& operator++() {
      current_ = loader_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    [[nodiscard]] bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    DataLoader* loader_ = nullptr;
    mutable std::optional<Batch> current_;
  };
  /// Starts iterating: delivers the next batch (a finished pass first moves on to the next epoch).
  [[nodiscard]] iterator begin() { return iterator(this); }
  [[nodiscard]] std::default_sentinel_t end() const { return {}; }

 private:
  using Core = detail::LoaderCore<D, Collate>;

  void start_workers();

  /// Joins the workers and drops what they prefetched; the next next() restarts them where it resumes.
  void stop_workers();

  static void work(Core& c, const std::optional<c10::Stream>& stream, std::stop_token stop);

  std::unique_ptr<Core> core_;
};

// The members that build and deliver batches are defined out of the class, so that in compiled mode
// `extern template` keeps every translation unit from instantiating them for the common loader below.
template <Dataset D, class Collate>
DataLoader<D, Collate>::DataLoader(const D& dataset, DataLoaderOptions options, Collate collate)
    : core_(std::make_unique<Core>(std::move(collate))) {
  if (options.batch_size < 1) throw error("DataLoader: batch_size must be at least 1, got {}", options.batch_size);
  if (options.num_workers < 0) throw error("DataLoader: num_workers must be >= 0, got {}", options.num_workers);
  if (options.prefetch_factor < 1)
    throw error("DataLoader: prefetch_factor must be at least 1, got {}", options.prefetch_factor);
  Core& c = *core_;
  c.dataset = &dataset;
  c.options = std::move(options);
  c.num_samples = static_cast<std::size_t>(dataset.size());
  const auto bs = static_cast<std::size_t>(c.options.batch_size);
  c.num_batches = c.options.drop_last ? c.num_samples / bs : (c.num_samples + bs - 1) / bs;
  if (c.options.shard.count > 1) {
    c.shard_batches = shard_batch_positions(static_cast<std::int64_t>(c.num_samples), c.options.batch_size,
                                            c.options.shard, c.options.drop_last, c.options.even_batches);
    c.num_batches = c.shard_batches.size();
  }
  c.device = c.options.device;
  if (c.options.group_lengths && c.options.group_lengths->size() != c.num_samples)
    throw error("DataLoader: group_lengths has {} lengths but the dataset has {} examples",
                c.options.group_lengths->size(), c.num_samples);
}

template <Dataset D, class Collate>
DataLoader<D, Collate>& DataLoader<D, Collate>::operator=(DataLoader&& other) noexcept {
  if (this != &other) {
    if (core_) stop_workers();
    core_ = std::move(other.core_);
  }
  return *this;
}

template <Dataset D, class Collate>
DataLoader<D, Collate>::~DataLoader() {
  if (core_) stop_workers();
}

template <Dataset D, class Collate>
void DataLoader<D, Collate>::set_epoch(std::int64_t epoch) {
  stop_workers();
  Core& c = *core_;
  if (c.epoch != epoch) c.order = torch::Tensor();
  c.epoch = epoch;
  c.next_deliver = 0;
  c.pass_finished = false;
}

template <Dataset D, class Collate>
void DataLoader<D, Collate>::skip_to(std::size_t batch_index) {
  Core& c = *core_;
  if (batch_index > c.num_batches)
    throw error("DataLoader: cannot skip to batch {}: an epoch has {} batches", batch_index, c.num_batches);
  stop_workers();
  c.next_deliver = batch_index;
  c.pass_finished = false;
}

template <Dataset D, class Collate>
std::optional<Batch> DataLoader<D, Collate>::next() {
  Core& c = *core_;
  if (c.pass_finished) set_epoch(c.epoch + 1);
  if (c.next_deliver >= c.num_batches) {
    stop_workers();
    c.pass_finished = true;
    return std::nullopt;
  }
  if (c.options.group_lengths && !c.order.defined())
    c.order = LengthGroupedSampler(*c.options.group_lengths, c.options.length_group_batch_size, c.options.seed,
                                   c.options.length_group_after_loader_seed)
                  .epoch_permutation(c.epoch);
  else if (c.options.shuffle && !c.order.defined())
    c.order = RandomSampler(static_cast<std::int64_t>(c.num_samples), c.options.seed).epoch_permutation(c.epoch);
  if (c.options.num_workers == 0) {
    // Advance first: a batch whose building throws is consumed, as it is with workers.
    const std::size_t b = c.next_deliver++;
    return c.produce(b, std::nullopt);
  }
  if (c.workers.empty()) start_workers();

  detail::PrefetchSlot slot;
  {
    std::unique_lock lock(c.mutex);
    auto& ready = c.slots[c.next_deliver % c.slots.size()];
    c.batch_ready.wait(lock, [&] { return ready.has_value(); });
    slot = std::move(*ready);
    ready.reset();
    ++c.next_deliver;
  }
  c.work_ready.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  if (!c.device.is_cpu()) {
    // The batch was allocated on a worker's stream; tell the caching allocator it is used on ours, so
    // its memory is not handed back to the worker while our kernels still read it.
    const c10::Stream current = c10::impl::VirtualGuardImpl(c.device.type()).getStream(c.device);
    for (const auto& [key, t] : slot.batch)
      if (t.defined() && t.device() == c.device) t.record_stream(current);
  }
  return std::move(slot.batch);
}

template <Dataset D, class Collate>
void DataLoader<D, Collate>::start_workers() {
  Core& c = *core_;
  const auto num_workers = static_cast<std::size_t>(c.options.num_workers);
  c.slots.assign(num_workers * static_cast<std::size_t>(c.options.prefetch_factor), std::nullopt);
  c.next_claim = c.next_deliver;
  // Each worker copies on a stream of its own, so its copies overlap the caller's kernels.
  std::vector<std::optional<c10::Stream>> streams(num_workers);
  if (!c.device.is_cpu()) {
    const c10::impl::VirtualGuardImpl guard(c.device.type());
    if (!c.device.has_index()) c.device = guard.getDevice();
    for (auto& stream : streams) {
      try {
        stream = guard.getStreamFromGlobalPool(c.device);
      } catch (const c10::Error&) {
        // A backend without stream pools: workers copy blocking on its current stream instead.
      }
    }
  }
  c.workers.reserve(num_workers);
  for (std::size_t w = 0; w < num_workers; ++w)
    c.workers.emplace_back([&c, stream = streams[w]](std::stop_token stop) { work(c, stream, stop); });
}

template <Dataset D, class Collate>
void DataLoader<D, Collate>::stop_workers() {
  Core& c = *core_;
  if (c.workers.empty()) return;
  for (auto& w : c.workers) w.request_stop();
  c.workers.clear();  // joins; a worker mid-batch finishes that batch first
  c.slots.clear();
}

template <Dataset D, class Collate>
void DataLoader<D, Collate>::work(Core& c, const std::optional<c10::Stream>& stream, std::stop_token stop) {
  detail::single_threaded_ops_on_this_thread();
  std::optional<c10::StreamGuard> on_stream;
  if (stream) on_stream.emplace(*stream);
  for (;;) {
    std::size_t b = 0;
    {
      std::unique_lock lock(c.mutex);
      const bool go = c.work_ready.wait(lock, stop, [&] {
        return c.next_claim >= c.num_batches || c.next_claim < c.next_deliver + c.slots.size();
      });
      if (!go || c.next_claim >= c.num_batches) return;
      b = c.next_claim++;
    }
    detail::PrefetchSlot slot;
    try {
      slot.batch = c.produce(b, stream);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard lock(c.mutex);
      c.slots[b % c.slots.size()] = std::move(slot);
    }
    c.batch_ready.notify_all();
  }
}

/// HF's get_train_dataloader choices: random order unless train_sampling_strategy is sequential,
/// per_device_train_batch_size, dataloader_drop_last / _num_workers / _prefetch_factor (default 2),
/// data_seed (else seed), and page-locked staging when dataloader_pin_memory and the device is CUDA.
[[nodiscard]] DataLoaderOptions train_loader_options(const TrainingArguments& args, torch::Device device);

/// HF's get_eval_dataloader / get_test_dataloader choices: sequential order, per_device_eval_batch_size,
/// and, as HF does for every map-style dataset, dataloader_drop_last.
[[nodiscard]] DataLoaderOptions eval_loader_options(const TrainingArguments& args, torch::Device device);

/// A DataLoaderPolicy: HF's get_train/eval/test_dataloader with `collate` as the data_collator
/// (e.g. a DataCollatorWithPadding). Under data parallelism the Trainer passes each process's `shard`
/// (accelerate's BatchSamplerShard, which in transformers 5.x also shards a length-grouped order).
/// With train_sampling_strategy group_by_length the training and evaluation orders are a
/// LengthGroupedSampler's over the lengths dataset_lengths() finds (length_column_name, else input_ids).
template <class Collate = DefaultCollate>
struct CollatingDataLoader {
  Collate collate{};

  template <Dataset D>
  [[nodiscard]] DataLoader<D, Collate> train_loader(const D& dataset, const TrainingArguments& args,
                                                    torch::Device device, DataShard shard = {}) const {
    auto options = train_loader_options(args, device);
    options.shard = shard;
    if (args.train_sampling_strategy == SamplingStrategy::group_by_length)
      options.group_lengths =
          std::make_shared<const std::vector<std::int64_t>>(dataset_lengths(dataset, args.length_column_name));
    return DataLoader<D, Collate>(dataset, options, collate);
  }
  template <Dataset D>
  [[nodiscard]] DataLoader<D, Collate> eval_loader(const D& dataset, const TrainingArguments& args,
                                                   torch::Device device, DataShard shard = {}) const {
    auto options = eval_loader_options(args, device);
    options.shard = shard;
    if (args.train_sampling_strategy == SamplingStrategy::group_by_length) {
      // transformers 5.x evaluates in a length-grouped order too, from a generator of its own.
      options.group_lengths =
          std::make_shared<const std::vector<std::int64_t>>(dataset_lengths(dataset, args.length_column_name));
      options.length_group_batch_size = args.per_device_eval_batch_size;
      options.length_group_after_loader_seed = false;
      options.seed = args.effective_data_seed();
    }
    return DataLoader<D, Collate>(dataset, options, collate);
  }
  template <Dataset D>
  [[nodiscard]] DataLoader<D, Collate> test_loader(const D& dataset, const TrainingArguments& args,
                                                   torch::Device device, DataShard shard = {}) const {
    return eval_loader(dataset, args, device, shard);
  }
};

/// The default DataLoaderPolicy: HF's get_train/eval/test_dataloader with the default collate.
using DefaultDataLoader = CollatingDataLoader<>;

// The loader of a TensorDataset with the default collate is the one most Trainers use and depends on
// no user type: a program linking trainpp::compiled takes it from there instead of compiling it again.
#if !TRAINPP_DEFINITIONS
namespace detail {
extern template struct LoaderCore<TensorDataset, DefaultCollate>;
}  // namespace detail
extern template class DataLoader<TensorDataset, DefaultCollate>;
extern template std::vector<std::int64_t> dataset_lengths<TensorDataset>(const TensorDataset&, std::string_view,
                                                                         std::string_view);
#endif

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE void single_threaded_ops_on_this_thread() {
  (void)at::get_num_threads();  // ATen's lazy per-thread initialization first, or it would undo ours
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) set(1);
}

}  // namespace detail

TRAINPP_INLINE DataLoaderOptions train_loader_options(const TrainingArguments& args, torch::Device device) {
  DataLoaderOptions o;
  o.batch_size = args.per_device_train_batch_size;
  o.shuffle = args.train_sampling_strategy == SamplingStrategy::random;
  o.drop_last = args.dataloader_drop_last;
  o.num_workers = args.dataloader_num_workers;
  o.prefetch_factor = args.dataloader_prefetch_factor.value_or(2);
  o.seed = args.effective_data_seed();
  o.pin_memory = args.dataloader_pin_memory && device.is_cuda();
  o.device = device;
  // group_by_length groups by the batches of one optimizer step, and its order comes from torch's global
  // generator, which the Trainer seeds with `seed` (data_seed only seeds accelerate's random sampler).
  o.length_group_batch_size = args.per_device_train_batch_size * args.gradient_accumulation_steps;
  if (args.train_sampling_strategy == SamplingStrategy::group_by_length) o.seed = args.seed;
  return o;
}

TRAINPP_INLINE DataLoaderOptions eval_loader_options(const TrainingArguments& args, torch::Device device) {
  DataLoaderOptions o = train_loader_options(args, device);
  o.batch_size = args.per_device_eval_batch_size;
  o.shuffle = false;
  // Under data parallelism each process evaluates only real examples: no collective runs per batch,
  // and a padded batch's mean loss would count repeated examples (HF's eval_loss does; this does not).
  o.even_batches = false;
  return o;
}

#if defined(TRAINPP_COMPILED_LIB)
namespace detail {
template struct LoaderCore<TensorDataset, DefaultCollate>;
}  // namespace detail
template class DataLoader<TensorDataset, DefaultCollate>;
template std::vector<std::int64_t> dataset_lengths<TensorDataset>(const TensorDataset&, std::string_view,
                                                                  std::string_view);
#endif

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
