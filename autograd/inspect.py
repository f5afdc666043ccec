"""Gradient checking by central differences, and the graph as Graphviz DOT text."""

import numpy as np

from .engine import Variable


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check d fn / d input against (f(x + eps) - f(x - eps)) / 2 eps for every input element.

    Inputs should be float64. A non-scalar output is reduced by a fixed random projection
    sum(out * r), which checks the full Jacobian-vector product. Returns True or raises.
    """
    inputs = [x for x in inputs]
    for x in inputs:
        if not isinstance(x, Variable):
            raise TypeError(f"gradcheck: inputs must be Variables, got {type(x).__name__}")
    projection = _projection(fn(*inputs), seed)
    for x in inputs:
        x.grad = None
    _scalar(fn(*inputs), projection).backward()
    for number, x in enumerate(inputs):
        if x.requires_grad:
            _compare(fn, inputs, projection, number, eps, atol, rtol)
    return True


def _projection(out, seed):
    return np.random.default_rng(seed).standard_normal(out.shape)


def _scalar(out, projection):
    return (out * projection).sum()


def _compare(fn, inputs, projection, number, eps, atol, rtol):
    x = inputs[number]
    analytic = np.zeros_like(x.data) if x.grad is None else x.grad
    numeric = np.zeros(x.shape)
    for i in np.ndindex(x.shape):  # index x.data itself: a reshape of a strided array would be a copy
        saved = x.data[i]
        x.data[i] = saved + eps
        plus = _scalar(fn(*inputs), projection).item()
        x.data[i] = saved - eps
        minus = _scalar(fn(*inputs), projection).item()
        x.data[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(analytic - numeric)), x.shape))
        raise GradcheckError(f"gradcheck: input {number} shape {x.shape}: at index {worst} analytic "
                             f"{analytic[worst]:.8g} vs numeric {numeric[worst]:.8g}")


def to_dot(output):
    """The graph that produced `output`, as Graphviz DOT text (inputs point to their ops)."""
    lines, ids, stack = ["digraph mpigrad {", "  rankdir=LR;"], {}, [output]
    node_id = lambda node: ids.setdefault(id(node), f"n{len(ids)}")  # noqa: E731
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        shape = "box" if node._parents else "ellipse"
        lines.append(f'  {node_id(node)} [label="{_label(node)}", shape={shape}];')
        for parent in node._parents:
            lines.append(f"  {node_id(parent)} -> {node_id(node)};")
            stack.append(parent)
    lines.append("}")
    return "\n".join(lines)


def _label(node):
    title = node.name or node._op or ("param" if node.requires_grad else "const")
    title = str(title).replace("\\", "\\\\").replace('"', '\\"')  # DOT string escapes
    return f"{title}\\n{tuple(node.shape)} {node.dtype}"
