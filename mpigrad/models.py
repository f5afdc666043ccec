"""The built-in models: a character-level transformer language model and an MLP classifier."""

import numpy as np

from mpigrad.autograd import cross_entropy, manual_seed, nn, no_grad, softmax
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

    def generate(self, prompt_ids, count, rng, temperature=0.8):
        """Sample `count` ids after prompt_ids, each from softmax(logits / temperature) of the last position."""
        ids = list(prompt_ids)
        with no_grad():
            for _ in range(count):
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
    manual_seed(cfg.seed % 2**32)  # layers built without rng draw their initial weights from it
    if cfg.model == "transformer":
        model = CharTransformer(len(data.vocab), cfg.context, cfg.d_model, cfg.num_heads, cfg.num_layers)
    else:
        model = Classifier(data.features, cfg.hidden, data.classes, cfg.activation)
    return model.to(np.dtype(cfg.dtype))
