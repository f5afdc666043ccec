"""metrics.jsonl: a partial last line (a crash mid-write) is dropped; the resume rewrite is atomic."""

import json
import os

import pytest

from mpigrad.config import ConfigError
from mpigrad.metrics import MetricsLog, read_metrics


def write_rows(path, steps, tail=""):
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps) + tail)


def test_partial_last_line_is_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_rows(path, [1, 2, 3], tail='{"step": 4, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]


def test_a_bad_line_before_the_end_is_an_error_naming_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2\n{"step": 3}\n')
    with pytest.raises(ConfigError, match=f"{path}: line 2 is not JSON"):
        read_metrics(path)


def test_resume_rewrite_keeps_rows_up_to_the_checkpoint_and_replaces_the_file(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    write_rows(path, [1, 2, 3, 4], tail='{"step": 5, "lo')
    inode = os.stat(path).st_ino
    log = MetricsLog(str(path), resume_step=3)
    assert f"{path}: dropped a partial last line (15 bytes)" in capsys.readouterr().err
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one, never truncated in place
    assert not [p for p in os.listdir(tmp_path) if p != "metrics.jsonl"]
    log.write({"step": 4, "loss": float("nan")})
    assert read_metrics(path)[-1] == {"step": 4, "loss": None}
