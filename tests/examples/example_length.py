"""The simplest example is no longer than the same program written with HF's Trainer.

examples/weighted_loss (main.cpp and weighted_loss.hpp: the seed's CustomTrainer, the model, the data,
the arguments' defaults, train / save / evaluate / metrics) against examples/weighted_loss/hf_trainer.py,
the same program in Python. Lines of code only: blank lines and comment lines are not counted.

  example_length.py <examples dir>
"""

import pathlib
import sys


def code_lines(path, comment):
    return [line for line in path.read_text().splitlines() if line.strip() and not line.strip().startswith(comment)]


def main():
    example = pathlib.Path(sys.argv[1]) / "weighted_loss"
    cpp = code_lines(example / "main.cpp", "//") + code_lines(example / "weighted_loss.hpp", "//")
    python = code_lines(example / "hf_trainer.py", "#")
    print(f"trainpp: {len(cpp)} lines of code; HF's Trainer: {len(python)}")
    if len(cpp) > len(python):
        sys.exit(f"the trainpp example ({len(cpp)} lines) is longer than the HF program ({len(python)} lines)")


if __name__ == "__main__":
    main()
