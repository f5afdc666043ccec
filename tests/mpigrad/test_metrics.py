"""metrics.jsonl: a partial last line (a crash mid-write) is dropped; the resume rewrite is atomic."""

import json
import math
import os

import pytest

from mpigrad.config import ConfigError
from mpigrad.metrics import MetricsLog, Progress, StepTimes, read_metrics


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
    last = read_metrics(path)[-1]
    assert last["step"] == 4 and math.isnan(last["loss"])


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def run_steps(times, durations, first=1):
    for step, seconds in enumerate(durations, first):
        times.clock.now += seconds
        times.record(step, {"step_time": seconds * 0.9, "comm_time": seconds * 0.1})


def test_rates_come_from_a_window_of_steps_not_one_step():
    times = StepTimes(window=20, clock=FakeClock())
    run_steps(times, [1.0] * 20 + [0.1] * 10)
    assert times.seconds_per_step() == pytest.approx((10 * 1.0 + 10 * 0.1) / 20)
    times.clock.now += 5.0  # a slow evaluation between steps shows up in the window, as it does in the ETA
    times.record(31, {"step_time": 0.1, "comm_time": 0.0})
    assert times.seconds_per_step() == pytest.approx((9 * 1.0 + 10 * 0.1 + 5.0) / 20)


def test_elapsed_continues_a_resumed_run():
    times = StepTimes(start_step=10, elapsed_before=50.0, clock=FakeClock())
    run_steps(times, [2.0, 3.0], first=11)
    assert times.elapsed() == pytest.approx(55.0)
    assert times.seconds_per_step() == pytest.approx(2.5)  # from the start while the window fills


def test_summary_line():
    times = StepTimes(clock=FakeClock())
    run_steps(times, [0.1, 0.3, 0.2, 0.2])
    line = times.summary(samples_per_step=32, unit="tokens", unit_scale=64)
    assert line == ("mpigrad: 4 steps in 0m00s: median step 180.0 ms, 10,240 tokens/s overall, "
                    "communication wait 11.1 % of step time")


def test_progress_line_uses_the_window(capsys):
    times = StepTimes(window=4, clock=FakeClock())
    progress = Progress(100, 0, True, times=times, samples_per_step=8)
    run_steps(times, [10.0, 10.0, 1.0, 1.0, 1.0, 1.0])
    progress.update(6, {"loss": 2.0, "lr": 1e-3, "step_time": 0.9}, True)
    assert capsys.readouterr().out == "step 6/100 loss 2.0000 lr 1.00e-03 8 samples/s eta 1m34s\n"
