"""`mpigrad check-determinism`: bitwise equal at world sizes 1, 2, 4 on a tiny job; differences and bad input found."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from launch import mpiexec
from mpigrad.cli import main
from test_train_cli import TINY

SETS = [a for item in [*TINY, "steps=3", "checkpoint_every=0"] for a in ("--set", item)]


ROOT = Path(__file__).resolve().parents[2]


def check(*args, timeout=180, sets=SETS, command=None, cwd=None):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    command = command or [sys.executable, "-m", "mpigrad", "check-determinism"]
    done = subprocess.run([*command, *sets, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def table(out):
    """world -> row cells of the printed table."""
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line[:1].isdigit()}


def test_worlds_1_2_4_are_bitwise_equal(tmp_path):
    code, out, err = check("--worlds", "1,2,4", "--out", str(tmp_path))
    assert code == 0, out + err
    rows = table(out)
    assert rows["1"][1] == "reference" and rows["2"][1] == "yes" and rows["4"][1] == "yes", out
    assert "bitwise equal at world sizes 1, 2, 4" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["world-1", "world-2", "world-4"]


def refused(capsys, *args):
    """In-process: a refusal runs nothing, so no launch is needed."""
    code = main(["check-determinism", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    return err.strip()


def test_a_world_size_not_dividing_the_micro_batches_is_refused_before_any_run(tmp_path, capsys):
    err = refused(capsys, *SETS, "--worlds", "1,3", "--out", str(tmp_path / "never"))
    assert err == ("mpigrad check-determinism: error: world size 3: global_batch/micro_batch = 4 "
                   "micro-batches cannot be split evenly over 3 ranks; use a world size that divides 4")
    assert not (tmp_path / "never").exists()


def test_a_difference_names_step_1_and_a_parameter(tmp_path):
    # a launcher that gives each world size its own seed: the runs must differ from the first step
    shim = tmp_path / "seeded-launcher"
    shim.write_text(f'#!/bin/sh\nn=$1; shift\nexec "{mpiexec()}" -n "$n" "$@" --set seed="$n"\n')
    shim.chmod(0o755)
    code, out, err = check("--worlds", "1,2", "--launcher", f"{shim} {{n}}", "--out", str(tmp_path / "runs"))
    assert code == 1, out + err
    row = table(out)["2"]
    assert row[1:4] == ["NO", "1", "(loss)"] and row[4] == "token.weight", out
    assert "NOT bitwise equal" in out


def test_a_failing_launch_is_reported_and_fails(tmp_path):
    code, out, _ = check("--worlds", "1", "--launcher", "false {n}", "--out", str(tmp_path), timeout=60)
    assert code == 1 and table(out)["1"][1:4] == ["FAILED", "exit", "1"], out


def test_the_config_file_is_read_for_the_rule(tmp_path, capsys):
    (tmp_path / "job.toml").write_text("global_batch = 12\nmicro_batch = 2\n")
    err = refused(capsys, "--config", str(tmp_path / "job.toml"), "--worlds", "1,2,3,4")
    assert "world size 4: global_batch/micro_batch = 6 micro-batches" in err, err
    err = refused(capsys, "--config", str(tmp_path / "job.toml"), "--set", "global_batch=8", "--worlds", "1,3")
    assert "world size 3: global_batch/micro_batch = 4 micro-batches" in err, err  # --set wins over the file


def test_bad_worlds_and_launcher_are_one_line(capsys):
    assert refused(capsys, "--worlds", "1,x") == ("mpigrad check-determinism: error: --worlds '1,x': expected "
                                                  "distinct positive integers separated by commas, like 1,2,4")
    assert "must contain {n}" in refused(capsys, *SETS, "--worlds", "1", "--launcher", "mpiexec -n 2")


def test_the_classifier_is_checked(tmp_path):
    # the text sample is the transformer's: forcing it off must not refuse the mlp
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", X=X, y=np.argmax(X[:, :3], axis=1))
    sets = ['model="mlp"', f'data="{tmp_path / "blobs.npz"}"', "hidden=[8]", "steps=3", "global_batch=8",
            "micro_batch=2", "checkpoint_every=0", "eval_every=2", "eval_samples=8"]
    code, out, err = check("--worlds", "1,2", sets=[a for item in sets for a in ("--set", item)])
    assert code == 0, out + err
    assert table(out)["2"][1] == "yes" and "bitwise equal at world sizes 1, 2" in out, out


def test_the_script_takes_a_config_path_relative_to_where_it_was_called(tmp_path):
    keys = [item for item in TINY if not item.startswith(("steps=", "checkpoint_every="))]
    (tmp_path / "job.toml").write_text("\n".join([*keys, "checkpoint_every=0"]) + "\n")
    script = ["bash", str(ROOT / "scripts" / "check_determinism.sh"), "2"]
    code, out, err = check("--config", "job.toml", "--worlds", "1", sets=[], command=script, cwd=tmp_path)
    assert code == 0, out + err
    assert "bitwise equal at world sizes 1 (" in out


def test_a_launcher_with_an_unknown_placeholder_is_one_line(capsys):
    err = refused(capsys, *SETS, "--worlds", "1", "--launcher", "mpiexec -n {x}")
    assert err == ("mpigrad check-determinism: error: --launcher 'mpiexec -n {x}': unknown placeholder {x}; the "
                   "only one is {n}, the number of ranks (write {{ and }} for literal braces)")


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    err = refused(capsys, *SETS, "--worlds", "1", "--out", str(tmp_path / "file"))
    assert err == f"mpigrad check-determinism: error: --out {tmp_path / 'file'}: a file is in the way"


def test_a_launch_that_outlives_the_timeout_is_ended_and_reported(tmp_path):
    marker = tmp_path / "still-running"
    # the launcher sleeps, then would leave a mark: ended by the timeout, it never does
    launcher = f"sh -c 'sleep 20; touch {marker}' {{n}}"
    code, out, err = check("--worlds", "1", "--launcher", launcher, "--timeout", "1", "--out", str(tmp_path / "r"),
                           timeout=60)
    assert code == 1, out + err
    assert table(out)["1"][1:4] == ["FAILED", "timeout", "1"], out
    assert err.strip().splitlines() == [f"mpigrad check-determinism: world size 1: no result after --timeout 1 s; "
                                        f"ended the launch (its output: {tmp_path / 'r' / 'world-1.log'}; pass a "
                                        "larger --timeout for longer runs)"], err
    assert not running_with(str(marker)), "the launcher was left running"


def running_with(text):
    """PIDs of processes whose command line holds `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except OSError:
            continue
    return found
