"""`mpigrad sample RUN`: text from a trained language model, continuing a prompt."""

import sys

import numpy as np

from .config import ConfigError
from .run import load_run_from


def sample_text(run, prompt=None, chars=200, seed=None):
    """(prompt, generated text): `chars` characters sampled after `prompt` (default: the start of the
    validation text, as at the end of training) at temperature 0.8, seeded by the run's seed unless given."""
    from .fingerprint import load_run_data
    model, cfg, _ = load_run_from(run)
    if cfg.model != "transformer":
        raise ConfigError(f"{run} trained model '{cfg.model}'; sample needs the language model "
                          "(model = \"transformer\")")
    data = load_run_data(cfg, run)  # the vocabulary: the sorted characters of the training text
    if prompt is None:
        ids = data.val.ids[:cfg.context // 2] if data.val.num_samples else data.train.ids[:8]
    elif not prompt:
        raise ConfigError("--prompt must hold at least one character")
    else:
        unknown = sorted(set(prompt) - set(data.vocab))
        if unknown:
            raise ConfigError(f"--prompt has characters the model never saw: {''.join(unknown)!r}")
        ids = data.encode(prompt)
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    return data.decode(ids), data.decode(model.generate(ids, chars, rng))


def sample_command(run, prompt, chars, seed):
    for flag, value in (("--chars", chars), ("--seed", seed)):
        if value is not None and value < 0:
            print(f"mpigrad sample: error: {flag} {value}: must be >= 0", file=sys.stderr)
            return 2
    try:
        prompt, text = sample_text(run, prompt, chars, seed)
    except ConfigError as e:
        print(f"mpigrad sample: error: {e}", file=sys.stderr)
        return 2
    print(prompt + text)
    return 0
