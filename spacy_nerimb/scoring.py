"""Strict span-level entity scores: micro, macro over types, and per type.

spaCy's own NER scorer reports micro scores only; the resampling paper's main
metric is the macro F1 over entity types, so the component selects its best
model by ``ents_macro_f`` by default.
"""
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from spacy.training import Example
from spacy.util import registry

CharSpan = Tuple[int, int, str]


def prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where undefined)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f": f}


def _unannotated_chars(example: Example) -> List[Tuple[int, int]]:
    """Character ranges of reference tokens whose entity annotation is missing."""
    return [
        (tok.idx, tok.idx + len(tok.text))
        for tok in example.reference
        if tok.ent_iob == 0
    ]


def example_spans(example: Example) -> Optional[Tuple[Set[CharSpan], Set[CharSpan]]]:
    """Gold and predicted entities as character spans; ``None`` if gold has no NER.

    A predicted entity over a reference token with missing annotation is left
    out (it can be neither right nor wrong), as spaCy's scorer does.
    """
    if not example.reference.has_annotation("ENT_IOB"):
        return None
    gold = {(e.start_char, e.end_char, e.label_) for e in example.reference.ents}
    missing = _unannotated_chars(example)
    pred = set()
    for ent in example.predicted.ents:
        if any(s < ent.end_char and ent.start_char < e for s, e in missing):
            continue
        pred.add((ent.start_char, ent.end_char, ent.label_))
    return gold, pred


def span_counts(pairs: Iterable[Tuple[Set[CharSpan], Set[CharSpan]]]) -> Dict[str, List[int]]:
    """Per-type ``[tp, fp, fn]`` over (gold, predicted) span-set pairs."""
    counts: Dict[str, List[int]] = defaultdict(lambda: [0, 0, 0])
    for gold, pred in pairs:
        for span in pred & gold:
            counts[span[2]][0] += 1
        for span in pred - gold:
            counts[span[2]][1] += 1
        for span in gold - pred:
            counts[span[2]][2] += 1
    return dict(counts)


def scores_from_counts(counts: Dict[str, List[int]], prefix: str = "ents") -> Dict[str, Any]:
    """Micro P/R/F, macro P/R/F (unweighted mean over types) and per-type scores.

    The types averaged are those seen in gold or predictions; a type that is
    predicted but never in gold has F1 0 and lowers the macro score.
    """
    per_type = {label: prf(*c) for label, c in sorted(counts.items())}
    micro = prf(*(sum(c[i] for c in counts.values()) for i in range(3)))
    n_types = len(per_type)
    macro = {
        key: (sum(s[key] for s in per_type.values()) / n_types if n_types else 0.0)
        for key in ("p", "r", "f")
    }
    result: Dict[str, Any] = {f"{prefix}_{k}": v for k, v in micro.items()}
    result.update({f"{prefix}_macro_{k}": v for k, v in macro.items()})
    result[f"{prefix}_per_type"] = per_type
    return result


def score_entities(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Strict (exact boundaries and type) entity scores for a batch of examples."""
    pairs = [p for p in (example_spans(eg) for eg in examples) if p is not None]
    return scores_from_counts(span_counts(pairs))


@registry.scorers("spacy-nerimb.entity_scorer.v1")
def make_entity_scorer():
    """Scorer reporting ``ents_p/r/f``, ``ents_macro_p/r/f`` and ``ents_per_type``."""
    return score_entities
