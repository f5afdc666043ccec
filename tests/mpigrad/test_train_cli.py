"""`mpigrad train` end to end at world sizes 1 and 2 on a tiny config (mpiexec in subprocesses)."""

import contextlib
import io
import json
import shutil
import signal

import numpy as np
import pytest

from launch import run_mpi
from mpigrad.cli import main
from mpigrad.runtime import watchdog

TINY = ["steps=6", "global_batch=8", "micro_batch=2", "context=16", "d_model=16", "num_heads=2",
        "num_layers=1", "eval_every=3", "eval_samples=16", "checkpoint_every=3", "sample_chars=20",
        "log_every=1", "warmup_steps=2", "deterministic=true"]
TRANSFORMER_KEYS = ("context", "d_model", "num_heads", "num_layers", "sample_chars")


def train_args(out, extra):
    """The `mpigrad train` arguments for TINY + extra; an extra starting with -- is a flag, anything else a --set item."""
    flags = [item for item in extra if item.startswith("--")]
    base = TINY if not any(item.startswith("model=") and "mlp" in item for item in extra) else \
        [item for item in TINY if item.split("=")[0] not in TRANSFORMER_KEYS]
    sets = [a for item in [*base, *extra] if not item.startswith("--") for a in ("--set", item)]
    return ["train", "--out", str(out), "--quiet", *flags, *sets]


def train(n, out, *extra, timeout=180):
    """`mpiexec -n n mpigrad train` on TINY + extra: (returncode, stdout, stderr, seconds)."""
    return run_mpi(n, ["-m", "mpigrad", *train_args(out, extra)], timeout=timeout)


def main_here(argv):
    """`mpigrad ARGV` in this process at world 1, for application logic that needs no second rank
    (no process start-up): (code, stdout, stderr). Leaves no watchdog or signal handler behind."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out_text, err_text = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out_text), contextlib.redirect_stderr(err_text):
            code = main(argv)
    finally:
        watchdog.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return code, out_text.getvalue(), err_text.getvalue()


def train_here(out, *extra):
    """`mpigrad train` on TINY + extra in this process at world 1: (code, stdout, stderr)."""
    return main_here(train_args(out, extra))


def train_at(world, out, *extra, timeout=180):
    """(code, stderr) of the TINY job + extra at `world` ranks: world 1 in this process, others launched."""
    return train_here(out, *extra)[::2] if world == 1 else train(world, out, *extra, timeout=timeout)[::2]


def copy_run(run, to):
    """A private copy of a shared run's directory, for a test that changes it."""
    shutil.copytree(run, to)
    return to


