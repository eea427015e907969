"""Size-increase factor of each resampling method on the real corpora.

Run: ``python benchmarks/resampling_factors.py [--data-dir DIR]``; writes
``benchmarks/results/resampling_factors.{json,md}``. The factor is the number of
training sentences after resampling divided by the number before (the paper's
Table 6 "size increase factor"); the token factor is given beside it.
GMB has no split: its train part is the 3 of a seeded (seed 0) 3:1 train:test split,
as in the paper. The paper's means are over AnEM, WNUT, GMB subset and CoNLL, not
over these corpora, so only the order of magnitude is comparable.
"""
import argparse
import platform
import warnings
from pathlib import Path
from typing import Any, Dict

import numpy

from spacy_nerimb.corpora import EntityArrays, TagRepairWarning, parse_ratios, read_tagged, split_indices, tagged_to_spans
from spacy_nerimb.resampling import repeat_counts
from spacy_nerimb.util import default_data_dir, markdown_table, write_json_atomic, write_text_atomic

PAPER_MEANS = {"sC": 3.80, "sCR": 4.60, "sCRD": 3.91, "nsCRD": 2.82}
CORPORA = {
    "wnut17": "wnut17/wnut17train.conll",
    "anatem": "anatem/train.tsv",
    "gmb": "gmb/ner_dataset.csv",
    "bc5cdr": "bc5cdr/train.tsv",
}
RESULTS = Path(__file__).resolve().parent / "results"


def train_arrays(data_dir: Path, name: str) -> EntityArrays:
    """Entity arrays of a corpus's training part (GMB: train of a seeded 3:1 split)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TagRepairWarning)
        spans = tagged_to_spans(read_tagged(data_dir / CORPORA[name]))
    lengths = [len(w) for w in spans.words]
    if name == "gmb":
        keep = split_indices(len(lengths), parse_ratios("3:1"), seed=0)["train"]
        return EntityArrays.from_spans([lengths[i] for i in keep], [spans.spans[i] for i in keep])
    return EntityArrays.from_spans(lengths, spans.spans)


def factors(arrays: EntityArrays) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{variant: {method: {sentences, tokens}}}`` factors."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for variant in ("paper", "reference"):
        out[variant] = {}
        for method in PAPER_MEANS:
            counts = repeat_counts(arrays, method, variant)
            out[variant][method] = {
                "sentences": round(float(counts.sum()) / arrays.n_sentences, 4),
                "tokens": round(float((counts * arrays.lengths).sum()) / arrays.n_tokens, 4),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = parser.parse_args()
    corpora: Dict[str, Any] = {}
    for name in CORPORA:
        if not (args.data_dir / CORPORA[name]).exists():
            print(f"skip {name}: {args.data_dir / CORPORA[name]} not found")
            continue
        arrays = train_arrays(args.data_dir, name)
        corpora[name] = {"sentences": arrays.n_sentences, "tokens": arrays.n_tokens,
                         "factors": factors(arrays)}
        print(name, {m: v["sentences"] for m, v in corpora[name]["factors"]["paper"].items()})
    means = {
        variant: {m: round(float(numpy.mean([c["factors"][variant][m]["sentences"] for c in corpora.values()])), 4)
                  for m in PAPER_MEANS}
        for variant in ("paper", "reference")
    } if corpora else {}
    result = {
        "description": "sentences after / sentences before resampling (tokens factor beside it); "
                       "train parts; GMB = train of a seeded (seed 0) 3:1 train:test split",
        "paper_means_table6": PAPER_MEANS, "corpora": corpora, "means": means,
        "python": platform.python_version(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RESULTS / "resampling_factors.json", result)
    write_text_atomic(RESULTS / "resampling_factors.md", to_markdown(result))
    print("means (paper variant):", means.get("paper"), "paper Table 6:", PAPER_MEANS)


def to_markdown(result: Dict[str, Any]) -> str:
    header = ["corpus (train part)", "sentences"] + [f"{m} paper / ref." for m in PAPER_MEANS]
    rows = []
    for name, c in result["corpora"].items():
        f = c["factors"]
        rows.append([name, f"{c['sentences']:,}"] + [
            f"{f['paper'][m]['sentences']:.2f} / {f['reference'][m]['sentences']:.2f}" for m in PAPER_MEANS])
    if result["means"]:
        rows.append(["**mean of these corpora**", ""] + [
            f"{result['means']['paper'][m]:.2f} / {result['means']['reference'][m]:.2f}" for m in PAPER_MEANS])
    rows.append(["paper, Table 6 (AnEM, WNUT, GMB subset, CoNLL)", ""] + [f"{v:.2f}" for v in PAPER_MEANS.values()])
    token_rows = [[name] + [f"{c['factors']['paper'][m]['tokens']:.2f}" for m in PAPER_MEANS]
                  for name, c in result["corpora"].items()]
    return (
        "# Resampling size-increase factors\n\n"
        "Sentences after resampling / sentences before, on each corpus's training part "
        "(GMB: the train part of a seeded, seed 0, 3:1 train:test split, as in the paper). "
        "Paper variant = eqs. 1-4; reference = the authors' code (`1 +` inside the root/division).\n\n"
        + markdown_table(header, rows)
        + "\nToken factors (paper variant):\n\n"
        + markdown_table(["corpus"] + list(PAPER_MEANS), token_rows)
        + "\nThe paper's means come from other corpora (AnEM, a 3k-sentence GMB subset, CoNLL-2003 "
        "besides WNUT), so only WNUT and, loosely, GMB are directly comparable.\n"
    )


if __name__ == "__main__":
    main()
