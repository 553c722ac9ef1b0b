// Uses trainpp through its umbrella header, built as a subdirectory of this project.
#include <trainpp/trainpp.hpp>

int main() {
  trainpp::TrainingArguments args;
  args.output_dir = "consumer_output";
  args.finalize();
  trainpp::Error error = trainpp::error("{} is {}", "answer", 42);
  if (std::string(error.what()) != "answer is 42") return 1;
  fmt::print("trainpp consumer ok: {}\n", error.what());
  return 0;
}
