"""Evaluation of trained pipelines and comparison of methods over seeds.

``evaluate`` scores one model on one DocBin:

* strict span scores (exact boundaries and type), micro and macro over types
  and per type, from :mod:`spacy_nerimb.scoring` (the resampling paper's metric);
* token-level per-class scores with ``B-``/``I-`` merged per type and ``O``
  included (the MoM paper's Table 2): a token's class is its entity type or ``O``.

Predictions are made on the gold tokenisation (each gold doc's words and
spaces), so the two token sequences align one to one, as in seqeval-style
evaluation.

``compare`` reads evaluation results of several methods and seeds (and,
optionally, training sizes) and writes a Markdown/JSON report like the papers'
tables: mean ± standard deviation over seeds, the difference to a baseline, a
paired t-test over seeds (MoM paper, α = 0.05) and bootstrapped standard errors
of the mean (AUC-2T paper), plus PNG plots (precision–recall displacement with
F1 contours, F1 against training size, per-type F1 bars).
"""
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.training import Example

from .scoring import example_spans, prf, scores_from_counts, span_counts
from .util import PathLike, atomic_path, markdown_table, write_json_atomic, write_text_atomic

KIND = "spacy-nerimb.evaluation"
OUTSIDE = "O"

# Flat metric keys of one evaluation result: key -> (section, group, field).
METRICS: Dict[str, Tuple[str, str, str]] = {
    "span_micro_p": ("span", "micro", "p"),
    "span_micro_r": ("span", "micro", "r"),
    "span_micro_f": ("span", "micro", "f"),
    "span_macro_p": ("span", "macro", "p"),
    "span_macro_r": ("span", "macro", "r"),
    "span_macro_f": ("span", "macro", "f"),
    "token_macro_f": ("token", "macro", "f"),
    "token_macro_f_entities": ("token", "macro_entities", "f"),
}
METRIC_LABELS: Dict[str, str] = {
    "span_micro_p": "micro P",
    "span_micro_r": "micro R",
    "span_micro_f": "micro F1",
    "span_macro_p": "macro P",
    "span_macro_r": "macro R",
    "span_macro_f": "macro F1",
    "token_macro_f": "token macro F1 (O incl.)",
    "token_macro_f_entities": "token macro F1 (types)",
}
# Metrics tested against the baseline (paired t-test, bootstrapped SE).
TEST_METRICS: Tuple[str, ...] = ("span_macro_f", "span_micro_f", "token_macro_f")


class EvaluationError(ValueError):
    """An input to evaluate/compare is missing or not what was expected."""


# ---------------------------------------------------------------------------
# Token level (B/I merged per type, O included)
# ---------------------------------------------------------------------------


def token_class(token: Any) -> Optional[str]:
    """The token's class: its entity type, ``O``, or ``None`` if unannotated."""
    if token.ent_iob == 0:
        return None
    return token.ent_type_ or OUTSIDE


def _char_to_token(doc: Doc) -> Dict[int, int]:
    """Map each character offset covered by a token to the token's index."""
    index: Dict[int, int] = {}
    for tok in doc:
        for c in range(tok.idx, tok.idx + max(len(tok.text), 1)):
            index[c] = tok.i
    return index


def aligned_token_classes(gold: Doc, pred: Doc) -> List[Tuple[str, str]]:
    """(gold class, predicted class) for each annotated gold token.

    Tokens align one to one when the prediction used the gold tokenisation;
    otherwise a gold token takes the class of the predicted token covering its
    first character (``O`` if none does).
    """
    same = len(gold) == len(pred) and all(g.idx == p.idx for g, p in zip(gold, pred))
    char_index = None if same else _char_to_token(pred)
    pairs = []
    for tok in gold:
        gold_class = token_class(tok)
        if gold_class is None:
            continue
        if same:
            pred_tok = pred[tok.i]
        else:
            j = char_index.get(tok.idx)  # type: ignore[union-attr]
            pred_tok = pred[j] if j is not None else None
        pred_class = (pred_tok.ent_type_ or OUTSIDE) if pred_tok is not None else OUTSIDE
        pairs.append((gold_class, pred_class))
    return pairs


def token_counts(pairs: Iterable[Tuple[str, str]]) -> Dict[str, List[int]]:
    """Per-class ``[tp, fp, fn]`` over (gold, predicted) token classes."""
    counts: Dict[str, List[int]] = defaultdict(lambda: [0, 0, 0])
    for gold, pred in pairs:
        if gold == pred:
            counts[gold][0] += 1
        else:
            counts[pred][1] += 1
            counts[gold][2] += 1
    return dict(counts)


