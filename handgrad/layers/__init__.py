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
from .adaptive_pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    GlobalAvgPool2d,
)
from .attention import MultiheadAttention
from .cells import GRUCell, LSTMCell, RNNCell
from .container import Residual, Sequential
from .conv import Conv1d, Conv2d
from .conv3d import Conv3d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d
from .conv_transpose3d import ConvTranspose3d
from .distance import CosineSimilarity, PairwiseDistance
from .dropout import Dropout
from .embedding import Embedding, EmbeddingBag
from .feature_dropout import AlphaDropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from .fold import Fold, Unfold
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
from .lp_pooling import LPPool1d, LPPool2d, LPPool3d
from .module_list import ModuleDict, ModuleList
from .normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .padding import (
    CircularPad1d,
    CircularPad2d,
    CircularPad3d,
    ConstantPad1d,
    ConstantPad2d,
    ConstantPad3d,
    ReflectionPad1d,
    ReflectionPad2d,
    ReflectionPad3d,
    ReplicationPad1d,
    ReplicationPad2d,
    ReplicationPad3d,
    ZeroPad1d,
    ZeroPad2d,
    ZeroPad3d,
)
from .pooling import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .pooling3d import AvgPool3d, MaxPool3d
from .rearrange import ChannelShuffle, PixelShuffle, PixelUnshuffle
from .recurrent import GRU, LSTM, RNN
from .shape import Flatten, Unflatten
from .transformer import Transformer, TransformerDecoder, TransformerEncoder
from .transformer_layers import TransformerDecoderLayer, TransformerEncoderLayer
from .unpooling import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "SiLU", "Softmax", "Tanh", "GLU",
    "Softmax2d", "Softmin", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "PReLU", "ReLU6",
    "Softshrink", "Threshold", "CELU", "SELU", "LogSigmoid", "Mish", "Softplus", "Softsign",
    "Tanhshrink", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "GlobalAvgPool2d",
    "MultiheadAttention", "GRUCell", "LSTMCell", "RNNCell", "Residual", "Sequential", "Conv1d",
    "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "CosineSimilarity", "PairwiseDistance", "Dropout", "Embedding", "EmbeddingBag", "AlphaDropout",
    "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout", "Fold", "Unfold", "GroupNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LayerNorm", "RMSNorm", "Bilinear",
    "Identity", "Linear", "LocalResponseNorm", "LPPool1d", "LPPool2d", "LPPool3d", "ModuleDict",
    "ModuleList", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "CircularPad1d", "CircularPad2d",
    "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d",
    "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "AvgPool1d", "AvgPool2d",
    "MaxPool1d", "MaxPool2d", "AvgPool3d", "MaxPool3d", "ChannelShuffle", "PixelShuffle",
    "PixelUnshuffle", "GRU", "LSTM", "RNN", "Flatten", "Unflatten", "Transformer",
    "TransformerDecoder", "TransformerEncoder", "TransformerDecoderLayer",
    "TransformerEncoderLayer", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Upsample",
    "UpsamplingBilinear2d", "UpsamplingNearest2d",
]
