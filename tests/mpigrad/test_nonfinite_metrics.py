"""metrics.jsonl spells non-finite floats as "nan", "inf", "-inf": valid JSON, and `mpigrad diff` tells
a run that went NaN from one that overflowed to inf."""

import json
import math

from mpigrad.diff import first_differing_step
from mpigrad.metrics import MetricsLog, read_metrics
from mpigrad.run import read_rows


def _refuse(token):
    raise ValueError(f"bare {token} is not JSON")


def write_run(directory, losses):
    directory.mkdir()
    log = MetricsLog(str(directory / "metrics.jsonl"))
    for step, loss in enumerate(losses, start=1):
        log.write({"step": step, "loss": loss, "grad_norm": 1.0})
    return directory


def test_non_finite_values_are_valid_json_and_read_back_as_floats(tmp_path):
    run = write_run(tmp_path / "a", [1.0, math.nan, math.inf, -math.inf])
    lines = (run / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=_refuse) for line in lines]
    assert [r["loss"] for r in rows] == [1.0, "nan", "inf", "-inf"]
    back = [r["loss"] for r in read_metrics(str(run / "metrics.jsonl"))]
    assert back[0] == 1.0 and math.isnan(back[1]) and back[2] == math.inf and back[3] == -math.inf


def test_diff_tells_nan_from_inf(tmp_path):
    nan_run = write_run(tmp_path / "nan", [1.0, math.nan])
    inf_run = write_run(tmp_path / "inf", [1.0, math.inf])
    other_nan = write_run(tmp_path / "nan2", [1.0, math.nan])
    assert first_differing_step(read_rows(nan_run), read_rows(inf_run)) == \
        {"step": 2, "field": "loss", "a": "nan", "b": "inf"}
    assert first_differing_step(read_rows(nan_run), read_rows(other_nan)) is None
