"""Training and inference speed of ``imbalanced_ner`` per loss vs spaCy's ``tagger`` and ``ner``.

All pipelines use the same tok2vec (spaCy's CNN defaults, or MiniLM behind a
listener), the same batches and the same machine; rounds are interleaved so
that load changes hit every pipeline alike, and the median of the rounds is
reported. Ratios are taken within this one run.

    python benchmarks/speed.py                     # CNN, writes benchmarks/results/speed_cnn.{json,md}
    python benchmarks/speed.py --family minilm     # MiniLM (slow on CPU: fewer batches) → speed_minilm.*
"""
import argparse
import functools
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
from spacy_nerimb.util import machine_info, markdown_table, write_json_atomic, write_text_atomic  # noqa: E402

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
    "pooling": {"@layers": "spacy-nerimb.reduce_first_piece.v1"},  # as the shipped transformer configs
    "upstream": "*",
}
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@functools.lru_cache(maxsize=None)
def shipped_scheme(family: str) -> str:
    """The tag scheme of the shipped ``{family}-ce.cfg`` (the one place it is set); the tagger
    peer learns the same tags, so every pipeline has the component's label space."""
    return spacy.util.load_config(CONFIGS / f"{family}-ce.cfg")["components"]["ner"]["scheme"]




def available_losses() -> Dict[str, Dict[str, Any]]:
    return {name: cfg for name, cfg in LOSS_PRESETS.items() if name not in SKIPPED_PRESETS}


def as_tagger_doc(doc, scheme: str):
    """Copy of ``doc`` with the entity tags in ``scheme`` as ``token.tag_`` (a tagger target
    with exactly the component's label space)."""
    from spacy.training.iob_utils import doc_to_biluo_tags

    from spacy_nerimb.tags import biluo_to_scheme

    copy = doc.copy()
    for token, tag in zip(copy, doc_to_biluo_tags(doc)):
        token.tag_ = biluo_to_scheme(tag, scheme)
    return copy


def build(kind: str, family: str, loss: Dict[str, Any] = None) -> spacy.Language:
    nlp = spacy.blank("en")
    if family == "minilm":
        nlp.add_pipe("transformer", config=MINILM_TRANSFORMER)
    config: Dict[str, Any] = {}
    if kind == "imbalanced_ner":
        config["loss"] = loss
        config["scheme"] = shipped_scheme(family)
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


def train_step_seconds(nlp, batch, optimizer) -> float:
    start = time.perf_counter()
    nlp.update(batch, sgd=optimizer, drop=0.1)
    return time.perf_counter() - start


