"""The autograd engine: a Variable node, a backward closure per op, one topological pass."""

import contextlib

import numpy as np

from .grad_shapes import IndexGrad, ProductGrad, unbroadcast

_grad_enabled = True
_WRITTEN = object()  # a leaf's pending gradient that was written straight into its .grad buffer
_pass_callbacks = None  # list while a backward pass runs, else None


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record no graph (for evaluation and optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


def current_pass():
    """A token of the backward pass running now (None outside one): `is`-equal only within one pass."""
    return _pass_callbacks


def queue_callback(fn):
    """Run fn() once at the end of the backward pass that is running now."""
    if _pass_callbacks is None:
        raise RuntimeError("queue_callback() can only be called during a backward pass")
    _pass_callbacks.append(fn)


class Variable:
    """A numpy array that remembers the op that made it, so gradients can flow back."""

    __slots__ = ("data", "_grad", "_grad_due", "requires_grad", "name", "_parents", "_backward", "_op", "_hooks")
    __array_ufunc__ = None  # ndarray <op> Variable defers to Variable's reflected operator

    def __init__(self, data, requires_grad=False, name=None):
        array = np.asarray(data.data if isinstance(data, Variable) else data)
        if requires_grad and not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"Variable(requires_grad=True) needs floating-point data, got dtype {array.dtype}")
        self.data = array
        self._grad, self._grad_due = None, None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._parents = ()
        self._backward = None
        self._op = None
        self._hooks = None

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        label = f", name={self.name!r}" if self.name else ""
        return f"Variable({self.data!r}, requires_grad={self.requires_grad}{label})"

    def item(self):
        return self.data.item()

    def numpy(self):
        return self.data

    def detach(self):
        """The same values with no graph behind them (shares memory with self.data)."""
        return Variable(self.data)

    @property
    def grad(self):
        """d(output)/d(self) accumulated by backward (None before any); a deferred zero or scale is applied first."""
        if self._grad_due is not None:
            self.settle_grad()
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad, self._grad_due = value, None

    @property
    def grad_buffer(self):
        """The array behind .grad as it is stored: a deferred zero or scale not yet applied."""
        return self._grad

    @property
    def grad_due(self):
        """The factor .grad still owes its buffer: None (nothing), 0.0 (a zero_grad) or a clip scale."""
        return self._grad_due

    def defer_grad(self, factor):
        """.grad reads as factor * its buffer from now on; the buffer is changed only when .grad is read
        (or never, when backward overwrites a deferred zero or an optimizer folds the factor into its step)."""
        if self._grad is None:
            return
        if factor != 0.0:  # a zero needs nothing owed before it applied
            self.settle_grad()
        self._grad_due = float(factor)

    def settle_grad(self):
        """Apply what .grad owes (a deferred zero or scale) to its buffer now; nothing when it owes nothing."""
        due, self._grad_due = self._grad_due, None
        if due is None:
            return
        if due == 0.0:
            self._grad.fill(0)
        else:
            np.multiply(self._grad, due, out=self._grad)

    @property
    def is_leaf(self):
        return not self._parents

    def register_post_accumulate_grad_hook(self, fn):
        """Call fn(self) during backward as soon as this leaf's .grad is final for the pass."""
        if not (self.requires_grad and self.is_leaf):
            raise RuntimeError("grad hooks can only be registered on leaf Variables that require grad")
        self._hooks = (self._hooks or []) + [fn]

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) * grad into every leaf's .grad (one reverse topological pass)."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a Variable that does not require grad")
        _run_backward(self, _seed_grad(self, grad), retain_graph)


def _seed_grad(out, grad):
    if grad is None:
        if out.data.size != 1:
            raise RuntimeError(f"backward() without a grad argument needs a scalar output, got shape {out.shape}")
        return np.ones_like(out.data)
    grad = np.asarray(grad.data if isinstance(grad, Variable) else grad, dtype=out.dtype)
    if grad.shape != out.shape:
        raise ValueError(f"backward(): grad has shape {grad.shape} but the output has shape {out.shape}")
    return grad


