"""The contract every spacy-nerimb loss follows.

A loss receives the logits of a batch of tokens (``(N, C)``, the docs of the
batch concatenated), the gold tag ids (``(N,)``, :data:`~spacy_nerimb.tags.MISSING`
where gold is unknown) and the token count of each doc, and returns
``(d_logits, loss)``: the gradient with respect to the logits and the scalar
loss value. Missing tokens add nothing to the loss, the gradient or the
normaliser; the result is normalised by the number of annotated tokens, so a
value (and a weight such as λ) means the same at any batch size. All array
work goes through the array module of the logits (numpy or cupy).

A loss also decides the *head* it needs (``head``), the width of that head
(:meth:`TagLoss.output_width`) and how its scores decode into tag ids
(:meth:`TagLoss.decode`). The component calls :meth:`TagLoss.initialize` with
the tag list and the training tag counts before the first step and after every
load, so count-based settings (class weights) are rebuilt from saved data.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from thinc.api import get_array_module
from thinc.types import Floats2d, Ints1d

from ..tags import MISSING, check_scheme, constrained_viterbi, transition_constraints

HEAD_SOFTMAX = "softmax"


def log_softmax(xp: Any, logits: Floats2d) -> Floats2d:
    """Numerically stable log-softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def annotated_mask(xp: Any, gold: Ints1d) -> Tuple[Any, Ints1d, int]:
    """``(boolean mask, gold with missing ids replaced by 0, annotated count)``."""
    mask = gold != MISSING
    safe_gold = xp.where(mask, gold, 0)
    return mask, safe_gold, int(mask.sum())


class TagLoss:
    """Base class: subclasses implement :meth:`__call__` (or :meth:`token_losses`)."""

    head: str = HEAD_SOFTMAX
    name: str = "loss"

    def __init__(self) -> None:
        self.tag_names: List[str] = []
        self.tag_counts: Dict[str, int] = {}
        self.scheme = "BILUO"
        self.labels: List[str] = []

    # -- set-up -------------------------------------------------------------
    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        """Receive the tag list and training tag counts (rebuild weights here)."""
        self.tag_names = list(tag_names)
        self.tag_counts = dict(tag_counts)
        self.labels = list(labels)
        self.scheme = check_scheme(scheme)

    def output_width(self, n_tags: int, n_labels: int) -> int:
        """Number of logits per token the head must produce."""
        return n_tags

    # -- training -------------------------------------------------------------
    def __call__(
        self, logits: Floats2d, gold: Ints1d, lengths: Optional[Ints1d] = None
    ) -> Tuple[Floats2d, float]:
        """Masked, normalised loss from per-token losses (see :meth:`token_losses`)."""
        xp = get_array_module(logits)
        mask, safe_gold, n_annotated = annotated_mask(xp, gold)
        if n_annotated == 0:
            return xp.zeros_like(logits), 0.0
        values, d_logits = self.token_losses(logits, safe_gold)
        return self.reduce(values, d_logits, mask.astype(logits.dtype) / n_annotated)

    @staticmethod
    def reduce(values: Any, d_logits: Floats2d, weights: Any) -> Tuple[Floats2d, float]:
        """Weighted sum of per-token losses and their gradients (weights: ``(N,)``)."""
        loss = float((values * weights).sum())
        return (d_logits * weights[:, None]).astype(d_logits.dtype, copy=False), loss

    def token_losses(self, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Floats2d]:
        """Per-token loss ``(N,)`` and its gradient ``(N, C)`` before masking.

        Losses that decompose over tokens (CE, focal, Dice) implement this;
        it is what MoM reuses. Others override :meth:`__call__` instead.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not decompose into per-token losses."
        )

    @property
    def per_token(self) -> bool:
        return type(self).token_losses is not TagLoss.token_losses

    # -- prediction -------------------------------------------------------------
    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        """Best *valid* tag-id sequence per doc: constrained Viterbi on log-probs."""
        allowed, start, end = transition_constraints(self.tag_names, self.scheme)
        log_probs = []
        for doc_scores in scores:
            xp = get_array_module(doc_scores)
            lp = log_softmax(xp, doc_scores.astype("float32"))
            log_probs.append(lp.get() if hasattr(lp, "get") else numpy.asarray(lp))
        return constrained_viterbi(log_probs, allowed, start, end)
