"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from .kernels import sgd_update
from .optimizer import Optimizer, check_nonneg


class SGD(Optimizer):
    """PyTorch's SGD: g <- g + wd*p; b <- mu*b + g (b starts at 0, so b = g at step 1); p <- p - lr*(g + mu*b if nesterov else b)."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self._set_hyperparams(lr, momentum, nesterov, weight_decay)
        self.slots = ("momentum",) if self.momentum else ()
        super().__init__(params, lr)

    def hyperparams(self):
        return {"lr": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _set_hyperparams(self, lr, momentum, nesterov, weight_decay):
        check_nonneg("SGD", "momentum", momentum)
        check_nonneg("SGD", "weight_decay", weight_decay)
        if nesterov and not momentum > 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got momentum={momentum!r}")
        if "slots" in vars(self) and bool(momentum) != bool(self.slots):
            raise ValueError(f"SGD: momentum={momentum!r} cannot switch momentum on or off after construction")
        self.learning_rate = lr
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _update(self, data, grad, state, step):
        sgd_update(data, grad, state.get("momentum"), lr=self.learning_rate, momentum=self.momentum,
                   nesterov=self.nesterov, weight_decay=self.weight_decay,
                   scratch=self._scratch)
