"""Module: parameter registration and order, names, state_dict round trip, train/eval, Sequential."""

import numpy as np
import pytest

from mpigrad.autograd import Variable, nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = Variable(np.ones(2, np.float32), requires_grad=True)
        self.inner = nn.Linear(2, 3, rng=0)
        self.constant = Variable(np.zeros(2))  # no requires_grad: not a parameter
        self.offset = Variable(np.zeros(3, np.float32), requires_grad=True)
        self.drop = nn.Dropout(0.5, rng=0)

    def forward(self, x):
        return self.drop(self.inner(x * self.scale) + self.offset)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(3, 1, rng=1)


NET_NAMES = ["blocks.0.scale", "blocks.0.inner.weight", "blocks.0.inner.bias", "blocks.0.offset",
             "blocks.1.scale", "blocks.1.inner.weight", "blocks.1.inner.bias", "blocks.1.offset",
             "head.weight", "head.bias"]


def test_parameter_order_is_registration_order_depth_first():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == NET_NAMES
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]
    assert list(net.state_dict()) == NET_NAMES


def test_reassignment_keeps_position_and_other_values_unregister():
    block = Block()
    block.scale = Variable(np.full(2, 2.0, np.float32), requires_grad=True)
    assert [n for n, _ in block.named_parameters()][0] == "scale"
    block.offset = None
    assert "offset" not in dict(block.named_parameters())
    block.cache = block.scale * 2.0  # an op's output, not a leaf: never a parameter
    assert "cache" not in dict(block.named_parameters())
    del block.inner
    assert list(dict(block.named_parameters())) == ["scale"]


def test_tied_parameters_appear_once():
    tied = nn.Module()
    tied.a = nn.Linear(2, 2, rng=0)
    tied.b = nn.Linear(2, 2, rng=1)
    tied.b.weight = tied.a.weight
    assert [n for n, _ in tied.named_parameters()] == ["a.weight", "a.bias", "b.bias"]


def test_attributes_before_super_init_raise_clearly():
    class Bad(nn.Module):
        def __init__(self):
            self.w = 1
    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Bad()


def test_modules_children_and_named_modules():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["blocks", "head"]
    names = [n for n, _ in net.named_modules()]
    assert names[:4] == ["", "blocks", "blocks.0", "blocks.0.inner"]
    assert len(list(net.modules())) == len(names) == 9


def test_train_and_eval_propagate():
    net = Net()
    assert net.eval() is net
    assert all(not m.training for m in net.modules())
    x = np.ones((4, 2), np.float32)
    np.testing.assert_array_equal(net.blocks[0](x).data, net.blocks[0](x).data)  # dropout off
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_is_a_copy_and_round_trips_in_place():
    net, other = Net(), Net()
    for p in other.parameters():
        p.data += 1
    state = other.state_dict()
    before = [p.data for p in net.parameters()]
    net.load_state_dict(state)
    for (name, p), old in zip(net.named_parameters(), before):
        assert p.data is old  # copied into the existing arrays, never rebound
        np.testing.assert_array_equal(p.data, state[name])
    state["head.bias"][...] = 99
    assert net.head.bias.data[0] != 99


def test_load_state_dict_into_views_of_a_flat_buffer():
    net = nn.Linear(3, 2, rng=0)
    flat = np.zeros(8, np.float32)
    net.weight.data, net.bias.data = flat[:6].reshape(2, 3), flat[6:]
    net.load_state_dict({"weight": np.ones((2, 3)), "bias": np.full(2, 2.0)})
    np.testing.assert_array_equal(flat, [1, 1, 1, 1, 1, 1, 2, 2])
    assert net.weight.dtype == np.float32


def test_load_state_dict_errors_name_keys_and_shapes():
    net = Net()
    state = net.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['head.bias'\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "head.bias"})
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        net.load_state_dict({**state, "extra": np.zeros(1)})
    bad = {**state, "head.weight": np.zeros((3, 1))}
    before = net.blocks[0].scale.data.copy()
    with pytest.raises(ValueError, match=r"'head.weight' has shape \(3, 1\).*\(1, 3\)"):
        net.load_state_dict({**bad, "blocks.0.scale": before + 5})
    np.testing.assert_array_equal(net.blocks[0].scale.data, before)  # nothing copied on error


def test_zero_grad_fills_in_place():
    net = nn.Linear(2, 2, rng=0)
    net(np.ones((1, 2), np.float32)).sum().backward()
    grads = [p.grad for p in net.parameters()]
    net.zero_grad()
    assert all(p.grad is g and not g.any() for p, g in zip(net.parameters(), grads))


def test_to_casts_parameters():
    net = Net().to(np.float64)
    assert {p.dtype for p in net.parameters()} == {np.dtype(np.float64)}


def test_sequential_indexing_and_errors():
    layers = [nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    assert list(seq) == layers
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(seq(x).data, layers[2](layers[1](layers[0](x))).data)
    with pytest.raises(TypeError, match="Modules"):
        nn.Sequential(lambda x: x)


def test_forward_must_be_defined_and_repr_lists_children():
    with pytest.raises(NotImplementedError):
        nn.Module()(1)
    text = repr(nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU()))
    assert "(0): Linear(2, 3, bias=True)" in text and "(1): ReLU()" in text
