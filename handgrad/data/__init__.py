"""handgrad.data"""

from . import transforms
from .datasets import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from .loader import DataLoader, Subset, TensorDataset, random_split, train_val_split
from .sampler import DistributedSampler
from .text import BPTTBatches, CharVocab, load_text, python_stdlib_corpus
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__all__ = [
    "DataLoader", "DistributedSampler", "Subset", "TensorDataset", "random_split",
    "train_val_split",
    "transforms", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "load_digits", "load_mnist", "load_fashion_mnist", "load_cifar10", "read_idx",
    "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES",
    "CharVocab", "load_text", "python_stdlib_corpus", "BPTTBatches",
]
