"""Tag schemes: the one place where BIO/BILUO tags, valid transitions,
constrained decoding, span extraction and tag repair live.

Tag ids are positions in a tag list built by :func:`make_tag_names`; ``O`` is
always id 0. Missing gold annotation is the id :data:`MISSING` (-1).
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy

SCHEMES = ("BILUO", "BIO")
ENTITY_PREFIXES = {"BILUO": ("B", "I", "L", "U"), "BIO": ("B", "I")}
# BILUO prefix -> BIO prefix
_BILUO_TO_BIO = {"B": "B", "I": "I", "L": "I", "U": "B"}
OUTSIDE = "O"
MISSING = -1

Span = Tuple[int, int, str]  # (start token, end token exclusive, label)


def check_scheme(scheme: str) -> str:
    """Return the canonical scheme name or raise a clear error."""
    canonical = scheme.upper() if isinstance(scheme, str) else scheme
    if canonical not in SCHEMES:
        raise ValueError(
            f"Unknown tag scheme {scheme!r}: expected one of {', '.join(SCHEMES)}."
        )
    return canonical


def make_tag_names(labels: Sequence[str], scheme: str = "BILUO") -> List[str]:
    """Tag list for entity labels: ``O`` first, then the prefixed tags per label."""
    scheme = check_scheme(scheme)
    prefixes = ENTITY_PREFIXES[scheme]
    return [OUTSIDE] + [f"{prefix}-{label}" for label in labels for prefix in prefixes]


def split_tag(tag: str) -> Tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "")``."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, label = tag.partition("-")
    if not sep or not label:
        raise ValueError(f"Malformed tag {tag!r}: expected 'O' or PREFIX-LABEL.")
    return prefix, label


def biluo_to_scheme(tag: Optional[str], scheme: str) -> Optional[str]:
    """Map a BILUO tag (as spaCy produces) onto ``scheme``; ``None`` stays ``None``."""
    if tag is None or tag == "-":
        return None
    if scheme == "BILUO" or tag == OUTSIDE:
        return tag
    prefix, label = split_tag(tag)
    return f"{_BILUO_TO_BIO[prefix]}-{label}"


def _may_follow(prev: str, nxt: str, scheme: str) -> bool:
    """Whether tag ``nxt`` may directly follow tag ``prev`` in ``scheme``."""
    p_prefix, p_label = split_tag(prev)
    n_prefix, n_label = split_tag(nxt)
    if scheme == "BILUO":
        if p_prefix in ("B", "I"):
            return n_prefix in ("I", "L") and n_label == p_label
        return n_prefix in ("O", "B", "U")
    if n_prefix == "I":
        return p_prefix in ("B", "I") and n_label == p_label
    return True


def transition_constraints(
    tag_names: Sequence[str], scheme: str
) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Boolean masks of allowed moves: ``(transitions[prev, next], start, end)``."""
    scheme = check_scheme(scheme)
    n = len(tag_names)
    allowed = numpy.zeros((n, n), dtype=bool)
    for i, prev in enumerate(tag_names):
        for j, nxt in enumerate(tag_names):
            allowed[i, j] = _may_follow(prev, nxt, scheme)
    prefixes = [split_tag(t)[0] for t in tag_names]
    start = numpy.array([p in ("O", "B", "U") for p in prefixes], dtype=bool)
    if scheme == "BILUO":
        end = numpy.array([p in ("O", "L", "U") for p in prefixes], dtype=bool)
    else:
        end = numpy.ones(n, dtype=bool)
    return allowed, start, end


