"""`mpigrad plot` writes a PNG of loss curves, or explains what is missing."""

import json

import pytest

from mpigrad.cli import main


def write_run(directory, world_size, steps=5):
    directory.mkdir()
    with open(directory / "metrics.jsonl", "w") as f:
        for step in range(1, steps + 1):
            row = {"step": step, "loss": 3.0 / step, "world_size": world_size}
            if step % 2 == 0:
                row["val_loss"] = 3.2 / step
            f.write(json.dumps(row) + "\n")


def test_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_run(tmp_path / "w1", 1)
    write_run(tmp_path / "w2", 2)
    out = tmp_path / "loss.png"
    assert main(["plot", str(tmp_path / "w1"), str(tmp_path / "w2"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == f"wrote {out}\n"


def test_plot_names_missing_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == (f"mpigrad plot: error: {tmp_path}: no metrics.jsonl "
                                       "(not an `mpigrad train --out` directory?)\n")


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    write_run(tmp_path / "w1", 1)
    assert main(["plot", str(tmp_path / "w1")]) == 2
    assert capsys.readouterr().err == "mpigrad plot: error: matplotlib is not installed; install it from the repository with: pip install -e '.[plot]'\n"


def test_plot_timings_draws_each_phase(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mpigrad.plot import timing_series
    write_run(tmp_path / "w1", 1)
    rows = [json.loads(line) for line in open(tmp_path / "w1" / "metrics.jsonl")]
    for r in rows:
        r.update(step_time=0.05, forward_time=0.02, backward_time=0.015, comm_time=0.005, optimizer_time=0.008)
    (tmp_path / "w1" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    series = timing_series(rows)
    assert list(series) == ["forward", "backward", "communication wait", "clip + optimizer", "rest of step"]
    assert series["forward"] == [(s, 20.0) for s in range(1, 6)]
    assert series["rest of step"][0][1] == pytest.approx(2.0)
    out = tmp_path / "t.png"
    assert main(["plot", "--timings", str(tmp_path / "w1"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_run(tmp_path / "old", 1)
    assert main(["plot", "--timings", str(tmp_path / "old"), "--out", str(out)]) == 2
    assert "no per-phase timings" in capsys.readouterr().err
