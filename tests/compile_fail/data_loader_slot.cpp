// expect-error: the data_loader slot needs a member train_loader\(const Dataset&, const TrainingArguments&, torch::Device\) const
// A data loader policy without train_loader is rejected, naming the slot and the member.
#include "common.hpp"

struct Loader {
#ifndef TRAINPP_COMPILE_FAIL
  template <class D> auto train_loader(const D& d, const trainpp::TrainingArguments& a, torch::Device dev) const {
    return trainpp::DefaultDataLoader{}.train_loader(d, a, dev);
  }
#endif
  template <class D> auto eval_loader(const D& d, const trainpp::TrainingArguments& a, torch::Device dev) const {
    return trainpp::DefaultDataLoader{}.eval_loader(d, a, dev);
  }
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::data_loader = Loader{}, trainpp::train_dataset = cf::data()); }
