"""Cross-entropy over the tag softmax, optionally class-weighted (WCE-1 / WCE-2).

Weighted CE per token is ``w_y · (−log p_y)`` with ``w`` from
:mod:`.weights`. Like every loss here it is normalised by the number of
annotated tokens (not by the sum of the gold weights, as e.g. torch's
``CrossEntropyLoss(weight=...)`` does with ``reduction="mean"``), so a weight
scales that tag's share of the loss and the value stays comparable with the
other losses and with MoM's λ.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy
from thinc.api import get_array_module, registry
from thinc.types import Floats2d, Ints1d

from .base import TagLoss, log_softmax
from .weights import WeightSpec, check_weight_spec, class_weights, weights_array


def softmax_parts(xp: Any, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Any, Floats2d]:
    """``(p, log p_gold, p − onehot(gold))``: the pieces every softmax loss builds on."""
    log_probs = log_softmax(xp, logits)
    probs = xp.exp(log_probs)
    rows = xp.arange(logits.shape[0])
    d_ce = probs.copy()
    d_ce[rows, gold] -= 1
    return probs, log_probs[rows, gold], d_ce


class CrossEntropy(TagLoss):
    """Softmax cross-entropy; ``class_weights`` turns it into weighted CE."""

    name = "cross_entropy"

    def __init__(self, class_weights: WeightSpec = None, beta: float = 1.0) -> None:
        super().__init__()
        check_weight_spec(class_weights, beta=beta, setting_name="class_weights")
        if isinstance(class_weights, Mapping):
            class_weights = dict(class_weights)
        self.class_weights = class_weights
        self.beta = float(beta)
        self.weights: Optional[numpy.ndarray] = None

    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        if self.class_weights is not None:
            self.weights = class_weights(
                self.class_weights, self.tag_names, self.tag_counts,
                beta=self.beta, setting_name="class_weights",
            )

    def token_losses(self, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Floats2d]:
        xp = get_array_module(logits)
        _, log_p_gold, d_logits = softmax_parts(xp, logits, gold)
        values = -log_p_gold
        weights = weights_array(
            xp, self.class_weights, self.weights, logits.shape[1], logits.dtype, "class_weights"
        )
        if weights is not None:
            w_gold = weights[gold]
            values = w_gold * values
            d_logits = d_logits * w_gold[:, None]
        return values, d_logits


@registry.losses("spacy-nerimb.CrossEntropy.v1")
def configure_cross_entropy(
    class_weights: Optional[Union[str, Dict[str, float]]] = None, beta: float = 1.0
) -> CrossEntropy:
    """Cross-entropy; ``class_weights``: None, "inverse_frequency", "log" (+ ``beta``), mapping."""
    return CrossEntropy(class_weights=class_weights, beta=beta)
