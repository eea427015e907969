"""Tuned method vs CE vs every method at its paper default (low-resource, CNN, CPU).

Per corpus (WNUT-17, AnatEM, read from the shared data dir, never copied):

1. a seeded sample of ``--n-train`` training sentences, ``--n-dev`` dev sentences (the
   tuning objective and the model selection) and ``--n-test`` test sentences;
2. an Optuna study (``spacy_nerimb.tuning.run_study``, the default search space: every
   available loss family with the paper ranges, the five resampling choices and the
   learning rate) with a budget of ``--trials`` trials of ``--steps`` steps each, TPE
   and median pruning, training seed 0;
3. the best config and every method at its paper default (CE, WCE-1, WCE-2 β=1,
   focal γ=2, Dice, MoM λ=0.175, AUC-2T, CRF where registered; sC/sCR/sCRD/nsCRD
   resampling with CE) trained with seeds 0, 1, 2 in parallel worker processes
   (``spacy_nerimb.tuning.train_seed``), model-best chosen on dev, strict span
   macro F1 on test, mean ± sample sd.

    python benchmarks/tuning.py                  # writes benchmarks/results/tuning.{json,md}
    python benchmarks/tuning.py --corpora wnut17 --trials 4 --steps 100 --output /tmp/x.json
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy
import spacy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spacy_nerimb import tuning  # noqa: E402
from spacy_nerimb.corpora import convert, load_docbin, select_docbin, write_docbin  # noqa: E402
from spacy_nerimb.util import default_data_dir, markdown_table, write_json_atomic, write_text_atomic  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CORPORA = {
    "wnut17": ("wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated"),
    "anatem": ("train.tsv", "devel.tsv", "test.tsv"),
}
# Paper defaults: (label, loss method or None, resampling method)
DEFAULTS = [
    ("CE", "ce", "none"),
    ("WCE-1 (inverse frequency)", "wce1", "none"),
    ("WCE-2 (β=1)", "wce2", "none"),
    ("focal (γ=2)", "focal", "none"),
    ("Dice (α=0.01)", "dice", "none"),
    ("MoM (λ=0.175)", "mom", "none"),
    ("AUC-2T (m=1, λ=100)", "auc2t", "none"),
    ("CRF", "crf", "none"),
    ("CE + sC", "ce", "sC"),
    ("CE + sCR", "ce", "sCR"),
    ("CE + sCRD", "ce", "sCRD"),
    ("CE + nsCRD", "ce", "nsCRD"),
]


def sample_split(source: Path, out: Path, n: int, seed: int, work: Path) -> Dict[str, Any]:
    """Convert ``source`` and keep a seeded sample of ``n`` sentences (all if ``n`` <= 0)."""
    full = work / f"{out.stem}.full.spacy"
    convert(source, full)
    db = load_docbin(full)
    total = len(db)
    if 0 < n < total:
        idx = numpy.sort(numpy.random.default_rng([seed, n]).choice(total, n, replace=False))
        db = select_docbin(db, idx)
    write_docbin(db, out)
    full.unlink()
    return {"source": str(source), "sentences": len(db), "of": total}


def method_config(base: Any, method: str, resampling: str) -> Any:
    overrides: Dict[str, Any] = {"components.ner.loss": tuning.method_loss(method)}
    if resampling != "none":
        overrides["corpora.train"] = tuning.resampled_reader_block(resampling)
    return tuning.ready_config(tuning.apply_overrides(base, overrides), tuning.DEFAULT_OBJECTIVE)


def run_corpus(name: str, args: argparse.Namespace, work: Path, pool: Any) -> Dict[str, Any]:
    files = CORPORA[name]
    folder = Path(args.data_dir) / name
    data = work / name
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    splits = {}
    for split, file, n in zip(("train", "dev", "test"), files, (args.n_train, args.n_dev, args.n_test)):
        splits[split] = sample_split(folder / file, data / f"{split}.spacy", n, args.seed, data)
    paths = {s: str(data / f"{s}.spacy") for s in ("train", "dev", "test")}
    print(f"[{name}] data: {splits}", file=sys.stderr, flush=True)

    overrides = {"training.max_steps": args.steps, "training.eval_frequency": args.eval_frequency}
    base = tuning.load_base_config(REPO / "configs" / "cnn-ce.cfg", dict(overrides, **{"system.seed": 0}))
    tune_start = time.perf_counter()
    settings = tuning.TuneSettings(
        config_path=REPO / "configs" / "cnn-ce.cfg", train_path=paths["train"], dev_path=paths["dev"],
        output_dir=work / name / "study", n_trials=args.trials, seed=0, config_overrides=overrides,
        startup_trials=args.startup_trials, prune_startup=args.prune_startup,
        progress=lambda m: print(f"[{name}] {m}", file=sys.stderr, flush=True),
    )
    study = tuning.run_study(settings)
    tune_seconds = time.perf_counter() - tune_start

    configs: Dict[str, Path] = {}
    best_cfg = work / name / "study" / "best" / "config.cfg"
    configs["tuned (best trial)"] = best_cfg
    available = set(tuning.available_methods())
    skipped = []
    for label, method, resampling in DEFAULTS:
        if method not in available or (resampling != "none" and not tuning.resampling_available()):
            skipped.append(label)
            continue
        path = work / name / "configs" / f"{method}-{resampling}.cfg"
        path.parent.mkdir(parents=True, exist_ok=True)
        method_config(base, method, resampling).to_disk(path)
        configs[label] = path
    jobs = []
    for label, cfg in configs.items():
        for seed in args.seeds:
            jobs.append((label, tuning.SeedJob(
                config_path=str(cfg), train_path=paths["train"], dev_path=paths["dev"], test_path=paths["test"],
                output_dir=str(work / name / "runs" / label.split(" ")[0].replace("/", "-") / cfg.stem),
                seed=seed, overrides=overrides, threads=1, keep_model=False)))
    eval_start = time.perf_counter()
    futures = [(label, pool.submit(tuning.train_seed, job)) for label, job in jobs]
    runs: Dict[str, List[Dict[str, Any]]] = {label: [] for label in configs}
    for label, future in futures:
        try:
            result = future.result()
        except Exception as err:  # a method that crashes is reported, not fatal
            print(f"[{name}] {label}: failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            runs[label].append({"error": f"{type(err).__name__}: {err}"[:300]})
            continue
        runs[label].append(result)
        print(f"[{name}] {label} seed {result['seed']}: test macro F1 {result['test']['ents_macro_f']:.4f}",
              file=sys.stderr, flush=True)
    eval_seconds = time.perf_counter() - eval_start
    methods = {}
    for label, results in runs.items():
        ok = [r for r in results if "error" not in r]
        methods[label] = {
            "config": "best trial" if label.startswith("tuned") else label,
            "seeds": [r["seed"] for r in ok],
            "errors": [r["error"] for r in results if "error" in r],
            "summary": tuning.summarise_seeds(ok) if ok else {},
            "test_macro_f_per_seed": [r["test"]["ents_macro_f"] for r in ok],
        }
    best = study.get("best") or {}
    return {
        "data": splits, "trials": study["trials"], "trial_budget": args.trials,
        "steps_per_trial": args.steps, "best_trial": {k: best.get(k) for k in ("number", "value", "params")},
        "tuning_seconds": round(tune_seconds, 1), "evaluation_seconds": round(eval_seconds, 1),
        "wall_seconds": round(time.perf_counter() - t0, 1), "skipped_methods": skipped, "methods": methods,
    }


def markdown(result: Dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Tuning benchmark: tuned method vs CE vs paper defaults (low-resource, CNN, CPU)\n",
        f"Training sample {s['n_train']} sentences, dev sample {s['n_dev']} (objective and model "
        f"selection), test sample {s['n_test'] or 'all'}; spaCy CNN (`configs/cnn-ce.cfg`), "
        f"{s['steps']} steps, evaluation every {s['eval_frequency']} steps, learning rate 0.001 for the "
        f"defaults. Study: default search space, TPE ({s['startup_trials']} random start-up trials) and "
        f"median pruning ({s['prune_startup']} start-up trials), **budget {s['trials']} trials per corpus**, "
        f"training seed 0. Every config then trained with seeds {s['seeds']} in {s['workers']} parallel "
        f"processes; test strict span macro F1 in %, mean ± sample sd over seeds.\n",
        f"Machine: {result['machine']['cpus']} shared CPU cores ({result['machine']['cpu_model']}); total wall "
        f"time **{result['wall_seconds'] / 60:.1f} min**. These are deliberately tiny budgets (a shared "
        "2-core CPU); they show the workflow and the order of effects, not converged models.\n",
        "How to read it: the tuned row is the study's best trial, chosen on a single training seed and a "
        f"{s['n_dev']}-sentence dev sample after {s['trials']} short trials; its dev advantage need not "
        "carry over to other seeds or to test, and with so few trials TPE has barely left its random "
        "start-up phase. The defaults use the config's learning rate (0.001), the tuned config its own."
        + (" AnatEM has a single entity type, so its macro and micro F1 coincide." if "anatem" in result["corpora"]
           else "") + "\n",
        "Reproduce: `python benchmarks/tuning.py " + " ".join(
            f"--{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in s.items()) + "` (data from `$NERIMB_DATA_DIR`, default `../shared/data`).\n",
    ]
    for name, r in result["corpora"].items():
        best = r["best_trial"]
        lines.append(f"## {name}\n")
        lines.append(
            f"Trials: {r['trials']} (budget {r['trial_budget']}, {r['steps_per_trial']} steps each); tuning "
            f"{r['tuning_seconds'] / 60:.1f} min, 3-seed evaluation of {len(r['methods'])} configs "
            f"{r['evaluation_seconds'] / 60:.1f} min, corpus wall {r['wall_seconds'] / 60:.1f} min. Best trial "
            f"{best['number']} (dev macro F1 {100 * (best['value'] or 0):.2f}): `{json.dumps(best['params'])}`.\n"
        )
        rows = []
        for label, m in r["methods"].items():
            test = m["summary"].get("test", {})
            dev = m["summary"].get("dev", {})
            rows.append([
                label,
                tuning.format_mean_sd(test["ents_macro_f"]) if test else "failed",
                tuning.format_mean_sd(test["ents_f"]) if test else "",
                tuning.format_mean_sd(dev["ents_macro_f"]) if dev else "",
                len(m["seeds"]),
            ])
        lines.append(markdown_table(["method", "test macro F1", "test micro F1", "dev macro F1", "seeds"], rows))
        if r["skipped_methods"]:
            lines.append(f"\nNot registered in this installation (skipped): {', '.join(r['skipped_methods'])}.\n")
        errors = {label: m["errors"] for label, m in r["methods"].items() if m["errors"]}
        if errors:
            lines.append(f"\nFailed runs: {json.dumps(errors, ensure_ascii=False)}\n")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="wnut17,anatem")
    parser.add_argument("--data-dir", default=str(default_data_dir()))
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--startup-trials", type=int, default=4)
    parser.add_argument("--prune-startup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-frequency", type=int, default=50)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the data samples.")
    parser.add_argument("--output", default=str(RESULTS / "tuning.json"))
    parser.add_argument("--markdown-only", action="store_true", help="Re-render the .md from the .json.")
    args = parser.parse_args()
    if args.markdown_only:
        output = Path(args.output)
        write_text_atomic(output.with_suffix(".md"), markdown(json.loads(output.read_text(encoding="utf8"))))
        print(f"wrote {output.with_suffix('.md')}")
        return
    args.seeds = [int(s) for s in args.seeds.split(",")]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    names = [c.strip() for c in args.corpora.split(",") if c.strip()]
    for name in names:
        if not (Path(args.data_dir) / name).exists():
            sys.exit(f"corpus {name!r} not found under {args.data_dir} (set NERIMB_DATA_DIR)")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "") if Path("/proc/cpuinfo").exists() else ""
    result: Dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "data_dir")},
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
                    "spacy": spacy.__version__, "optuna": optuna.__version__, "gpu": None},
        "corpora": {},
    }
    with tempfile.TemporaryDirectory(prefix="nerimb-tuning-bench-") as tmp, tuning._pool(args.workers) as pool:
        for name in names:
            result["corpora"][name] = run_corpus(name, args, Path(tmp), pool)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    output = Path(args.output)
    write_json_atomic(output, result)
    write_text_atomic(output.with_suffix(".md"), markdown(result))
    print(f"wrote {output} and {output.with_suffix('.md')} [{result['wall_seconds'] / 60:.1f} min]")


if __name__ == "__main__":
    main()
