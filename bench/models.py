"""The benchmark's three PyTorch models, defined once for every Python contestant and for the inputs.

bench/README.md specifies them; the C++ contestants rebuild the same architectures with the same
parameter names, and everyone loads the initial weights that bench/make_inputs.py writes from these
classes. Not a script: import it (`from models import build_model`).

Each forward takes the batch keys the datasets yield, `x` and `labels`, so transformers' Trainer can
call `model(**batch)`: with labels it returns `(loss, logits)`, without `(logits,)`.
"""

import torch
from torch import nn
from torch.nn import functional as F

WORKLOADS = ("mlp", "cnn", "encoder")


def _with_loss(logits, labels):
    if labels is None:
        return (logits,)
    return (F.cross_entropy(logits, labels), logits)


class MLP(nn.Module):
    """fc1 Linear(64, 256) -> ReLU -> fc2 Linear(256, 256) -> ReLU -> fc3 Linear(256, 10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x, labels=None):
        hidden = F.relu(self.fc1(x))
        hidden = F.relu(self.fc2(hidden))
        return _with_loss(self.fc3(hidden), labels)


class CNN(nn.Module):
    """The Fashion-MNIST example's network without its dropout, so that losses are comparable."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.norm1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.norm2 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x, labels=None):
        hidden = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)
        hidden = F.max_pool2d(F.relu(self.norm2(self.conv2(hidden))), 2)
        hidden = F.relu(self.fc1(hidden.flatten(1)))
        return _with_loss(self.fc2(hidden), labels)


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block: x + proj(attention(ln1(x))), then x + fc2(gelu(fc1(ln2(x))))."""

    def __init__(self, width, heads, mlp_width):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_width)
        self.fc2 = nn.Linear(mlp_width, width)

    def forward(self, x):
        batch, seq, width = x.shape
        head_dim = width // self.heads
        # qkv's output is [q | k | v] along the last dimension; each becomes [B, heads, S, head_dim].
        q, k, v = self.qkv(self.ln1(x)).split(width, dim=-1)
        q, k, v = (t.reshape(batch, seq, self.heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v)  # not causal: the encoder sees all tokens
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, width))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))  # exact (erf) GELU, F.gelu's default


class Encoder(nn.Module):
    """Token + learned position embeddings, 2 pre-LN blocks, final LayerNorm, mean pool, 2-way head."""

    def __init__(self, vocab=1024, seq_len=64, width=128, heads=4, layers=2, mlp_width=512, classes=2):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Parameter(torch.randn(seq_len, width) * 0.02)
        self.layers = nn.ModuleList(EncoderBlock(width, heads, mlp_width) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x, labels=None):
        hidden = self.tok_emb(x) + self.pos_emb
        for layer in self.layers:
            hidden = layer(hidden)
        pooled = self.ln_f(hidden).mean(dim=1)
        return _with_loss(self.head(pooled), labels)


def build_model(workload):
    """A fresh model for `workload` (its weights are whatever the global RNG gives)."""
    models = {"mlp": MLP, "cnn": CNN, "encoder": Encoder}
    if workload not in models:
        raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")
    return models[workload]()
