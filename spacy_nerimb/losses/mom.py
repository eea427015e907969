"""Majority-or-minority (MoM) learning (Nemoto et al.), around any per-token loss.

``L = λ·L_base + (1 − λ)·L_MoM`` (the paper's eq. 2), where ``L_MoM`` is the
same base loss ℓ summed over the tokens whose gold tag is the majority tag
(``O``) only. Per token this is ``ℓ_i · (λ + (1 − λ)·[gold_i = majority])``.
The paper writes a leading minus because its ℓ is a log-likelihood; here
``L_MoM`` is a positive loss to minimise. The paper divides both terms by the
padded length M; here both are divided by the number of annotated tokens in
the batch (the base class's normaliser), which plays that constant's role.

λ ∈ [0, 1]; λ = 1 is exactly the base loss. The paper's tuned values
(sequence labelling): CoNLL-2003 0.175 (the default here), OntoNotes 5.0
0.125, KWDLC 0.357, NER Wikipedia (ja) 0.212; 0.446 for CoNLL-2003 with MRC.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from thinc.api import registry
from thinc.types import Floats2d, Ints1d

from ..tags import OUTSIDE
from .base import TagLoss
from .cross_entropy import CrossEntropy
from .weights import is_finite_number


class MoM(TagLoss):
    """MoM learning: adds the base loss of majority-tag tokens with weight ``1 − lam``."""

    name = "mom"

    def __init__(
        self, lam: float = 0.175, base: Optional[TagLoss] = None, majority_label: str = OUTSIDE
    ) -> None:
        super().__init__()
        if not is_finite_number(lam) or not 0 <= lam <= 1:
            raise ValueError(f"lam = {lam!r}: the MoM weight λ must be in [0, 1].")
        base = CrossEntropy() if base is None else base
        if not isinstance(base, TagLoss):
            raise ValueError(f"MoM base must be a spacy-nerimb loss, got {type(base).__name__}.")
        if not base.per_token:
            raise ValueError(
                f"MoM needs a per-token base loss (one that implements token_losses, "
                f"like CrossEntropy, Focal or Dice); {type(base).__name__} is not."
            )
        if not isinstance(majority_label, str) or not majority_label:
            raise ValueError(f"majority_label = {majority_label!r}: expected a tag name.")
        self.lam = float(lam)
        self.base = base
        self.majority_label = majority_label
        # Tag 'O' is always id 0; any other majority tag is looked up at initialize.
        self.majority_id: Optional[int] = 0 if majority_label == OUTSIDE else None

    @property
    def head(self) -> str:  # type: ignore[override]
        return self.base.head

    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        self.base.initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        if self.majority_label not in self.tag_names:
            raise ValueError(
                f"majority_label = {self.majority_label!r} is not a tag: expected one of "
                f"{', '.join(self.tag_names)}."
            )
        self.majority_id = self.tag_names.index(self.majority_label)

    def output_width(self, n_tags: int, n_labels: int) -> int:
        return self.base.output_width(n_tags, n_labels)

    def token_losses(self, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Floats2d]:
        if self.majority_id is None:
            raise RuntimeError(
                f"MoM with majority_label={self.majority_label!r} needs the tag list: "
                "call initialize() first."
            )
        values, d_logits = self.base.token_losses(logits, gold)
        is_majority = (gold == self.majority_id).astype(logits.dtype)
        factor = self.lam + (1 - self.lam) * is_majority
        return values * factor, d_logits * factor[:, None]

    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        return self.base.decode(scores)


@registry.losses("spacy-nerimb.MoM.v1")
def configure_mom(
    lam: float = 0.175, base: Optional[TagLoss] = None, majority_label: str = OUTSIDE
) -> MoM:
    """MoM learning around ``base`` (default: cross-entropy); λ = ``lam`` (CoNLL value 0.175)."""
    return MoM(lam=lam, base=base, majority_label=majority_label)
