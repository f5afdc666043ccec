"""A run directory has one owner (a lock rank 0 holds), --overwrite deletes only what mpigrad made,
and writes never follow a symbolic link out of the directory."""

import fcntl
import os
import signal
import subprocess
import sys
import time

from test_kill import LONG
from test_train_cli import TINY, copy_run, final, main_here, train_args, train_here


def test_a_second_job_on_a_locked_out_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PMI_RANK", None)
    with open(tmp_path / "log", "wb") as log:
        first = subprocess.Popen([sys.executable, "-m", "mpigrad", *train_args(out, LONG[len(TINY):])], stdout=log,
                                 stderr=log, env=env)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, (tmp_path / "log").read_text()
        for extra in ([], ["--overwrite"], ["resume=true"]):
            code, _, err = train_here(out, *extra)
            assert code == 2 and err.count("\n") == 1, err
            assert (f"mpigrad train: error: --out {out} is in use by another mpigrad job (host {os.uname().nodename} "
                    f"pid {first.pid}); wait for it to end or choose another --out") in err, err
        code, _, err = main_here(["train", "--resume", str(out), "--quiet"])
        assert code == 2 and "is in use by another mpigrad job" in err, err
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM, (tmp_path / "log").read_text()
    # the kernel released the dead job's lock: its lock file left behind does not block a resume
    newest = max(int(p.name[5:-5]) for p in (out / "checkpoints").iterdir())
    code, _, err = train_here(out, *LONG[len(TINY):], f"steps={newest + 2}", "resume=true")
    assert code == 0, err


def test_a_lock_held_elsewhere_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".mpigrad.lock", "w") as held:
        held.write("host elsewhere pid 1\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = train_here(out)
    assert code == 2 and f"--out {out} is in use by another mpigrad job (host elsewhere pid 1)" in err, err
    assert sorted(p.name for p in out.iterdir()) == [".mpigrad.lock"]


def test_overwrite_refuses_a_directory_mpigrad_did_not_make(tmp_path):
    out = tmp_path / "theirs"
    (out / "checkpoints" / "epoch_10").mkdir(parents=True)
    (out / "checkpoints" / "epoch_10" / "model.pt").write_bytes(b"weights of another tool")
    (out / "config.toml").write_text("[another]\ntool = true\n")
    code, _, err = train_here(out, "--overwrite")
    assert code == 2 and err.count("\n") == 1, err
    assert (f"--out {out} holds config.toml, checkpoints but no .mpigrad-run: not a run mpigrad made, so --overwrite "
            "deletes nothing in it; choose another --out") in err, err
    assert (out / "checkpoints" / "epoch_10" / "model.pt").read_bytes() == b"weights of another tool"
    assert (out / "config.toml").read_text() == "[another]\ntool = true\n"


def test_overwrite_deletes_only_the_files_mpigrad_made(tmp_path, tiny_run_2):
    out = copy_run(tiny_run_2, tmp_path / "run")
    (out / "checkpoints" / "notes.txt").write_text("mine")
    (out / "README").write_text("mine too")
    code, _, err = train_here(out, "--overwrite", "steps=3")
    assert code == 0, err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["notes.txt", "step-00000003.ckpt"]
    assert (out / "README").read_text() == "mine too"


def test_writes_replace_symbolic_links_instead_of_following_them(tmp_path, tiny_run_2):
    out = copy_run(tiny_run_2, tmp_path / "run")
    victims = {}
    for name in ("final.npz", "config.toml", "metrics.jsonl"):
        victim = tmp_path / f"victim-{name}"
        victim.write_bytes((out / name).read_bytes())  # readable as the run's own, so the resume goes ahead
        victims[victim] = victim.read_bytes()
        (out / name).unlink()
        (out / name).symlink_to(os.path.relpath(victim, out))
    code, _, err = main_here(["train", "--resume", str(out), "--quiet", "--set", "steps=9"])
    assert code == 0, err
    assert all(victim.read_bytes() == before for victim, before in victims.items())
    assert not any((out / name).is_symlink() for name in ("final.npz", "config.toml", "metrics.jsonl"))
    assert "steps = 9" in (out / "config.toml").read_text() and len(final(out)) > 6


def test_a_checkpoints_directory_that_is_a_link_is_refused(tmp_path, tiny_run_2):
    out = copy_run(tiny_run_2, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    (out / "checkpoints").rename(elsewhere)
    (out / "checkpoints").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    code, _, err = main_here(["train", "--resume", str(out), "--quiet", "--set", "steps=9"])
    assert code == 2 and err.count("\n") == 1, err
    assert f"{out}/checkpoints is a symbolic link; mpigrad writes only inside the run directory" in err, err
    assert sorted(p.name for p in elsewhere.iterdir()) == before