def _graph(root):
    """(interior nodes each after all of its parents, {id: consumers} of every node needing a gradient).

    Iterative post-order DFS. A node is marked when it is expanded, not when it is pushed: marking at
    push time lets a node that another path reaches deeper be emitted before one of its consumers.
    Each node is expanded once, so counting edges while expanding counts every consumer once.
    """
    order, pending, expanded, stack = [], {}, set(), [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in expanded:
            continue
        expanded.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent.requires_grad:
                key = id(parent)
                pending[key] = pending.get(key, 0) + 1
                if parent._parents and key not in expanded:
                    stack.append((parent, False))
    return order, pending


def _run_backward(root, seed, retain_graph):
    global _pass_callbacks
    if _pass_callbacks is not None:
        raise RuntimeError("backward() cannot be called from inside another backward pass")
    _pass_callbacks = []
    try:
        if not root._parents:
            _accumulate_leaf(root, seed, False)
        else:
            _propagate_all(root, seed, retain_graph)
        for fn in _pass_callbacks:
            fn()
    finally:
        _pass_callbacks = None


def _propagate_all(root, seed, retain_graph):
    """Each interior node's backward once, in reverse topological order; a leaf's .grad is written
    (and its hooks fired) as soon as its last consumer has sent its gradient."""
    order, pending = _graph(root)
    grads, owned = {id(root): seed}, set()  # owned: ids whose grads entry this pass allocated
    for node in reversed(order):
        backward = node._backward
        if backward is None:
            raise RuntimeError(f"backward through '{node._op}' a second time: its graph was freed by an "
                               "earlier backward(); pass retain_graph=True to the first call")
        grad = grads.pop(id(node), None)
        parent_grads = backward(grad) if grad is not None else None
        if not retain_graph:
            node._backward = None  # frees the arrays the closure saved
        for i, parent in enumerate(node._parents):
            if not parent.requires_grad:
                continue
            key = id(parent)
            pgrad = None if parent_grads is None else parent_grads[i]
            if type(pgrad) is ProductGrad:
                if pending[key] == 1 and key not in grads and _write_into_leaf(parent, pgrad):
                    grads[key] = _WRITTEN
                else:
                    _collect(parent, pgrad.value(), grads, owned, True)
            elif pgrad is not None:
                _collect(parent, pgrad, grads, owned, _exclusive(pgrad, grad, parent_grads))
            pending[key] -= 1
            if not pending[key] and not parent._parents:
                _accumulate_leaf(parent, grads.pop(key, None), key in owned)


def _exclusive(pgrad, grad, parent_grads):
    """True when nothing else can hold pgrad: the op made it for this one parent (not a view, not its
    incoming grad, not shared with another parent). Backward closures must never return an array
    they keep elsewhere, so such a buffer can be added to in place or become a leaf's .grad."""
    if type(pgrad) is not np.ndarray or pgrad.base is not None or pgrad is grad or not pgrad.flags.writeable:
        return False
    holders = 0
    for p in parent_grads:
        holders += p is pgrad
    return holders == 1


def _collect(parent, pgrad, grads, owned, exclusive):
    """Add pgrad to parent's pending gradient, in place once the pass owns that buffer."""
    key = id(parent)
    previous = grads.get(key)
    if isinstance(pgrad, IndexGrad):
        if key not in owned:
            # a fresh buffer: `previous` may be a read-only broadcast or shared with another node
            if previous is None:
                previous = np.zeros(parent.data.shape, parent.data.dtype)
            else:
                previous = np.array(previous, parent.data.dtype)
            grads[key] = previous
            owned.add(key)
        pgrad.add_to(previous)
        return
    data = parent.data
    if type(pgrad) is not np.ndarray or pgrad.shape != data.shape or pgrad.dtype != data.dtype:
        reduced = unbroadcast(pgrad, data.shape, data.dtype)
        if reduced is not pgrad:  # a new sum or cast, or a read-only broadcast view
            exclusive = isinstance(reduced, np.ndarray) and reduced.base is None and reduced.flags.writeable
        pgrad = reduced
    if previous is None:
        grads[key] = pgrad
        if exclusive:
            owned.add(key)
    elif key in owned:
        previous += pgrad
    else:
        grads[key] = previous + pgrad
        owned.add(key)


def _write_into_leaf(leaf, product):
    """A leaf's only gradient of the pass, owed over a deferred zero: computed into its buffer."""
    if leaf._parents or leaf._grad is None or leaf._grad_due != 0.0 or not product.fits(leaf._grad):
        return False
    leaf._grad_due = None  # overwritten now (before a listener hears of the first rows): nothing owed
    product.write_into(leaf._grad, *_rows_listener(leaf))
    return True


def _rows_listener(leaf):
    """(block_rows, rows_written(lo, hi)) from the first hook owner that asks, through its method
    grad_rows_listener(leaf), to be told of a product's rows as they land in the leaf's buffer
    (the runtime sends them while the rest is computed); (None, None) when none asks."""
    for hook in leaf._hooks or ():
        ask = getattr(getattr(hook, "__self__", None), "grad_rows_listener", None)
        found = ask(leaf) if ask is not None else None
        if found is not None:
            return found
    return None, None


def _accumulate_leaf(leaf, grad, owned):
    if grad is _WRITTEN:
        grad = None  # already in the leaf's buffer
    if grad is not None:
        if leaf._grad is None:
            # a buffer the pass allocated is handed over; anything else may be a view or shared
            leaf.grad = grad if owned else np.array(grad, dtype=leaf.dtype)
        elif leaf._grad_due == 0.0:  # zeroed by a deferred zero_grad: write instead of add (no zeroing pass)
            np.copyto(leaf._grad, grad)
            leaf._grad_due = None
        else:
            leaf.grad += grad  # in place: the runtime's .grad may be a view into a flat buffer
    for hook in leaf._hooks or ():
        hook(leaf)


def make_result(data, parents, backward, op):
    """The output of an op; the graph is recorded only when a parent needs a gradient."""
    out = Variable.__new__(Variable)
    out.data, out._grad, out._grad_due, out.name, out._op, out._hooks = data, None, None, None, op, None
    needed = False
    if _grad_enabled:
        for p in parents:
            if p.requires_grad:
                needed = True
                break
    out.requires_grad = needed
    out._parents = tuple(parents) if needed else ()
    out._backward = backward if needed else None
    return out


def constant(array):
    """A Variable around a numpy array that needs no gradient (no checks: the caller made the array)."""
    out = Variable.__new__(Variable)
    out.data, out._grad, out._grad_due, out.requires_grad, out.name = array, None, None, False, None
    out._parents, out._backward, out._op, out._hooks = (), None, None, None
    return out


def as_variable(x, like=None):
    """x as a Variable; a python number takes `like`'s float dtype so float32 is never upcast."""
    if isinstance(x, Variable):
        return x
    if (like is not None and isinstance(x, (int, float, np.integer, np.floating))
            and like.data.dtype.kind == "f"):
        return constant(np.asarray(x, dtype=like.data.dtype))
    return Variable(x)
