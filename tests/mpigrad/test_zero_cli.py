"""`zero = true` through the CLI: ZeRO-1 gives replicated Adam's trajectory bit for bit and resumes
bitwise, at world sizes 1-4, in default and deterministic mode (subprocess mpiexec)."""

import json

import numpy as np
import pytest

from test_train_cli import copy_run, final, train_at

SETS = ["deterministic=false", "steps=6", "checkpoint_every=3", "check_replicas_every=1", "digest_every=1",
        "weight_decay=0.01", "clip_norm=0.5"]


@pytest.fixture(scope="module")
def world_2(tmp_path_factory):
    """SETS at world 2, replicated and ZeRO: copied by the tests that resume them."""
    root = tmp_path_factory.mktemp("zero-2")
    for zero in ("false", "true"):
        code, err = train_at(2, root / f"zero={zero}", f"zero={zero}", *SETS, timeout=240)
        assert code == 0, err
    return root


def digests(out):
    return [json.loads(line)["digest"] for line in open(out / "metrics.jsonl")]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_zero_equals_replicated_and_resumes_bitwise(tmp_path, world, request):
    runs = {}
    for name, zero in (("replicated", "false"), ("zero", "true")):
        if world == 2:  # the runs the switch tests below resume too
            copy_run(request.getfixturevalue("world_2") / f"zero={zero}", tmp_path / name)
        else:
            code, err = train_at(world, tmp_path / name, f"zero={zero}", *SETS, timeout=240)
            assert code == 0, err
        runs[name] = final(tmp_path / name)
    differences = {k: float(np.max(np.abs(runs["replicated"][k] - v))) for k, v in runs["zero"].items()}
    assert max(differences.values()) == 0.0, differences  # the same averaged gradients, an element-wise step
    zero = tmp_path / "zero"
    for row in map(json.loads, open(zero / "metrics.jsonl")):  # ZeRO's reduce-scatter is the communication wait
        phases = [row["forward_time"], row["backward_time"], row["comm_time"], row["optimizer_time"]]
        assert min(phases) >= 0 and sum(phases) <= row["step_time"], row
    straight = digests(zero)
    (zero / "checkpoints" / "step-00000006.ckpt").unlink()
    code, err = train_at(world, zero, "zero=true", *SETS, "resume=true", timeout=240)
    assert code == 0, err
    assert all(np.array_equal(runs["zero"][k], v) for k, v in final(zero).items())
    assert digests(zero) == straight  # optimizer state included


def test_zero_in_deterministic_mode_gives_one_process_bits_at_every_world_size(tmp_path):
    sets = ["deterministic=true", "steps=6", "checkpoint_every=3", "weight_decay=0.01", "clip_norm=0.5"]
    code, err = train_at(1, tmp_path / "reference", "zero=false", *sets)
    assert code == 0, err
    reference = final(tmp_path / "reference")
    for world in (1, 2, 4):
        code, err = train_at(world, tmp_path / f"zero{world}", "zero=true", *sets, timeout=240)
        assert code == 0, err
        assert all(np.array_equal(reference[k], v) for k, v in final(tmp_path / f"zero{world}").items()), world


@pytest.mark.parametrize("first, then", [("false", "true"), ("true", "false")])
def test_a_run_may_switch_zero_on_resume(tmp_path, world_2, first, then):
    """Checkpoints hold the replicated optimizer state in both modes, so either mode resumes either."""
    run = copy_run(world_2 / f"zero={first}", tmp_path / "run")
    straight = final(run)
    (run / "checkpoints" / "step-00000006.ckpt").unlink()
    code, err = train_at(2, run, f"zero={then}", *SETS, "resume=true", timeout=120)
    assert code == 0, err
    assert all(np.array_equal(straight[k], v) for k, v in final(run).items())
