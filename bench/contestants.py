"""The benchmark's Python contestants: a plain PyTorch eager loop and transformers' Trainer.

Both train the models of bench/models.py from the initial weights and data that
bench/make_inputs.py wrote, with the hyperparameters of bench/README.md, and print one JSON object
on the last line of stdout:

  .venv/bin/python bench/contestants.py --contestant python_loop|hf_trainer \\
      --workload mlp|cnn|encoder --init FILE --data FILE --batch_size B \\
      --mode steps --warmup W --steps N               -> {"steps_per_s": ..., "seconds": ...}
      --mode losses --steps 5                         -> {"losses": [l1, ..., l5]}
      --mode accuracy --target 0.90 --max_epochs 5    -> {"seconds": ..., "epochs": e, "accuracy": a}

Intra-op threads come from BENCH_THREADS (default: every core); there is one inter-op thread.

Batches: in `steps` and `losses` mode each epoch is the floor(N / B) full batches in row order, the
remainder dropped, so every contestant takes the same batches however far the run wraps around
(only cnn's 60000 rows are not a multiple of its batch 64: it trains on the first 59968). In
`accuracy` mode each epoch is all the training rows in order, the last partial batch kept, as
transformers' Trainer does by default.
"""

import os

import torch

# Before any other torch work: the inter-op pool can only be sized before it first runs.
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", os.cpu_count())))
torch.set_num_interop_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import WORKLOADS, build_model  # noqa: E402

LEARNING_RATE = 1e-3
BETAS = (0.9, 0.999)
EPSILON = 1e-8
WEIGHT_DECAY = 0.0
MAX_GRAD_NORM = 1.0
EVAL_BATCH = 1000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contestant", required=True, choices=("python_loop", "hf_trainer"))
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--init", required=True, help="initial weights (<workload>_init.safetensors)")
    parser.add_argument("--data", required=True, help="training data (<workload>_data.safetensors)")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--mode", default="steps", choices=("steps", "losses", "accuracy"))
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps before the timed ones")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (steps mode), losses to print (losses mode)")
    parser.add_argument("--target", type=float, default=0.90, help="test accuracy to stop at (accuracy mode)")
    parser.add_argument("--max_epochs", type=int, default=5, help="epochs at most (accuracy mode)")
    args = parser.parse_args()
    if args.batch_size <= 0 or args.steps <= 0 or args.warmup < 0 or args.max_epochs <= 0:
        parser.error("--batch_size, --steps and --max_epochs must be positive, --warmup non-negative")
    if args.mode == "accuracy" and args.workload != "cnn":
        parser.error("--mode accuracy needs the cnn workload (the only one with a test set)")
    return args


def load_model(workload, init_path):
    model = build_model(workload)
    model.load_state_dict(load_file(init_path), strict=True)
    model.train()
    return model


def load_data(args):
    """train_x, train_y (trimmed to whole batches unless accuracy mode), test_x, test_y (or None)."""
    data = load_file(args.data)
    train_x, train_y = data["train_x"], data["train_y"]
    if args.mode != "accuracy":
        whole = train_x.shape[0] // args.batch_size * args.batch_size
        if whole == 0:
            raise SystemExit(f"--batch_size {args.batch_size} exceeds the {train_x.shape[0]} training rows")
        train_x, train_y = train_x[:whole], train_y[:whole]
    return train_x, train_y, data.get("test_x"), data.get("test_y")


