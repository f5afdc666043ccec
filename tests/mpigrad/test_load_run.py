"""Loading a run back: mpigrad.load_run rebuilds the trained model; `mpigrad sample` continues a prompt."""

import json

import numpy as np
import pytest

import mpigrad
from mpigrad.cli import main
from mpigrad.data import load_data
from mpigrad.evaluate import evaluate
from mpigrad.runtime.comm import SerialComm, set_blas_threads
from test_train_cli import final, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "run"
    code, _, err, _ = train(1, out, "sample_chars=0")
    assert code == 0, err
    return out


def test_rebuilt_model_gives_the_logged_validation_loss(run):
    model, cfg = mpigrad.load_run(str(run))
    assert type(model).__name__ == "CharTransformer" and cfg.steps == 6
    assert all(np.array_equal(model.state_dict()[k], v) for k, v in final(run).items())
    set_blas_threads(1)  # as deterministic training ran, so the same sums give the same bits
    val = load_data(cfg).val
    result = evaluate(model, val, min(cfg.eval_samples, val.num_samples), cfg.micro_batch, SerialComm(), False)
    last = json.loads(open(run / "metrics.jsonl").read().splitlines()[-1])
    assert result["loss"] == last["val_loss"]


def test_without_final_npz_the_newest_checkpoint_is_loaded(run, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "final.npz").unlink()
    (copy / "checkpoints" / "step-00000006.ckpt").unlink()
    model, _ = mpigrad.load_run(str(copy))
    at_6 = final(run)
    assert not np.array_equal(model.state_dict()["head.weight"], at_6["head.weight"])  # step 3's, not step 6's
    model.load_state_dict(at_6)


def test_sample_continues_the_prompt_reproducibly(run, capsys):
    assert main(["sample", str(run), "--prompt", "The ", "--chars", "25"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("The ") and len(first) == len("The ") + 25 + 1
    assert main(["sample", str(run), "--prompt", "The ", "--chars", "25"]) == 0
    assert capsys.readouterr().out == first
    assert main(["sample", str(run), "--prompt", "The ", "--chars", "25", "--seed", "7"]) == 0
    assert capsys.readouterr().out != first


@pytest.mark.parametrize("args, message", [
    (["--prompt", "cafe\u20ac"], "--prompt has characters the model never saw: '\u20ac'"),
    (["--prompt", ""], "--prompt must hold at least one character"),
    (["--chars", "-1"], "--chars -1: must be >= 0"),
])
def test_sample_refuses_bad_input_in_one_line(run, capsys, args, message):
    assert main(["sample", str(run), *args]) == 2
    assert capsys.readouterr().err == f"mpigrad sample: error: {message}\n"


def test_sample_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"mpigrad sample: error: {tmp_path / 'none'}: no such directory\n"


def test_eval_of_the_language_model_on_a_text_file(run, tmp_path, capsys):
    from mpigrad.data import builtin_text
    text = builtin_text()[:16 * 10 + 1]  # exactly 10 windows of context 16 (targets shifted by one)
    (tmp_path / "text.txt").write_text(text)
    assert main(["eval", str(run), "--data", str(tmp_path / "text.txt")]) == 0
    words = capsys.readouterr().out.split()
    assert words[0] == "loss" and 0 < float(words[1]) < 10 and words[2:4] == ["on", "10"] and "accuracy" not in words
    assert main(["eval", str(run), "--data", str(tmp_path / "text.txt"), "--labels", "y.npy"]) == 2
    assert "--labels is for the mlp model" in capsys.readouterr().err
