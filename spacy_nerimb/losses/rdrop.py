"""R-Drop, regularised dropout (Liang et al. 2021), around any task loss (``spacy-nerimb.RDrop.v1``).

Training runs the model twice on the same batch with dropout on, giving
logits ``z¹`` and ``z²``. The loss is::

    L = ½ (L_task(z¹) + L_task(z²)) + α · (1/n) Σ_annotated ½ (KL(P¹ ‖ P²) + KL(P² ‖ P¹))

with ``n`` the number of annotated tokens of the batch (the public
token-classification code sums over tokens instead, so its α does not
transfer). ``P`` is the distribution the head's logits stand for
(``distribution``): the softmax over the tags for softmax and CRF heads (for
the CRF: the softmax of its emission scores, the per-token distribution the
emission layer expresses; the CRF's transition scores are shared by both
passes), one sigmoid per logit for other heads. Both have the closed form
``½ Σ_k (p¹_k − p²_k)(z¹_k − z²_k)`` per token.

**What is re-sampled** (done by the ``imbalanced_ner`` component, which runs
the passes when a loss asks for ``n_passes = 2``):

* a component with its *own* encoder (e.g. a CNN ``[model.tok2vec]``): the
  whole model runs twice, so every dropout layer, encoder included, draws new
  masks;
* a component whose tok2vec *listens* to a shared ``transformer`` or
  ``tok2vec`` component: the shared encoder runs once per batch (it is another
  component's forward pass), so only the component's own layers after the
  listener (``head``: BiLSTM with ``bilstm_dropout``, emission layer) are run
  twice; the two gradients reaching the listener are summed and sent back once.
  Without a BiLSTM dropout there is nothing random left, the two passes are
  equal and the KL term is 0 (a warning says so).

A single-pass call (``get_loss``) is the task loss alone.
"""
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from thinc.api import Model, get_array_module, registry
from thinc.types import Floats2d, Ints1d

from .base import TagLoss, annotated_mask, log_softmax
from .crf import HEAD_CRF
from .weights import is_finite_number

DISTRIBUTIONS = ("auto", "softmax", "sigmoid")
SOFTMAX_HEADS = ("softmax", HEAD_CRF)


def symmetric_kl(
    xp: Any, z1: Floats2d, z2: Floats2d, weights: Any, distribution: str = "softmax"
) -> Tuple[float, Floats2d, Floats2d]:
    """``Σ_i w_i · ½(KL(P¹_i‖P²_i) + KL(P²_i‖P¹_i))`` and its gradients w.r.t. ``z1``, ``z2``.

    Softmax: ``∂/∂z¹ = ½ [p¹ ⊙ (g − E_p¹ g) + p¹ − p²]`` with ``g = log p¹ − log p²``
    (and symmetrically for ``z²``). Sigmoid (independent Bernoulli per logit):
    ``∂/∂z¹ = ½ [p¹(1 − p¹)(z¹ − z²) + p¹ − p²]``.
    """
    z1 = z1.astype("float64")
    z2 = z2.astype("float64")
    if distribution == "softmax":
        lp1, lp2 = log_softmax(xp, z1), log_softmax(xp, z2)
        p1, p2 = xp.exp(lp1), xp.exp(lp2)
        g = lp1 - lp2
        d1 = 0.5 * (p1 * (g - (p1 * g).sum(axis=1, keepdims=True)) + p1 - p2)
        d2 = 0.5 * (p2 * (-g + (p2 * g).sum(axis=1, keepdims=True)) + p2 - p1)
    elif distribution == "sigmoid":
        p1, p2 = 1 / (1 + xp.exp(-z1)), 1 / (1 + xp.exp(-z2))
        g = z1 - z2
        d1 = 0.5 * (p1 * (1 - p1) * g + p1 - p2)
        d2 = 0.5 * (-p2 * (1 - p2) * g + p2 - p1)
    else:
        raise ValueError(f"distribution = {distribution!r}: expected 'softmax' or 'sigmoid'.")
    per_token = 0.5 * ((p1 - p2) * g).sum(axis=1)
    w = weights.astype("float64")
    value = float((per_token * w).sum())
    return value, d1 * w[:, None], d2 * w[:, None]


