"""`mpigrad check-determinism -- COMMAND`: a user's own script, checked through its log_digest calls."""

import os
import subprocess
import sys
from pathlib import Path

from test_check_determinism import check, refused, table

SCRIPT = str(Path(__file__).resolve().parents[2] / "examples" / "train_mlp.py")


def check_script(worlds, *script_args, tmp_path):
    return check("--worlds", worlds, "--out", str(tmp_path / "runs"), "--",
                 sys.executable, SCRIPT, "--steps", "4", "--eval-every", "4", "--out", "{out}", *script_args, sets=[])


def test_the_example_in_deterministic_mode_is_bitwise_equal_at_worlds_1_2_4(tmp_path):
    code, out, err = check_script("1,2,4", "--deterministic", tmp_path=tmp_path)
    assert code == 0, out + err
    rows = table(out)
    assert rows["1"][1] == "reference" and rows["2"][1] == "yes" and rows["4"][1] == "yes", out
    assert "bitwise equal at world sizes 1, 2, 4" in out
    # {out} became each run's directory: the script wrote its checkpoint there
    assert all((tmp_path / "runs" / f"world-{n}" / "checkpoint.mpc").exists() for n in (1, 2, 4))
    assert len((tmp_path / "runs" / "world-4" / "digests.jsonl").read_text().splitlines()) == 4


def test_the_example_without_deterministic_mode_differs_at_step_1_naming_a_parameter(tmp_path):
    code, out, err = check_script("1,2", tmp_path=tmp_path)
    assert code == 1, out + err
    row = table(out)["2"]
    assert row[1:4] == ["NO", "1", "(digest)"] and row[4].endswith(("weight", "bias")), out


def test_a_script_that_logs_no_digest_fails_saying_what_it_must_call(tmp_path):
    (tmp_path / "silent.py").write_text("print('trained')\n")
    code, out, err = check("--worlds", "1", "--out", str(tmp_path / "runs"), "--", sys.executable,
                           str(tmp_path / "silent.py"), sets=[])
    assert code == 1, out + err
    assert "no digests logged (the script must call mpigrad.runtime.log_digest)" in out, out


def test_log_digest_does_nothing_outside_the_check():
    env = {k: v for k, v in os.environ.items() if k not in ("MPIGRAD_DIGEST_LOG", "PMI_RANK")}
    code = ("from mpigrad.autograd import nn; from mpigrad.runtime import log_digest;"
            "print(log_digest(1, nn.Linear(2, 2)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0 and done.stdout == "None\n", done.stderr


def test_a_command_with_config_or_set_is_refused(capsys):
    err = refused(capsys, "--set", "steps=2", "--", "python", "train.py")
    assert err == ("mpigrad check-determinism: error: --config and --set describe the built-in job; with a command "
                   "after --, leave them out")
