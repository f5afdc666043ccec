"""Learning-rate schedulers: each sets optimizer.learning_rate when step() is called."""

import math

from .optimizer import check_arg, check_nonneg, is_real


def _check_int(owner, name, value, low):
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    check_arg(owner, name, value, ok, f"must be an integer >= {low}")


class LRScheduler:
    """Base: state_dict() is every attribute except the optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def state_dict(self):
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, d):
        expected = set(self.state_dict())
        if set(d) != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: keys {sorted(d)}, expected {sorted(expected)}")
        vars(self).update(d)


class StepLR(LRScheduler):
    """lr <- lr * gamma on every step_size-th call of step()."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        _check_int("StepLR", "step_size", step_size, 1)
        check_arg("StepLR", "gamma", gamma, is_real(gamma) and gamma > 0, "must be > 0")
        super().__init__(optimizer)
        self.step_size, self.gamma, self.count = step_size, float(gamma), 0

    def step(self):
        self.count += 1
        if self.count % self.step_size == 0:
            self.optimizer.learning_rate = self.optimizer.learning_rate * self.gamma


class ReduceLROnPlateau(LRScheduler):
    """lr <- max(lr * factor, min_lr) after more than `patience` steps without improving on the best metric.

    Improvement in mode "min" means metric < best * (1 - threshold) (threshold_mode "rel") or
    metric < best - threshold ("abs"); mode "max" mirrors it. After a reduction, `cooldown`
    steps count no bad epochs. NaN and infinite metrics are ignored: no bad epoch, no new best.
    A reduction smaller than eps is skipped (PyTorch's convention).
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        owner = "ReduceLROnPlateau"
        check_arg(owner, "mode", mode, mode in ("min", "max"), "must be 'min' or 'max'")
        check_arg(owner, "threshold_mode", threshold_mode, threshold_mode in ("rel", "abs"),
                  "must be 'rel' or 'abs'")
        check_arg(owner, "factor", factor, is_real(factor) and 0 < factor < 1, "is outside (0, 1)")
        _check_int(owner, "patience", patience, 0)
        _check_int(owner, "cooldown", cooldown, 0)
        for name, value in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
            check_nonneg(owner, name, value)
        super().__init__(optimizer)
        self.mode, self.threshold_mode, self.factor = mode, threshold_mode, float(factor)
        self.patience, self.cooldown, self.threshold = patience, cooldown, float(threshold)
        self.min_lr, self.eps = float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0

    def step(self, metric):
        value = float(metric.item() if hasattr(metric, "item") else metric)
        if not math.isfinite(value):
            return
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def _is_better(self, value):
        rel, sign = self.threshold_mode == "rel", 1.0 if self.mode == "min" else -1.0
        if rel:
            bound = self.best * (1.0 - sign * self.threshold)
        else:
            bound = self.best - sign * self.threshold
        return value < bound if self.mode == "min" else value > bound

    def _reduce(self):
        old = self.optimizer.learning_rate
        new = max(old * self.factor, self.min_lr)
        if old - new > self.eps:
            self.optimizer.learning_rate = new


class CosineLR(LRScheduler):
    """Step t (0-based, t = number of step() calls) uses lr_t; base is the optimizer's lr at construction.

    lr_t = base * (t+1) / warmup for t < warmup; then
    lr_t = base - (base - min_lr) * (1 - cos(pi * (t - warmup) / (total - warmup))) / 2 for t < total;
    lr_t = min_lr for t >= total. The constructor sets lr_0; call step() after each optimizer step.
    total_steps counts the warmup; with warmup_steps >= total_steps there is no cosine phase.
    """

    def __init__(self, optimizer, total_steps, warmup_steps=0, min_lr=0.0):
        _check_int("CosineLR", "total_steps", total_steps, 1)
        _check_int("CosineLR", "warmup_steps", warmup_steps, 0)
        check_nonneg("CosineLR", "min_lr", min_lr)
        base = optimizer.learning_rate
        check_arg("CosineLR", "min_lr", min_lr, min_lr <= base, f"exceeds the optimizer's lr={base!r}")
        super().__init__(optimizer)
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, float(min_lr)
        self.base_lr, self.t = base, 0
        optimizer.learning_rate = self.lr_at(0)

    def lr_at(self, t):
        """The learning rate of step t (see the class docstring)."""
        if t < self.warmup_steps:
            return self.base_lr * (t + 1) / self.warmup_steps
        if t >= self.total_steps:  # also right after a warmup as long as total_steps or longer
            return self.min_lr
        progress = (t - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.base_lr - (self.base_lr - self.min_lr) * (1.0 - math.cos(math.pi * progress)) / 2

    def step(self):
        self.t += 1
        self.optimizer.learning_rate = self.lr_at(self.t)
