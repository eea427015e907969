"""Self-adjusting Dice loss (Li et al. 2020), per token.

With ``p`` the tag softmax, ``y`` the one-hot gold and ``p̃ = (1 − p)^α · p``,
a token's loss is ``Σ_k 1 − (2·p̃_k·y_k + s) / (p̃_k² + y_k² + s)`` (squared
denominator, the authors' recommended setting) or with ``p̃_k + y_k + s`` as
denominator (``square=False``). Each token has its own denominator (the
batch-summed denominators of some public code are a known trap); the base
class averages over annotated tokens.

The gradient is analytic. ``p̃`` has an infinite slope in ``p`` at ``p = 1``
when ``0 < α < 1``, cancelled by the softmax's ``p(1 − p)``; the code below
never forms ``(1 − p)^(α − 1)``, and it takes ``1 − p`` of a token's most
probable tag as the sum of the other probabilities, so nothing is lost to
cancellation when that tag is nearly certain. Every denominator is ≥ ``s`` or
a non-zero probability mass, so no NaN can appear.
"""
from typing import Any, Tuple

from thinc.api import get_array_module, registry
from thinc.types import Floats2d, Ints1d

from .base import TagLoss, log_softmax
from .weights import is_finite_number


class Dice(TagLoss):
    """Self-adjusting Dice loss: ``alpha`` down-weights easy tokens, ``smooth`` is ``s``."""

    name = "dice"

    def __init__(self, alpha: float = 0.01, smooth: float = 1.0, square: bool = True) -> None:
        super().__init__()
        if not is_finite_number(alpha) or alpha < 0:
            raise ValueError(f"alpha = {alpha!r}: the Dice self-adjusting exponent must be >= 0.")
        if not is_finite_number(smooth) or smooth <= 0:
            raise ValueError(f"smooth = {smooth!r}: the Dice smoothing term must be > 0.")
        if not isinstance(square, bool):
            raise ValueError(f"square = {square!r}: expected true or false.")
        self.alpha = float(alpha)
        self.smooth = float(smooth)
        self.square = square

    def token_losses(self, logits: Floats2d, gold: Ints1d) -> Tuple[Any, Floats2d]:
        xp = get_array_module(logits)
        alpha, smooth = self.alpha, self.smooth
        n_rows = logits.shape[0]
        rows = xp.arange(n_rows)
        probs = xp.exp(log_softmax(xp, logits))
        y = xp.zeros_like(logits)
        y[rows, gold] = 1
        # 1 − p, exact for the top tag (sum of the others); ≥ 1/C for every other tag.
        top = xp.zeros_like(logits)
        top[rows, probs.argmax(axis=1)] = 1
        is_top = top > 0
        rest_top = (probs * (1 - top)).sum(axis=1)
        one_minus = xp.where(is_top, rest_top[:, None], 1 - probs)
        p_adj = one_minus**alpha * probs
        numer = 2 * p_adj * y + smooth
        if self.square:
            denom = p_adj * p_adj + y * y + smooth
            d_adj = (2 * p_adj * numer - 2 * y * denom) / (denom * denom)
        else:
            denom = p_adj + y + smooth
            d_adj = (numer - 2 * y * denom) / (denom * denom)
        values = (1 - numer / denom).sum(axis=1)
        # With c_k = dℓ/dp̃_k · p̃_k and e_k = c_k p_k / (1 − p_k):
        #   dℓ/dz_j = c_j − p_j Σ_k c_k − α (p_j c_j − p_j Σ_{k≠j} e_k).
        # e_top can be huge; p_j · e_top = c_top p_top · p_j / (1 − p_top) with the
        # last ratio in [0, 1], so it is formed that way.
        c = d_adj * p_adj
        c_sum = c.sum(axis=1)
        e = xp.where(is_top, 0, c * probs / xp.where(is_top, 1, one_minus))
        e_rest = e.sum(axis=1)
        c_top = (c * top).sum(axis=1)
        p_top = (probs * top).sum(axis=1)
        has_rest = rest_top > 0
        share = xp.where(has_rest[:, None], probs / xp.where(has_rest, rest_top, 1)[:, None], 0)
        p_x = xp.where(
            is_top,
            probs * e_rest[:, None],
            (c_top * p_top)[:, None] * share + probs * (e_rest[:, None] - e),
        )
        d_logits = c - probs * c_sum[:, None] - alpha * (probs * c - p_x)
        return values, d_logits


@registry.losses("spacy-nerimb.Dice.v1")
def configure_dice(alpha: float = 0.01, smooth: float = 1.0, square: bool = True) -> Dice:
    """Self-adjusting Dice loss (defaults: the authors' recommended α = 0.01, s = 1, squared)."""
    return Dice(alpha=alpha, smooth=smooth, square=square)
