"""Neural-network layers built on mpigrad.autograd.

Parameter order (parameters(), named_parameters(), state_dict()): attributes in the order they
were first assigned, recursing depth-first into submodules; see Module. Layers default to
float32 parameters and take optional `rng` (numpy Generator or int seed) and `dtype` keywords.
"""

from . import functional, init
from .attention import MultiHeadAttention, causal_mask
from .functional import embedding, layer_norm, linear, scaled_dot_product_attention
from .layers import GELU, MLP, Dropout, Embedding, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .module import Module, Sequential
from .recurrent import GRU, RNN

__all__ = [
    "Module", "Sequential", "Linear", "ReLU", "Tanh", "Sigmoid", "GELU", "Dropout", "Embedding",
    "LayerNorm", "MLP", "MultiHeadAttention", "RNN", "GRU", "init", "functional", "linear",
    "layer_norm", "causal_mask", "embedding", "scaled_dot_product_attention",
]
