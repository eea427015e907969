"""Cost of the CRF head against the softmax head with the same tok2vec (CPU).

Two (three) ``imbalanced_ner`` pipelines built from ``configs/zh-cnn-ce.cfg``
(CNN tok2vec, no BiLSTM) that differ only in the loss: softmax + cross-entropy,
CRF, and CRF + focal on the emissions. The CRF pipelines get a copy of the
softmax pipeline's initial weights, so all run the same tok2vec on the same
batches (Weibo training sentences, character level, ~1000 characters per
batch). After warm-up batches, every timed batch is run by each pipeline in
turn (order rotated per batch, so load changes on a shared machine hit all
alike); the median over batches is reported, and ratios are taken within this
one run:

* training step: ``nlp.update`` (forward, loss, backward, optimiser step);
* prediction: ``component.predict`` (model forward + decoding);
* decoding only: ``loss.decode`` on precomputed scores (softmax: log-softmax
  + constrained Viterbi; CRF: constrained Viterbi with the learned scores).

    python benchmarks/crf_speed.py        # writes benchmarks/results/crf_speed.{json,md}
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from spacy import util
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from thinc.api import fix_random_seed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from crf_ablation import convert_weibo  # noqa: E402
from spacy_nerimb.corpora import load_docbin  # noqa: E402
from spacy_nerimb.util import DATA_DIR_ENV, machine_info, markdown_table, write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HEADS = {
    "softmax+CE": {"@losses": "spacy-nerimb.CrossEntropy.v1"},
    "CRF": {"@losses": "spacy-nerimb.CRF.v1"},
    "CRF+focal": {"@losses": "spacy-nerimb.CRF.v1", "emission_loss": {"@losses": "spacy-nerimb.Focal.v1"}},
}
LIMITS = {"train_step": 1.5, "predict": 1.2}


def build(loss: Dict[str, Any], examples: List[Example]):
    config = util.load_config(ROOT / "configs" / "zh-cnn-ce.cfg")
    config["components"]["ner"]["loss"] = loss
    fix_random_seed(0)
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    optimizer = nlp.initialize(lambda: examples)
    return nlp, optimizer


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get(DATA_DIR_ENV, ROOT.parent / "shared" / "data")))
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "nerimb-weibo")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-words", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS / "crf_speed")
    args = parser.parse_args()
    paths = convert_weibo(args.data_dir, args.work_dir)
    probe = util.load_model_from_config(util.load_config(ROOT / "configs" / "zh-cnn-ce.cfg"), auto_fill=True)
    gold = list(load_docbin(paths["train"]).get_docs(probe.vocab))
    examples = [Example(probe.make_doc(d.text), d) for d in gold]
    pipelines = {name: build(loss, examples) for name, loss in HEADS.items()}
    reference = pipelines["softmax+CE"][0].get_pipe("ner").model
    for name, (nlp, _) in pipelines.items():  # identical starting weights everywhere
        model = nlp.get_pipe("ner").model
        for ref in ("tok2vec", "output_layer"):
            model.get_ref(ref).from_bytes(reference.get_ref(ref).to_bytes())
    batches = list(minibatch_by_words(examples, size=args.batch_words, tolerance=0.2))
    needed = args.warmup + args.batches
    batches = (batches * (needed // len(batches) + 1))[:needed]
    names = list(HEADS)
    times: Dict[str, Dict[str, List[float]]] = {n: {"train_step": [], "predict": [], "decode": []} for n in names}
    for i, batch in enumerate(batches):
        docs = [eg.predicted for eg in batch]
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            nlp, optimizer = pipelines[name]
            ner = nlp.get_pipe("ner")
            t_train = timed(lambda: nlp.update(batch, drop=0.1, sgd=optimizer))
            t_predict = timed(lambda: ner.predict(docs))
            scores = ner.model.predict(docs)
            t_decode = timed(lambda: ner.loss.decode(scores))
            if i >= args.warmup:
                times[name]["train_step"].append(t_train)
                times[name]["predict"].append(t_predict)
                times[name]["decode"].append(t_decode)
    words = statistics.mean(sum(len(eg.predicted) for eg in b) for b in batches[args.warmup:])
    base = times["softmax+CE"]
    results: Dict[str, Any] = {}
    for name in names:
        row: Dict[str, Any] = {}
        for what, values in times[name].items():
            median = statistics.median(values)
            row[f"{what}_ms"] = round(1000 * median, 2)
            row[f"{what}_ratio"] = round(median / statistics.median(base[what]), 3)
            row[f"{what}_per_batch_ratio_median"] = round(
                statistics.median(v / b for v, b in zip(values, base[what])), 3)
        results[name] = row
    checks = {what: {"limit": limit, "ratio": results["CRF"][f"{what}_ratio"],
                     "passed": results["CRF"][f"{what}_ratio"] <= limit}
              for what, limit in LIMITS.items()}
    meta = {"machine": machine_info(), "batches_timed": args.batches, "warmup": args.warmup,
            "mean_chars_per_batch": round(words, 1), "data": "zh-weibo train, character level",
            "tok2vec": "configs/zh-cnn-ce.cfg (HashEmbedCNN width 96, depth 4), no BiLSTM"}
    write_json_atomic(args.out.with_suffix(".json"), {"meta": meta, "results": results, "checks": checks})
    m = meta["machine"]
    header = ["head", "train step (ms)", "× softmax", "predict (ms)", "× softmax", "decode only (ms)", "× softmax"]
    rows = [[n, f"{r['train_step_ms']:.1f}", f"{r['train_step_ratio']:.2f}", f"{r['predict_ms']:.1f}",
             f"{r['predict_ratio']:.2f}", f"{r['decode_ms']:.2f}", f"{r['decode_ratio']:.2f}"]
            for n, r in results.items()]
    text = "\n".join([
        "# CRF head vs softmax head: speed with the same tok2vec (CPU)\n",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), load average {m['load_average_1_5_15_at_start'][0]} "
        f"at start (shared machine); spaCy {m['spacy']}. Same CNN tok2vec and starting weights, "
        f"Weibo batches of ~{words:.0f} characters, {args.warmup} warm-up + {args.batches} timed "
        "batches, pipelines interleaved per batch; medians; ratios from this one run.\n",
        markdown_table(header, rows),
        "Limits: CRF training step ≤ 1.5× and CRF prediction (forward + decoding) ≤ 1.2× the softmax "
        "head's: " + ", ".join(f"{w} {c['ratio']:.2f}× ({'pass' if c['passed'] else 'FAIL'})"
                               for w, c in checks.items()) + ".\n",
    ])
    write_text_atomic(args.out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
