"""`mpigrad diff`: 0 on equal runs, 1 naming the first step and every differing parameter, 2 on unusable input."""

import json
import shutil

import numpy as np
import pytest

from mpigrad.cli import main
from test_train_cli import train_at

SHORT = ("steps=3", "checkpoint_every=2", "digest_every=1", "sample_chars=0")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny deterministic runs: world 1, world 2, and world 1 with another seed."""
    root = tmp_path_factory.mktemp("runs")
    for name, world, extra in (("w1", 1, ()), ("w2", 2, ()), ("seed1", 1, ("seed=1",))):
        code, err = train_at(world, root / name, *SHORT, *extra)
        assert code == 0, err
    return root


def diff(capsys, *args):
    code = main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_equal_runs_at_two_world_sizes_exit_0(runs, capsys):
    code, out, _ = diff(capsys, runs / "w1", runs / "w2")
    assert code == 0 and out.strip().endswith("bitwise equal"), out
    rows = [json.loads(line) for line in open(runs / "w1" / "metrics.jsonl")]
    assert all(len(r["digest"]) == 32 for r in rows)  # digest_every=1: every row carries one


def test_other_seed_names_the_key_and_step_1(runs, capsys):
    code, out, _ = diff(capsys, runs / "w1", runs / "seed1")
    assert code == 1
    assert "seed: 0 vs 1" in out and "first difference at step 1: loss" in out, out
    code, out, _ = diff(capsys, runs / "w1", runs / "seed1", "--json")
    report = json.loads(out)
    assert code == 1 and report["first_step"]["step"] == 1
    assert report["config"] == [{"key": "seed", "a": 0, "b": 1, "trajectory": True}]
    assert {d["name"] for d in report["parameters"]["differ"]} >= {"token.weight", "head.weight"}


def test_one_ulp_in_one_element_is_found(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs / "w1", copy)
    params = dict(np.load(copy / "final.npz"))
    w = params["blocks.0.attn.q.weight"]
    w[1, 2] = np.nextafter(w[1, 2], np.float32(np.inf))
    np.savez(copy / "final.npz", **params)
    code, out, _ = diff(capsys, runs / "w1", copy, "--json")
    report = json.loads(out)
    assert code == 1 and report["first_step"] is None
    [only] = report["parameters"]["differ"]
    assert only["name"] == "blocks.0.attn.q.weight" and only["count"] == 1
    assert only["max_abs"] == float(abs(np.float64(w[1, 2]) - np.float64(np.nextafter(w[1, 2], np.float32(-np.inf)))))


def test_without_final_npz_the_newest_checkpoints_are_compared(runs, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs / "w1", a)
    shutil.copytree(runs / "seed1", b)
    (a / "final.npz").unlink()
    code, out, _ = diff(capsys, a, b)
    assert code == 1 and "step-00000003.ckpt vs" in out and "token.weight" in out, out


@pytest.mark.parametrize("damage, message", [
    ("missing", "no such directory"),
    ("metrics", "metrics.jsonl: line 2 is not a metrics row"),
    ("final", "final.npz: not a readable .npz"),
    ("config", "config.toml: No such file"),
])
def test_unusable_input_exits_2_with_one_line(runs, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    if damage != "missing":
        shutil.copytree(runs / "w1", broken)
    if damage == "metrics":
        lines = (broken / "metrics.jsonl").read_text().splitlines()
        (broken / "metrics.jsonl").write_text(lines[0] + "\n{not json\n")
    elif damage == "final":
        (broken / "final.npz").write_bytes(b"garbage")
    elif damage == "config":
        (broken / "config.toml").unlink()
    code, out, err = diff(capsys, runs / "w1", broken)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mpigrad diff: error: ") and message in err, err


def test_a_bookkeeping_key_is_listed_but_does_not_make_runs_differ(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs / "w1", copy)
    config = (copy / "config.toml").read_text()
    (copy / "config.toml").write_text(config.replace("eval_every = 3", "eval_every = 7"))
    code, out, _ = diff(capsys, runs / "w1", copy)
    assert code == 0 and "eval_every: 3 vs 7 (does not change the results)" in out, out


def test_elements_are_compared_bit_for_bit():
    from mpigrad.diff import array_difference
    nan = np.float32(np.nan)
    assert array_difference("p", np.array([nan, 1.0], np.float32), np.array([nan, 1.0], np.float32)) is None
    signed = array_difference("p", np.array([0.0, 2.0]), np.array([-0.0, 2.0]))
    assert (signed["count"], signed["max_abs"], signed["max_rel"]) == (1, 0.0, 0.0)
    gap = array_difference("p", np.array([4.0, 1.0]), np.array([3.0, 1.0]))
    assert (gap["count"], gap["max_abs"], gap["max_rel"]) == (1, 1.0, 0.25)
    against_nan = array_difference("p", np.array([nan], np.float32), np.array([1.0], np.float32))
    assert against_nan["count"] == 1 and np.isnan(against_nan["max_abs"])
    assert array_difference("p", np.zeros(2, np.float32), np.zeros(3, np.float32))["problem"] == "float32[2] vs float32[3]"
