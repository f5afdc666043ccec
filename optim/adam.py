"""Adam (classical L2 weight decay) and AdamW (decoupled weight decay)."""

import numpy as np

from .kernels import adam_update
from .optimizer import Optimizer, check_arg, check_nonneg, is_real


class Adam(Optimizer):
    """p <- p - lr * mhat / (sqrt(vhat) + eps), mhat = m/(1-beta1^t), vhat = v/(1-beta2^t), g <- g + wd*p first.

    m <- beta1 m + (1-beta1) g, v <- beta2 v + (1-beta2) g^2; t counts each parameter's own updates
    from 1 (a parameter's first gradient at step k gets t = 1, as in PyTorch) and the
    learning rate is read on every step (schedulers take effect). See kernels.adam_update.
    """

    slots = ("m_sum", "v_sum")  # m / (1-beta1) and v / (1-beta2): see kernels.adam_update
    decoupled = False

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8):
        self._set_hyperparams(lr, beta1, beta2, weight_decay, eps)
        super().__init__(params, lr)

    def hyperparams(self):
        return {"lr": self.learning_rate, "beta1": self.beta1, "beta2": self.beta2,
                "weight_decay": self.weight_decay, "eps": self.eps}

    def _set_hyperparams(self, lr, beta1, beta2, weight_decay, eps):
        owner = type(self).__name__
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            check_arg(owner, name, value, is_real(value) and 0 <= value < 1, "is outside [0, 1)")
        check_arg(owner, "eps", eps, is_real(eps) and eps > 0, "must be > 0")
        check_nonneg(owner, "weight_decay", weight_decay)
        self.learning_rate = lr
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.weight_decay, self.eps = float(weight_decay), float(eps)

    def _update(self, data, grad, state, step):
        adam_update(data, grad, state["m_sum"], state["v_sum"], step=step, lr=self.learning_rate,
                    beta1=self.beta1, beta2=self.beta2, eps=self.eps,
                    weight_decay=self.weight_decay, decoupled=self.decoupled, scratch=self._scratch)


    def load_state_dict(self, d):
        """Also takes the state of files written before the undivided moments (slots m and v)."""
        beta1, beta2 = d.get("hyperparams", {}).get("beta1", self.beta1), d.get("hyperparams", {}).get("beta2", self.beta2)
        old = {k: e for k, e in d.get("state", {}).items() if isinstance(e, dict) and set(e) == {"m", "v"}}
        if old:
            state = dict(d["state"])
            for k, e in old.items():
                state[k] = {"m_sum": np.asarray(e["m"]) / (1.0 - beta1), "v_sum": np.asarray(e["v"]) / (1.0 - beta2)}
            d = {**d, "state": state}
        super().load_state_dict(d)


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p * (1 - lr*wd) before the Adam update (PyTorch's AdamW)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=1e-2, eps=1e-8):
        super().__init__(params, lr, beta1, beta2, weight_decay, eps)

