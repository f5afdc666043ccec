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
