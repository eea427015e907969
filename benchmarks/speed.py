"""Training and inference speed of ``imbalanced_ner`` per loss vs spaCy's ``tagger`` and ``ner``.

All pipelines use the same tok2vec (spaCy's CNN defaults, or MiniLM behind a
listener), the same batches and the same machine; rounds are interleaved so
that load changes hit every pipeline alike, and the median of the rounds is
reported. Ratios are taken within this one run.

    python benchmarks/speed.py                     # CNN, writes benchmarks/results/speed_cnn.{json,md}
    python benchmarks/speed.py --family minilm     # MiniLM (slow on CPU: fewer batches) → speed_minilm.*
"""
import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import spacy
from spacy.training import Example
from thinc.api import fix_random_seed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spacy_nerimb.synthetic import synthetic_docs  # noqa: E402
from spacy_nerimb.training import LOSS_PRESETS  # noqa: E402
from spacy_nerimb.util import markdown_table, write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# R-Drop runs two forward/backward passes per step by design (2x): timed in crf_ablation.
SKIPPED_PRESETS = ("crf_focal_rdrop",)
MINILM_TRANSFORMER = {
    "model": {
        "@architectures": "spacy-transformers.TransformerModel.v3",
        "name": {"@misc": "spacy-nerimb.packaged_minilm.v1"},
        "tokenizer_config": {"use_fast": True},
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96},
    }
}
LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "pooling": {"@layers": "reduce_mean.v1"},
    "upstream": "*",
}


def machine() -> Dict[str, Any]:
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "spacy": spacy.__version__, "gpu": None}


def available_losses() -> Dict[str, Dict[str, Any]]:
    return {name: cfg for name, cfg in LOSS_PRESETS.items() if name not in SKIPPED_PRESETS}


def as_tagger_doc(doc):
    """Copy of ``doc`` with the entity BILUO tags as ``token.tag_`` (a tagger target
    with exactly the component's label space)."""
    from spacy.training.iob_utils import doc_to_biluo_tags

    copy = doc.copy()
    for token, tag in zip(copy, doc_to_biluo_tags(doc)):
        token.tag_ = tag
    return copy


def build(kind: str, family: str, loss: Dict[str, Any] = None) -> spacy.Language:
    nlp = spacy.blank("en")
    if family == "minilm":
        nlp.add_pipe("transformer", config=MINILM_TRANSFORMER)
    config: Dict[str, Any] = {}
    if kind == "imbalanced_ner":
        config["loss"] = loss
    if family == "minilm":
        if kind == "ner":
            config["model"] = {"@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner",
                               "extra_state_tokens": False, "hidden_width": 64, "maxout_pieces": 2,
                               "use_upper": False, "tok2vec": LISTENER}
        elif kind == "tagger":
            config["model"] = {"@architectures": "spacy.Tagger.v2", "tok2vec": LISTENER}
        else:
            config["model"] = {"@architectures": "spacy-nerimb.TokenTagger.v1", "tok2vec": LISTENER}
    nlp.add_pipe(kind, name="ner" if kind != "tagger" else "tagger", config=config)
    return nlp


def batches_of(examples: List[Example], words: int) -> List[List[Example]]:
    out, batch, n = [], [], 0
    for eg in examples:
        batch.append(eg)
        n += len(eg.reference)
        if n >= words:
            out.append(batch)
            batch, n = [], 0
    return out


def time_training(nlp, batches, optimizer) -> float:
    start = time.perf_counter()
    n_words = 0
    for batch in batches:
        nlp.update(batch, sgd=optimizer, drop=0.1)
        n_words += sum(len(eg.predicted) for eg in batch)
    return n_words / (time.perf_counter() - start)


