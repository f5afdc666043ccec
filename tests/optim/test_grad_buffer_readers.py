"""Who may read gradients other than through .grad, checked by scanning the package sources.

A flat gradient buffer (a FlatGroup's .grad, its grad_views, a layout Run's grad, DataParallel's
groups) holds a parameter's gradient only while that parameter's .grad is still its view: after
`p.grad = None` or `p.grad = array` it holds stale values. Code that reads such a buffer must know
that, so it is confined to the few modules below; a new module that reaches for one fails here
and has to be added knowingly. The deferred-gradient API that was removed (a .grad owing a zero or
a clip factor to its buffer) must not come back through old code either.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("autograd", "optim", "runtime", "mpigrad")

# the ways to reach a flat gradient buffer: attribute names and importable names
BUFFER_ATTRIBUTES = {"grad_views", "groups"}
BUFFER_NAMES = {"flatten_parameters", "FlatGroup", "find_runs"}
ALLOWED = {
    "optim/flat.py": "makes the buffers",
    "optim/__init__.py": "exports flatten_parameters",
    "optim/layout.py": "finds runs only where every .grad is still a view of one buffer",
    "optim/optimizer.py": "uses the runs layout.py found, recomputed whenever a .grad is rebound",
    "runtime/data_parallel.py": "owns the buffers of a DataParallel model",
    "runtime/buckets.py": "all-reduces the buffers",
    "runtime/tree_reduce.py": "sums and gathers the buffers",
    "runtime/zero.py": "steps shards of the buffers",
    "mpigrad/scaling_job.py": "reads bucket sizes only (nbytes), never values",
}

REMOVED = {"grad_buffer", "grad_due", "_grad_due", "settle_grad", "defer_grad", "owed_scale", "grad_scale",
           "ProductGrad", "write_into"}


def sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def uses(tree, attributes, names):
    """(line, name) of every attribute access, name, import or keyword argument in the given sets."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in attributes:
            yield node.lineno, node.attr
        elif isinstance(node, ast.Name) and node.id in names:
            yield node.lineno, node.id
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in names:
            yield node.lineno, node.name
        elif isinstance(node, (ast.keyword, ast.arg)) and (node.arg in names or node.arg in attributes):
            yield node.lineno, node.arg
        elif isinstance(node, ast.FunctionDef) and (node.name in names or node.name in attributes):
            yield node.lineno, node.name


def test_the_scan_sees_the_package():
    files = dict(sources())
    assert {"optim/flat.py", "runtime/data_parallel.py", "autograd/engine.py"} <= set(files)
    assert list(uses(files["runtime/data_parallel.py"], BUFFER_ATTRIBUTES, BUFFER_NAMES))  # the scan finds reads


def test_flat_gradient_buffers_are_read_only_in_the_allowed_modules():
    found = [f"{path}:{line} {name}" for path, tree in sources() if path not in ALLOWED
             for line, name in uses(tree, BUFFER_ATTRIBUTES, BUFFER_NAMES)]
    assert not found, ("these modules reach a flat gradient buffer, which is stale once a .grad is rebound; "
                       "read .grad instead, or add the module to ALLOWED knowing that: " + ", ".join(found))


def test_the_removed_deferred_gradient_api_is_used_nowhere():
    found = [f"{path}:{line} {name}" for path, tree in sources() for line, name in uses(tree, REMOVED, REMOVED)]
    assert not found, ".grad is always the plain eager gradient now; remove: " + ", ".join(found)


@pytest.mark.parametrize("code", ["x = dp.groups[0].grad", "from mpigrad.optim import flatten_parameters",
                                  "p.settle_grad()", "adam_update(p, g, m, v, grad_scale=0.5)"])
def test_each_kind_of_use_is_caught(code):
    tree = ast.parse(code)
    assert list(uses(tree, BUFFER_ATTRIBUTES | REMOVED, BUFFER_NAMES | REMOVED))
