"""``python -m spacy_nerimb demo``: CE vs MoM on a seeded synthetic imbalanced corpus."""
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import spacy

from .synthetic import TYPES, write_synthetic_corpus
from .training import build_config, evaluate_model, loss_preset, read_docs, train_config
from .util import markdown_table, write_json_atomic, write_text_atomic


def comparison_table(results: Dict[str, Dict[str, Any]]) -> str:
    """Method × (micro F1, macro F1, per-type F1) Markdown table."""
    types = sorted({t for r in results.values() for t in r["ents_per_type"]}, key=_type_order)
    header = ["method", "micro P", "micro R", "micro F1", "macro F1"] + [f"F1 {t}" for t in types]
    rows = []
    for method, r in results.items():
        per_type = r["ents_per_type"]
        rows.append(
            [method, r["ents_p"], r["ents_r"], r["ents_f"], r["ents_macro_f"]]
            + [per_type.get(t, {}).get("f", 0.0) for t in types]
        )
    return markdown_table(header, rows)


def _type_order(label: str) -> tuple:
    return (TYPES.index(label) if label in TYPES else len(TYPES), label)


def run_demo(
    methods: Sequence[str] = ("ce", "mom"),
    output_dir: Optional[Path] = None,
    n_train: int = 1500,
    n_dev: int = 300,
    n_test: int = 1000,
    max_steps: int = 300,
    seed: int = 0,
) -> Dict[str, Dict[str, Any]]:
    """Generate the corpus, train each method on CPU, score on test, print a table."""
    started = time.time()
    work = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="nerimb-demo-"))
    corpus = write_synthetic_corpus(
        work / "corpus", {"train": n_train, "dev": n_dev, "test": n_test}, seed=seed
    )
    print(f"[demo] synthetic corpus in {work / 'corpus'}: {n_train}/{n_dev}/{n_test} sentences")
    results: Dict[str, Dict[str, Any]] = {}
    for i, method in enumerate(methods, 1):
        print(f"[demo] ({i}/{len(methods)}) training {method} for {max_steps} steps ...", flush=True)
        config = build_config(loss_preset(method), max_steps=max_steps, eval_frequency=100, seed=seed)
        best = train_config(config, work / method, corpus["train"], corpus["dev"])
        nlp = spacy.load(best)
        results[method] = evaluate_model(nlp, read_docs(nlp, corpus["test"]))
        print(f"[demo] {method}: test micro F1 {results[method]['ents_f']:.3f}, "
              f"macro F1 {results[method]['ents_macro_f']:.3f}", flush=True)
    table = comparison_table(results)
    write_json_atomic(work / "results.json", results)
    write_text_atomic(work / "results.md", table)
    print("\n" + table)
    print(f"[demo] done in {time.time() - started:.0f}s; results in {work / 'results.json'}")
    return results
