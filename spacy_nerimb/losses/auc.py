"""AUC-2T and COMAUC-2T: AUC maximisation for NER as two binary tasks per token.

Nguyen et al., "AUC Maximization for Low-Resource Named Entity Recognition"
(AAAI 2023). Each token gets two scores ``h = sigmoid(logit)``: **entity** (the
token is inside an entity: B, I, L, U) and **begin** (it starts one: B, U). Each
task is trained with the AUC margin loss of Yuan et al. (2021, "AUC-M"),
margin ``m``, and the total is ``AUC_M(entity) + lam · AUC_M(begin)``.

Closed form, not state
----------------------
AUC-M is a min–max problem: ``min_{a,b} max_{α≥0} E[(h−a)²|pos] + E[(h−b)²|neg]
+ 2α(m − E[h|pos] + E[h|neg]) − α²``. Its terms separate: the minimising
``a``, ``b`` are the class means of ``h`` and the maximising ``α`` is
``[m − E[h|pos] + E[h|neg]]₊``, so on a batch the loss is exactly::

    Var(h | pos) + Var(h | neg) + max(0, m − mean(h | pos) + mean(h | neg))²

We compute this closed form per batch (population variances, the batch's
annotated tokens only). By Danskin's theorem its gradient is the gradient of
the min–max objective at the optimal ``a, b, α``, so nothing can be descended
that should be ascended, no extra state has to be saved with the model, and
any thinc optimiser (Adam) works. Keeping ``a, b, α`` as parameters (LibAUC's
PESG) would need a custom optimiser step that *ascends* α; the closed form is
what those updates converge to on a fixed batch.

``weighting="libauc"`` multiplies each task's value by ``p(1 − p)``, ``p`` the
positive rate of that task in the training data (from the tag counts the
component saves), as LibAUC's ``AUCMLoss`` does with its ``imratio``.

Batches without a positive (or without a negative) for a task — frequent for
``begin``, and for rare types in typed mode — keep the variance of the class
that is present. The margin term needs both means: with ``one_class="bound"``
(default) the absent class's mean is taken at its most favourable value (1 for
positives, 0 for negatives), i.e. the margin term's minimum over every mean it
could have, so negatives are still pushed down; with ``"variance"`` the term is
dropped. Either way the value is finite and the gradient defined, never NaN.

Typed and typeless
------------------
``typed = true`` (default; our extension, so spaCy users get typed
``doc.ents``): one (entity, begin) pair per entity label, one-vs-rest (the
positives of type k's entity task are the tokens of type-k entities, all other
annotated tokens are its negatives); the loss is the mean over labels of
``AUC_M(entity_k) + lam · AUC_M(begin_k)``, so with one label it is exactly
the typeless loss. ``typed = false`` (the paper's setup): one pair for all
types. A typeless model writes every entity with one label: the component's
only label, or ``typeless_label``. To train and score typeless on typed data,
relabel every entity to one label, e.g. with the corpus reader
``spacy-nerimb.TypelessCorpus.v1`` (see :func:`create_typeless_corpus`).

Head layout: ``[entity_1 … entity_K, begin_1 … begin_K]`` logits, ``K`` the
number of labels (typed) or 1 (typeless).

Decoding (paper Algorithm 1, threshold ``t``): entity ≥ t and begin ≥ t -> B;
entity ≥ t -> I; otherwise O; an I with no open entity starts one. Typed: the
entity score of a token is its best type's score (``k* = argmax_k entity_k``)
and its begin score is ``begin_{k*}``. ``typed_decoding = "token"`` gives every
token the label ``k*`` and an I whose ``k*`` differs from the open entity's
starts a new entity (the issue's rule); ``"span"`` keeps the boundaries of the
type-blind decode and labels each span with the type of highest summed entity
probability over its tokens (a flickering type does not split an entity). The
spans are written as tags of the component's scheme (BIO or BILUO), so the
output is always a valid tag sequence.

COMAUC-2T (:class:`CompositionalAUC2T`) adds a softmax tag head in front of the
two-task logits and alternates steps between cross-entropy on that head and
AUC-2T on the two-task head (``ce_steps`` CE steps, then ``auc_steps`` AUC
steps; strict alternation by default).
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.training import Corpus, Example
from spacy.util import registry as spacy_registry
from thinc.api import get_array_module, registry
from thinc.types import Floats2d, Ints1d

from ..tags import (
    ENTITY_PREFIXES,
    MISSING,
    OUTSIDE,
    make_tag_names,
    spans_to_tags,
    split_tag,
    tag_index,
    two_task_spans,
)
from .base import TagLoss, annotated_mask
from .cross_entropy import CrossEntropy
from .weights import is_finite_number

HEAD_TWO_TASK = "two_task"
HEAD_COMPOSITIONAL = "softmax+two_task"
WEIGHTINGS = ("none", "libauc")
TYPED_DECODINGS = ("token", "span")
DECODE_WITH = ("two_task", "softmax")
ONE_CLASS = ("bound", "variance")


def sigmoid(xp: Any, x: Any) -> Any:
    """Logistic function without overflow (tanh form), in the input's dtype."""
    return 0.5 * (xp.tanh(0.5 * x) + 1)


