"""Reverse-mode automatic differentiation on numpy arrays."""

from .engine import Variable, is_grad_enabled, no_grad, queue_callback
from .functional import (binary_cross_entropy_with_logits, concat, cross_entropy, dropout, elu,
                         gelu, leaky_relu, log_softmax, mae_loss, mse_loss, softmax, sse_loss,
                         stack)
from .inspect import GradcheckError, gradcheck, to_dot
from .ops import exp, log, matmul, relu, sigmoid, sqrt, tanh

from . import nn  # noqa: E402  (after the ops it builds on)
from .nn.init import manual_seed  # noqa: E402
from .blas_start import warm_gemm_buffer  # noqa: E402
from .freed_memory import keep_freed_memory  # noqa: E402

warm_gemm_buffer()  # before any model's first GEMM: see blas_start.py
keep_freed_memory()  # numpy's temporaries reuse freed memory: see freed_memory.py

__all__ = [
    "Variable", "no_grad", "is_grad_enabled", "queue_callback", "gradcheck", "GradcheckError",
    "to_dot", "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "exp", "log", "sqrt",
    "matmul", "softmax", "log_softmax", "concat", "stack", "dropout", "mse_loss", "mae_loss",
    "sse_loss", "cross_entropy", "binary_cross_entropy_with_logits", "nn",
    "manual_seed",
]
