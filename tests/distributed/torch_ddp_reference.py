"""The torch side of check_torch_ddp.py: ddp_worker's training, written with torch's own
DistributedDataParallel over gloo, to run under torchrun.

The same model (ddp_worker's MLP, rebuilt with the same parameter names and registration order), the
same initial weights (the safetensors file ddp_worker wrote), the same data (make_data: a CPU generator
seeded 1) in the same order (HF's: torch.randperm seeded data_seed + epoch, cut into per-device
batches, process r taking batches r, r + N, ...: accelerate's BatchSamplerShard), and HF Trainer's
step: each micro-batch's loss divided by its window's size (the last window of an epoch is shorter),
no_sync on all but a window's last micro-batch, clip_grad_norm_ to max_grad_norm, fused AdamW over
HF's two parameter groups, the linear schedule. Rank 0 writes what was logged per step, as HF logs
it (the loss gathered and averaged over the processes), and the final weights.

  torchrun --nproc_per_node N torch_ddp_reference.py INITIAL.safetensors OUT_DIR ROWS BATCH ACCUMULATION
           MAX_STEPS LEARNING_RATE WEIGHT_DECAY MAX_GRAD_NORM
"""

import json
import os
import pathlib
import sys

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer, get_linear_schedule_with_warmup


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.scale = nn.Parameter(torch.ones(32))

    def forward(self, x):
        return x + self.scale * torch.relu(self.fc(x))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.fc2 = nn.Linear(32, 4)
        self.unused = nn.Linear(2, 2)  # no forward uses it: find_unused_parameters

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        for block in self.blocks:
            h = block(h)
        return self.fc2(h)


def make_data(rows, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 16, generator=g)
    w = torch.randn(16, 4, generator=g)
    y = (x.matmul(w) + 0.5 * torch.randn(rows, 4, generator=g)).argmax(1)
    return x, y


def main():
    initial, out = sys.argv[1], pathlib.Path(sys.argv[2])
    rows, batch, accumulation, max_steps = (int(a) for a in sys.argv[3:7])
    lr, weight_decay, max_grad_norm = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)

    model = MLP()
    model.load_state_dict(load_file(initial))
    # HF's default for a model that is not a PreTrainedModel: find_unused_parameters=True.
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, max_steps)

    x, y = make_data(rows, 1)
    # Every process gets the same number of batches here (the rows are chosen so): no padding round.
    assert rows % (batch * world) == 0, "choose rows divisible by batch × processes"
    log, step = [], 0
    epoch = 0
    while step < max_steps:
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(0 + epoch))
        batches = [order[i:i + batch] for i in range(0, rows, batch)][rank::world]
        windows = [batches[i:i + accumulation] for i in range(0, len(batches), accumulation)]
        for window in windows:
            tr_loss = torch.zeros(())
            for i, positions in enumerate(window):
                last = i == len(window) - 1
                with (torch.enable_grad() if last else ddp.no_sync()):
                    loss = nn.functional.cross_entropy(ddp(x[positions]), y[positions])
                    if len(window) > 1:
                        loss = loss / len(window)
                    loss.backward()
                tr_loss += loss.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            learning_rate = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # HF's logging: the step's loss gathered from every process, averaged.
            gathered = [torch.zeros(()) for _ in range(world)]
            dist.all_gather(gathered, tr_loss)
            log.append({"step": step, "loss": torch.stack(gathered).mean().item(),
                        "grad_norm": grad_norm.item(), "learning_rate": learning_rate})
            if step == max_steps:
                break
        epoch += 1

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "log.json").write_text(json.dumps(log, indent=1))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    # Every rank leaves once rank 0 has written, without running destructors: torch 2.13 can deadlock
    # tearing down ProcessGroupGloo at exit (the main thread joins Gloo's worker while holding the GIL,
    # and the worker needs the GIL to free the last collective's tensors).
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