def time_inference(nlp, texts, batch_size) -> float:
    docs = [nlp.make_doc(t) for t in texts]
    n_words = sum(len(d) for d in docs)
    start = time.perf_counter()
    for _ in nlp.pipe(docs, batch_size=batch_size):
        pass
    return n_words / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["cnn", "minilm"], default="cnn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=None, help="timed training batches per round")
    parser.add_argument("--batch-words", type=int, default=None)
    parser.add_argument("--infer-batch-size", type=int, default=256)
    args = parser.parse_args()
    cnn = args.family == "cnn"
    n_batches = args.batches or (30 if cnn else 6)
    batch_words = args.batch_words or (1000 if cnn else 500)
    fix_random_seed(0)
    vocab_nlp = spacy.blank("en")
    docs = synthetic_docs(vocab_nlp.vocab, 6000 if cnn else 1200, seed=11)
    texts = [d.text for d in docs[: (3000 if cnn else 400)]]

    pipelines: Dict[str, Callable[[], spacy.Language]] = {
        "spaCy tagger": lambda: build("tagger", args.family),
        "spaCy ner": lambda: build("ner", args.family),
    }
    for name, loss in available_losses().items():
        if args.family == "minilm" and name not in ("ce", "focal", "mom", "auc2t", "crf"):
            continue
        pipelines[f"imbalanced_ner {name}"] = lambda loss=loss: build("imbalanced_ner", args.family, loss)

    prepared = {}
    for name, make in pipelines.items():
        nlp = make()
        gold = [as_tagger_doc(d) for d in docs] if name == "spaCy tagger" else docs
        examples = [Example(nlp.make_doc(d.text), d) for d in gold]
        optimizer = nlp.initialize(lambda: examples[:300])
        batches = batches_of(examples, batch_words)
        for batch in batches[:3]:  # warm-up
            nlp.update(batch, sgd=optimizer, drop=0.1)
        prepared[name] = (nlp, optimizer, batches[3 : 3 + n_batches])
        print(f"prepared {name}", flush=True)

    train_wps: Dict[str, List[float]] = {name: [] for name in prepared}
    infer_wps: Dict[str, List[float]] = {name: [] for name in prepared}
    order = list(prepared)
    for round_ in range(args.rounds):
        random.Random(round_).shuffle(order)
        for name in order:
            nlp, optimizer, batches = prepared[name]
            train_wps[name].append(time_training(nlp, batches, optimizer))
            infer_wps[name].append(time_inference(nlp, texts, args.infer_batch_size))
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)

    med_train = {k: statistics.median(v) for k, v in train_wps.items()}
    med_infer = {k: statistics.median(v) for k, v in infer_wps.items()}
    ce_train = med_train["imbalanced_ner ce"]
    ner_infer = med_infer["spaCy ner"]
    rows = []
    for name in prepared:
        rows.append([name, f"{med_train[name]:,.0f}", f"{100 * (ce_train / med_train[name] - 1):+.1f}",
                     f"{med_infer[name]:,.0f}", f"{med_infer[name] / ner_infer:.2f}"])
    header = ["pipeline", "train words/s", "train time vs CE (%)", "infer words/s", "infer vs spaCy ner (×)"]
    table = markdown_table(header, rows)
    info = machine()
    result = {"family": args.family, "machine": info, "rounds": args.rounds, "timed_batches": n_batches,
              "batch_words": batch_words, "infer_batch_size": args.infer_batch_size,
              "train_words_per_s": train_wps, "infer_words_per_s": infer_wps,
              "median_train_words_per_s": med_train, "median_infer_words_per_s": med_infer}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / f"speed_{args.family}.json", result)
    note = (f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), no GPU; spaCy {info['spacy']}. "
            f"{args.family.upper()} tok2vec, {n_batches} timed batches of ~{batch_words} words per round, "
            f"{args.rounds} interleaved rounds, median; inference `nlp.pipe` batch_size={args.infer_batch_size}.\n\n")
    write_text_atomic(RESULTS / f"speed_{args.family}.md", note + table)
    print(note + table)


if __name__ == "__main__":
    main()
