"""Layers, one module per family."""

from .activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .adaptive_pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    GlobalAvgPool2d,
)
from .cells import GRUCell, LSTMCell, RNNCell
from .container import Residual, Sequential
from .conv import Conv1d, Conv2d
from .conv3d import Conv3d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d
from .conv_transpose3d import ConvTranspose3d
from .dropout import Dropout
from .embedding import Embedding
from .fold import ChannelShuffle, Fold, PixelShuffle, PixelUnshuffle, Unfold
from .linear import Identity, Linear
from .lp_pooling import LPPool1d, LPPool2d, LPPool3d
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
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
from .recurrent import GRU, LSTM, RNN
from .shape import Flatten, Unflatten
from .unpooling import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d
from .upsample import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = [
    "ELU", "GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "SiLU", "Softmax", "Tanh",
    "Residual", "Sequential", "Dropout", "Identity", "Linear", "Flatten", "Unflatten",
    "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Embedding",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "GlobalAvgPool2d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "AdaptiveMaxPool1d",
    "MaxUnpool1d", "MaxUnpool2d",
    "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
    "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "CircularPad1d", "CircularPad2d",
    "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "Conv3d", "MaxPool3d", "AvgPool3d",
    "Fold", "Unfold", "PixelShuffle", "PixelUnshuffle", "LPPool1d", "LPPool2d", "LPPool3d",
    "ConvTranspose3d", "ZeroPad3d", "ConstantPad3d", "ReflectionPad3d", "ReplicationPad3d",
    "CircularPad3d", "MaxUnpool3d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d",
    "ChannelShuffle",
]
