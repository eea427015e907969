"""Focal loss (Lin et al. 2017), per token, on the tag softmax or one-vs-rest.

``mode="softmax"``: ``−α_y (1 − p_y)^γ log p_y`` with ``p`` the softmax over
the tags; γ = 0 without α is plain cross-entropy (the same numbers).

``mode="ovr"`` (the MoM paper's one-vs-the-rest extension): one sigmoid per
tag, ``q_k = σ(z_k)`` for the gold tag and ``1 − σ(z_k)`` for the others, and
the loss of a token is ``Σ_k −α_k (1 − q_k)^γ log q_k``: ``α_k`` weighs tag
``k``'s whole binary problem. Decoding then uses the per-tag log-sigmoids.

The gradients are analytic and written so that no ``(1 − p)^(γ − 1)`` is ever
formed (it is infinite at p = 1 for γ < 1); they stay finite at any logits.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy
from thinc.api import get_array_module, registry
from thinc.types import Floats2d, Ints1d

from .base import TagLoss
from .cross_entropy import softmax_parts
from .weights import (
    WeightSpec, check_weight_spec, class_weights, is_finite_number, weights_array,
)

FOCAL_MODES = ("softmax", "ovr")


def log_sigmoid(xp: Any, x: Any) -> Any:
    """Numerically stable ``log σ(x)``."""
    return -(xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x))))


class Focal(TagLoss):
    """Per-token focal loss; see the module docstring for the two modes."""

    name = "focal"

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: WeightSpec = None,
        mode: str = "softmax",
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        if not is_finite_number(gamma) or gamma < 0:
            raise ValueError(f"gamma = {gamma!r}: the focusing parameter must be a number >= 0.")
        if mode not in FOCAL_MODES:
            raise ValueError(
                f"mode = {mode!r}: unknown focal mode, expected one of "
                f"{', '.join(map(repr, FOCAL_MODES))}."
            )
        check_weight_spec(alpha, beta=beta, setting_name="alpha")
        self.gamma = float(gamma)
        self.alpha = dict(alpha) if isinstance(alpha, Mapping) else alpha
        self.mode = mode
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
        if self.alpha is not None:
            self.weights = class_weights(
                self.alpha, self.tag_names, self.tag_counts, beta=self.beta, setting_name="alpha"
            )

    def token_losses(self, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Floats2d]:
        xp = get_array_module(logits)
        alpha = weights_array(xp, self.alpha, self.weights, logits.shape[1], logits.dtype, "alpha")
        if self.mode == "ovr":
            return self._ovr(xp, logits, gold, alpha)
        return self._softmax(xp, logits, gold, alpha)

    def _softmax(self, xp: Any, logits: Floats2d, gold: Ints1d, alpha: Any) -> Tuple[Any, Floats2d]:
        # ℓ = −(1 − p)^γ log p; with q = 1 − p and r = log(p)/q (→ −1 as q → 0):
        # dℓ/dz = (1 − p)^γ (1 − γ p r) · (softmax − onehot).
        gamma = self.gamma
        probs, log_p, d_ce = softmax_parts(xp, logits, gold)
        p_gold = xp.exp(log_p)
        q = -xp.expm1(log_p)
        positive = q > 0
        ratio = xp.where(positive, log_p / xp.where(positive, q, 1), -1)
        modulation = q**gamma
        values = -log_p * modulation
        factor = modulation * (1 - gamma * p_gold * ratio)
        if alpha is not None:
            a_gold = alpha[gold]
            values = values * a_gold
            factor = factor * a_gold
        return values, d_ce * factor[:, None]

    def _ovr(self, xp: Any, logits: Floats2d, gold: Ints1d, alpha: Any) -> Tuple[Any, Floats2d]:
        # Per tag, u = ±z (+ for the gold tag): ℓ = −m^γ log σ(u), m = σ(−u);
        # dℓ/du = m^γ (γ σ(u) log σ(u) − m), and dz = sign · du.
        gamma = self.gamma
        sign = -xp.ones_like(logits)
        sign[xp.arange(logits.shape[0]), gold] = 1
        u = sign * logits
        log_q = log_sigmoid(xp, u)
        q = xp.exp(log_q)
        m = xp.exp(log_sigmoid(xp, -u))
        modulation = m**gamma
        terms = -modulation * log_q
        d_terms = sign * modulation * (gamma * q * log_q - m)
        if alpha is not None:
            terms = terms * alpha[None, :]
            d_terms = d_terms * alpha[None, :]
        return terms.sum(axis=1), d_terms

    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        """Softmax mode: the base decoding; ovr: the same on per-tag log-sigmoids."""
        if self.mode == "ovr":
            scores = [log_sigmoid(get_array_module(s), s) for s in scores]
        return super().decode(scores)


@registry.losses("spacy-nerimb.Focal.v1")
def configure_focal(
    gamma: float = 2.0,
    alpha: Optional[Union[str, Dict[str, float]]] = None,
    mode: str = "softmax",
    beta: float = 1.0,
) -> Focal:
    """Focal loss; ``alpha`` like CE's ``class_weights`` ("log" uses ``beta``); softmax|ovr."""
    return Focal(gamma=gamma, alpha=alpha, mode=mode, beta=beta)