def constrained_viterbi(
    scores: Sequence[numpy.ndarray],
    allowed: numpy.ndarray,
    start: numpy.ndarray,
    end: numpy.ndarray,
    transition_scores: Optional[numpy.ndarray] = None,
    start_scores: Optional[numpy.ndarray] = None,
    end_scores: Optional[numpy.ndarray] = None,
) -> List[numpy.ndarray]:
    """Best valid tag sequence per doc, batched over docs.

    ``scores`` holds one ``(n_tokens, n_tags)`` array of per-token scores
    (log-probabilities, or CRF emissions) per doc. Forbidden transitions get
    ``-inf``; optional learned transition/start/end scores are added (CRF).
    Runs one vectorised step per token position over the whole batch.
    """
    scores = [numpy.asarray(s, dtype="float64") for s in scores]
    n_tags = allowed.shape[0]
    lengths = numpy.array([s.shape[0] for s in scores], dtype="int64")
    results: List[numpy.ndarray] = [numpy.zeros((0,), dtype="int64")] * len(scores)
    active = [i for i, n in enumerate(lengths) if n > 0]
    if not active:
        return results
    neg_inf = -numpy.inf
    trans = numpy.where(allowed, 0.0, neg_inf)
    if transition_scores is not None:
        trans = trans + numpy.asarray(transition_scores, dtype="float64")
    start_bonus = numpy.where(start, 0.0, neg_inf)
    if start_scores is not None:
        start_bonus = start_bonus + numpy.asarray(start_scores, dtype="float64")
    end_bonus = numpy.where(end, 0.0, neg_inf)
    if end_scores is not None:
        end_bonus = end_bonus + numpy.asarray(end_scores, dtype="float64")
    batch = len(active)
    max_len = int(lengths[active].max())
    padded = numpy.zeros((batch, max_len, n_tags), dtype="float64")
    for row, i in enumerate(active):
        padded[row, : lengths[i]] = scores[i]
    lens = lengths[active]
    backpointers = numpy.zeros((batch, max_len, n_tags), dtype="int64")
    delta = padded[:, 0] + start_bonus
    # Docs of length 1 end right away.
    delta = numpy.where((lens == 1)[:, None], delta + end_bonus, delta)
    for t in range(1, max_len):
        cand = delta[:, :, None] + trans[None]  # (batch, prev, next)
        best_prev = cand.argmax(axis=1)
        best = numpy.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0]
        new_delta = best + padded[:, t]
        new_delta = numpy.where((lens == t + 1)[:, None], new_delta + end_bonus, new_delta)
        running = (lens > t)[:, None]
        delta = numpy.where(running, new_delta, delta)
        backpointers[:, t] = best_prev
    last = delta.argmax(axis=1)
    for row, i in enumerate(active):
        n = int(lens[row])
        path = numpy.zeros((n,), dtype="int64")
        path[n - 1] = last[row]
        for t in range(n - 1, 0, -1):
            path[t - 1] = backpointers[row, t, path[t]]
        results[i] = path
    return results


def tag_ids_to_spans(tag_ids: Iterable[int], tag_names: Sequence[str]) -> List[Span]:
    """Spans of a tag-id sequence; tolerant of invalid input (see :func:`tags_to_spans`)."""
    return tags_to_spans([tag_names[int(i)] for i in tag_ids])[0]


def tags_to_spans(tags: Sequence[str]) -> Tuple[List[Span], int]:
    """Entity spans from BIO/IOB1/IOB2/BIOES/BILUO tags, repairing errors.

    Repair rule (counted in the returned number of repairs):
    an ``I-``/``L-``/``E-`` tag that does not continue an open entity of the
    same type starts a new entity (IOB1 behaviour, and the usual fix for
    ``O I-X`` or ``B-X I-Y``). ``S-``/``U-`` are single-token entities,
    ``L-``/``E-`` close the entity. Lower-case prefixes are accepted and
    ``O-X`` is read as ``O``; each repaired token counts once.
    """
    spans: List[Span] = []
    repairs = 0
    open_start: Optional[int] = None
    open_label = ""

    def close(at: int) -> None:
        nonlocal open_start
        if open_start is not None:
            spans.append((open_start, at, open_label))
            open_start = None

    for i, raw in enumerate(tags):
        tag = raw.strip()
        if tag in ("O", "o", ""):
            close(i)
            continue
        prefix, sep, label = tag.partition("-")
        repaired = False
        if not sep:
            raise ValueError(f"Malformed tag {raw!r} at token {i}: expected 'O' or PREFIX-LABEL.")
        if prefix != prefix.upper():
            repaired = True
            prefix = prefix.upper()
        if prefix == "O":
            repairs += 1
            close(i)
            continue
        if prefix not in ("B", "I", "L", "E", "U", "S"):
            raise ValueError(
                f"Malformed tag {raw!r} at token {i}: unknown prefix {prefix!r} "
                "(expected B, I, L, E, U, S or O)."
            )
        continues = open_start is not None and open_label == label
        if prefix in ("B", "U", "S") or not continues:
            repaired = repaired or prefix in ("I", "L", "E")
            close(i)
            open_start, open_label = i, label
        if prefix in ("L", "E", "U", "S"):
            close(i + 1)
        repairs += repaired
    close(len(tags))
    return spans, repairs


