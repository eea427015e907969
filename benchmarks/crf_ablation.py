"""Ablation of the focal + BiLSTM + CRF + R-Drop recipe on Weibo NER (character level, CPU).

Trains the five ``configs/zh-cnn-*.cfg`` pipelines (CNN tok2vec, one token per
character): softmax+CE → +focal → +BiLSTM → +CRF → +R-Drop, each for the same
number of update steps with the same batches (spaCy's ``batch_by_words`` of the
configs, shuffled per epoch with the seed), over several seeds. Each model is
scored with the optimiser's averaged weights (as ``spacy train`` does) on the
Weibo test set (and dev): strict span micro and macro F1, mean ± sd over seeds,
and training words/s (update calls only, evaluation excluded).

The Weibo files are converted with :func:`spacy_nerimb.corpora.convert` into a
work directory outside the repository (never into it).

    python benchmarks/crf_ablation.py                 # 3 seeds, writes benchmarks/results/crf_ablation.{json,md}
    python benchmarks/crf_ablation.py --steps 50 --seeds 0 --out /tmp/smoke
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import spacy
from spacy import util
from spacy.schemas import ConfigSchemaTraining
from spacy.training import Example
from thinc.api import fix_random_seed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from spacy_nerimb.corpora import convert, load_docbin  # noqa: E402
from spacy_nerimb.training import evaluate_model  # noqa: E402
from spacy_nerimb.util import machine_info, DATA_DIR_ENV, markdown_table, write_json_atomic, write_text_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = [  # (name, config, the paper's Table 3 dev F1 for the same step)
    ("softmax+CE", "zh-cnn-ce", 0.799),
    ("+focal", "zh-cnn-focal", 0.805),
    ("+BiLSTM", "zh-cnn-bilstm-focal", 0.812),
    ("+CRF", "zh-cnn-crf", 0.825),
    ("+R-Drop", "zh-cnn-rdrop", 0.833),
]
SPLITS = {"train": "weiboNER_2nd_conll.train", "dev": "weiboNER_2nd_conll.dev",
          "test": "weiboNER_2nd_conll.test"}




def convert_weibo(data_dir: Path, work_dir: Path) -> Dict[str, Path]:
    paths = {}
    for split, name in SPLITS.items():
        source = data_dir / "zh-weibo" / name
        if not source.exists():
            raise SystemExit(f"Weibo file not found: {source} (set --data-dir or ${DATA_DIR_ENV})")
        target = work_dir / f"{split}.spacy"
        if not target.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the 14 repaired I- tags: reported by convert
                convert(source, target)
        paths[split] = target
    return paths


def train_one(config_name: str, paths: Dict[str, Path], seed: int, steps: int) -> Dict[str, Any]:
    config = util.load_config(
        ROOT / "configs" / f"{config_name}.cfg",
        overrides={"paths.train": str(paths["train"]), "paths.dev": str(paths["dev"]),
                   "system.seed": seed},
        interpolate=True,
    )
    fix_random_seed(seed)
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    T = util.registry.resolve(nlp.config["training"], schema=ConfigSchemaTraining)
    batcher, optimizer, dropout = T["batcher"], T["optimizer"], T["dropout"]
    gold = list(load_docbin(paths["train"]).get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
    fix_random_seed(seed)
    nlp.initialize(lambda: examples, sgd=optimizer)
    rng = random.Random(seed)
    step, words, seconds, losses = 0, 0, 0.0, []
    while step < steps:
        rng.shuffle(examples)
        for batch in batcher(examples):
            batch_losses: Dict[str, float] = {}
            start = time.perf_counter()
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=batch_losses)
            seconds += time.perf_counter() - start
            words += sum(len(eg.predicted) for eg in batch)
            losses.append(batch_losses["ner"])
            step += 1
            if step >= steps:
                break
    result: Dict[str, Any] = {"config": config_name, "seed": seed, "steps": step,
                              "train_words": words, "train_seconds": round(seconds, 2),
                              "train_words_per_s": round(words / seconds, 1),
                              "final_loss_mean_last_20": round(statistics.mean(losses[-20:]), 4)}
    with nlp.use_params(optimizer.averages):
        for split in ("dev", "test"):
            docs = list(load_docbin(paths[split]).get_docs(nlp.vocab))
            scores = evaluate_model(nlp, docs)
            result[split] = {"micro_f": scores["ents_f"], "macro_f": scores["ents_macro_f"],
                             "micro_p": scores["ents_p"], "micro_r": scores["ents_r"],
                             "per_type_f": {k: v["f"] for k, v in scores["ents_per_type"].items()}}
    return result


def mean_sd(values: List[float]) -> Dict[str, float]:
    return {"mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    rows = []
    for name, config, paper in VARIANTS:
        mine = [r for r in runs if r["config"] == config]
        if not mine:
            continue
        row = {"variant": name, "config": config, "paper_table3_dev_f1": paper, "seeds": len(mine)}
        for split in ("test", "dev"):
            for metric in ("micro_f", "macro_f"):
                row[f"{split}_{metric}"] = mean_sd([r[split][metric] for r in mine])
        row["train_words_per_s"] = mean_sd([r["train_words_per_s"] for r in mine])
        rows.append(row)
    return rows


def pm(stat: Dict[str, float], digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def markdown(summary: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    header = ["variant", "config", "test micro F1", "test macro F1", "dev micro F1",
              "dev macro F1", "train words/s", "paper Table 3 (dev F1)"]
    rows = [[r["variant"], f"`{r['config']}`", pm(r["test_micro_f"]), pm(r["test_macro_f"]),
             pm(r["dev_micro_f"]), pm(r["dev_macro_f"]), pm(r["train_words_per_s"], 0),
             f"{r['paper_table3_dev_f1']:.3f}"] for r in summary]
    m = meta["machine"]
    text = [
        "# CRF / BiLSTM / R-Drop ablation on Weibo NER (character level, CNN tok2vec, CPU)\n",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), load average {m['load_average_1_5_15_at_start'][0]} "
        f"at start (shared machine), torch {m['torch']} with {m['torch_threads']} thread(s), "
        f"spaCy {m['spacy']}. {meta['steps']} update steps per run (~1000 characters per batch, "
        f"about {meta['epochs']:.1f} epochs), seeds {meta['seeds']}, scores with averaged weights "
        f"after the last step; mean ± sd over seeds; total wall time {meta['wall_minutes']:.1f} min.\n",
        markdown_table(header, rows),
    ]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get(DATA_DIR_ENV, ROOT.parent / "shared" / "data")))
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "nerimb-weibo")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(v[1] for v in VARIANTS))
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (BiLSTM); 1 on a shared machine")
    parser.add_argument("--out", type=Path, default=RESULTS / "crf_ablation")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = args.variants.split(",")
    paths = convert_weibo(args.data_dir, args.work_dir)
    n_train_chars = sum(len(d) for d in load_docbin(paths["train"]).get_docs(spacy.blank("zh").vocab))
    meta: Dict[str, Any] = {"machine": machine_info(), "steps": args.steps, "seeds": seeds,
                            "data": "zh-weibo (weiboNER_2nd_conll train/dev/test)",
                            "train_chars": n_train_chars}
    started = time.time()
    runs = []
    for seed in seeds:  # seed-major: a cut-short run still has every variant for the first seeds
        for _, config, _ in VARIANTS:
            if config not in wanted:
                continue
            result = train_one(config, paths, seed, args.steps)
            runs.append(result)
            print(json.dumps({k: result[k] for k in ("config", "seed", "train_words_per_s")}
                             | {"test": result["test"]["micro_f"], "test_macro": result["test"]["macro_f"]}),
                  flush=True)
    meta["wall_minutes"] = (time.time() - started) / 60
    meta["epochs"] = statistics.mean(r["train_words"] for r in runs) / n_train_chars
    summary = summarise(runs)
    write_json_atomic(args.out.with_suffix(".json"), {"meta": meta, "summary": summary, "runs": runs})
    write_text_atomic(args.out.with_suffix(".md"), markdown(summary, meta))
    print(markdown(summary, meta))


if __name__ == "__main__":
    main()