def inference_seconds(nlp, docs, batch_size) -> float:
    start = time.perf_counter()
    for _ in nlp.pipe(docs, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def loss_seconds(nlp, batch, repeats: int = 7, number: int = 10) -> float:
    """Best-of-``repeats`` time of one ``get_loss`` call on fixed scores (loss + gradient only).

    The minimum over repeats is the least noisy estimate on a shared machine, and
    the loss is the only part of a training step that differs between losses.
    """
    ner = next(pipe for _, pipe in nlp.pipeline if type(pipe).__name__ == "ImbalancedNER")
    scores = ner.model.predict([eg.predicted for eg in batch])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            ner.get_loss(batch, scores)
        best = min(best, (time.perf_counter() - start) / number)
    return best


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
        gold = [as_tagger_doc(d, shipped_scheme(args.family)) for d in docs] if name == "spaCy tagger" else docs
        examples = [Example(nlp.make_doc(d.text), d) for d in gold]
        optimizer = nlp.initialize(lambda: examples[:300])
        batches = batches_of(examples, batch_words)
        for batch in batches[:3]:  # warm-up
            nlp.update(batch, sgd=optimizer, drop=0.1)
        prepared[name] = (nlp, optimizer, batches[3 : 3 + n_batches])
        print(f"prepared {name}", flush=True)

    # Interleaved batch by batch (random order each time), so a change of load on
    # the machine hits every pipeline alike; words/s per round = words / summed time.
    infer_docs = [vocab_nlp.make_doc(t) for t in texts]
    infer_words = sum(len(d) for d in infer_docs)
    infer_chunks = [infer_docs[i : i + args.infer_batch_size] for i in range(0, len(infer_docs), args.infer_batch_size)]
    train_wps: Dict[str, List[float]] = {name: [] for name in prepared}
    infer_wps: Dict[str, List[float]] = {name: [] for name in prepared}
    step_seconds: Dict[str, List[float]] = {name: [] for name in prepared}
    order = list(prepared)
    rng = random.Random(0)
    for round_ in range(args.rounds):
        train_time = {name: 0.0 for name in prepared}
        train_words = {name: 0 for name in prepared}
        for i in range(n_batches):
            rng.shuffle(order)
            for name in order:
                nlp, optimizer, batches = prepared[name]
                batch = batches[i % len(batches)]
                train_time[name] += train_step_seconds(nlp, batch, optimizer)
                train_words[name] += sum(len(eg.predicted) for eg in batch)
        infer_time = {name: 0.0 for name in prepared}
        for chunk in infer_chunks:
            rng.shuffle(order)
            for name in order:
                nlp = prepared[name][0]
                infer_time[name] += inference_seconds(nlp, [nlp.make_doc(d.text) for d in chunk], args.infer_batch_size)
        for name in prepared:
            train_wps[name].append(train_words[name] / train_time[name])
            step_seconds[name].append(train_time[name] / n_batches)
            infer_wps[name].append(infer_words / infer_time[name])
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)

    loss_s = {name: loss_seconds(prepared[name][0], prepared[name][2][0])
              for name in prepared if name.startswith("imbalanced_ner")}
    med_train = {k: statistics.median(v) for k, v in train_wps.items()}
    med_infer = {k: statistics.median(v) for k, v in infer_wps.items()}
    med_step = {k: statistics.median(v) for k, v in step_seconds.items()}
    ce = "imbalanced_ner ce"
    ce_train, ner_infer, ce_loss = med_train[ce], med_infer["spaCy ner"], loss_s[ce]
    rows = []
    for name in prepared:
        loss_cols = ["–", "–"]
        if name in loss_s:
            loss_cols = [f"{1000 * loss_s[name]:.2f}", f"{100 * (loss_s[name] - ce_loss) / med_step[ce]:+.1f}"]
        rows.append([name, f"{med_train[name]:,.0f}", f"{100 * (ce_train / med_train[name] - 1):+.1f}",
                     *loss_cols, f"{med_infer[name]:,.0f}", f"{med_infer[name] / ner_infer:.2f}"])
    header = ["pipeline", "train words/s", "train time vs CE (%)", "loss + gradient (ms/batch)",
              "loss overhead vs CE (% of a CE step)", "infer words/s", "infer vs spaCy ner (×)"]
    table = markdown_table(header, rows)
    info = machine_info()
    result = {"family": args.family, "machine": info, "rounds": args.rounds, "timed_batches": n_batches,
              "batch_words": batch_words, "infer_batch_size": args.infer_batch_size,
              "train_words_per_s": train_wps, "infer_words_per_s": infer_wps,
              "train_step_seconds": step_seconds, "loss_seconds_per_batch": loss_s,
              "median_train_words_per_s": med_train, "median_infer_words_per_s": med_infer,
              "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / f"speed_{args.family}.json", result)
    note = (f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), no GPU, shared with other jobs "
            f"(load average {info['load_average_1_5_15_at_start'][0]} at the start); spaCy {info['spacy']}. "
            f"Command: `{result['command']}`. "
            f"{args.family.upper()} tok2vec, {shipped_scheme(args.family)} tags (as the shipped {args.family} configs), {n_batches} timed batches of ~{batch_words} words per round, "
            f"{args.rounds} rounds, pipelines interleaved batch by batch, median of rounds; inference "
            f"`nlp.pipe` batch_size={args.infer_batch_size}.\n\n"
            "Whole-step ratios carry the machine's load noise (WCE-1 and WCE-2 run the same code). "
            "The loss columns time `get_loss` alone on fixed scores of one batch (best of 7 × 10 calls): "
            "the only part of a step that differs between losses; its overhead is expressed as a share "
            "of the median CE training step.\n\n")
    write_text_atomic(RESULTS / f"speed_{args.family}.md", note + table)
    print(note + table)


if __name__ == "__main__":
    main()
