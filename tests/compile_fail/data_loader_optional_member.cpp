// expect-error: the data_loader slot declares 'test_loader' but it cannot be called as test_loader\(const Dataset&, const TrainingArguments&, torch::Device\[, trainpp::DataShard\]\) const
// An optional data loader member with the wrong parameters is an error: predict() would silently use eval_loader.
#include "common.hpp"

struct Loader : trainpp::DefaultDataLoader {
#ifdef TRAINPP_COMPILE_FAIL
  template <class D> auto test_loader(const D& d, const trainpp::TrainingArguments& a) const {
    return trainpp::DefaultDataLoader::eval_loader(d, a, torch::Device(torch::kCPU));  // no device parameter
  }
#else
  template <class D> auto test_loader(const D& d, const trainpp::TrainingArguments& a, torch::Device dev) const {
    return trainpp::DefaultDataLoader::eval_loader(d, a, dev);
  }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::data_loader = Loader{}, trainpp::train_dataset = cf::data()); }
