"""handgrad.models"""

from .cnn import digits_cnn, lenet5
from .mlp import mlp
from .recurrent import CharLM, SequenceClassifier, train_charlm, unigram_entropy
from .resnet import BasicBlock, ResNet, cifar_resnet, resnet18, resnet20, resnet32, resnet56
from .transformer import CharTransformer, train_char_transformer

__all__ = [
    "digits_cnn", "lenet5", "mlp",
    "BasicBlock", "ResNet", "cifar_resnet", "resnet18", "resnet20", "resnet32", "resnet56",
    "CharLM", "SequenceClassifier", "train_charlm", "unigram_entropy",
    "CharTransformer", "train_char_transformer",
]
