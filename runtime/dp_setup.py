"""What DataParallel checks and installs at construction, before any collective."""


def hook_even_if_frozen(param, hook):
    """Register hook on param whether or not it requires grad now (it may be unfrozen later)."""
    frozen = not param.requires_grad
    param.requires_grad = True
    param.register_post_accumulate_grad_hook(hook)
    param.requires_grad = not frozen


def refuse_second_wrapper(named, wrapper_class):
    """Two wrappers' hooks on one parameter would both count and reduce every pass (before any collective)."""
    for name, p in named:
        if any(isinstance(getattr(hook, "__self__", None), wrapper_class) for hook in p._hooks or ()):
            raise ValueError(f"DataParallel: the module is already wrapped by a DataParallel (parameter {name} "
                             "has its hooks); keep using that wrapper (its .module is this model)")


def check_micro_batches(micro_batches, deterministic, world_size):
    """Before any collective, so every rank raises the same error."""
    if micro_batches is None:
        return
    multiple = world_size if deterministic else 1
    if not (isinstance(micro_batches, int) and micro_batches >= world_size and micro_batches % multiple == 0):
        rule = f"a positive multiple of the world size {world_size}" if deterministic else \
            f"an integer >= the world size {world_size} (every rank runs a backward)"
        raise ValueError(f"DataParallel: micro_batches={micro_batches!r} must be {rule}")
