"""An exception on one rank ends the whole job quickly, naming the rank (mpiexec in a subprocess)."""

import textwrap

from launch import run_mpi

SCRIPT = textwrap.dedent("""
    import numpy as np
    from mpigrad.autograd import cross_entropy, nn
    from mpigrad.runtime import DataParallel, init

    comm = init()
    dp = DataParallel(nn.MLP([4, 64, 3], rng=np.random.default_rng(0)), comm)
    x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    for step in range(5):
        loss = cross_entropy(dp(x), y)
        if comm.rank == 1 and step == 2:
            raise RuntimeError("deliberate failure in step 2")
        loss.backward()  # rank 0 waits in the gradient all-reduce for rank 1
    print("finished")
""")


def test_exception_on_one_rank_aborts_every_rank(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(SCRIPT)
    code, out, err, seconds = run_mpi(2, [str(script)], timeout=60)
    assert code != 0
    assert seconds < 10, f"the job took {seconds:.1f} s to end"
    assert "rank 1 of 2 failed" in err and "deliberate failure in step 2" in err
    assert "finished" not in out