class RDrop(TagLoss):
    """Mean task loss of two dropout passes + α · symmetric KL between them."""

    name = "rdrop"
    n_passes = 2

    def __init__(self, loss: Optional[TagLoss] = None, alpha: float = 1.0, distribution: str = "auto") -> None:
        super().__init__()
        if loss is None:
            from .cross_entropy import CrossEntropy

            loss = CrossEntropy()
        if not isinstance(loss, TagLoss):
            raise ValueError(f"R-Drop's loss must be a spacy-nerimb loss, got {type(loss).__name__}.")
        if isinstance(loss, RDrop):
            raise ValueError("R-Drop inside R-Drop: set alpha on a single RDrop.v1 instead.")
        if not is_finite_number(alpha) or alpha < 0:
            raise ValueError(f"alpha = {alpha!r}: the R-Drop weight must be a number >= 0.")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution = {distribution!r}: expected one of {', '.join(DISTRIBUTIONS)}."
            )
        self.loss = loss
        self.alpha = float(alpha)
        self.distribution = distribution
        self.last_kl: Optional[float] = None  # mean symmetric KL of the last batch
        self._warned = False

    @property
    def head(self) -> str:  # type: ignore[override]
        return self.loss.head

    @property
    def kl_distribution(self) -> str:
        if self.distribution != "auto":
            return self.distribution
        return "softmax" if self.loss.head in SOFTMAX_HEADS else "sigmoid"

    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        self.loss.initialize(tag_names, tag_counts, labels=labels, scheme=scheme)

    def bind(self, model: Model) -> None:
        bind = getattr(self.loss, "bind", None)
        if callable(bind):
            bind(model)

    def output_width(self, n_tags: int, n_labels: int) -> int:
        return self.loss.output_width(n_tags, n_labels)

    def __call__(
        self, logits: Floats2d, gold: Ints1d, lengths: Optional[Ints1d] = None
    ) -> Tuple[Floats2d, float]:
        """One pass: the task loss alone (the KL needs two; see :meth:`passes`)."""
        return self.loss(logits, gold, lengths)

    def _task(self, logits: Floats2d, gold: Ints1d, lengths: Optional[Ints1d], weight: float) -> Tuple[Floats2d, float]:
        if getattr(self.loss, "owns_params", False):
            d, value = self.loss(logits, gold, lengths, param_grad_scale=weight)
        else:
            d, value = self.loss(logits, gold, lengths)
        return d * weight, weight * float(value)

    def passes(
        self, logits: Sequence[Floats2d], gold: Ints1d, lengths: Optional[Ints1d] = None
    ) -> Tuple[List[Floats2d], float]:
        """``([d_logits per pass], loss)`` for the two passes' logits of one batch."""
        if len(logits) != 2:
            raise ValueError(f"R-Drop needs the logits of 2 passes, got {len(logits)}.")
        z1, z2 = logits
        d1, task1 = self._task(z1, gold, lengths, 0.5)
        d2, task2 = self._task(z2, gold, lengths, 0.5)
        loss = task1 + task2
        xp = get_array_module(z1)
        mask, _, n_annotated = annotated_mask(xp, gold)
        if n_annotated == 0:
            self.last_kl = 0.0
            return [d1, d2], loss
        weights = mask.astype("float64") / n_annotated
        kl, k1, k2 = symmetric_kl(xp, z1, z2, weights, self.kl_distribution)
        self.last_kl = kl
        identical = kl == 0.0 and bool((z1 != z2).sum() == 0) and bool((z1 != 0).any())
        if identical and not self._warned:  # (all-zero logits: the zero-initialised head)
            self._warned = True
            warnings.warn(
                "R-Drop: the two passes gave identical logits, so the KL term is 0. "
                "Nothing random was re-sampled: use [training] dropout > 0 and, with a "
                "shared (listener) encoder, bilstm_dropout > 0 in the component's model.",
                stacklevel=2,
            )
        if self.alpha > 0:
            loss += self.alpha * kl
            d1 = d1 + (self.alpha * k1).astype(d1.dtype)
            d2 = d2 + (self.alpha * k2).astype(d2.dtype)
        return [d1.astype(z1.dtype, copy=False), d2.astype(z2.dtype, copy=False)], float(loss)

    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        return self.loss.decode(scores)


@registry.losses("spacy-nerimb.RDrop.v1")
def configure_rdrop(
    loss: Optional[TagLoss] = None, alpha: float = 1.0, distribution: str = "auto"
) -> RDrop:
    """R-Drop around ``loss`` (default cross-entropy): two dropout passes + α · symmetric KL."""
    return RDrop(loss=loss, alpha=alpha, distribution=distribution)
