"""Evaluation: the mean loss (and, for classifiers, the accuracy) of a model over rows of a split, on every rank.

The rows are cut into chunks of `batch` in index order and the chunks dealt out to the ranks in
contiguous blocks; the per-chunk sums are gathered and added exactly (math.fsum), so the result
does not depend on how many ranks share the work.
"""

import math

import numpy as np

from mpigrad.autograd import no_grad
from mpigrad.runtime import progress


def count_correct(logits, targets):
    """Rows whose argmax over the last axis equals the integer target."""
    return int(np.count_nonzero(np.argmax(logits.data, axis=-1) == targets))


def evaluate(model, split, count, batch, comm, classifier):
    """{"loss": mean loss over rows 0..count-1, "accuracy": share whose argmax is the label (classifier),
    "samples": count}: every rank takes part and gets the same numbers."""
    chunks = np.array_split(np.arange(count), max(1, -(-count // batch))) if count else []
    mine = np.array_split(np.arange(len(chunks)), comm.size)[comm.rank] if chunks else []
    sums, correct = [], 0
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for c in mine:
                progress("evaluation")
                x, y = split.batch(chunks[c])
                logits = model(x)
                sums.append(model.loss(logits, y).item() * len(chunks[c]))
                correct += count_correct(logits, y) if classifier else 0
    finally:
        model.train(was_training)
    everyone = comm.allgather_obj((sums, correct))
    result = {"loss": math.fsum(s for rank_sums, _ in everyone for s in rank_sums) / count if count else math.nan,
              "samples": count}
    if classifier:
        result["accuracy"] = sum(c for _, c in everyone) / count if count else math.nan
    return result


def validation_metrics(model, val, cfg, comm):
    """The metrics row's val_loss (and val_accuracy for the mlp) over the first eval_samples validation rows."""
    result = evaluate(model, val, min(cfg.eval_samples, val.num_samples), cfg.micro_batch, comm, cfg.model == "mlp")
    row = {"val_loss": result["loss"]}
    if "accuracy" in result:
        row["val_accuracy"] = result["accuracy"]
    return row


def eval_split(cfg, model, data_path=None, labels_path=None, run=None):
    """(split, description): the run's validation split, or every row (window) of data_path. With `run`, the
    run's own data must match the fingerprint recorded in its config.toml."""
    from .config import ConfigError
    from .data import ArrayData, TokenWindows, load_arrays, load_data, read_text
    from .fingerprint import load_run_data

    def run_data():
        return load_run_data(cfg, run) if run is not None else load_data(cfg)

    if data_path is None:
        if labels_path:
            raise ConfigError("--labels needs --data")
        val = run_data().val
        if val.num_samples == 0:
            raise ConfigError(f"the run's data {cfg.data} has no validation split (val_fraction = 0); pass --data FILE")
        return val, f"the validation split of {cfg.data}"
    if cfg.model == "transformer":
        if labels_path:
            raise ConfigError("--labels is for the mlp model; the language model's targets are the text itself")
        try:
            ids = run_data().encode(read_text(data_path))  # the vocabulary the model was trained with
        except ValueError:
            raise ConfigError(f"data file {data_path}: has characters outside the model's vocabulary") from None
        windows = TokenWindows(ids, cfg.context)
        if windows.num_samples == 0:
            raise ConfigError(f"data file {data_path}: fewer than context + 1 = {cfg.context + 1} characters")
        return windows, data_path
    data = ArrayData(*load_arrays(data_path, labels_path or ""), data_path, 0.0, np.dtype(cfg.dtype), classes=None)
    features, classes = model.parameters()[0].shape[1], model.parameters()[-1].shape[0]
    if data.features != features or data.classes > classes:
        raise ConfigError(f"data file {data_path}: {data.features} features and labels up to {data.classes - 1}, "
                          f"but the model takes {features} features and {classes} classes")
    return data.train, data_path


def eval_command(run, data_path=None, labels_path=None):
    """`mpigrad eval RUN`: rank 0 prints loss (and accuracy) of the run's parameters; 0 done, 2 bad input."""
    import sys
    from mpigrad.runtime import init
    from .config import ConfigError
    from .fingerprint import file_fingerprint
    from .job import vote
    from .run import load_run_from
    comm = init()

    def prepare():
        model, cfg, source = load_run_from(run)
        split, described = eval_split(cfg, model, data_path, labels_path, run)
        return model, cfg, source, split, described, [file_fingerprint(p) if p else None for p in files]

    files = [data_path, labels_path]
    try:  # one vote: a rank that cannot read its files ends every rank, naming itself, instead of a hang
        model, cfg, source, split, described, prints = vote(comm, prepare)
        same_files_everywhere(comm, files, prints)
    except ConfigError as e:
        if comm.is_main:
            print(f"mpigrad eval: error: {e}", file=sys.stderr, flush=True)
        return 2
    result = evaluate(model, split, split.num_samples, cfg.micro_batch, comm, cfg.model == "mlp")
    if comm.is_main:
        accuracy = f" accuracy {result['accuracy']:.4f}" if "accuracy" in result else ""
        print(f"loss {result['loss']:.6f}{accuracy} on {result['samples']} samples of {described} "
              f"(parameters: {source})", flush=True)
    return 0


def same_files_everywhere(comm, paths, mine):
    """Refuse files whose contents differ between ranks (node-local copies): each rank would score other rows."""
    from .config import ConfigError
    everyone = comm.allgather_obj([(f["bytes"], f["sha256"]) if f else None for f in mine])
    for rank, theirs in enumerate(everyone):
        for path, a, b in zip(paths, everyone[0], theirs):
            if a != b:
                raise ConfigError(f"rank {rank} read {path} with other contents than rank 0 ({b[0]:,} bytes, SHA-256 "
                                  f"{b[1][:16]} against {a[0]:,} bytes, {a[1][:16]}): every rank needs the same data")
