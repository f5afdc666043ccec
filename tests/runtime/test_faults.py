"""Failures in every phase end the whole job within seconds, naming the failing rank."""

import textwrap

import pytest

from launch import run_mpi

# One training loop; argv[1] names the phase in which rank `FAILING` raises at step 2.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpigrad.autograd import cross_entropy, nn
    from mpigrad.optim import Adam
    from mpigrad.runtime import DataParallel, init, save_checkpoint
    import mpigrad.runtime.checkpoint as checkpoint

    phase = sys.argv[1]
    comm = init()
    FAILING = comm.size - 1 if phase != "checkpoint" else 0

    def fail(where):
        raise RuntimeError(f"deliberate failure during {where}")

    if phase == "startup" and comm.rank == FAILING:
        fail("startup")
    model = nn.MLP([16, 256, 256, 4], rng=np.random.default_rng(0))
    dp = DataParallel(model, comm, bucket_mb=0.1)
    opt = Adam(dp.parameters())
    x, y = np.ones((8, 16), np.float32), np.zeros(8, np.int64)
    if phase == "backward" and comm.rank == FAILING:
        model[0].weight.register_post_accumulate_grad_hook(lambda p: fail("backward") if step == 2 else None)
    if phase == "checkpoint":
        checkpoint._write_atomically = lambda path, payload: fail("checkpoint write")
    for step in range(5):
        opt.zero_grad()
        if phase == "forward" and comm.rank == FAILING and step == 2:
            fail("forward")
        cross_entropy(dp(x), y).backward()
        if phase == "step" and comm.rank == FAILING and step == 2:
            fail("optimizer step")
        opt.clip_grad_norm(1.0)
        opt.step()
        if phase == "checkpoint" and step == 2:
            save_checkpoint("unused.ckpt", model, opt, step=step)
    print("finished")
""")


@pytest.mark.parametrize("phase", ["startup", "forward", "backward", "step", "checkpoint"])
def test_exception_in_any_phase_ends_the_job(tmp_path, phase):
    script = tmp_path / "faulty.py"
    script.write_text(SCRIPT)
    code, out, err, seconds = run_mpi(3, [str(script), phase], timeout=60, cwd=tmp_path)
    failing = 0 if phase == "checkpoint" else 2
    assert code != 0 and "finished" not in out
    assert seconds < 10, f"{phase}: the job took {seconds:.1f} s to end"
    assert f"rank {failing} of 3 failed" in err and "deliberate failure during" in err, err
