"""Core ops, each a forward computation plus the closure that maps the output grad to input grads.

Broadcast inputs receive full-shape gradients here; grad_shapes.unbroadcast reduces them.
"""

import numpy as np

from .engine import Variable, as_variable, make_result
from .grad_shapes import IndexGrad
from .unary_ops import abs, clip, exp, log, relu, sigmoid, sqrt, tanh  # noqa: F401  (re-exported)


def _pair(a, b, op):
    a = as_variable(a, b if isinstance(b, Variable) else None)
    b = as_variable(b, a)
    if a.data.shape != b.data.shape and b.data.ndim and a.data.ndim:  # equal or scalar shapes always broadcast
        try:
            np.broadcast_shapes(a.data.shape, b.data.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None
    return a, b


def add(a, b):
    """a + b"""
    a, b = _pair(a, b, "add")
    return make_result(a.data + b.data, (a, b), lambda g: (g, g), "add")


def sub(a, b):
    """a - b"""
    a, b = _pair(a, b, "sub")
    return make_result(a.data - b.data, (a, b), lambda g: (g, -g if b.requires_grad else None), "sub")


def mul(a, b):
    """a * b; d/da = b, d/db = a"""
    a, b = _pair(a, b, "mul")

    def backward(g):
        return (g * b.data if a.requires_grad else None, g * a.data if b.requires_grad else None)
    return make_result(a.data * b.data, (a, b), backward, "mul")


def div(a, b):
    """a / b; d/da = 1/b, d/db = -a/b^2"""
    a, b = _pair(a, b, "div")
    out = a.data / b.data

    def backward(g):
        ga = g / b.data
        return (ga if a.requires_grad else None, -ga * out if b.requires_grad else None)  # -g a/b^2 = -(g/b)(a/b)
    return make_result(out, (a, b), backward, "div")


def power(a, b):
    """a ** b; d/da = b a^(b-1), d/db = a^b log a (only where a > 0)"""
    a, b = _pair(a, b, "pow")
    out = a.data ** b.data

    def backward(g):
        ga = g * b.data * a.data ** (b.data - 1) if a.requires_grad else None
        gb = g * out * np.log(np.where(a.data > 0, a.data, 1)) if b.requires_grad else None
        return ga, gb
    return make_result(out, (a, b), backward, "pow")


def neg(a):
    """-a"""
    return make_result(-a.data, (a,), lambda g: (-g,), "neg")


def matmul(a, b):
    """a @ b with numpy's rules; d/da = g @ b^T, d/db = a^T @ g (1-D operands promoted)."""
    a, b = as_variable(a), as_variable(b)
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned") from None

    def backward(g):
        a2 = a.data[None, :] if a.ndim == 1 else a.data
        b2 = b.data[:, None] if b.ndim == 1 else b.data
        g2 = g.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        ga = g2 @ np.swapaxes(b2, -1, -2) if a.requires_grad else None
        gb = _matmul_grad_b(a2, b2, g2) if b.requires_grad else None
        if ga is not None and a.ndim == 1:
            ga = ga[..., 0, :]
        if gb is not None and b.ndim == 1:
            gb = gb[..., :, 0]
        return ga, gb
    return make_result(out, (a, b), backward, "matmul")


def _matmul_grad_b(a2, b2, g2):
    if b2.ndim == 2 and a2.ndim > 2:  # one 2-D product instead of a batch of them summed afterwards
        return a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
    return np.swapaxes(a2, -1, -2) @ g2


def getitem(a, index):
    """a[index]; repeated integer indices accumulate their gradients (scatter-add)."""
    index = _plain_index(index)
    try:
        out = a.data[index]
    except IndexError as err:
        raise IndexError(f"getitem: index {index!r} on shape {a.shape}: {err}") from None
    basic = _is_basic(index)
    return make_result(out, (a,), lambda g: (IndexGrad(index, g, basic),), "getitem")


def _is_basic(index):
    """True when no element can be selected twice: ints, slices, and at most one boolean mask."""
    parts = index if isinstance(index, tuple) else (index,)
    masks = 0
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype == bool:
            masks += 1
        elif not (p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))):
            return False
    return masks <= 1


def _plain_index(index):
    if isinstance(index, Variable):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Variable) else i for i in index)
    return index


def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(ax % ndim for ax in axes))


def sum(a, axis=None, keepdims=False):
    """sum over axis; the grad is broadcast back over the summed axes."""
    axes = _normalize_axis(axis, a.ndim)
    out = np.sum(a.data, axis=axes, keepdims=keepdims)

    def backward(g):
        g = g if keepdims else np.expand_dims(g, axes)
        return (np.broadcast_to(g, a.shape),)
    return make_result(np.asarray(out), (a,), backward, "sum")


def mean(a, axis=None, keepdims=False):
    """sum / count over axis"""
    axes = _normalize_axis(axis, a.ndim)
    count = int(np.prod([a.shape[ax] for ax in axes]))
    return div(sum(a, axes, keepdims), count)


def var(a, axis=None, keepdims=False):
    """population variance: mean((a - mean(a))^2)

    a is first shifted by its first element along the axes (a constant: the variance does not
    depend on it), so a constant float32 slice gives exactly 0 however large its values.
    """
    axes = _normalize_axis(axis, a.ndim)
    first = tuple(slice(0, 1) if ax in axes else slice(None) for ax in range(a.ndim))
    shifted = sub(a, a.data[first])
    centred = sub(shifted, mean(shifted, axes, keepdims=True))
    return mean(mul(centred, centred), axes, keepdims)


def max(a, axis=None, keepdims=False):
    """max over axis; ties share the gradient equally."""
    axes = _normalize_axis(axis, a.ndim)
    out_keep = np.max(a.data, axis=axes, keepdims=True)

    def backward(g):
        g = g if keepdims else np.expand_dims(g, axes)
        mask = (a.data == out_keep).astype(a.dtype)
        return (g * mask / mask.sum(axis=axes, keepdims=True),)
    out = out_keep if keepdims else np.squeeze(out_keep, axis=axes)
    return make_result(np.asarray(out), (a,), backward, "max")


def reshape(a, *shape):
    """a viewed with a new shape"""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape shape {a.shape} into {shape}") from None
    return make_result(out, (a,), lambda g: (g.reshape(a.shape),), "reshape")


def transpose(a, *axes):
    """axes permuted (reversed when none are given)"""
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = tuple(ax % a.ndim for ax in axes) if axes else tuple(reversed(range(a.ndim)))
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    inverse = tuple(np.argsort(axes))
    return make_result(np.transpose(a.data, axes), (a,), lambda g: (np.transpose(g, inverse),), "transpose")


def _install_methods():
    rev = lambda fn: lambda self, other: fn(other, self)  # noqa: E731
    methods = {
        "__add__": add, "__radd__": rev(add), "__sub__": sub, "__rsub__": rev(sub),
        "__mul__": mul, "__rmul__": rev(mul), "__truediv__": div, "__rtruediv__": rev(div),
        "__pow__": power, "__rpow__": rev(power), "__matmul__": matmul, "__rmatmul__": rev(matmul),
        "__neg__": neg, "__getitem__": getitem, "sum": sum, "mean": mean, "var": var, "max": max,
        "reshape": reshape, "transpose": transpose, "exp": exp, "log": log, "sqrt": sqrt,
        "abs": abs, "__abs__": abs, "clip": clip, "relu": relu, "tanh": tanh, "sigmoid": sigmoid,
    }
    for name, fn in methods.items():
        setattr(Variable, name, fn)
    Variable.T = property(lambda self: transpose(self))


_install_methods()
