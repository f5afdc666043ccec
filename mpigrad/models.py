"""The built-in models: a character-level transformer language model and an MLP classifier."""

import os

import numpy as np

from mpigrad.autograd import cross_entropy, nn, no_grad, softmax
from mpigrad.runtime import progress


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model, num_heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiHeadAttention(d_model, num_heads, causal=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.MLP([d_model, 4 * d_model, d_model], activation="gelu")

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """Token + position embeddings, num_layers blocks, final LayerNorm, linear head to the vocabulary."""

    def __init__(self, vocab_size, context, d_model, num_heads, num_layers):
        super().__init__()
        self.context = context
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, num_heads) for _ in range(num_layers)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        """ids (batch, time) int -> logits (batch, time, vocab)."""
        x = self.token(ids) + self.position(np.arange(ids.shape[1]))
        return self.head(self.ln(self.blocks(x)))

    def loss(self, logits, targets):
        return cross_entropy(logits, targets)

    def generate(self, prompt_ids, count, rng, temperature=0.8, stop=None):
        """Sample `count` ids after prompt_ids, each from softmax(logits / temperature) of the last position
        (fewer once stop() is true)."""
        ids = list(prompt_ids)
        with no_grad():
            for _ in range(count):
                if stop is not None and stop():
                    break
                progress("sampling")  # each character is progress for the step_timeout watchdog
                window = np.array(ids[-self.context:], dtype=np.int32)[None, :]
                logits = self(window).data[0, -1].astype(np.float64) / temperature
                p = softmax(logits).data
                ids.append(int(rng.choice(len(p), p=p / p.sum())))
        return ids[len(prompt_ids):]


class Classifier(nn.Module):
    """An MLP from features through the hidden widths to class logits."""

    def __init__(self, features, hidden, classes, activation):
        super().__init__()
        self.mlp = nn.MLP([features, *hidden, classes], activation=activation)

    def forward(self, x):
        return self.mlp(x)

    def loss(self, logits, targets):
        return cross_entropy(logits, targets)


def build_model(cfg, data):
    """The model the config names, initialised from the seed alone (every rank builds the same one)."""
    check_fits(cfg, data)
    np.random.seed(cfg.seed % 2**32)  # layers draw their initial weights from numpy's global generator
    if cfg.model == "transformer":
        model = CharTransformer(len(data.vocab), cfg.context, cfg.d_model, cfg.num_heads, cfg.num_layers)
    else:
        model = Classifier(data.features, cfg.hidden, data.classes, cfg.activation)
    return model.to(np.dtype(cfg.dtype))


def parameter_count(cfg, data):
    """The model's parameter count, from the config and the data's shapes alone (nothing allocated)."""
    if cfg.model == "transformer":
        vocab, d = len(data.vocab), cfg.d_model
        block = 12 * d * d + 13 * d  # two LayerNorms, q k v out projections, the 4x MLP
        return vocab * d + cfg.context * d + cfg.num_layers * block + 2 * d + d * vocab + vocab
    sizes = [data.features, *cfg.hidden, data.classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def check_fits(cfg, data):
    """Refuse, in one line, a model whose parameters, gradients and Adam moments exceed this machine's memory."""
    count = parameter_count(cfg, data)
    needed = 4 * count * np.dtype(cfg.dtype).itemsize
    available = memory_bytes()
    if needed > available:
        from .config import ConfigError
        raise ConfigError(f"the {cfg.model} model would have {count:,} parameters: about {needed / 1e9:,.1f} GB per "
                          f"rank for parameters, gradients and Adam state ({cfg.dtype}), more than this machine's "
                          f"{available / 1e9:.1f} GB of memory")


def memory_bytes():
    """Physical memory, or the cgroup's limit when that is lower (a container)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        return min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        return total
