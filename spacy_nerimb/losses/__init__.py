"""Per-token losses for imbalanced NER; importing this module registers them."""
from .auc import AUC2T, CompositionalAUC2T, configure_auc2t, configure_compositional_auc2t
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
    "AUC2T",
    "CompositionalAUC2T",
    "class_weights",
    "configure_cross_entropy",
    "configure_focal",
    "configure_dice",
    "configure_mom",
    "configure_auc2t",
    "configure_compositional_auc2t",
]
from .crf import CRF, configure_crf  # noqa: E402
from .rdrop import RDrop, configure_rdrop  # noqa: E402

__all__ += ["CRF", "RDrop", "configure_crf", "configure_rdrop"]