def _mean_prf(scores: Sequence[Dict[str, float]]) -> Dict[str, float]:
    n = len(scores)
    return {k: (sum(s[k] for s in scores) / n if n else 0.0) for k in ("p", "r", "f")}


def token_scores(counts: Dict[str, List[int]]) -> Dict[str, Any]:
    """Per-class P/R/F1 + support, macro over all classes and over entity types, accuracy."""
    per_class = {}
    for label in sorted(counts, key=lambda x: (x == OUTSIDE, x)):
        tp, fp, fn = counts[label]
        per_class[label] = {**prf(tp, fp, fn), "support": tp + fn}
    n_tokens = sum(c[0] + c[2] for c in counts.values())
    correct = sum(c[0] for c in counts.values())
    entity_scores = [s for label, s in per_class.items() if label != OUTSIDE]
    return {
        "macro": _mean_prf(list(per_class.values())),
        "macro_entities": _mean_prf(entity_scores),
        "accuracy": correct / n_tokens if n_tokens else 0.0,
        "n_tokens": n_tokens,
        "per_class": per_class,
    }


# ---------------------------------------------------------------------------
# Span level (reuses scoring.py) and one evaluation result
# ---------------------------------------------------------------------------


def span_scores(examples: Sequence[Example]) -> Dict[str, Any]:
    """Strict span micro/macro/per-type scores (with gold support per type)."""
    pairs = [p for p in (example_spans(eg) for eg in examples) if p is not None]
    counts = span_counts(pairs)
    flat = scores_from_counts(counts)
    per_type = {
        label: {**scores, "support": counts[label][0] + counts[label][2]}
        for label, scores in flat["ents_per_type"].items()
    }
    return {
        "micro": {k: flat[f"ents_{k}"] for k in ("p", "r", "f")},
        "macro": {k: flat[f"ents_macro_{k}"] for k in ("p", "r", "f")},
        "per_type": per_type,
        "n_gold": sum(s["support"] for s in per_type.values()),
        "n_predicted": sum(c[0] + c[1] for c in counts.values()),
    }


def score_docs(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> Dict[str, Any]:
    """Span- and token-level scores of predicted docs against gold docs."""
    if len(gold_docs) != len(pred_docs):
        raise EvaluationError(f"{len(gold_docs)} gold docs but {len(pred_docs)} predicted docs")
    examples = [Example(pred, gold) for gold, pred in zip(gold_docs, pred_docs)]
    token_pairs = [p for gold, pred in zip(gold_docs, pred_docs) for p in aligned_token_classes(gold, pred)]
    return {"span": span_scores(examples), "token": token_scores(token_counts(token_pairs))}


def gold_tokenised(nlp: Any, gold: Doc) -> Doc:
    """An unannotated doc with the gold doc's words and spaces."""
    return Doc(nlp.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])


def predict_docs(nlp: Any, gold_docs: Sequence[Doc], batch_size: int = 256,
                 progress: bool = True) -> List[Doc]:
    """Run ``nlp`` over the gold tokenisation of each doc (progress bar on stderr)."""
    from tqdm import tqdm

    inputs = (gold_tokenised(nlp, d) for d in gold_docs)
    # disable=None: a bar on a terminal, none in logs (the caller prints a summary line)
    bar = tqdm(total=len(gold_docs), desc="predicting", unit="doc", disable=None if progress else True,
               mininterval=1.0, leave=False)
    out = []
    for doc in nlp.pipe(inputs, batch_size=batch_size):
        out.append(doc)
        bar.update(1)
    bar.close()
    return out


def load_gold_docs(nlp: Any, data: PathLike) -> List[Doc]:
    """Docs of a DocBin file (or a directory of them), with a clear error if absent."""
    from spacy.tokens import DocBin

    path = Path(data)
    files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise EvaluationError(f"evaluation data {path}: expected a .spacy DocBin file or a directory of them")
    docs: List[Doc] = []
    for f in files:
        docs.extend(DocBin().from_disk(f).get_docs(nlp.vocab))
    if not docs:
        raise EvaluationError(f"evaluation data {path}: no documents")
    return docs


