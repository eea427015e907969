"""Linear-chain CRF over the tag set (``spacy-nerimb.CRF.v1``).

The head's logits are the CRF's *emission* scores ``E[t, y]``; the learned
``transitions[prev, next]``, ``start[y]`` and ``end[y]`` scores live in the
``"crf"`` layer of ``spacy-nerimb.TokenTagger.v1`` (see
:func:`spacy_nerimb.models.tagger.crf_params`), so they are model parameters:
the optimiser updates them and the pipeline saves them. The component hands
the model to the loss with :meth:`CRF.bind` (its ``_bind_loss`` hook).

Score of a tag sequence ``y`` of a doc of ``n`` tokens::

    s(y) = start[y_0] + Σ_t E[t, y_t] + Σ_{t≥1} transitions[y_{t−1}, y_t] + end[y_{n−1}]

Loss per doc: ``−log p(y | x) = log Z − s(y)``, ``log Z`` by the forward
algorithm in log space. Tokens without gold (:data:`~spacy_nerimb.tags.MISSING`)
are marginalised: the gold term is the log-sum over all sequences that agree
with the known tags (a second, constrained forward pass, run only for batches
that have missing tokens). The summed NLL of the docs is divided by the number
of annotated tokens of the batch, like every loss here, so weights mean the
same with any loss. Optionally ``L = L_CRF + w · L_emission`` with a per-token
loss on the emission softmax (focal in the paper's recipe, or MoM), each term
normalised the same way.

``mask_invalid_transitions`` (default on) gives transitions, starts and ends
that break the BIO/BILUO scheme a fixed log-potential of ``−10⁴`` (weight
exactly 0 for transitions, below 1e-300 for starts and ends), so ``Z`` sums
over valid sequences only and those scores get no gradient. Decoding always forbids them (constrained Viterbi of
:mod:`spacy_nerimb.tags`, with the learned scores).

Gradients are analytic, from forward–backward marginals:
``∂/∂E[t, y] = p(y_t = y) − [gold]``, ``∂/∂transitions[i, j] = Σ_t p(y_t = i,
y_{t+1} = j) − gold count`` and likewise for start/end. Everything runs in
the array module of the logits (numpy, or cupy on GPU) in float64, batched
over docs and tags, with one vectorised step per token position.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from thinc.api import Model, get_array_module, registry
from thinc.types import Floats2d, Ints1d

from ..models.tagger import CRF_LAYER
from ..tags import MISSING, constrained_viterbi, transition_constraints
from .base import TagLoss
from .weights import is_finite_number

HEAD_CRF = "crf"
FORBIDDEN = -1.0e4  # log-potential of a forbidden move (exp(-1e4) == 0.0 in float64)
_TINY = 1e-300  # floor before log(): unreachable states stay finite (≈ −690)
_MIN_EXP = -700.0  # floor of exp() arguments: e^-700 ≈ 1e-304 stands for 0 (see _exp)
_CLIP = 300.0  # largest exponent in the pair-marginal product (see crf_forward_backward)


# --- batching ---------------------------------------------------------------------------


def pad_batch(xp: Any, flat: Any, lengths: Any) -> Tuple[Any, Any, Any]:
    """``(padded (B, T, …), valid mask (B, T), flat row index (B, T))`` of a flat batch."""
    lengths = xp.asarray(lengths, dtype="int64")
    n_docs = int(lengths.shape[0])
    max_len = int(lengths.max()) if n_docs else 0
    starts = xp.zeros((n_docs,), dtype="int64")
    if n_docs > 1:
        starts[1:] = xp.cumsum(lengths)[:-1]
    steps = xp.arange(max_len, dtype="int64")
    valid = steps[None, :] < lengths[:, None]
    rows = starts[:, None] + steps[None, :]
    padded = xp.zeros((n_docs, max_len) + flat.shape[1:], dtype=flat.dtype)
    padded[valid] = flat
    return padded, valid, rows


def _exp(xp: Any, x: Any) -> Any:
    """``exp`` with arguments floored at −700: results that would be subnormal (or 0)
    become 1e-304. Subnormal results take a slow path in libm (tens of times
    slower); every such term is ≥ 300 orders of magnitude below the largest term
    it is added to, so the sums do not change."""
    return xp.exp(xp.maximum(x, _MIN_EXP))


def _logsumexp(xp: Any, x: Any, axis: int) -> Any:
    m = x.max(axis=axis, keepdims=True)
    return (m + xp.log(_exp(xp, x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


# --- forward–backward ---------------------------------------------------------------------


def crf_forward_backward(
    xp: Any, E: Any, valid: Any, trans: Any, start: Any, end: Any, marginals: bool = True
) -> Dict[str, Any]:
    """Log-partition and marginals of a batch of linear-chain CRFs.

    ``E``: emissions ``(B, T, C)``; ``valid``: ``(B, T)`` (each doc's tokens
    first, at least one per doc); ``trans``/``start``/``end``: log-potentials
    (forbidden moves already set to :data:`FORBIDDEN`). Returns ``log_z``
    ``(B,)`` and, with ``marginals``, ``unary`` ``(B, T, C)`` (zero on
    padding), ``pairs`` ``(C, C)`` (summed over docs and positions),
    ``start`` and ``end`` ``(C,)`` (summed over docs).

    Log space throughout: each step is ``logsumexp_i(α_i + T_ij) = m +
    log(exp(α − m) @ exp(T))``, one matrix product per position, stable
    because every row is shifted by its own maximum ``m``. Docs are processed
    longest first, so step ``t`` works on the prefix of docs still running.
    """
    n_docs, n_steps, n_tags = E.shape
    lengths = valid.sum(axis=1)
    order = xp.argsort(-lengths, kind="stable")
    E, lengths = E[order], lengths[order]
    # running[t]: how many (sorted) docs have a token at position t
    running = [int(k) for k in (lengths[:, None] > xp.arange(n_steps)[None, :]).sum(axis=0).tolist()]
    exp_trans = xp.exp(trans)
    alpha = xp.zeros_like(E)
    alpha[:, 0] = start[None, :] + E[:, 0]
    for t in range(1, n_steps):
        k = running[t]
        prev = alpha[:k, t - 1]
        m = prev.max(axis=1, keepdims=True)
        alpha[:k, t] = m + xp.log(xp.maximum(_exp(xp, prev - m) @ exp_trans, _TINY)) + E[:k, t]
    docs = xp.arange(n_docs)
    last_alpha = alpha[docs, lengths - 1]
    log_z = _logsumexp(xp, last_alpha + end[None, :], axis=1)
    inverse = xp.empty_like(order)
    inverse[order] = docs
    out: Dict[str, Any] = {"log_z": log_z[inverse]}
    if not marginals:
        return out
    beta = xp.zeros_like(E)
    exp_trans_t = exp_trans.T
    for t in range(n_steps - 1, -1, -1):
        k_next = running[t + 1] if t + 1 < n_steps else 0
        if k_next:
            nxt = E[:k_next, t + 1] + beta[:k_next, t + 1]
            m = nxt.max(axis=1, keepdims=True)
            beta[:k_next, t] = m + xp.log(xp.maximum(_exp(xp, nxt - m) @ exp_trans_t, _TINY))
        beta[k_next : running[t], t] = end[None, :]  # docs whose last token is t
    sorted_valid = valid[order]
    unary = xp.where(sorted_valid[:, :, None], _exp(xp, alpha + beta - log_z[:, None, None]), 0.0)
    out["unary"] = unary[inverse]
    out["start"] = unary[:, 0].sum(axis=0)
    out["end"] = unary[docs, lengths - 1].sum(axis=0)
    # Pair marginals p(y_t = i, y_t+1 = j) = exp(α_t,i + T_ij + E_t+1,j + β_t+1,j − log Z),
    # summed over docs and positions, as one matrix product: with s = max_i α_t,i,
    # Σ_bt exp(α_t,i − s) · exp(E_t+1,j + β_t+1,j − log Z + s), times exp(T_ij). The
    # first factor is ≤ 1; the second is clipped at e^300, which only matters if
    # emission scores differ by hundreds of nats. Pairs into padding are exactly 0.
    prev = alpha[:, :-1]
    shift = prev.max(axis=2, keepdims=True)
    left = _exp(xp, prev - shift).reshape(-1, n_tags)
    log_right = E[:, 1:] + beta[:, 1:] - log_z[:, None, None] + shift
    right = xp.where(sorted_valid[:, 1:, None], _exp(xp, xp.minimum(log_right, _CLIP)), 0.0)
    pairs = (left.T @ right.reshape(-1, n_tags)) * exp_trans
    out["pairs"] = pairs
    return out


def crf_potentials(
    xp: Any,
    trans: Any,
    start: Any,
    end: Any,
    masks: Optional[Tuple[Any, Any, Any]] = None,
) -> Tuple[Any, Any, Any]:
    """float64 log-potentials, forbidden moves set to :data:`FORBIDDEN` when ``masks``."""
    trans, start, end = (xp.asarray(p, dtype="float64") for p in (trans, start, end))
    if masks is not None:
        allowed, ok_start, ok_end = (xp.asarray(m) for m in masks)
        trans = xp.where(allowed, trans, FORBIDDEN)
        start = xp.where(ok_start, start, FORBIDDEN)
        end = xp.where(ok_end, end, FORBIDDEN)
    return trans, start, end


def crf_nll(
    xp: Any,
    emissions: Any,
    gold: Any,
    lengths: Any,
    trans: Any,
    start: Any,
    end: Any,
) -> Dict[str, Any]:
    """Summed NLL of the docs of a flat batch, and its gradients (all float64).

    ``emissions`` ``(N, C)``, ``gold`` ``(N,)`` (``MISSING`` allowed),
    ``lengths`` ``(B,)``; ``trans``/``start``/``end`` are log-potentials as
    returned by :func:`crf_potentials`. Docs with no annotated token add
    nothing. Returns ``nll`` (float), ``d_emissions`` ``(N, C)``, ``d_trans``,
    ``d_start``, ``d_end`` and ``n_annotated``.
    """
    n_rows, n_tags = emissions.shape
    gold = xp.asarray(gold, dtype="int64")
    known = gold != MISSING
    n_annotated = int(known.sum())
    result = {
        "nll": 0.0,
        "d_emissions": xp.zeros((n_rows, n_tags), dtype="float64"),
        "d_trans": xp.zeros((n_tags, n_tags), dtype="float64"),
        "d_start": xp.zeros((n_tags,), dtype="float64"),
        "d_end": xp.zeros((n_tags,), dtype="float64"),
        "n_annotated": n_annotated,
    }
    if n_annotated == 0:
        return result
    lengths = xp.asarray(lengths, dtype="int64")
    E, valid, rows = pad_batch(xp, xp.asarray(emissions, dtype="float64"), lengths)
    G, _, _ = pad_batch(xp, gold, lengths)
    K = (G != MISSING) & valid
    keep = K.any(axis=1)  # docs with at least one annotated token
    if not bool(keep.all()):
        E, valid, rows, G, K = E[keep], valid[keep], rows[keep], G[keep], K[keep]
        lengths = lengths[keep]
        max_len = int(lengths.max())
        E, valid, rows, G, K = (a[:, :max_len] for a in (E, valid, rows, G, K))
    full = crf_forward_backward(xp, E, valid, trans, start, end)
    n_docs = E.shape[0]
    docs = xp.arange(n_docs)
    if bool((K == valid).all()):
        # Fully annotated: the gold path's score and counts directly.
        safe = xp.where(valid, G, 0)
        gold_onehot = (safe[:, :, None] == xp.arange(n_tags)[None, None, :]) & valid[:, :, None]
        first, last = safe[:, 0], safe[docs, lengths - 1]
        pair_valid = valid[:, 1:]
        pair_index = (safe[:, :-1] * n_tags + safe[:, 1:])[pair_valid]
        gold_pairs = xp.bincount(pair_index, minlength=n_tags * n_tags).reshape(n_tags, n_tags)
        score = (
            (E * gold_onehot).sum()
            + trans.ravel()[pair_index].sum()
            + start[first].sum()
            + end[last].sum()
        )
        nll = float(full["log_z"].sum() - score)
        d_pad = full["unary"] - gold_onehot
        d_trans = full["pairs"] - gold_pairs
        d_start = full["start"] - xp.bincount(first, minlength=n_tags)
        d_end = full["end"] - xp.bincount(last, minlength=n_tags)
    else:
        # Missing tokens: the gold term sums over every completion of the known tags.
        others = K[:, :, None] & (G[:, :, None] != xp.arange(n_tags)[None, None, :])
        fixed = crf_forward_backward(xp, xp.where(others, FORBIDDEN, E), valid, trans, start, end)
        nll = float((full["log_z"] - fixed["log_z"]).sum())
        d_pad = full["unary"] - fixed["unary"]
        d_trans = full["pairs"] - fixed["pairs"]
        d_start = full["start"] - fixed["start"]
        d_end = full["end"] - fixed["end"]
    result["d_emissions"][rows[valid]] = d_pad[valid]
    result.update(nll=nll, d_trans=d_trans, d_start=d_start, d_end=d_end)
    return result


def crf_sequence_score(emissions: Any, tags: Sequence[int], trans: Any, start: Any, end: Any) -> float:
    """Score ``s(y)`` of one doc's tag sequence (reference for tests and brute force)."""
    tags = list(tags)
    score = float(start[tags[0]] + end[tags[-1]])
    score += float(sum(emissions[t, y] for t, y in enumerate(tags)))
    score += float(sum(trans[a, b] for a, b in zip(tags[:-1], tags[1:])))
    return score


