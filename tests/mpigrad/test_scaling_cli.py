"""`mpigrad scaling`: the JSON shape the contract fixes, at world 1 and 2, and one-line errors."""

import json

import pytest

from launch import run_mpi

TINY = ["--set", "steps=1", "--set", "context=16", "--set", "d_model=16", "--set", "num_layers=1",
        "--set", "global_batch=8", "--set", "micro_batch=2", "--steps", "1"]


@pytest.fixture(scope="module")
def world_2():
    code, out, err, _ = run_mpi(2, ["-m", "mpigrad", "scaling", "--json", *TINY], timeout=300)
    assert code == 0, err
    return json.loads(out)


def test_json_holds_strong_and_weak_predictions_for_1_to_512_ranks(world_2):
    predicted = world_2["predicted"]
    for scaling in ("strong", "weak"):
        worlds = [e["world"] for e in predicted if e["scaling"] == scaling]
        assert worlds == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    for e in predicted:
        assert isinstance(e["step_time"], float) and e["step_time"] > 0
        assert isinstance(e["efficiency"], float) and 0 < e["efficiency"] <= 1.5
        assert e["step_time_bfloat16"] > 0
    assert world_2["world"] == 2 and world_2["cores_per_node"] >= 1
    assert world_2["measured"]["intra_node"]["measured"] is True  # two ranks on this node
    strong_1 = next(e for e in predicted if e["scaling"] == "strong" and e["world"] == 1)
    assert strong_1["efficiency"] == pytest.approx(1.0)
    assert not next(e for e in predicted if e["scaling"] == "strong" and e["world"] == 512)["feasible"]


def test_world_1_predicts_from_the_node_alone_and_says_what_it_assumed():
    code, out, err, _ = run_mpi(1, ["-m", "mpigrad", "scaling", *TINY], timeout=300)
    assert code == 0, err
    assert "inside a node:" in out and "(assumed)" in out and "cores per node" in out
    assert "   512 " in out


@pytest.mark.parametrize("args, message", [
    (["--set", "global_batch=7"], "mpigrad scaling: error: global_batch=7 is not divisible by micro_batch=2"),
    (["--set", "grad_comm_dtype='int8'"], "mpigrad scaling: error: config key 'grad_comm_dtype' must be one of"),
    (["--network", "5g"], "mpigrad scaling: error: --network '5g' is not one of 10gbe, 25gbe, 100gbe, hdr"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    code, out, err, _ = run_mpi(2, ["-m", "mpigrad", "scaling", *TINY, *args], timeout=120)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_plot_draws_the_prediction_and_refuses_other_files(world_2, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from mpigrad.cli import main
    prediction = tmp_path / "prediction.json"
    prediction.write_text(json.dumps(world_2))
    assert main(["plot", "--scaling", str(prediction), "--out", str(tmp_path / "scaling.png")]) == 0
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    (tmp_path / "other.json").write_text('{"steps": 3}')
    assert main(["plot", "--scaling", str(tmp_path / "other.json"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"mpigrad plot: error: {tmp_path / 'other.json'}: not the output of `mpigrad scaling --json`\n"
