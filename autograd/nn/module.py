"""Module: a container of parameters and submodules with a fixed, documented parameter order."""

import numpy as np

from ..engine import Variable


class Module:
    """Base class of layers and models; subclasses assign parameters and submodules as attributes.

    Registration: assigning a leaf Variable that requires grad registers a parameter (an op's
    output, e.g. a cached activation, does not); assigning a Module registers a submodule.
    Both keep the position of their first assignment (re-assigning the same name keeps it;
    assigning anything else to the name unregisters it).

    Order: parameters() walks registered attributes in that order and recurses depth-first into
    each submodule where it was registered. A Variable reachable twice (tied weights) appears
    once, at its first position. named_parameters() uses dotted paths, e.g.
    "blocks.0.attn.q.weight"; state_dict() and the runtime's flat buffers use the same order.
    """

    def __init__(self):
        object.__setattr__(self, "_members", {})  # name -> None, in registration order
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        members = self.__dict__.get("_members")
        if members is None:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Module) or (isinstance(value, Variable) and value.is_leaf and value.requires_grad):
            members.setdefault(name, None)
        else:
            members.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._members.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def named_children(self):
        """(name, submodule) for the direct submodules, in registration order."""
        for name in self._members:
            value = self.__dict__[name]
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return (module for _, module in self.named_children())

    def named_modules(self, prefix=""):
        """(dotted name, module) for self ("") and every submodule, depth-first."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_parameters(self, prefix=""):
        """(dotted name, parameter) in the documented order, each Variable once."""
        seen = set()
        for name, p in self._walk_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _walk_parameters(self, prefix):
        for name in self._members:
            value, path = self.__dict__[name], f"{prefix}.{name}" if prefix else name
            if isinstance(value, Module):
                yield from value._walk_parameters(path)
            else:
                yield path, value

    def parameters(self):
        """The parameters as a list, in the order of named_parameters()."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        """Fill every existing .grad with +0.0 in place (they may be views the runtime owns, or held by the user)."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad.fill(0)

    def train(self, mode=True):
        """Set .training on self and every submodule (Dropout reads it); returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Cast every parameter to dtype (rebinds .data: do it before handing the model to the runtime)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype, copy=False)
            p.grad = None if p.grad is None else p.grad.astype(dtype, copy=False)
        return self

    def state_dict(self):
        """name -> copy of the parameter's array, in parameters() order."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy state's arrays into the parameters in place (p.data[...] = value).

        Every key and shape is checked first; on any mismatch a ValueError names it and nothing is copied.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {name: np.asarray(v.data if isinstance(v, Variable) else v) for name, v in state.items()}
        for name, p in params.items():
            if arrays[name].shape != p.shape:
                raise ValueError(f"load_state_dict: '{name}' has shape {arrays[name].shape} in the state dict "
                                 f"but {p.shape} in the model")
        for name, p in params.items():
            p.data[...] = arrays[name]  # never rebind: the runtime's p.data may view a flat buffer

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ("\n" + "\n".join(children) + "\n)" if children else ")")


class Sequential(Module):
    """Modules applied in turn, registered as children "0", "1", ...; indexable and sliceable."""

    def __init__(self, *modules):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes Modules, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def __len__(self):
        return sum(1 for _ in self.named_children())

    def __iter__(self):
        return iter(list(self.children()))

    def __getitem__(self, index):
        layers = list(self.children())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x
