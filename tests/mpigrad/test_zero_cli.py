"""`zero = true` through the CLI: ZeRO-1 follows replicated Adam's trajectory (bit for bit at world
sizes 1-2, to float rounding beyond) and resumes bitwise, at world sizes 1-4 (subprocess mpiexec)."""

import json

import numpy as np
import pytest

from test_train_cli import final, train

SETS = ["deterministic=false", "steps=6", "checkpoint_every=3", "check_replicas_every=1", "digest_every=1",
        "weight_decay=0.01", "clip_norm=0.5"]


def digests(out):
    return [json.loads(line)["digest"] for line in open(out / "metrics.jsonl")]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_zero_equals_replicated_and_resumes_bitwise(tmp_path, world):
    runs = {}
    for name, zero in (("replicated", "false"), ("zero", "true")):
        code, _, err, _ = train(world, tmp_path / name, f"zero={zero}", *SETS, timeout=240)
        assert code == 0, err
        runs[name] = final(tmp_path / name)
    differences = {k: float(np.max(np.abs(runs["replicated"][k] - v))) for k, v in runs["zero"].items()}
    if world <= 2:  # one sum of at most two terms per element: every reduction algorithm gives the same bits
        assert max(differences.values()) == 0.0, differences
    else:  # reduce-scatter may add the ranks' terms in another order than the all-reduce: float32 rounding
        assert all(np.allclose(runs["replicated"][k], v, rtol=1e-5, atol=1e-6) for k, v in runs["zero"].items()), \
            differences
    zero = tmp_path / "zero"
    for row in map(json.loads, open(zero / "metrics.jsonl")):  # ZeRO's reduce-scatter is the communication wait
        phases = [row["forward_time"], row["backward_time"], row["comm_time"], row["optimizer_time"]]
        assert min(phases) >= 0 and sum(phases) <= row["step_time"], row
    straight = digests(zero)
    (zero / "checkpoints" / "step-00000006.ckpt").unlink()
    code, _, err, _ = train(world, zero, "zero=true", *SETS, "resume=true", timeout=240)
    assert code == 0, err
    assert all(np.array_equal(runs["zero"][k], v) for k, v in final(zero).items())
    assert digests(zero) == straight  # optimizer state included


def test_zero_with_deterministic_is_refused(tmp_path):
    code, _, err, _ = train(1, tmp_path / "run", "zero=true", "deterministic=true", timeout=60)
    assert code == 2 and "zero = true cannot be combined with deterministic = true" in err, err


def test_switching_zero_on_resume_is_refused(tmp_path):
    code, _, err, _ = train(2, tmp_path / "run", "zero=false", *SETS, timeout=120)
    assert code == 0, err
    code, _, err, _ = train(2, tmp_path / "run", "zero=true", *SETS, "resume=true", timeout=60)
    assert code == 2 and "config key 'zero' is True but the checkpoint was trained with False" in err, err
