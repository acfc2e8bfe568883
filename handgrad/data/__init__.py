"""handgrad.data"""

from . import transforms
from .loader import DataLoader, Subset, TensorDataset, random_split, train_val_split
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip

__all__ = [
    "DataLoader", "Subset", "TensorDataset", "random_split", "train_val_split",
    "transforms", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip",
]
