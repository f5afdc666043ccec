"""The built-in models keep float32 end to end: every node of the graph and every gradient."""

import numpy as np
import pytest

from mpigrad.models import CharTransformer, Classifier


def graph_nodes(root):
    seen, stack = {}, [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node._parents)
    return list(seen.values())


@pytest.mark.parametrize("kind", ["transformer", "classifier"])
def test_every_node_and_gradient_stays_float32(kind):
    rng = np.random.default_rng(0)
    np.random.seed(0)
    if kind == "transformer":
        model = CharTransformer(vocab_size=11, context=8, d_model=8, num_heads=2, num_layers=2)
        x, y = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    else:
        model = Classifier(features=6, hidden=[5, 4], classes=3, activation="gelu")
        x, y = rng.standard_normal((4, 6)).astype(np.float32), rng.integers(0, 3, 4)
    loss = model.loss(model(x), y) * (1.0 / 4)  # the train loop's micro-batch scaling
    nodes = graph_nodes(loss)
    assert len(nodes) > 10
    assert {str(n.dtype) for n in nodes if np.issubdtype(n.dtype, np.floating)} == {"float32"}
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
