"""Per-token losses for imbalanced NER; importing this module registers them."""
from .base import TagLoss
from .cross_entropy import CrossEntropy, configure_cross_entropy
from .dice import Dice, configure_dice
from .focal import Focal, configure_focal
from .mom import MoM, configure_mom
from .weights import class_weights

__all__ = [
    "TagLoss",
    "CrossEntropy",
    "Focal",
    "Dice",
    "MoM",
    "class_weights",
    "configure_cross_entropy",
    "configure_focal",
    "configure_dice",
    "configure_mom",
]
