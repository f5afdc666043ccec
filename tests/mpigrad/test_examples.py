"""examples/ run as written (short settings): the Python API script at world 1 and 2, with exact resume; job.toml."""

import re
from pathlib import Path

import pytest

from launch import run_mpi
from test_train_cli import final

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "examples" / "train_mlp.py")


def script(world, out, *args):
    code, stdout, err, _ = run_mpi(world, [SCRIPT, "--out", str(out), *args], timeout=120)
    assert code == 0, err
    return stdout


def digest(stdout):
    return re.search(r"state digest ([0-9a-f]{32})", stdout).group(1)


@pytest.mark.parametrize("world", [1, 2])
def test_script_trains_evaluates_and_rank_0_prints(tmp_path, world):
    out = script(world, tmp_path, "--steps", "30", "--eval-every", "10")
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 10", "step 20", "step 30", "done"], out
    accuracy = float(lines[-2].split("val accuracy ")[1])
    assert 0.5 < accuracy <= 1.0  # 4 classes: chance is 0.25
    assert f"done: 30 steps on {world} rank(s)" in out and (tmp_path / "checkpoint.mpc").exists()


def test_resume_mid_epoch_continues_bit_for_bit(tmp_path):
    # 56 steps per epoch at world 2: stop at 13 (mid-epoch), resume across the epoch boundary to 60
    straight = script(2, tmp_path / "straight", "--steps", "60", "--eval-every", "60")
    script(2, tmp_path / "stopped", "--steps", "13", "--eval-every", "60")
    resumed = script(2, tmp_path / "stopped", "--steps", "60", "--eval-every", "60", "--resume")
    assert digest(resumed) == digest(straight)
    assert resumed.splitlines()[0] == straight.splitlines()[0]  # the same step-60 losses and accuracy


def test_job_toml_trains_at_world_2(tmp_path):
    sets = ["steps=2", "eval_samples=16", "sample_chars=10", "checkpoint_every=0"]
    code, _, err, _ = run_mpi(2, ["-m", "mpigrad", "train", "--quiet", "--config", str(ROOT / "examples" / "job.toml"),
                                  "--out", str(tmp_path), *[a for s in sets for a in ("--set", s)]], timeout=120)
    assert code == 0, err
    assert "num_layers = 2" in (tmp_path / "config.toml").read_text() and "token.weight" in final(tmp_path)


def test_python_api_page_shows_the_example_as_it_is():
    page = (ROOT / "docs" / "python-api.md").read_text()
    section = page[page.index("## A complete script"):]
    start = section.index("```python\n") + len("```python\n")
    block = section[start:section.index("\n```\n", start)]
    source = Path(SCRIPT).read_text()
    missing = [line for line in block.splitlines() if line.strip() and line not in source.splitlines()]
    assert not missing, f"docs/python-api.md lines not in examples/train_mlp.py: {missing}"


def test_determinism_page_shows_the_determinism_example_as_it_is():
    page = (ROOT / "docs" / "determinism.md").read_text()
    test = (ROOT / "tests" / "runtime" / "test_determinism_example.py").read_text()
    start = page.index("import contextlib\n\nimport numpy as np\nimport pytest\nfrom mpi4py import MPI")
    block = page[start:page.index("\n```\n", start)]
    assert block in test
