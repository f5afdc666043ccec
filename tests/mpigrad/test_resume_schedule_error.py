"""A checkpoint whose schedule state the scheduler refuses ends `mpigrad train` with one line, exit 2."""

from mpigrad.optim import CosineLR

from test_train_cli import train_here


def test_a_refused_schedule_state_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    out = tmp_path / "run"
    code, _, err = train_here(out)
    assert code == 0, err

    def refuse(self, d):
        raise ValueError("CosineLR.load_state_dict: keys ['x'], expected ['count']")
    monkeypatch.setattr(CosineLR, "load_state_dict", refuse)
    code, _, err = train_here(out, "resume=true")
    assert code == 2, err
    assert err.strip().splitlines() == [f"mpigrad train: error: checkpoint {out}/checkpoints/step-00000006.ckpt "
                                        "does not fit this schedule: CosineLR.load_state_dict: keys ['x'], "
                                        "expected ['count']"], err
