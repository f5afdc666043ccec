"""Resume at another world size: deterministic runs continue bitwise (4 -> 2 -> 1); default runs train on."""

import json

import numpy as np

from mpigrad.diff import compare_runs
from test_train_cli import final, train, train_at, train_here

LEGS = ("decay_steps=6", "checkpoint_every=2", "keep_checkpoints=5", "digest_every=1", "sample_chars=0")


def test_deterministic_4_then_2_then_1_equals_one_uninterrupted_run(tmp_path):
    code, _, err = train_here(tmp_path / "straight", *LEGS)  # world 1 in this process
    assert code == 0, err
    for world, steps in ((4, 2), (2, 4), (1, 6)):  # each leg resumes the previous leg's last checkpoint
        resume = "resume=false" if world == 4 else "resume=true"
        code, err = train_at(world, tmp_path / "elastic", *LEGS, f"steps={steps}", resume)
        assert code == 0, f"world {world}: {err}"
    report = compare_runs(str(tmp_path / "straight"), str(tmp_path / "elastic"))
    assert report["equal"], report  # config, loss/grad_norm/digest of every step, and final.npz
    rows = [json.loads(line) for line in open(tmp_path / "elastic" / "metrics.jsonl")]
    assert [(r["step"], r["world_size"]) for r in rows] == [(1, 4), (2, 4), (3, 2), (4, 2), (5, 1), (6, 1)]


def test_default_mode_resumes_at_another_world_size_even_uneven_and_trains(tmp_path):
    default = ("deterministic=false", *LEGS)
    code, _, err, _ = train(2, tmp_path / "straight", *default)
    assert code == 0, err
    code, _, err, _ = train(2, tmp_path / "elastic", *default, "steps=2")
    assert code == 0, err
    code, _, err, _ = train(3, tmp_path / "elastic", *default, "resume=true")  # 4 micro-batches: 2, 1, 1
    assert code == 0, err
    rows = [json.loads(line) for line in open(tmp_path / "elastic" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(r["loss"]) for r in rows)
    # the same trajectory up to float rounding (the all-reduce sums in another order), not bitwise
    reference = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
    assert np.allclose([r["loss"] for r in rows], [r["loss"] for r in reference], rtol=1e-5, atol=0)
    straight, elastic = final(tmp_path / "straight"), final(tmp_path / "elastic")
    # attention key biases have a true gradient of zero (softmax ignores a constant per query), so Adam
    # normalises rounding noise into steps of up to lr: measured 1e-5 apart after 4 steps; lr = 3e-3
    assert all(np.allclose(straight[k], elastic[k], rtol=0, atol=1e-4) for k in straight)


def test_resume_at_a_world_size_not_dividing_the_micro_batches_is_refused(tmp_path):
    code, _, err = train_here(tmp_path / "run", *LEGS, "steps=2")  # the checkpoint's world size does not matter
    assert code == 0, err
    before = (tmp_path / "run" / "checkpoints" / "step-00000002.ckpt").read_bytes()
    code, _, err, _ = train(3, tmp_path / "run", *LEGS, "resume=true", timeout=60)
    assert code == 2 and "4 micro-batches cannot be split evenly over 3 ranks; use a world size that divides 4" in err
    code, _, err, _ = train(5, tmp_path / "run", *LEGS, "resume=true", "deterministic=false", timeout=60)
    assert code == 2 and "4 micro-batches cannot give each of 5 ranks at least one; use at most 4 ranks" in err
    assert (tmp_path / "run" / "checkpoints" / "step-00000002.ckpt").read_bytes() == before
