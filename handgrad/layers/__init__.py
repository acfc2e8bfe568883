"""Layers, one module per family."""

from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .activation_dim import GLU, Softmax2d, Softmin
from .activation_piecewise import (
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    PReLU,
    ReLU6,
    Softshrink,
    Threshold,
)
from .activation_smooth import CELU, SELU, LogSigmoid, Mish, Softplus, Softsign, Tanhshrink
from .attention import MultiheadAttention
from .cells import GRUCell, LSTMCell, RNNCell
from .container import Residual, Sequential
from .conv import Conv2d
from .distance import CosineSimilarity, PairwiseDistance
from .dropout import Dropout
from .embedding import Embedding, EmbeddingBag
from .feature_dropout import AlphaDropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from .layer_norm import (
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
)
from .linear import Bilinear, Identity, Linear
from .local_response_norm import LocalResponseNorm
from .module_list import ModuleDict, ModuleList
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .pooling import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    GlobalAvgPool2d,
    MaxPool2d,
)
from .rearrange import ChannelShuffle, PixelShuffle, PixelUnshuffle
from .recurrent import GRU, LSTM, RNN
from .shape import Flatten, Unflatten
from .transformer import Transformer, TransformerDecoder, TransformerEncoder
from .transformer_layers import TransformerDecoderLayer, TransformerEncoderLayer

__all__ = [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "SiLU", "Softmax", "Tanh",
    "Residual", "Sequential", "Dropout", "Identity", "Linear", "Flatten", "Unflatten",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "LayerNorm", "RMSNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding", "EmbeddingBag",
    "Bilinear",
    "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "GlobalAvgPool2d", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
    "FeatureAlphaDropout", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
    "CosineSimilarity", "PairwiseDistance", "ModuleList", "ModuleDict",
    "PReLU", "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Mish",
    "SELU", "CELU", "GLU", "LogSigmoid", "Threshold", "Softmin", "Softmax2d", "Tanhshrink",
    "Softshrink", "Hardshrink",
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder",
    "TransformerDecoderLayer", "TransformerDecoder", "Transformer",
]
