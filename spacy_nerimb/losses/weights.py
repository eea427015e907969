"""Class weights from training tag counts: the one place for WCE weights and focal α.

A weight *spec* is one of

* ``None`` -- no weighting (every tag weighs 1);
* ``"inverse_frequency"`` -- WCE-1 of the MoM paper, ``w_k = s / (C · s_k)``
  with ``s`` the training tokens, ``s_k`` those of tag ``k`` and ``C`` the
  number of tags. This is scikit-learn's "balanced" normalisation: the
  count-weighted mean weight over the training tokens is 1, so the loss keeps
  the scale of plain cross-entropy;
* ``"log"`` -- WCE-2 of the MoM paper (from the Dice-loss paper),
  ``w_k = log10((s − s_k) / s_k + β)``; β ≥ 1 keeps every weight ≥ 0 (the MoM
  paper searches β in 1–10);
* a mapping ``{tag or entity label: weight}`` -- a tag name (``"B-PER"``,
  ``"O"``) sets that tag; an entity label (``"PER"``) sets all its prefixed
  tags; a tag key wins over a label key; unnamed tags weigh 1.

A tag with no training token is counted as having one, so no weight is
infinite. Counts are taken for the tags of the tag list only.
"""
import math
from numbers import Real
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy

from ..tags import OUTSIDE, split_tag

WeightSpec = Optional[Union[str, Mapping[str, float]]]
INVERSE_FREQUENCY = "inverse_frequency"
LOG = "log"
WEIGHT_MODES = (INVERSE_FREQUENCY, LOG)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A real, finite number that is not a bool (for validating numeric settings)."""
    return _is_number(value) and math.isfinite(value)


def check_weight_spec(
    spec: WeightSpec, *, beta: float = 1.0, setting_name: str = "class_weights"
) -> None:
    """Validate a weight spec at construction time (what does not need the tag list)."""
    if spec is None:
        pass
    elif isinstance(spec, str):
        if spec not in WEIGHT_MODES:
            allowed = ", ".join(repr(m) for m in WEIGHT_MODES)
            raise ValueError(
                f"Unknown {setting_name} mode {spec!r}: expected None, one of "
                f"{allowed}, or a mapping {{tag or label: weight}}."
            )
    elif isinstance(spec, Mapping):
        for key, value in spec.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"{setting_name}: keys must be tag names or entity labels, got {key!r}."
                )
            if not is_finite_number(value) or value < 0:
                raise ValueError(
                    f"{setting_name}[{key!r}] = {value!r}: a weight must be a finite "
                    "number >= 0."
                )
    else:
        raise ValueError(
            f"{setting_name} = {spec!r}: expected None, one of "
            f"{', '.join(repr(m) for m in WEIGHT_MODES)}, or a mapping {{tag or label: weight}}."
        )
    if not is_finite_number(beta) or beta < 1:
        raise ValueError(
            f"beta = {beta!r}: must be a finite number >= 1 (it keeps the "
            f"{LOG!r} weights of {setting_name} non-negative; the MoM paper searches 1-10)."
        )


def _counts(tag_names: Sequence[str], tag_counts: Mapping[str, int]) -> numpy.ndarray:
    counts = []
    for tag in tag_names:
        count = tag_counts.get(tag, 0)
        if not _is_number(count) or count < 0:
            raise ValueError(f"Training count of tag {tag!r} is {count!r}: expected a count >= 0.")
        counts.append(max(float(count), 1.0))
    return numpy.asarray(counts, dtype="float64")


def _mapping_weights(
    spec: Mapping[str, float], tag_names: Sequence[str], setting_name: str
) -> numpy.ndarray:
    tag_ids = {tag: i for i, tag in enumerate(tag_names)}
    by_label: Dict[str, List[int]] = {}
    for i, tag in enumerate(tag_names):
        if tag != OUTSIDE:
            by_label.setdefault(split_tag(tag)[1], []).append(i)
    weights = numpy.ones((len(tag_names),), dtype="float64")
    for key in spec:
        if key not in tag_ids and key not in by_label:
            raise ValueError(
                f"Unknown key {key!r} in {setting_name}: expected a tag "
                f"({', '.join(tag_names)}) or an entity label ({', '.join(by_label)})."
            )
    # Labels first, so that a key naming one tag overrides its label's weight.
    for key, value in spec.items():
        if key in by_label and key not in tag_ids:
            weights[by_label[key]] = float(value)
    for key, value in spec.items():
        if key in tag_ids:
            weights[tag_ids[key]] = float(value)
    return weights


def class_weights(
    spec: WeightSpec,
    tag_names: Sequence[str],
    tag_counts: Mapping[str, int],
    *,
    beta: float = 1.0,
    setting_name: str = "class_weights",
) -> numpy.ndarray:
    """Per-tag weights ``(C,)`` (float64) for ``spec`` (see the module docstring)."""
    check_weight_spec(spec, beta=beta, setting_name=setting_name)
    n_tags = len(tag_names)
    if spec is None:
        return numpy.ones((n_tags,), dtype="float64")
    if isinstance(spec, str):
        counts = _counts(tag_names, tag_counts)
        total = counts.sum()
        if spec == INVERSE_FREQUENCY:
            return total / (n_tags * counts)
        weights = numpy.log10((total - counts) / counts + beta)
        if n_tags and not (weights > 0).all():
            tag = tag_names[int(numpy.argmin(weights))]
            raise ValueError(
                f"{setting_name}={LOG!r} with beta={beta} gives tag {tag!r} a weight of 0 "
                f"(it holds all {int(total)} training tokens): use beta > 1."
            )
        return weights
    return _mapping_weights(spec, tag_names, setting_name)


def weights_array(
    xp: Any,
    spec: WeightSpec,
    weights: Optional[numpy.ndarray],
    n_classes: int,
    dtype: Any,
    setting_name: str = "class_weights",
) -> Any:
    """Built weights as an ``xp`` array of ``dtype`` for a loss step; ``None`` if unweighted.

    Raises if a weighted loss was never initialised or was built for another tag list.
    """
    if spec is None:
        return None
    if weights is None:
        raise RuntimeError(
            f"{setting_name}={spec!r} needs the tag list and training tag counts: "
            "call the loss's initialize() first."
        )
    if len(weights) != n_classes:
        raise ValueError(
            f"{setting_name} were built for {len(weights)} tags but the logits have "
            f"{n_classes} columns: initialize the loss with the model's tag list."
        )
    return xp.asarray(weights, dtype=dtype)