def auc_margin(
    xp: Any, scores: Any, positive: Any, negative: Any, margin: float, one_class: str = "bound"
) -> Tuple[Any, Any]:
    """Closed-form AUC-M per column and its gradient with respect to the scores.

    ``scores``: ``(N, K)`` in [0, 1]; ``positive``/``negative``: boolean
    ``(N, K)`` (tokens in neither, e.g. missing gold, are ignored). Returns
    ``values (K,)``, ``Var(h|pos) + Var(h|neg) + [m − mean(h|pos) + mean(h|neg)]₊²``,
    and ``d_scores (N, K)``. A column with one class only keeps its variance;
    its margin term is, with ``one_class="bound"``, the term at the absent
    class's most favourable mean (1 for positives, 0 for negatives: the
    minimum over every mean it could have), with ``"variance"`` dropped.
    """
    dtype = scores.dtype
    pos = positive.astype(dtype)
    neg = negative.astype(dtype)
    n_pos = pos.sum(axis=0)
    n_neg = neg.sum(axis=0)
    inv_pos = 1 / xp.maximum(n_pos, 1)
    inv_neg = 1 / xp.maximum(n_neg, 1)
    mean_pos = (scores * pos).sum(axis=0) * inv_pos
    mean_neg = (scores * neg).sum(axis=0) * inv_neg
    dev_pos = (scores - mean_pos) * pos
    dev_neg = (scores - mean_neg) * neg
    if one_class == "bound":
        mean_pos = xp.where(n_pos > 0, mean_pos, 1)
        mean_neg = xp.where(n_neg > 0, mean_neg, 0)
        active = ((n_pos > 0) | (n_neg > 0)).astype(dtype)
    else:
        active = ((n_pos > 0) & (n_neg > 0)).astype(dtype)
    gap = xp.maximum(margin - mean_pos + mean_neg, 0) * active
    values = (dev_pos**2).sum(axis=0) * inv_pos + (dev_neg**2).sum(axis=0) * inv_neg + gap**2
    # d Var(pos)/dh_i = 2(h_i − mean)/n_pos (the mean's own derivative sums to 0).
    d_scores = 2 * (dev_pos * inv_pos + dev_neg * inv_neg) + 2 * gap * (neg * inv_neg - pos * inv_pos)
    return values, d_scores


def _check_unit_interval(value: Any, setting: str) -> float:
    if not is_finite_number(value) or not 0 < value < 1:
        raise ValueError(f"{setting} = {value!r}: expected a number strictly between 0 and 1.")
    return float(value)


