"""deterministic = true: the same final parameters, bit for bit, at world sizes 1, 2 and 4 and across runs."""

from test_train_cli import train, train_at


def test_final_parameters_identical_across_world_sizes_and_runs(tmp_path):
    files = {}
    for name, world in (("w1", 1), ("w2", 2), ("w4", 4), ("w2-again", 2)):
        code, err = train_at(world, tmp_path / name, "steps=4", "checkpoint_every=0", "dtype=\"float64\"",
                             "check_replicas_every=1", timeout=240)
        assert code == 0, err
        files[name] = (tmp_path / name / "final.npz").read_bytes()
    assert files["w1"] == files["w2"] == files["w4"] == files["w2-again"]


def test_unsupported_world_size_is_refused(tmp_path):
    code, _, err, _ = train(3, tmp_path / "w3", timeout=60)
    assert code == 2 and "cannot be split evenly over 3 ranks" in err


def test_every_world_size_dividing_the_micro_batches_gives_the_same_bits(tmp_path):
    # K = 12 / 2 = 6 micro-batches: 3 per rank at world 2 (not one whole subtree), 2 at world 3
    files = {}
    for world in (1, 2, 3):
        code, err = train_at(world, tmp_path / f"w{world}", "steps=3", "global_batch=12", "checkpoint_every=0",
                             "eval_every=0", "dtype=\"float64\"", timeout=240)
        assert code == 0, err
        files[world] = (tmp_path / f"w{world}" / "final.npz").read_bytes()
    assert files[1] == files[2] == files[3]
