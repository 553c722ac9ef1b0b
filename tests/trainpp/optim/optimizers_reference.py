"""The reference runs for tests/trainpp/optim/optimizers_test.cpp: the optimizers `--optim` names, built
as HF's Trainer builds them (Trainer.get_optimizer_cls_and_kwargs on a real TrainingArguments), stepped
on fixed parameters and gradients, and the parameters they end with.

    optimizers_reference.py <out.safetensors> <configs.json>

configs.json: a list of {"name", "optim", "optim_args" (or null), "learning_rate", "weight_decay",
"adam_beta1", "adam_beta2"}. Written: "init.<param>", "grad.<step>.<param>" (absent where the step
gives that parameter no gradient: the optimizer must skip it), and "final.<config>.<param>".

Where HF cannot build the optimizer here: lion_32bit is bitsandbytes' Lion in HF (a CUDA library); the
reference is the lion-pytorch package, the same update, with HF's betas (adam_beta1, adam_beta2).
adafactor with optim_args: HF reads none for adafactor; trainpp passes them to transformers.Adafactor,
so the reference builds transformers.Adafactor with them.
"""

import json
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import Trainer, TrainingArguments
from transformers.optimization import Adafactor

STEPS = 6
# Parameters as a module names them: decay_param_groups puts "fc.weight" and "emb" in the decayed group
# and "fc.bias" in the other. emb is 3-D: Adafactor factors its last two dimensions.
SHAPES = {"fc.weight": (4, 3), "fc.bias": (4,), "emb": (2, 3, 5)}
NO_GRADIENT = {("fc.bias", 2), ("emb", 4)}  # (parameter, step): no gradient there


def parameters():
    g = torch.Generator().manual_seed(7)
    return {name: torch.randn(shape, generator=g, dtype=torch.float32) for name, shape in SHAPES.items()}


def gradients():
    g = torch.Generator().manual_seed(11)
    out = []
    for step in range(STEPS):
        grads = {}
        for name, shape in SHAPES.items():
            grad = torch.randn(shape, generator=g, dtype=torch.float32) * (0.5 + step)
            if (name, step) not in NO_GRADIENT:
                grads[name] = grad
        out.append(grads)
    return out


def optim_args_dict(text):
    if not text:
        return {}
    return dict(entry.split("=") for entry in text.replace(" ", "").split(","))


def truthy(value):
    return value.lower() in ("true", "1", "yes")


def build(config, params):
    groups = [{"params": [params["fc.weight"], params["emb"]], "weight_decay": config["weight_decay"]},
              {"params": [params["fc.bias"]], "weight_decay": 0.0}]
    lr = config["learning_rate"]
    if config["optim"] == "lion_32bit":
        from lion_pytorch import Lion
        return Lion(groups, lr=lr, betas=(config["adam_beta1"], config["adam_beta2"]))
    if config["optim"] == "adafactor" and config["optim_args"]:
        extra = optim_args_dict(config["optim_args"])
        kwargs = {"scale_parameter": False, "relative_step": False, "warmup_init": False}
        for key in ("scale_parameter", "relative_step", "warmup_init"):
            if key in extra:
                kwargs[key] = truthy(extra[key])
        for key in ("beta1", "clip_threshold", "decay_rate"):
            if key in extra:
                kwargs[key] = float(extra[key])
        return Adafactor(groups, lr=None if kwargs["relative_step"] else lr, **kwargs)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, optim=config["optim"], optim_args=config["optim_args"],
                                 learning_rate=lr, weight_decay=config["weight_decay"],
                                 adam_beta1=config["adam_beta1"], adam_beta2=config["adam_beta2"], report_to=[])
        cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    return cls(groups, **kwargs)


def main():
    out_path, configs_path = sys.argv[1], sys.argv[2]
    with open(configs_path) as f:
        configs = json.load(f)
    init = parameters()
    grads = gradients()
    tensors = {f"init.{name}": t.clone() for name, t in init.items()}
    for step, step_grads in enumerate(grads):
        for name, grad in step_grads.items():
            tensors[f"grad.{step}.{name}"] = grad.clone()
    for config in configs:
        params = {name: t.clone().requires_grad_(True) for name, t in init.items()}
        optimizer = build(config, params)
        for step_grads in grads:
            for name, p in params.items():
                p.grad = step_grads[name].clone() if name in step_grads else None
            optimizer.step()
        for name, p in params.items():
            tensors[f"final.{config['name']}.{name}"] = p.detach().clone()
    save_file(tensors, out_path)


if __name__ == "__main__":
    main()