# --- the loss -------------------------------------------------------------------------------


class CRF(TagLoss):
    """Linear-chain CRF NLL (+ optional per-token loss on the emissions)."""

    head = HEAD_CRF
    name = "crf"
    owns_params = True  # its gradients also go to model parameters: see param_grad_scale

    def __init__(
        self,
        emission_loss: Optional[TagLoss] = None,
        emission_weight: float = 1.0,
        mask_invalid_transitions: bool = True,
    ) -> None:
        super().__init__()
        if emission_loss is not None:
            if not isinstance(emission_loss, TagLoss):
                raise ValueError(
                    "emission_loss must be a spacy-nerimb loss (e.g. "
                    '{"@losses": "spacy-nerimb.Focal.v1"}), got '
                    f"{type(emission_loss).__name__}."
                )
            if not emission_loss.per_token:
                raise ValueError(
                    f"emission_loss = {type(emission_loss).__name__}: the CRF's extra term "
                    "must be a per-token loss on the emission softmax (CrossEntropy, Focal, "
                    "Dice or MoM)."
                )
        if not is_finite_number(emission_weight) or emission_weight < 0:
            raise ValueError(f"emission_weight = {emission_weight!r}: expected a number >= 0.")
        if not isinstance(mask_invalid_transitions, bool):
            raise ValueError(
                f"mask_invalid_transitions = {mask_invalid_transitions!r}: expected true or false."
            )
        self.emission_loss = emission_loss
        self.emission_weight = float(emission_weight)
        self.mask_invalid_transitions = mask_invalid_transitions
        self.layer: Optional[Model] = None
        self._masks: Optional[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]] = None

    # -- set-up -------------------------------------------------------------------------
    def initialize(
        self,
        tag_names: Sequence[str],
        tag_counts: Dict[str, int],
        *,
        labels: Sequence[str] = (),
        scheme: str = "BILUO",
    ) -> None:
        super().initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
        self._masks = transition_constraints(self.tag_names, self.scheme)
        if self.emission_loss is not None:
            self.emission_loss.initialize(tag_names, tag_counts, labels=labels, scheme=scheme)
            width = self.emission_loss.output_width(len(self.tag_names), len(self.labels))
            if width != len(self.tag_names):
                raise ValueError(
                    f"emission_loss = {type(self.emission_loss).__name__} needs {width} "
                    f"scores per token, but the CRF's emissions are one per tag "
                    f"({len(self.tag_names)})."
                )

    def bind(self, model: Model) -> None:
        """Use the ``"crf"`` layer of ``model`` (or ``model`` itself) for the learned scores."""
        if not self.tag_names:
            raise RuntimeError("CRF.bind: call initialize() with the tag list first.")
        if model.name == CRF_LAYER:
            layer = model
        elif model.has_ref(CRF_LAYER):
            layer = model.get_ref(CRF_LAYER)
        else:
            raise ValueError(
                "spacy-nerimb.CRF.v1 needs a model with a 'crf' parameter layer for its "
                "learned transition scores: use spacy-nerimb.TokenTagger.v1 as "
                "[components.<name>.model]."
            )
        n_tags = len(self.tag_names)
        if layer.has_dim("nO") is None:
            layer.set_dim("nO", n_tags)
        elif layer.get_dim("nO") != n_tags:
            raise ValueError(
                f"The model's CRF layer has {layer.get_dim('nO')} tags but the component "
                f"has {n_tags} ({', '.join(self.tag_names)}): re-run initialize."
            )
        self.layer = layer

    def output_width(self, n_tags: int, n_labels: int) -> int:
        return n_tags

    def _params(self) -> Tuple[Any, Any, Any]:
        if self.layer is None:
            raise RuntimeError(
                "spacy-nerimb.CRF.v1 is not bound to a model: the imbalanced_ner component "
                "binds it at initialize; elsewhere call loss.bind(model) first."
            )
        if self.layer.has_param("transitions") is not True:
            raise RuntimeError(
                "The CRF scores are not allocated: initialize the model after bind() "
                "(nlp.initialize() does this)."
            )
        return tuple(self.layer.get_param(name) for name in ("transitions", "start", "end"))

    def potentials(self, xp: Any, for_training: bool = True) -> Tuple[Any, Any, Any]:
        """The learned scores as float64 log-potentials (masked when configured)."""
        trans, start, end = self._params()
        masks = self._masks if (self.mask_invalid_transitions or not for_training) else None
        return crf_potentials(xp, trans, start, end, masks)

    # -- training -------------------------------------------------------------------------
    def __call__(
        self,
        logits: Floats2d,
        gold: Ints1d,
        lengths: Optional[Ints1d] = None,
        *,
        param_grad_scale: float = 1.0,
    ) -> Tuple[Floats2d, float]:
        """``(d_logits, loss)``; adds ``param_grad_scale`` × the gradient of the
        learned scores to the CRF layer (a wrapper that averages several calls,
        like R-Drop, passes its weight here)."""
        xp = get_array_module(logits)
        if lengths is None:
            lengths = xp.asarray([logits.shape[0]], dtype="int64")
        trans, start, end = self.potentials(xp)
        self._check_gold(xp, gold, lengths)
        out = crf_nll(xp, logits, gold, lengths, trans, start, end)
        n = out["n_annotated"]
        if n == 0:
            return xp.zeros_like(logits), 0.0
        d_logits = (out["d_emissions"] / n).astype(logits.dtype)
        loss = out["nll"] / n
        if self.emission_loss is not None and self.emission_weight > 0:
            d_extra, extra = self.emission_loss(logits, gold, lengths)
            d_logits += self.emission_weight * d_extra
            loss += self.emission_weight * float(extra)
        scale = param_grad_scale / n
        layer = self.layer
        for name, grad in (("transitions", out["d_trans"]), ("start", out["d_start"]), ("end", out["d_end"])):
            layer.inc_grad(name, (grad * scale).astype("float32"))
        return d_logits, float(loss)

    def _check_gold(self, xp: Any, gold: Any, lengths: Any) -> None:
        """Gold that breaks the tag scheme has probability 0 under the masks: say so."""
        if not self.mask_invalid_transitions or self._masks is None:
            return
        allowed, ok_start, ok_end = (xp.asarray(m) for m in self._masks)
        gold = xp.asarray(gold, dtype="int64")
        lengths = xp.asarray(lengths, dtype="int64")
        if gold.shape[0] == 0:
            return
        ends = xp.cumsum(lengths)
        starts = ends - lengths
        nonempty = lengths > 0
        first, last = gold[starts[nonempty]], gold[ends[nonempty] - 1]
        is_start = xp.zeros(gold.shape[0], dtype=bool)
        is_start[starts[nonempty]] = True
        prev, nxt = gold[:-1], gold[1:]
        pair_known = (prev != MISSING) & (nxt != MISSING) & ~is_start[1:]
        bad_pairs = pair_known & ~allowed[xp.maximum(prev, 0), xp.maximum(nxt, 0)]
        bad_first = (first != MISSING) & ~ok_start[xp.maximum(first, 0)]
        bad_last = (last != MISSING) & ~ok_end[xp.maximum(last, 0)]
        if bool(bad_pairs.any() | bad_first.any() | bad_last.any()):
            raise ValueError(
                f"The gold tags break the {self.scheme} scheme (an invalid transition, start "
                "or end), which the CRF's masks give probability 0. Check the data's "
                "conversion, or set mask_invalid_transitions = false."
            )

    # -- prediction -------------------------------------------------------------------------
    def decode(self, scores: Sequence[Floats2d]) -> List[numpy.ndarray]:
        """Constrained Viterbi on the emissions with the learned scores."""
        allowed, ok_start, ok_end = self._masks
        trans, start, end = (self.layer.ops.to_numpy(p) for p in self._params())
        emissions = []
        for doc_scores in scores:
            emissions.append(doc_scores.get() if hasattr(doc_scores, "get") else numpy.asarray(doc_scores))
        return constrained_viterbi(
            emissions, allowed, ok_start, ok_end,
            transition_scores=trans, start_scores=start, end_scores=end,
        )


@registry.losses("spacy-nerimb.CRF.v1")
def configure_crf(
    emission_loss: Optional[TagLoss] = None,
    emission_weight: float = 1.0,
    mask_invalid_transitions: bool = True,
) -> CRF:
    """CRF head; ``L = L_CRF + emission_weight · emission_loss`` (e.g. focal, the paper's recipe)."""
    return CRF(
        emission_loss=emission_loss,
        emission_weight=emission_weight,
        mask_invalid_transitions=mask_invalid_transitions,
    )
