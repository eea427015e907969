"""Imbalance statistics of NER corpora.

The sentence-resampling paper's Table 1 columns (tokens, entity types, least vs most
frequent type as % of all tokens, % entity tokens, sentences, % sentences with
entities) plus the AUC-2T paper's B/I/O label shares (IOB2, % of tokens).
"""
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy

from .corpora import EntityArrays, load_docbin, read_tagged, sentence_docbin, tagged_to_spans
from .util import PathLike, markdown_table, write_json_atomic, write_text_atomic


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 4) if whole else 0.0


def corpus_statistics(arrays: EntityArrays) -> Dict[str, Any]:
    """All statistics of one corpus as a JSON-ready dict (percentages in %)."""
    n_tokens, n_sentences = arrays.n_tokens, arrays.n_sentences
    inside = arrays.type_ids >= 0
    type_tokens = numpy.bincount(arrays.type_ids[inside], minlength=len(arrays.labels))
    entity_tokens = int(inside.sum())
    per_sentence = arrays.count_matrix().sum(axis=1)
    n_b = int(arrays.begins.sum())
    types = {
        label: {
            "tokens": int(type_tokens[i]),
            "share_of_tokens": _pct(type_tokens[i], n_tokens),
            "share_of_entity_tokens": _pct(type_tokens[i], entity_tokens),
        }
        for i, label in enumerate(arrays.labels)
    }
    stats: Dict[str, Any] = {
        "tokens": n_tokens,
        "sentences": n_sentences,
        "entity_types": len(arrays.labels),
        "entities": n_b,
        "entity_tokens": entity_tokens,
        "entity_token_share": _pct(entity_tokens, n_tokens),
        "sentences_with_entities": int((per_sentence > 0).sum()),
        "sentences_with_entities_share": _pct(int((per_sentence > 0).sum()), n_sentences),
        "bio_shares": {
            "B": _pct(n_b, n_tokens),
            "I": _pct(entity_tokens - n_b, n_tokens),
            "O": _pct(n_tokens - entity_tokens, n_tokens),
        },
        "types": types,
    }
    if len(arrays.labels):
        order = sorted(types, key=lambda t: (types[t]["tokens"], t))
        least, most = order[0], order[-1]
        stats["least_frequent_type"] = {"type": least, **types[least]}
        stats["most_frequent_type"] = {"type": most, **types[most]}
    return stats


def arrays_for_path(
    path: PathLike,
    format: str = "auto",
    *,
    encoding: Optional[str] = None,
    tag_column: int = -1,
    scheme: str = "auto",
    entity_type: Optional[str] = None,
) -> EntityArrays:
    """Entity arrays of a ``.spacy`` file/directory or of a tagged corpus file (fast reader)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".spacy" or format == "spacy":
        return EntityArrays.from_docbin(sentence_docbin(load_docbin(path), source=str(path)),
                                        source=str(path))
    tagged = read_tagged(path, format, encoding=encoding, tag_column=tag_column)
    spans = tagged_to_spans(tagged, scheme, entity_type)
    return EntityArrays.from_spans([len(w) for w in spans.words], spans.spans)


def statistics_for_paths(paths: Sequence[PathLike], names: Optional[Sequence[str]] = None,
                         **options: Any) -> Dict[str, Dict[str, Any]]:
    """``{name: statistics}`` for several corpora (name defaults to ``folder/file``)."""
    result: Dict[str, Dict[str, Any]] = {}
    for i, path in enumerate(paths):
        path = Path(path)
        name = names[i] if names else f"{path.parent.name}/{path.name}"
        stats = corpus_statistics(arrays_for_path(path, **options))
        stats["path"] = str(path)
        result[name] = stats
    return result


TABLE1_HEADER = [
    "corpus", "# tokens", "# entity types", "% least vs most freq. type tokens",
    "% entity tokens", "# sentences", "% sentences w/ entities", "B / I / O %",
]


def statistics_markdown(stats_by_name: Dict[str, Dict[str, Any]]) -> str:
    """Table 1 of the resampling paper plus B/I/O shares, then per-type shares."""
    rows = []
    for name, s in stats_by_name.items():
        if "least_frequent_type" in s:
            lm = (f"{s['least_frequent_type']['share_of_tokens']:.2f} ({s['least_frequent_type']['type']}) vs "
                  f"{s['most_frequent_type']['share_of_tokens']:.2f} ({s['most_frequent_type']['type']})")
        else:
            lm = "-"
        bio = s["bio_shares"]
        rows.append([
            name, f"{s['tokens']:,}", s["entity_types"], lm, f"{s['entity_token_share']:.2f}",
            f"{s['sentences']:,}", f"{s['sentences_with_entities_share']:.2f}",
            f"{bio['B']:.1f} / {bio['I']:.1f} / {bio['O']:.1f}",
        ])
    text = "# Imbalance statistics\n\n" + markdown_table(TABLE1_HEADER, rows)
    for name, s in stats_by_name.items():
        type_rows = [
            [label, v["tokens"], f"{v['share_of_tokens']:.2f}", f"{v['share_of_entity_tokens']:.2f}"]
            for label, v in sorted(s["types"].items(), key=lambda kv: kv[1]["tokens"])
        ]
        text += f"\n## {name}: entity types (rarest first)\n\n" + markdown_table(
            ["type", "tokens", "% of all tokens", "% of entity tokens"], type_rows
        )
    return text


def write_statistics(stats_by_name: Dict[str, Dict[str, Any]], json_path: Optional[PathLike] = None,
                     markdown_path: Optional[PathLike] = None) -> None:
    """Write the statistics as JSON and/or Markdown (atomically)."""
    if json_path:
        write_json_atomic(json_path, stats_by_name)
    if markdown_path:
        write_text_atomic(markdown_path, statistics_markdown(stats_by_name))