def evaluate(
    model: PathLike,
    data: PathLike,
    *,
    output: Optional[PathLike] = None,
    markdown: Optional[PathLike] = None,
    meta: Optional[Dict[str, Any]] = None,
    batch_size: int = 256,
    gpu_id: int = -1,
    progress: bool = True,
) -> Dict[str, Any]:
    """Score the pipeline at ``model`` on the DocBin ``data``; write JSON/Markdown if asked."""
    import spacy

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    model_path = Path(model)
    if not (model_path / "config.cfg").exists():
        raise EvaluationError(f"model {model_path}: expected a spaCy pipeline directory (with config.cfg)")
    nlp = spacy.load(model_path)
    gold = load_gold_docs(nlp, data)
    start = time.perf_counter()
    pred = predict_docs(nlp, gold, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    n_words = sum(len(d) for d in gold)
    result = {
        "kind": KIND,
        "meta": {
            **(meta or {}),
            "model": str(model_path),
            "data": str(data),
            "n_docs": len(gold),
            "n_words": n_words,
            "predict_seconds": round(seconds, 3),
            "words_per_second": round(n_words / seconds, 1) if seconds > 0 else None,
        },
        **score_docs(gold, pred),
    }
    if output is not None:
        write_json_atomic(output, result)
    if markdown is not None:
        write_text_atomic(markdown, evaluation_markdown(result))
    return result


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def evaluation_markdown(result: Dict[str, Any]) -> str:
    """One evaluation as Markdown: summary, per-type spans, per-class tokens (scores in %)."""
    meta, span, token = result["meta"], result["span"], result["token"]
    described = ", ".join(f"{k} {meta[k]}" for k in ("method", "seed", "train_size") if meta.get(k) is not None)
    lines = [f"# Evaluation of {meta.get('model')}", "",
             f"Data: `{meta.get('data')}` ({meta.get('n_docs')} docs, {meta.get('n_words')} tokens)"
             + (f"; {described}" if described else "") + ". Scores in %.", ""]
    summary = [
        ["span micro (strict)", _pct(span["micro"]["p"]), _pct(span["micro"]["r"]), _pct(span["micro"]["f"])],
        ["span macro over types", _pct(span["macro"]["p"]), _pct(span["macro"]["r"]), _pct(span["macro"]["f"])],
        ["token macro (O incl.)", _pct(token["macro"]["p"]), _pct(token["macro"]["r"]), _pct(token["macro"]["f"])],
        ["token macro (types only)", _pct(token["macro_entities"]["p"]), _pct(token["macro_entities"]["r"]),
         _pct(token["macro_entities"]["f"])],
    ]
    lines += [markdown_table(["score", "P", "R", "F1"], summary)]
    lines += ["## Strict span scores per type", ""]
    rows = [[t, s["support"], _pct(s["p"]), _pct(s["r"]), _pct(s["f"])]
            for t, s in sorted(span["per_type"].items(), key=lambda kv: (kv[1]["support"], kv[0]))]
    lines += [markdown_table(["type", "gold", "P", "R", "F1"], rows)]
    lines += ["## Token-level scores per class (B/I merged, O included)", ""]
    rows = [[c, s["support"], _pct(s["p"]), _pct(s["r"]), _pct(s["f"])] for c, s in token["per_class"].items()]
    lines += [markdown_table(["class", "gold tokens", "P", "R", "F1"], rows)]
    lines += [f"Token accuracy: {_pct(token['accuracy'])} over {token['n_tokens']} annotated tokens.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Statistics over seeds
# ---------------------------------------------------------------------------


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> Tuple[float, float]:
    """Two-sided paired t-test of ``a`` against ``b``: ``(t, p)``; ``nan`` when undefined.

    ``t = mean(d) / (sd(d) / sqrt(n))`` with ``d = a - b`` and ``sd`` the sample
    standard deviation (``n - 1``), ``p = 2 * P(T_{n-1} > |t|)``. Identical
    samples give ``nan``; a constant non-zero difference gives ``±inf``, ``p = 0``
    (as ``scipy.stats.ttest_rel`` does).
    """
    from scipy.stats import t as t_dist

    x = numpy.asarray(a, dtype=float)
    y = numpy.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise EvaluationError(f"paired t-test needs two samples of equal size, got {x.size} and {y.size}")
    n = x.size
    if n < 2:
        return math.nan, math.nan
    d = x - y
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        if mean == 0.0:
            return math.nan, math.nan
        return math.copysign(math.inf, mean), 0.0
    t = mean / (sd / math.sqrt(n))
    p = float(2.0 * t_dist.sf(abs(t), n - 1))
    return t, p


def bootstrap_se(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> float:
    """Non-parametric bootstrap standard error of the mean (seeded); 0 for one value."""
    x = numpy.asarray(values, dtype=float)
    if x.size < 2:
        return 0.0
    rng = numpy.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    return float(means.std(ddof=1))


def mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    x = numpy.asarray(values, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


# ---------------------------------------------------------------------------
# Loading runs for compare
# ---------------------------------------------------------------------------


@dataclass
class RunRecord:
    """The scores of one trained model (one method, one seed, optional train size)."""

    method: str
    seed: Any
    train_size: Optional[int]
    metrics: Dict[str, float]
    type_f: Dict[str, float]
    type_support: Dict[str, int]
    class_f: Dict[str, float]
    source: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)


def _metric(result: Dict[str, Any], path: Tuple[str, str, str]) -> float:
    section, group, key = path
    return float(result[section][group][key])


def record_from_result(result: Dict[str, Any], source: str, default_method: str, index: int) -> RunRecord:
    """A :class:`RunRecord` from one evaluation result (method/seed taken from its meta)."""
    meta = result.get("meta", {})
    try:
        metrics = {key: _metric(result, path) for key, path in METRICS.items()}
    except (KeyError, TypeError, ValueError) as err:
        raise EvaluationError(f"{source}: evaluation result lacks {err} (expected the output of "
                              f"`python -m spacy_nerimb evaluate`)") from None
    per_type = result["span"].get("per_type", {})
    size = meta.get("train_size")
    return RunRecord(
        method=str(meta.get("method") or default_method),
        seed=meta.get("seed", index),
        train_size=int(size) if size is not None else None,
        metrics=metrics,
        type_f={t: float(s["f"]) for t, s in per_type.items()},
        type_support={t: int(s.get("support", 0)) for t, s in per_type.items()},
        class_f={c: float(s["f"]) for c, s in result["token"].get("per_class", {}).items()},
        source=source,
    )


def _results_in_json(path: Path) -> List[Dict[str, Any]]:
    """Evaluation results held by one JSON file (one result, a list, or ``{"runs": [...]}``)."""
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluationError(f"{path}: cannot read JSON ({err})") from None
    if isinstance(data, dict) and "runs" in data:
        data = data["runs"]
    items = data if isinstance(data, list) else [data]
    return [x for x in items if isinstance(x, dict) and x.get("kind") == KIND]


def load_runs(paths: Sequence[PathLike]) -> List[RunRecord]:
    """Evaluation results from JSON files or directories (searched recursively).

    A run's method comes from its ``meta.method``, else from the name of the
    directory given (or of the JSON file); its seed from ``meta.seed``, else its
    position.
    """
    records: List[RunRecord] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(path.rglob("*.json"))
            default = path.name
        elif path.is_file():
            files = [path]
            default = path.stem
        else:
            raise EvaluationError(f"run {path}: no such file or directory")
        found = 0
        for f in files:
            for i, result in enumerate(_results_in_json(f)):
                records.append(record_from_result(result, str(f), default, i))
                found += 1
        if not found:
            raise EvaluationError(f"run {path}: no evaluation results found (expected JSON files written "
                                  f"by `python -m spacy_nerimb evaluate`, with \"kind\": \"{KIND}\")")
    return records


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------


def _ordered_methods(records: Sequence[RunRecord], baseline: str, methods: Optional[Sequence[str]]) -> List[str]:
    found = list(dict.fromkeys(r.method for r in records))
    if methods:
        missing = [m for m in methods if m not in found]
        if missing:
            raise EvaluationError(f"no results for method(s) {', '.join(missing)}; found: {', '.join(found)}")
        found = list(methods)
    if baseline not in found:
        raise EvaluationError(f"baseline {baseline!r} has no results; found methods: {', '.join(found)}")
    return [baseline] + [m for m in found if m != baseline]


def _stats(values: Sequence[float], n_boot: int, seed: int) -> Dict[str, Any]:
    mean, sd = mean_sd(values)
    return {"mean": mean, "sd": sd, "se": bootstrap_se(values, n_boot, seed), "values": list(values)}


def _versus(runs: Sequence[RunRecord], base: Sequence[RunRecord], alpha: float) -> Dict[str, Any]:
    """Delta of means and paired t-test (pairs matched by seed) per tested metric."""
    base_by_seed = {str(r.seed): r for r in base}
    pairs = [(r, base_by_seed[str(r.seed)]) for r in runs if str(r.seed) in base_by_seed]
    out = {}
    for key in TEST_METRICS:
        a = [r.metrics[key] for r, _ in pairs]
        b = [q.metrics[key] for _, q in pairs]
        t, p = paired_t_test(a, b) if pairs else (math.nan, math.nan)
        delta = mean_sd([r.metrics[key] for r in runs])[0] - mean_sd([q.metrics[key] for q in base])[0]
        out[key] = {"delta": delta, "t": t, "p": p, "n_pairs": len(pairs),
                    "significant": bool(math.isfinite(p) and p < alpha)}
    return out


def summarise_group(records: Sequence[RunRecord], methods: Sequence[str], baseline: str,
                    alpha: float, n_boot: int, seed: int) -> Dict[str, Any]:
    """Per-method statistics for the runs of one training size."""
    by_method: Dict[str, List[RunRecord]] = defaultdict(list)
    for r in records:
        by_method[r.method].append(r)
    base = by_method.get(baseline, [])
    out: Dict[str, Any] = {}
    for method in methods:
        runs = sorted(by_method.get(method, []), key=lambda r: str(r.seed))
        if not runs:
            continue
        types = sorted({t for r in runs for t in r.type_f})
        classes = sorted({c for r in runs for c in r.class_f})
        out[method] = {
            "n": len(runs),
            "seeds": [r.seed for r in runs],
            "metrics": {k: _stats([r.metrics[k] for r in runs], n_boot, seed) for k in METRICS},
            "type_f": {t: _stats([r.type_f.get(t, 0.0) for r in runs], n_boot, seed) for t in types},
            "class_f": {c: _stats([r.class_f.get(c, 0.0) for r in runs], n_boot, seed) for c in classes},
            "vs_baseline": _versus(runs, base, alpha) if method != baseline and base else {},
        }
    return out


def summarise(records: Sequence[RunRecord], baseline: str = "ce", methods: Optional[Sequence[str]] = None,
              alpha: float = 0.05, n_boot: int = 1000, seed: int = 0) -> Dict[str, Any]:
    """Statistics of every method (and training size) plus what the plots need."""
    if not records:
        raise EvaluationError("nothing to compare: no evaluation results")
    order = _ordered_methods(records, baseline, methods)
    chosen = [r for r in records if r.method in order]
    sizes = sorted({r.train_size for r in chosen if r.train_size is not None})
    groups = []
    for size in (sizes or [None]):
        subset = [r for r in chosen if r.train_size == size]
        groups.append({"train_size": size, "methods": summarise_group(subset, order, baseline, alpha, n_boot, seed)})
    support: Dict[str, int] = {}
    for r in chosen:
        for t, n in r.type_support.items():
            support[t] = max(support.get(t, 0), n)
    return {
        "baseline": baseline, "alpha": alpha, "n_boot": n_boot, "bootstrap_seed": seed,
        "methods": order, "train_sizes": sizes,
        "types": sorted(support, key=lambda t: (support[t], t)), "type_support": support,
        "groups": groups,
        "runs": [{"method": r.method, "seed": r.seed, "train_size": r.train_size, "source": r.source,
                  **r.metrics} for r in chosen],
    }


# ---------------------------------------------------------------------------
# Markdown report
# ---------------------------------------------------------------------------


def _ms(stat: Dict[str, Any]) -> str:
    return f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f}"


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _t_text(t: float) -> str:
    return "n/a" if math.isnan(t) else ("±inf" if math.isinf(t) else f"{t:.2f}")


def _group_title(group: Dict[str, Any]) -> str:
    size = group["train_size"]
    return "" if size is None else f" (training size {size})"


def overview_table(group: Dict[str, Any]) -> str:
    """Method × metric, mean ± sd over seeds (in %)."""
    keys = list(METRICS)
    header = ["method", "runs"] + [METRIC_LABELS[k] for k in keys]
    rows = [[m, s["n"]] + [_ms(s["metrics"][k]) for k in keys] for m, s in group["methods"].items()]
    return markdown_table(header, rows)


def significance_table(group: Dict[str, Any], baseline: str, alpha: float) -> str:
    """Per tested metric: mean ± sd, bootstrapped SE, Δ vs baseline, paired t, p, significance."""
    header = ["metric", "method", "mean ± sd", "SE (bootstrap)", f"Δ vs {baseline}", "t", "p (paired)",
              f"p < {alpha:g}", "pairs"]
    rows = []
    for key in TEST_METRICS:
        for method, s in group["methods"].items():
            stat = s["metrics"][key]
            vs = s["vs_baseline"].get(key)
            if method == baseline or vs is None:
                rows.append([METRIC_LABELS[key], method, _ms(stat), f"{100 * stat['se']:.2f}",
                             "(baseline)" if method == baseline else "n/a", "", "", "", ""])
                continue
            mark = "yes" if vs["significant"] else "no"
            rows.append([METRIC_LABELS[key], method, _ms(stat), f"{100 * stat['se']:.2f}",
                         f"{100 * vs['delta']:+.2f}", _t_text(vs["t"]), _p_text(vs["p"]), mark, vs["n_pairs"]])
    return markdown_table(header, rows)


def per_type_table(group: Dict[str, Any], types: Sequence[str], support: Dict[str, int]) -> str:
    """Strict span F1 per type (rarest first), mean ± sd over seeds."""
    header = ["method"] + [f"{t} (n={support.get(t, 0)})" for t in types]
    rows = [[m] + [_ms(s["type_f"][t]) if t in s["type_f"] else "n/a" for t in types]
            for m, s in group["methods"].items()]
    return markdown_table(header, rows)


def per_class_table(group: Dict[str, Any]) -> str:
    """Token-level F1 per class (B/I merged, O included), mean ± sd over seeds."""
    classes = sorted({c for s in group["methods"].values() for c in s["class_f"]}, key=lambda c: (c == OUTSIDE, c))
    header = ["method"] + classes
    rows = [[m] + [_ms(s["class_f"][c]) if c in s["class_f"] else "n/a" for c in classes]
            for m, s in group["methods"].items()]
    return markdown_table(header, rows)


def size_table(summary: Dict[str, Any], key: str = "span_macro_f") -> str:
    """Method × training size: mean (bootstrapped SE), like the AUC-2T paper's Table 2."""
    sizes = summary["train_sizes"]
    header = ["method"] + [f"n={s}" for s in sizes]
    rows = []
    for method in summary["methods"]:
        row: List[Any] = [method]
        for group in summary["groups"]:
            s = group["methods"].get(method)
            row.append(f"{100 * s['metrics'][key]['mean']:.2f} ({100 * s['metrics'][key]['se']:.2f})" if s else "n/a")
        rows.append(row)
    return markdown_table(header, rows)


def comparison_markdown(summary: Dict[str, Any], title: str = "Comparison of methods",
                        plots: Sequence[str] = ()) -> str:
    """The whole comparison report as Markdown."""
    base, alpha = summary["baseline"], summary["alpha"]
    lines = [f"# {title}", "",
             f"Scores in % on the test data: mean ± sample standard deviation over seeds. Baseline: **{base}**. "
             f"Significance: two-sided paired t-test over seeds (pairs matched by seed) at α = {alpha:g}; "
             f"SE: non-parametric bootstrap standard error of the mean ({summary['n_boot']} resamples, "
             f"seed {summary['bootstrap_seed']}). Span scores are strict (exact boundaries and type); "
             "macro = unweighted mean over entity types; token scores merge B-/I- per type and include O.", ""]
    if summary["train_sizes"]:
        lines += ["## Macro F1 against training size (mean, bootstrapped SE)", "", size_table(summary)]
        lines += ["## Micro F1 against training size (mean, bootstrapped SE)", "",
                  size_table(summary, "span_micro_f")]
    for group in summary["groups"]:
        suffix = _group_title(group)
        lines += [f"## Overview{suffix}", "", overview_table(group)]
        lines += [f"## Against the baseline{suffix}", "", significance_table(group, base, alpha)]
        lines += [f"## Strict span F1 per type, rarest first{suffix}", "",
                  per_type_table(group, summary["types"], summary["type_support"])]
        lines += [f"## Token-level F1 per class (B/I merged, O included){suffix}", "", per_class_table(group)]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})\n" for p in plots]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours(methods: Sequence[str]) -> Dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _save(fig: Any, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def _window(points: Sequence[Tuple[float, float]]) -> Tuple[float, float, float, float]:
    """Axis limits around the points (a square-ish window inside [0, 1])."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 0.05)
    pad = 0.25 * span + 0.01
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    half = span / 2 + pad
    x0, x1 = max(0.0, cx - half), min(1.0, cx + half)
    y0, y1 = max(0.0, cy - half), min(1.0, cy + half)
    # a thin margin, so that points on 0 or 1 are not drawn on the frame
    mx, my = 0.03 * (x1 - x0), 0.03 * (y1 - y0)
    return x0 - mx, x1 + mx, y0 - my, y1 + my


def _contour_step(span: float) -> float:
    for limit, step in ((0.06, 0.01), (0.15, 0.02), (0.4, 0.05)):
        if span < limit:
            return step
    return 0.1


def _f1_contours(ax: Any, limits: Tuple[float, float, float, float]) -> None:
    """Grey iso-F1 curves, labelled, over the visible window."""
    x0, x1, y0, y1 = limits
    p, r = numpy.meshgrid(numpy.linspace(max(x0, 1e-3), min(x1, 1.0), 300),
                          numpy.linspace(max(y0, 1e-3), min(y1, 1.0), 300))
    f = 2 * p * r / (p + r)
    step = _contour_step(max(x1 - x0, y1 - y0))
    levels = numpy.arange(math.floor(f.min() / step) * step, f.max() + step, step)
    levels = levels[(levels > 0) & (levels < 1)]
    if levels.size == 0:
        return
    cs = ax.contour(p, r, f, levels=levels, colors="0.6", linewidths=0.8, linestyles="--")
    ax.clabel(cs, fmt=lambda v: f"F1={v:.2f}", fontsize=8, inline=True)


def _label_offset(dx: float, dy: float, x_rel: float = 0.5, distance: float = 9.0) -> Tuple[float, float, str, str]:
    """Offset (points) and alignment that put a label beyond an arrow's head, away from the arrow.

    ``dx, dy``: the arrow in axes fractions; ``x_rel``: the head's position across the axes. A
    label that would run off the left or right side is put on the other side of the point.
    """
    norm = math.hypot(dx, dy)
    ux, uy = (dx / norm, dy / norm) if norm > 1e-9 else (0.0, 1.0)
    if (ux < -0.3 and x_rel < 0.3) or (ux > 0.3 and x_rel > 0.7):
        ux, uy = -ux, (uy if abs(uy) > 0.3 else 1.0)
    ha = "left" if ux > 0.3 else ("right" if ux < -0.3 else "center")
    va = "bottom" if uy > 0.3 else ("top" if uy < -0.3 else "center")
    return distance * ux, distance * uy, ha, va


def plot_pr_displacement(summary: Dict[str, Any], path: PathLike) -> Path:
    """Arrows from the baseline to each method in precision–recall space, with F1 contours.

    One panel for macro-averaged (over types) and one for micro P/R; the
    largest training size is used when runs carry sizes.
    """
    plt = _pyplot()
    group = summary["groups"][-1]
    methods = list(group["methods"])
    base = summary["baseline"]
    colours = _colours(summary["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, level, name in ((axes[0], "macro", "macro-averaged over types"), (axes[1], "micro", "micro")):
        pts = {m: (group["methods"][m]["metrics"][f"span_{level}_p"], group["methods"][m]["metrics"][f"span_{level}_r"])
               for m in methods}
        xy = {m: (s[0]["mean"], s[1]["mean"]) for m, s in pts.items()}
        limits = _window(list(xy.values()))
        _f1_contours(ax, limits)
        bx, by = xy[base]
        ax.errorbar([bx], [by], xerr=[pts[base][0]["sd"]], yerr=[pts[base][1]["sd"]], fmt="o", ms=9,
                    color="black", ecolor="0.4", capsize=3, label=f"{base} (baseline)", zorder=4)
        for m in methods:
            if m == base:
                continue
            x, y = xy[m]
            ax.annotate("", xy=(x, y), xytext=(bx, by),
                        arrowprops=dict(arrowstyle="-|>", color=colours[m], lw=2, mutation_scale=18), zorder=3)
            ax.errorbar([x], [y], xerr=[pts[m][0]["sd"]], yerr=[pts[m][1]["sd"]], fmt="o", ms=7,
                        color=colours[m], ecolor=colours[m], capsize=3, alpha=0.9, label=m, zorder=5)
            delta = group["methods"][m]["vs_baseline"].get(f"span_{level}_f", {}).get("delta")
            text = m if delta is None else f"{m} ({100 * delta:+.1f} F1)"
            width, height = limits[1] - limits[0], limits[3] - limits[2]
            ox, oy, ha, va = _label_offset((x - bx) / width, (y - by) / height, (x - limits[0]) / width)
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(ox, oy), ha=ha, va=va, fontsize=10,
                        color=colours[m], fontweight="bold", zorder=6,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
        ax.set_xlim(limits[0], limits[1])
        ax.set_ylim(limits[2], limits[3])
        ax.set_xlabel(f"Precision ({name})", fontsize=11)
        ax.set_ylabel(f"Recall ({name})", fontsize=11)
        ax.set_title(f"Strict span P/R, {name}", fontsize=12)
        ax.grid(alpha=0.25)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=10,
               bbox_to_anchor=(0.5, -0.06), frameon=False)
    size = _group_title(group)
    fig.suptitle(f"Precision–recall displacement from {base}{size} (mean ± sd over seeds; dashed: F1 contours)",
                 fontsize=13)
    fig.tight_layout()
    _save(fig, path)
    return Path(path)


def plot_f1_vs_size(summary: Dict[str, Any], path: PathLike) -> Optional[Path]:
    """Macro and micro F1 against training size, error bars = bootstrapped SE (needs ≥ 2 sizes)."""
    sizes = summary["train_sizes"]
    if len(sizes) < 2:
        return None
    plt = _pyplot()
    colours = _colours(summary["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, key in ((axes[0], "span_macro_f"), (axes[1], "span_micro_f")):
        for m in summary["methods"]:
            xs, ys, es = [], [], []
            for g in summary["groups"]:
                s = g["methods"].get(m)
                if s:
                    xs.append(g["train_size"])
                    ys.append(s["metrics"][key]["mean"])
                    es.append(s["metrics"][key]["se"])
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, lw=2, color=colours[m], label=m)
        if max(sizes) / max(min(sizes), 1) >= 10:
            ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes], rotation=45 if len(sizes) > 6 else 0)
        ax.minorticks_off()
        ax.set_xlabel("training size (sentences)", fontsize=11)
        ax.set_ylabel(f"{METRIC_LABELS[key]} (strict span)", fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle("F1 against training size (mean over partitions/seeds, error bars: bootstrapped SE)", fontsize=13)
    fig.tight_layout()
    _save(fig, path)
    return Path(path)


def plot_per_type(summary: Dict[str, Any], path: PathLike) -> Path:
    """Grouped bars: strict span F1 per type (rarest first), one bar per method, error bars = sd."""
    plt = _pyplot()
    group = summary["groups"][-1]
    methods = list(group["methods"])
    types = summary["types"]
    colours = _colours(summary["methods"])
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(types) * max(1, len(methods) / 3) + 2), 5.5))
    x = numpy.arange(len(types))
    top = 0.0
    for i, m in enumerate(methods):
        stats = group["methods"][m]["type_f"]
        ys = [stats[t]["mean"] if t in stats else 0.0 for t in types]
        es = [stats[t]["sd"] if t in stats else 0.0 for t in types]
        top = max([top] + [y + e for y, e in zip(ys, es)])
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, ys, width, yerr=es, capsize=2, color=colours[m],
               label=m, edgecolor="white", linewidth=0.5)
    support = summary["type_support"]
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t}\n(n={support.get(t, 0)})" for t in types], fontsize=10,
                       rotation=30 if len(types) > 8 else 0)
    ax.set_ylim(0, min(1.05, max(0.1, 1.15 * top)))  # zoom in when every score is low
    ax.set_ylabel("strict span F1", fontsize=11)
    ax.set_xlabel("entity type (rarest first; n = gold entities in the test data)", fontsize=11)
    ax.set_title(f"Per-type F1{_group_title(group)} (mean ± sd over seeds)", fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncol=min(len(methods), 5), loc="upper left", bbox_to_anchor=(0, -0.18))
    fig.tight_layout()
    _save(fig, path)
    return Path(path)


PLOTS: Dict[str, Callable[[Dict[str, Any], PathLike], Optional[Path]]] = {
    "pr_displacement.png": plot_pr_displacement,
    "f1_vs_train_size.png": plot_f1_vs_size,
    "per_type_f1.png": plot_per_type,
}


def compare(
    runs: Sequence[PathLike],
    output_dir: PathLike,
    *,
    baseline: str = "ce",
    methods: Optional[Sequence[str]] = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "Comparison of methods",
    plots: bool = True,
) -> Dict[str, Any]:
    """Compare runs: write ``comparison.json``, ``comparison.md`` and the PNG plots into ``output_dir``."""
    summary = summarise(load_runs(runs), baseline=baseline, methods=methods, alpha=alpha, n_boot=n_boot, seed=seed)
    out = Path(output_dir)
    written: List[str] = []
    if plots:
        for name, plot in PLOTS.items():
            made = plot(summary, out / name)
            if made is not None:
                written.append(str(made))
    summary["plots"] = written
    write_json_atomic(out / "comparison.json", _json_safe(summary))
    write_text_atomic(out / "comparison.md", comparison_markdown(summary, title=title, plots=written))
    return summary


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats (nan/inf t statistics) by strings, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