def _check_steps(value: Any, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{setting} = {value!r}: expected a whole number of steps ≥ 1.")
    return value


def _labels_of(tag_names: Sequence[str], labels: Sequence[str]) -> List[str]:
    if labels:
        return list(labels)
    found: List[str] = []
    for tag in tag_names:
        label = split_tag(tag)[1]
        if label and label not in found:
            found.append(label)
    return found


class AUC2T(TagLoss):
    """AUC-2T: closed-form AUC margin loss on the entity and begin tasks."""

    head = HEAD_TWO_TASK
    name = "auc2t"

    def __init__(
        self,
        margin: float = 1.0,
        lam: float = 100.0,
        typed: bool = True,
        threshold: float = 0.5,
        weighting: str = "none",
        typeless_label: Optional[str] = None,
        typed_decoding: str = "token",
        one_class: str = "bound",
    ) -> None:
        super().__init__()
        if not is_finite_number(margin) or margin <= 0:
            raise ValueError(f"margin = {margin!r}: the AUC margin m must be a number > 0.")
        if not is_finite_number(lam) or lam < 0:
            raise ValueError(f"lam = {lam!r}: the weight λ of the begin task must be a number ≥ 0.")
        if not isinstance(typed, bool):
            raise ValueError(f"typed = {typed!r}: expected true or false.")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting = {weighting!r}: expected one of {', '.join(WEIGHTINGS)}.")
        if typed_decoding not in TYPED_DECODINGS:
            raise ValueError(
                f"typed_decoding = {typed_decoding!r}: expected one of {', '.join(TYPED_DECODINGS)}."
            )
        if one_class not in ONE_CLASS:
            raise ValueError(f"one_class = {one_class!r}: expected one of {', '.join(ONE_CLASS)}.")
        if typeless_label is not None and (not isinstance(typeless_label, str) or not typeless_label):
            raise ValueError(f"typeless_label = {typeless_label!r}: expected a label name or null.")
        self.margin = float(margin)
        self.lam = float(lam)
        self.typed = typed
        self.threshold = _check_unit_interval(threshold, "threshold")
        self.weighting = weighting
        self.typeless_label = typeless_label
        self.typed_decoding = typed_decoding
        self.one_class = one_class
        self.task_labels: List[str] = []
        self._type_of_tag: Optional[numpy.ndarray] = None
        self._begin_of_tag: Optional[numpy.ndarray] = None
        self._task_weights: Optional[numpy.ndarray] = None
        self._index: Dict[str, int] = {}

    # -- set-up -------------------------------------------------------------------
    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        labels = _labels_of(self.tag_names, self.labels)
        if not labels:
            raise ValueError("AUC-2T needs at least one entity label (the tag list has only 'O').")
        if self.typed:
            self.task_labels = labels
        else:
            if self.typeless_label is not None:
                if self.typeless_label not in labels:
                    raise ValueError(
                        f"typeless_label = {self.typeless_label!r} is not a label of the "
                        f"component ({', '.join(labels)})."
                    )
                self.task_labels = [self.typeless_label]
            elif len(labels) == 1:
                self.task_labels = labels
            else:
                raise ValueError(
                    f"typed = false writes every entity with one label, but the component "
                    f"has {len(labels)} ({', '.join(labels)}): set typeless_label to one of "
                    "them, or relabel the data to one label (corpus reader "
                    "spacy-nerimb.TypelessCorpus.v1, or spacy_nerimb.losses.auc.make_typeless)."
                )
        type_of_tag = numpy.full(len(self.tag_names), -1, dtype="int64")
        begin_of_tag = numpy.zeros(len(self.tag_names), dtype=bool)
        for i, tag in enumerate(self.tag_names):
            prefix, label = split_tag(tag)
            if prefix == OUTSIDE:
                continue
            type_of_tag[i] = labels.index(label) if self.typed else 0
            begin_of_tag[i] = prefix in ("B", "U")
        self._type_of_tag = type_of_tag
        self._begin_of_tag = begin_of_tag
        self._index = tag_index(self.tag_names)
        self._task_weights = self._weights_from_counts()

    def _weights_from_counts(self) -> numpy.ndarray:
        """``(2, K)`` weights of the entity/begin tasks: 1, or LibAUC's ``p(1 − p)``."""
        k = len(self.task_labels)
        if self.weighting == "none":
            return numpy.ones((2, k), dtype="float64")
        assert self._type_of_tag is not None and self._begin_of_tag is not None
        counts = numpy.array([self.tag_counts.get(t, 0) for t in self.tag_names], dtype="float64")
        total = counts.sum()
        if total <= 0:
            raise ValueError(
                "weighting = 'libauc' needs the training tag counts (p = positive rate): "
                "initialize the component on training data first."
            )
        p = numpy.zeros((2, k))
        for i, c in enumerate(counts):
            if self._type_of_tag[i] >= 0:
                p[0, self._type_of_tag[i]] += c
                if self._begin_of_tag[i]:
                    p[1, self._type_of_tag[i]] += c
        p /= total
        return p * (1 - p)

    @property
    def n_tasks(self) -> int:
        """Number of (entity, begin) pairs: labels when typed, else 1."""
        return len(self.task_labels) if self.task_labels else 1

    def output_width(self, n_tags: int, n_labels: int) -> int:
        return 2 * (n_labels if self.typed else 1)

    def _require_init(self) -> None:
        if self._type_of_tag is None:
            raise RuntimeError(f"{type(self).__name__} needs the tag list: call initialize() first.")

    # -- training -----------------------------------------------------------------
    def targets(self, xp: Any, gold: Ints1d) -> Tuple[Any, Any, Any]:
        """``(entity (N, K), begin (N, K), annotated (N,))`` boolean two-task targets."""
        self._require_init()
        mask, safe_gold, _ = annotated_mask(xp, gold)
        types = xp.asarray(self._type_of_tag)[safe_gold]
        begins = xp.asarray(self._begin_of_tag)[safe_gold]
        entity = (types[:, None] == xp.arange(self.n_tasks)[None, :]) & mask[:, None]
        begin = entity & begins[:, None]
        return entity, begin, mask

    def __call__(
        self, logits: Floats2d, gold: Ints1d, lengths: Optional[Ints1d] = None
    ) -> Tuple[Floats2d, float]:
        self._require_init()
        xp = get_array_module(logits)
        k = self.n_tasks
        if logits.ndim != 2 or logits.shape[1] != 2 * k:
            raise ValueError(
                f"AUC-2T expects logits of width {2 * k} (entity and begin per "
                f"{'label' if self.typed else 'typeless task'}), got shape {logits.shape}."
            )
        entity, begin, mask = self.targets(xp, gold)
        if not bool(mask.any()):
            return xp.zeros_like(logits), 0.0
        scores = sigmoid(xp, logits)
        annotated = mask[:, None]
        v_en, d_en = auc_margin(
            xp, scores[:, :k], entity, annotated & ~entity, self.margin, self.one_class
        )
        v_be, d_be = auc_margin(
            xp, scores[:, k:], begin, annotated & ~begin, self.margin, self.one_class
        )
        w = xp.asarray(self._task_weights, dtype=logits.dtype)
        w_en = w[0] / k
        w_be = self.lam * w[1] / k
        loss = float((v_en * w_en).sum() + (v_be * w_be).sum())
        d_scores = xp.concatenate([d_en * w_en, d_be * w_be], axis=1)
        d_logits = d_scores * scores * (1 - scores)
        return d_logits.astype(logits.dtype, copy=False), loss

    # -- prediction -----------------------------------------------------------------
    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        """Algorithm 1 per doc, written as valid tag ids of the component's scheme."""
        self._require_init()
        out = []
        for doc_scores in scores:
            xp = get_array_module(doc_scores)
            probs = sigmoid(xp, doc_scores.astype("float64"))
            probs = probs.get() if hasattr(probs, "get") else numpy.asarray(probs)
            out.append(self.decode_probs(probs))
        return out

    def decode_spans(self, probs: numpy.ndarray) -> List[Tuple[int, int, str]]:
        """Spans ``(start, end, label)`` of one doc from its ``(n, 2K)`` probabilities."""
        k = self.n_tasks
        n = probs.shape[0]
        if n == 0:
            return []
        entity, begin = probs[:, :k], probs[:, k:]
        best = entity.argmax(axis=1)
        rows = numpy.arange(n)
        is_entity = entity[rows, best] >= self.threshold
        is_begin = begin[rows, best] >= self.threshold
        if k == 1 or self.typed_decoding == "span":
            bounds = two_task_spans(is_entity, is_begin)
            labels = [
                self.task_labels[int(entity[s:e].sum(axis=0).argmax())] for s, e in bounds
            ]
        else:
            bounds = two_task_spans(is_entity, is_begin, types=best)
            labels = [self.task_labels[int(best[s])] for s, _ in bounds]
        return [(s, e, label) for (s, e), label in zip(bounds, labels)]

    def decode_probs(self, probs: numpy.ndarray) -> numpy.ndarray:
        tags = spans_to_tags(probs.shape[0], self.decode_spans(probs), self.scheme)
        return numpy.asarray([self._index[t] for t in tags], dtype="int64")


class CompositionalAUC2T(TagLoss):
    """COMAUC-2T: alternates cross-entropy (softmax head) and AUC-2T (two-task head) steps.

    Head: ``[softmax tag logits | two-task logits]``. The softmax part covers the
    component's tags (typed) or the type-blind tags ``O, B, I[, L, U]`` of the one
    output label (typeless). The schedule repeats ``ce_steps`` CE steps followed
    by ``auc_steps`` AUC-2T steps, counting calls of the loss (one per
    ``update``; with ``accumulate_gradient = n`` use multiples of n). Each step's
    gradient reaches only its own part of the head (and the shared encoder).
    The counter is not saved: training resumed from a saved model starts a
    cycle anew. ``decode_with``: ``"two_task"`` (the paper) or ``"softmax"``
    (constrained Viterbi on the CE head).
    """

    head = HEAD_COMPOSITIONAL
    name = "compositional_auc2t"

    def __init__(
        self,
        margin: float = 1.0,
        lam: float = 100.0,
        typed: bool = True,
        threshold: float = 0.5,
        weighting: str = "none",
        typeless_label: Optional[str] = None,
        typed_decoding: str = "token",
        one_class: str = "bound",
        ce_steps: int = 1,
        auc_steps: int = 1,
        decode_with: str = "two_task",
    ) -> None:
        super().__init__()
        self.auc = AUC2T(
            margin=margin, lam=lam, typed=typed, threshold=threshold, weighting=weighting,
            typeless_label=typeless_label, typed_decoding=typed_decoding, one_class=one_class,
        )
        self.ce = CrossEntropy()
        self.ce_steps = _check_steps(ce_steps, "ce_steps")
        self.auc_steps = _check_steps(auc_steps, "auc_steps")
        if decode_with not in DECODE_WITH:
            raise ValueError(f"decode_with = {decode_with!r}: expected one of {', '.join(DECODE_WITH)}.")
        self.decode_with = decode_with
        self.step = 0
        self._ce_gold: Optional[numpy.ndarray] = None  # component tag id -> CE tag id
        self._ce_to_tag: Optional[numpy.ndarray] = None  # CE tag id -> component tag id

    @property
    def typed(self) -> bool:
        return self.auc.typed

    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        self.auc.initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        index = tag_index(self.tag_names)
        if self.typed:
            ce_tags = list(self.tag_names)
            ce_counts = dict(self.tag_counts)
            to_ce = numpy.arange(len(self.tag_names))
        else:
            (label,) = self.auc.task_labels
            ce_tags = make_tag_names([label], self.scheme)
            ce_index = tag_index(ce_tags)
            to_ce = numpy.zeros(len(self.tag_names), dtype="int64")
            ce_counts = {t: 0 for t in ce_tags}
            for i, tag in enumerate(self.tag_names):
                prefix = split_tag(tag)[0]
                name = OUTSIDE if prefix == OUTSIDE else f"{prefix}-{label}"
                to_ce[i] = ce_index[name]
                ce_counts[name] += int(self.tag_counts.get(tag, 0))
        self._ce_gold = numpy.asarray(to_ce, dtype="int64")
        self._ce_to_tag = numpy.asarray([index[t] for t in ce_tags], dtype="int64")
        self.ce.initialize(ce_tags, ce_counts, labels=self.auc.task_labels, scheme=self.scheme)

    def ce_width(self, n_tags: int, n_labels: int) -> int:
        if self.typed:
            return n_tags
        return 1 + len(ENTITY_PREFIXES[self.scheme])

    def output_width(self, n_tags: int, n_labels: int) -> int:
        return self.ce_width(n_tags, n_labels) + self.auc.output_width(n_tags, n_labels)

    def phase(self, step: int) -> str:
        """``"ce"`` or ``"auc"``: what step number ``step`` (from 0) optimises."""
        return "ce" if step % (self.ce_steps + self.auc_steps) < self.ce_steps else "auc"

    def __call__(
        self, logits: Floats2d, gold: Ints1d, lengths: Optional[Ints1d] = None
    ) -> Tuple[Floats2d, float]:
        if self._ce_gold is None:
            raise RuntimeError("CompositionalAUC2T needs the tag list: call initialize() first.")
        xp = get_array_module(logits)
        split = len(self._ce_to_tag)
        phase = self.phase(self.step)
        self.step += 1
        d_logits = xp.zeros_like(logits)
        if phase == "ce":
            mask, safe_gold, _ = annotated_mask(xp, gold)
            ce_gold = xp.where(mask, xp.asarray(self._ce_gold)[safe_gold], MISSING)
            d_part, loss = self.ce(logits[:, :split], ce_gold, lengths)
            d_logits[:, :split] = d_part
        else:
            d_part, loss = self.auc(logits[:, split:], gold, lengths)
            d_logits[:, split:] = d_part
        return d_logits, loss

    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        if self._ce_to_tag is None:
            raise RuntimeError("CompositionalAUC2T needs the tag list: call initialize() first.")
        split = len(self._ce_to_tag)
        if self.decode_with == "two_task":
            return self.auc.decode([s[:, split:] for s in scores])
        paths = self.ce.decode([s[:, :split] for s in scores])
        return [self._ce_to_tag[p] for p in paths]


# -- typeless data ---------------------------------------------------------------------


def make_typeless(doc: Doc, label: str = "ENTITY") -> Doc:
    """Relabel every entity of ``doc`` to ``label`` in place (missing annotation stays missing)."""
    spans = [Span(doc, ent.start, ent.end, label=label) for ent in doc.ents]
    doc.set_ents(spans, default="unmodified")
    return doc


@spacy_registry.readers("spacy-nerimb.TypelessCorpus.v1")
def create_typeless_corpus(
    path: Optional[str],
    label: str = "ENTITY",
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
) -> Callable[[Any], Iterable[Example]]:
    """``spacy.Corpus.v1`` whose gold entities all get one ``label`` (the paper's typeless setup).

    Use it for ``[corpora.train]`` and ``[corpora.dev]`` so that training and
    scoring ignore entity types; the component then has the single label ``label``.
    """
    if not isinstance(label, str) or not label:
        raise ValueError(f"label = {label!r}: expected the one entity label to write.")
    corpus = Corpus(path, gold_preproc=gold_preproc, max_length=max_length, limit=limit,
                    augmenter=augmenter)

    def read(nlp: Any) -> Iterable[Example]:
        for eg in corpus(nlp):
            make_typeless(eg.reference, label)
            yield eg

    return read


@registry.losses("spacy-nerimb.AUC2T.v1")
def configure_auc2t(
    margin: float = 1.0,
    lam: float = 100.0,
    typed: bool = True,
    threshold: float = 0.5,
    weighting: str = "none",
    typeless_label: Optional[str] = None,
    typed_decoding: str = "token",
    one_class: str = "bound",
) -> AUC2T:
    """AUC-2T: ``AUC_M(entity) + lam·AUC_M(begin)`` (closed form), decoded by Algorithm 1."""
    return AUC2T(
        margin=margin, lam=lam, typed=typed, threshold=threshold, weighting=weighting,
        typeless_label=typeless_label, typed_decoding=typed_decoding, one_class=one_class,
    )


@registry.losses("spacy-nerimb.CompositionalAUC2T.v1")
def configure_compositional_auc2t(
    margin: float = 1.0,
    lam: float = 100.0,
    typed: bool = True,
    threshold: float = 0.5,
    weighting: str = "none",
    typeless_label: Optional[str] = None,
    typed_decoding: str = "token",
    one_class: str = "bound",
    ce_steps: int = 1,
    auc_steps: int = 1,
    decode_with: str = "two_task",
) -> CompositionalAUC2T:
    """COMAUC-2T: ``ce_steps`` CE steps, then ``auc_steps`` AUC-2T steps, repeated."""
    return CompositionalAUC2T(
        margin=margin, lam=lam, typed=typed, threshold=threshold, weighting=weighting,
        typeless_label=typeless_label, typed_decoding=typed_decoding, one_class=one_class,
        ce_steps=ce_steps, auc_steps=auc_steps, decode_with=decode_with,
    )