def spans_to_tags(n_tokens: int, spans: Iterable[Span], scheme: str = "BILUO") -> List[str]:
    """Tags of non-overlapping spans in ``scheme`` (raises on overlap or bad bounds)."""
    scheme = check_scheme(scheme)
    tags = [OUTSIDE] * n_tokens
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"Span ({start}, {end}, {label!r}) is outside 0..{n_tokens}.")
        if any(t != OUTSIDE for t in tags[start:end]):
            raise ValueError(f"Span ({start}, {end}, {label!r}) overlaps another entity.")
        if scheme == "BIO":
            tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
        elif end - start == 1:
            tags[start] = f"U-{label}"
        else:
            tags[start:end] = (
                [f"B-{label}"] + [f"I-{label}"] * (end - start - 2) + [f"L-{label}"]
            )
    return tags


def tag_index(tag_names: Sequence[str]) -> Dict[str, int]:
    """Map tag name -> id."""
    return {name: i for i, name in enumerate(tag_names)}


# --- Input tag schemes of corpus files (used by the converters) -------------------------

INPUT_SCHEMES = ("IOB1", "IOB2", "BIOES", "BILUO")


def add_type_to_bare_tags(tags: Sequence[str], label: str) -> List[str]:
    """Bare ``B``/``I`` tags (no type) -> ``B-label``/``I-label``; other tags unchanged."""
    return [f"{t.upper()}-{label}" if t in ("B", "I", "b", "i") else t for t in tags]


def iob1_to_iob2(tags: Sequence[str]) -> List[str]:
    """IOB1 (``I-`` opens an entity, ``B-`` only splits adjacent same-type ones) -> IOB2."""
    out: List[str] = []
    prev_label: Optional[str] = None
    for tag in tags:
        prefix, sep, label = tag.partition("-")
        prefix = prefix.upper()
        if sep and prefix == "I" and label != prev_label:
            out.append(f"B-{label}")
        else:
            out.append(tag)
        prev_label = label if sep and prefix in ("B", "I") else None
    return out


def detect_input_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of typed tag sequences: one of :data:`INPUT_SCHEMES`.

    ``E-``/``S-`` -> BIOES, ``L-``/``U-`` -> BILUO. Otherwise IOB1 when ``I-``
    opens entities and ``B-`` never does (it only separates adjacent entities of
    one type), else IOB2 (where an opening ``I-`` is an error to repair).
    """
    b_opens = i_opens = 0
    prefixes = set()
    for tags in tag_sequences:
        prev_label: Optional[str] = None
        for tag in tags:
            prefix, sep, label = tag.partition("-")
            prefix = prefix.upper()
            prefixes.add(prefix)
            opens = sep and label != prev_label
            if prefix == "B" and opens:
                b_opens += 1
            elif prefix == "I" and opens:
                i_opens += 1
            prev_label = label if sep and prefix in ("B", "I") else None
    if prefixes & {"E", "S"}:
        return "BIOES"
    if prefixes & {"L", "U"}:
        return "BILUO"
    return "IOB1" if i_opens and not b_opens else "IOB2"


# --- Two-task rows (AUC-2T: "is inside an entity", "begins an entity") -----------------


def two_task_rows(tags: Sequence[str]) -> Tuple[List[int], List[int]]:
    """Entity and begin rows (1/0 per token) of a tag sequence (any scheme).

    The paper's Figure 1: ``B O O O B I`` -> entity ``1 0 0 0 1 1``, begin
    ``1 0 0 0 1 0``. Tags are parsed with :func:`tags_to_spans` (so BIO, BILUO,
    BIOES and its repair rule all work); entity types are ignored.
    """
    entity = [0] * len(tags)
    begin = [0] * len(tags)
    for start, end, _ in tags_to_spans(tags)[0]:
        begin[start] = 1
        entity[start:end] = [1] * (end - start)
    return entity, begin


def two_task_spans(
    entity: Sequence[bool], begin: Sequence[bool], types: Optional[Sequence[int]] = None
) -> List[Tuple[int, int]]:
    """Spans ``(start, end)`` from thresholded two-task rows (paper Algorithm 1).

    entity and begin -> B (starts an entity); entity only -> I (continues the
    open entity, or starts one when none is open); otherwise O (a begin without
    entity is O). With ``types`` (one type id per token), an I whose type differs
    from the open entity's starts a new entity.
    """
    spans: List[Tuple[int, int]] = []
    start: Optional[int] = None
    for i, is_entity in enumerate(entity):
        if not is_entity:
            if start is not None:
                spans.append((start, i))
                start = None
            continue
        new_type = types is not None and start is not None and types[i] != types[i - 1]
        if start is None or begin[i] or new_type:
            if start is not None:
                spans.append((start, i))
            start = i
    if start is not None:
        spans.append((start, len(entity)))
    return spans