def final(out):
    with np.load(out / "final.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("world", [1, 2])
def test_train_writes_metrics_final_and_checkpoints(tmp_path, world, request):
    if world == 1:
        code, _, err, _ = train(world, tmp_path / "run")
        assert code == 0, err
    else:
        copy_run(request.getfixturevalue("tiny_run_2"), tmp_path / "run")
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "lr", "grad_norm", "grad_norm_clipped", "step_time", "comm_time", "samples_per_s",
                "time", "elapsed"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert all(a["elapsed"] < b["elapsed"] and a["time"] < b["time"] for a, b in zip(rows, rows[1:]))
    written = (tmp_path / "run" / "metrics.jsonl").stat().st_mtime  # wall-clock time of the run (copies keep it)
    assert abs(rows[-1]["time"] - written) < 60
    for r in rows:  # the phases are disjoint parts of the step
        phases = [r["forward_time"], r["backward_time"], r["comm_time"], r["optimizer_time"]]
        assert min(phases) >= 0 and r["forward_time"] > 0 and sum(phases) <= r["step_time"], r
    assert all(r["world_size"] == world for r in rows)
    assert "val_loss" in rows[2] and "val_loss" in rows[5] and "val_loss" not in rows[0]
    params = final(tmp_path / "run")
    assert "token.weight" in params and "head.bias" in params and len(params) > 6
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step-00000003.ckpt", "step-00000006.ckpt"]
    assert "sample_chars" in (tmp_path / "run" / "config.toml").read_text()


def test_resume_continues_bitwise(tmp_path, tiny_run_2):
    copy_run(tiny_run_2, tmp_path / "run")
    straight = final(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "step-00000006.ckpt").unlink()
    (tmp_path / "run" / "final.npz").unlink()
    code, _, err, _ = train(2, tmp_path / "run", "resume=true")
    assert code == 0, err
    resumed = final(tmp_path / "run")
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    rows = [json.loads(line)["step"] for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert rows == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("setting, message", [
    ("stepz=5", "unknown config key 'stepz' (did you mean 'steps'?)"),
    ("lr=-1", "config key 'lr' must be > 0.0, got -1"),
    ("micro_batch=3", "global_batch=8 is not divisible by micro_batch=3"),
    ("deterministic=maybe", "config key 'deterministic' must be true or false"),
])
def test_bad_config_is_one_line_on_every_launch(tmp_path, setting, message):
    code, out, err, seconds = train(2, tmp_path / "bad", setting, timeout=60)
    assert code == 2
    assert message in err and err.count("mpigrad train: error:") == 1, err
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()


def test_resume_without_checkpoint_is_refused(tmp_path):
    code, _, err = train_here(tmp_path / "empty", "resume=true")
    assert code == 2 and "holds no checkpoint" in err
    assert not (tmp_path / "empty").exists()  # nothing made for a run that cannot start


def test_fresh_run_into_a_used_directory_is_refused_unless_overwrite(tmp_path):
    code, _, err = train_here(tmp_path / "run", "steps=9")
    assert code == 0, err
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    code, _, err = train_here(tmp_path / "run")
    assert code == 2 and err.count("\n") == 1, err
    assert f"--out {tmp_path / 'run'} already holds a run" in err and "--overwrite" in err, err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    code, _, err = train_here(tmp_path / "run", "--overwrite", "resume=true")
    assert code == 2 and "--overwrite starts a new run in place of the old one" in err, err
    code, _, err = train_here(tmp_path / "run", "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step-00000003.ckpt", "step-00000006.ckpt"]
    assert [json.loads(line)["step"] for line in open(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_resume_drops_a_partial_last_metrics_line(tmp_path, tiny_run_2):
    copy_run(tiny_run_2, tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "step-00000006.ckpt").unlink()
    metrics = tmp_path / "run" / "metrics.jsonl"
    text = metrics.read_text()
    metrics.write_text(text[:text.rindex("{") + 20])  # the write of row 6 was cut mid-line
    code, _, err, _ = train(2, tmp_path / "run", "resume=true")
    assert code == 0, err
    assert f"{metrics}: dropped a partial last line (20 bytes)" in err, err
    assert [json.loads(line)["step"] for line in open(metrics)] == [1, 2, 3, 4, 5, 6]


def test_resume_dir_takes_the_runs_config_and_only_safe_settings(tmp_path, tiny_run_2):
    run = copy_run(tiny_run_2, tmp_path / "run")
    straight = final(run)
    (run / "checkpoints" / "step-00000006.ckpt").unlink()
    (run / "final.npz").unlink()
    resume = ["-m", "mpigrad", "train", "--resume", str(run)]
    elapsed = [json.loads(line)["elapsed"] for line in open(run / "metrics.jsonl")]
    code, out, err, _ = run_mpi(2, resume, timeout=180)
    assert code == 0, err
    assert f"resumed from step 3 of {run}/checkpoints/step-00000003.ckpt" in out, out
    assert "mpigrad: 3 steps in " in out and "median step" in out and "% of step time" in out, out
    again = [json.loads(line)["elapsed"] for line in open(run / "metrics.jsonl")]
    assert again[:3] == elapsed[:3] and again[3] > elapsed[2]  # the clock continues the run's own
    resumed = final(run)
    assert all(np.array_equal(straight[k], resumed[k]) for k in straight)
    code, _, err, _ = run_mpi(2, [*resume, "--quiet", "--set", "steps=8", "--set", "log_every=2"], timeout=180)
    assert code == 0, err
    assert [json.loads(line)["step"] for line in open(run / "metrics.jsonl")][-2:] == [6, 8]
    for bad in (["--set", "lr=0.1"], ["--set", "resume=false"]):  # refusals: in this process, one rank is enough
        code, _, err = main_here(["train", "--resume", str(run), *bad])
        key = bad[1].split("=")[0]
        assert code == 2 and f"--resume {run}: --set {key} would change the run's trajectory" in err, err
    code, _, err = main_here(["train", "--resume", str(run), "--out", str(tmp_path / "elsewhere")])
    assert code == 2 and f"--resume {run} continues in {run}; leave out --out" in err, err
    code, _, err = main_here(["train", "--resume", str(tmp_path)])
    assert code == 2 and f"--resume {tmp_path}: no config.toml" in err, err


def test_check_determinism_can_run_again_into_its_own_out(tmp_path):
    sets = [a for item in TINY if item != "deterministic=true" for a in ("--set", item)]
    for _ in range(2):
        code, out, err, _ = run_mpi(1, ["-m", "mpigrad", "check-determinism", "--worlds", "1", "--out",
                                        str(tmp_path), *sets], timeout=120)
        assert code == 0, out + err


def test_default_mode_at_a_world_size_that_does_not_divide_the_micro_batches(tmp_path):
    """4 micro-batches on 3 ranks (2, 1, 1): sample weighting gives one process's result to rounding."""
    runs = {}
    for world in (1, 3):
        code, err = train_at(world, tmp_path / f"w{world}", "deterministic=false", "dtype=\"float64\"",
                             "steps=4", "checkpoint_every=0", "check_replicas_every=1", timeout=240)
        assert code == 0, err
        runs[world] = final(tmp_path / f"w{world}")
        losses = [json.loads(line)["loss"] for line in open(tmp_path / f"w{world}" / "metrics.jsonl")]
        runs[world]["losses"] = np.array(losses)
    for key, value in runs[1].items():
        np.testing.assert_allclose(runs[3][key], value, rtol=1e-10, atol=1e-12, err_msg=key)