def test_accuracy(model, test_x, test_y):
    """Accuracy over the test set in eval mode (batch-norm running statistics); leaves the model training."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, test_x.shape[0], EVAL_BATCH):
            logits = model(test_x[start : start + EVAL_BATCH])[0]
            correct += (logits.argmax(dim=1) == test_y[start : start + EVAL_BATCH]).sum().item()
    model.train()
    return correct / test_x.shape[0]


# ---------------------------------------------------------------------------------------------------
# python_loop: the plain eager loop every PyTorch tutorial writes.


def run_python_loop(args):
    model = load_model(args.workload, args.init)
    train_x, train_y, test_x, test_y = load_data(args)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, betas=BETAS, eps=EPSILON,
                                  weight_decay=WEIGHT_DECAY, fused=True)
    batch = args.batch_size

    def train_step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = model(x, y)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        return loss

    if args.mode == "accuracy":
        rows = train_x.shape[0]
        start_time = time.perf_counter()
        accuracy, epochs = 0.0, 0
        for epochs in range(1, args.max_epochs + 1):
            for start in range(0, rows, batch):  # the last partial batch is kept
                train_step(train_x[start : start + batch], train_y[start : start + batch])
            accuracy = test_accuracy(model, test_x, test_y)
            if accuracy >= args.target:
                break
        return {"seconds": time.perf_counter() - start_time, "epochs": epochs, "accuracy": accuracy}

    batches_per_epoch = train_x.shape[0] // batch

    def step(index):
        start = (index % batches_per_epoch) * batch
        return train_step(train_x[start : start + batch], train_y[start : start + batch])

    if args.mode == "losses":
        return {"losses": [step(i).item() for i in range(args.steps)]}

    for i in range(args.warmup):
        step(i)
    # CPU eager ops run synchronously, so the last step's work is done when step() returns.
    start_time = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    seconds = time.perf_counter() - start_time
    return {"steps_per_s": args.steps / seconds, "seconds": seconds}


# ---------------------------------------------------------------------------------------------------
# hf_trainer: transformers' Trainer on the same nn.Module, its defaults for what is not set here.


def run_hf_trainer(args):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class RowDataset(torch.utils.data.Dataset):
        """One training row as the batch keys the models' forward takes."""

        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return self.x.shape[0]

        def __getitem__(self, index):
            return {"x": self.x[index], "labels": self.y[index]}

    class StepTimer(TrainerCallback):
        """Times the steps after `warmup`: each on_step_end comes after that step's optimizer step."""

        def __init__(self, warmup, last_step):
            self.warmup, self.last_step = warmup, last_step
            self.start = self.end = None

        def on_train_begin(self, args, state, control, **kwargs):
            if self.warmup == 0:
                self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.warmup:
                self.start = time.perf_counter()
            if state.global_step == self.last_step:
                self.end = time.perf_counter()

    class AccuracyStopper(TrainerCallback):
        """After each epoch, measures test accuracy and stops training once it reaches the target."""

        def __init__(self, model, test_x, test_y, target):
            self.model, self.test_x, self.test_y, self.target = model, test_x, test_y, target
            self.epochs, self.accuracy = 0, 0.0

        def on_epoch_end(self, args, state, control, **kwargs):
            self.epochs += 1
            self.accuracy = test_accuracy(self.model, self.test_x, self.test_y)
            if self.accuracy >= self.target:
                control.should_training_stop = True

    model = load_model(args.workload, args.init)
    train_x, train_y, test_x, test_y = load_data(args)
    common = dict(
        per_device_train_batch_size=args.batch_size,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        adam_beta1=BETAS[0],
        adam_beta2=BETAS[1],
        adam_epsilon=EPSILON,
        max_grad_norm=MAX_GRAD_NORM,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch_fused",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        train_sampling_strategy="sequential",
        # load_data already trimmed the rows to whole batches where that matters; accuracy mode
        # keeps the last partial batch, which is the Trainer's default.
        dataloader_drop_last=False,
    )

    with tempfile.TemporaryDirectory() as output_dir:
        if args.mode == "accuracy":
            training_args = TrainingArguments(output_dir=output_dir, num_train_epochs=args.max_epochs,
                                              logging_steps=10**9, **common)
            stopper = AccuracyStopper(model, test_x, test_y, args.target)
            trainer = Trainer(model=model, args=training_args, train_dataset=RowDataset(train_x, train_y),
                              callbacks=[stopper])
            start_time = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start_time
            return {"seconds": seconds, "epochs": stopper.epochs, "accuracy": stopper.accuracy}

        if args.mode == "losses":
            # With one step per logging interval the logged 'loss' is that step's loss.
            training_args = TrainingArguments(output_dir=output_dir, max_steps=args.steps, logging_steps=1,
                                              **common)
            trainer = Trainer(model=model, args=training_args, train_dataset=RowDataset(train_x, train_y))
            trainer.train()
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
            if len(losses) != args.steps:
                raise SystemExit(f"expected {args.steps} logged losses, found {len(losses)}")
            return {"losses": [float(loss) for loss in losses]}

        last_step = args.warmup + args.steps
        training_args = TrainingArguments(output_dir=output_dir, max_steps=last_step, logging_steps=10**9,
                                          **common)
        timer = StepTimer(args.warmup, last_step)
        trainer = Trainer(model=model, args=training_args, train_dataset=RowDataset(train_x, train_y),
                          callbacks=[timer])
        trainer.train()
        if timer.start is None or timer.end is None:
            raise SystemExit("the Trainer did not reach the timed steps")
        seconds = timer.end - timer.start
        return {"steps_per_s": args.steps / seconds, "seconds": seconds}


def main():
    args = parse_args()
    runners = {"python_loop": run_python_loop, "hf_trainer": run_hf_trainer}
    result = runners[args.contestant](args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
