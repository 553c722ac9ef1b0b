// Uses trainpp through its umbrella header, as an installed package, in compiled mode.
#include <trainpp/trainpp.hpp>

#include <fstream>

#if !defined(TRAINPP_COMPILED_LIB) || TRAINPP_DEFINITIONS
#error "trainpp::compiled should make the headers declare, not define, trainpp's compiled code"
#endif

int main() {
  trainpp::TrainingArguments args;
  args.output_dir = "consumer_output";
  args.max_steps = 10;
  args.finalize();
  const auto total = torch::ones({2, 3}).sum().item<double>();
  if (total != 6.0 || args.max_steps != 10) return 1;
  // Defined in the installed library only.
  std::ofstream("consumer_digest.txt") << "trainpp";
  if (trainpp::digest_file("consumer_digest.txt").size != 7) return 1;
  fmt::print("trainpp consumer ok: output_dir={}, max_steps={}, fmt {}\n", args.output_dir, args.max_steps,
             FMT_VERSION);
  return 0;
}
