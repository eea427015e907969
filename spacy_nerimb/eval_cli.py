"""Evaluation and workflow commands of ``python -m spacy_nerimb``.

* ``evaluate MODEL DATA``: strict span + token-level scores -> JSON and Markdown.
* ``compare RUN...``: methods over seeds -> Markdown/JSON tables and PNG plots.
* ``train-grid TRAIN DEV OUTPUT_DIR``: train every method × seed (or × low-resource
  sample) with ``spacy train``, skipping runs that are already done.
* ``evaluate-grid TRAINING_DIR DATA OUTPUT_DIR``: evaluate every finished run.
* ``synthetic OUTPUT_DIR``: write the embedded synthetic corpus (offline).
* ``report OUTPUT``: one Markdown report from statistics, resampling and comparison.

The project workflow (``project.yml``) chains these with the data commands.
"""
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import typer

RESAMPLERS = {"sc": "sC", "scr": "sCR", "scrd": "sCRD", "nscrd": "nsCRD"}
RUN_FILE = "run.json"


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _run(action: Callable[[], str]) -> None:
    """Run a command body; print its summary line with the time taken, or a clean error (exit 1)."""
    start = time.perf_counter()
    try:
        summary = action()
    except (ValueError, OSError, KeyError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{summary} [{time.perf_counter() - start:.1f} s]")


def _split(text: str) -> List[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _ints(text: str, option: str) -> List[int]:
    try:
        return [int(x) for x in _split(text)]
    except ValueError:
        raise ValueError(f"{option} expects comma-separated integers, got {text!r}") from None


def md5_file(path: Path) -> str:
    """MD5 of a file, or of all files under a directory (sorted by path)."""
    digest = hashlib.md5()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# The method × seed training grid
# ---------------------------------------------------------------------------


def parse_method(name: str) -> Tuple[str, Optional[str]]:
    """``"mom+sCR"`` -> ``("mom", "sCR")``; ``"sCR"`` -> ``("ce", "sCR")``; ``"focal"`` -> ``("focal", None)``."""
    base, resampler = None, None
    for part in name.split("+"):
        key = part.strip()
        if key.lower() in RESAMPLERS:
            if resampler is not None:
                raise ValueError(f"method {name!r}: more than one resampling method")
            resampler = RESAMPLERS[key.lower()]
        elif key:
            if base is not None:
                raise ValueError(f"method {name!r}: more than one loss/model part")
            base = key.lower()
    return base or "ce", resampler


def method_config(method: str, family: str, configs_dir: Path, *, seed: int, max_steps: int,
                  eval_frequency: int) -> Any:
    """The training config of one method: ``configs/<family>-<base>.cfg`` if it exists, else
    ``configs/<family>-ce.cfg`` with the loss replaced by the preset; resampling methods read
    the training data with ``spacy-nerimb.ResampledCorpus.v1``."""
    from thinc.api import Config

    from .training import LOSS_PRESETS

    base, resampler = parse_method(method)
    own = configs_dir / f"{family}-{base}.cfg"
    fallback = configs_dir / f"{family}-ce.cfg"
    if own.exists():
        config = Config().from_disk(own, interpolate=False)
    elif base in LOSS_PRESETS and fallback.exists():
        config = Config().from_disk(fallback, interpolate=False)
        config["components"]["ner"]["loss"] = dict(LOSS_PRESETS[base])
    else:
        known = sorted(set(LOSS_PRESETS) | {p.stem.split("-", 1)[1] for p in configs_dir.glob(f"{family}-*.cfg")})
        raise ValueError(f"method {method!r}: no config {own} and no loss preset {base!r} "
                         f"(known for family {family!r}: {', '.join(known)}; resampling: sC, sCR, sCRD, nsCRD)")
    if resampler is not None:
        config["corpora"]["train"] = {
            "@readers": "spacy-nerimb.ResampledCorpus.v1",
            "path": "${paths.train}",
            "method": resampler,
            "seed": "${system.seed}",
            "max_length": 0,
        }
    config["system"]["seed"] = seed
    config["training"]["max_steps"] = max_steps
    config["training"]["eval_frequency"] = max(1, min(eval_frequency, max_steps))
    return config


@dataclass
class GridRun:
    """One cell of the training grid."""

    method: str
    seed: int
    train: Path
    dev: Path
    output: Path
    train_size: Optional[int] = None
    partition: Optional[int] = None

    def meta(self) -> Dict[str, Any]:
        meta: Dict[str, Any] = {"method": self.method, "seed": self.seed}
        if self.train_size is not None:
            meta.update(train_size=self.train_size, partition=self.partition)
        return meta


def grid_runs(train: Path, dev: Path, output_dir: Path, methods: Sequence[str], seeds: Sequence[int],
              sizes: Sequence[int] = ()) -> List[GridRun]:
    """Runs for a training DocBin (method × seed) or a low-resource manifest (method × sample).

    For a manifest written by ``subsample`` each sample is one repetition; its
    partition index is the seed (the AUC-2T paper's random partitions).
    """
    if not train.exists():
        raise ValueError(f"training data {train}: no such file (expected a .spacy DocBin or a subsample manifest.json)")
    if not dev.exists():
        raise ValueError(f"dev data {dev}: no such file (expected a .spacy DocBin)")
    if train.suffix != ".json":
        return [GridRun(m, s, train, dev, output_dir / m / f"seed{s}") for m in methods for s in seeds]
    manifest = json.loads(train.read_text(encoding="utf8"))
    samples = [e for e in manifest.get("samples", []) if "size" in e and (not sizes or e["size"] in sizes)]
    if not samples:
        raise ValueError(f"{train}: no low-resource samples{' of sizes ' + str(list(sizes)) if sizes else ''} "
                         "(expected the manifest.json of `subsample --mode low-resource`)")
    runs = []
    for m in methods:
        for e in samples:
            path = Path(e["path"])
            runs.append(GridRun(m, int(e["partition"]), path, dev, output_dir / m / f"n{e['size']}_p{e['partition']}",
                                train_size=int(e["size"]), partition=int(e["partition"])))
    return runs


def run_signature(config_text: str, run: GridRun, gpu_id: int) -> str:
    """Hash of everything a run depends on: its config and the bytes of its data."""
    digest = hashlib.md5(config_text.encode("utf8"))
    for part in (md5_file(run.train), md5_file(run.dev), str(gpu_id >= 0)):
        digest.update(part.encode("utf8"))
    return digest.hexdigest()


def read_run_file(run_dir: Path) -> Optional[Dict[str, Any]]:
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError:
        return None


def is_done(run: GridRun, signature: str) -> bool:
    """A run is done when its model exists and its run file records the same signature."""
    info = read_run_file(run.output)
    return bool(info and info.get("signature") == signature and (run.output / "model-best" / "config.cfg").exists())


def _best_score(model_dir: Path) -> Optional[float]:
    meta_path = model_dir / "meta.json"
    if not meta_path.exists():
        return None
    perf = json.loads(meta_path.read_text(encoding="utf8")).get("performance", {})
    score = perf.get("ents_macro_f")
    return float(score) if score is not None else None


def train_one(run: GridRun, config: Any, signature: str, family: str, gpu_id: int, keep_last: bool) -> Dict[str, Any]:
    """Train one grid cell with spaCy and write its run file."""
    import shutil

    from .training import train_config
    from .util import write_json_atomic

    start = time.perf_counter()
    best = train_config(config, run.output, run.train, run.dev, gpu_id=gpu_id)
    seconds = time.perf_counter() - start
    if not keep_last and (run.output / "model-last").exists():
        shutil.rmtree(run.output / "model-last")
    info = {**run.meta(), "family": family, "train": str(run.train), "dev": str(run.dev),
            "signature": signature, "seconds": round(seconds, 1), "dev_macro_f": _best_score(best)}
    write_json_atomic(run.output / RUN_FILE, info)
    return info


def train_grid(train: Path, dev: Path, output_dir: Path, *, methods: Sequence[str], seeds: Sequence[int],
               family: str = "cnn", configs_dir: Path = Path("configs"), max_steps: int = 1000,
               eval_frequency: int = 200, gpu_id: int = -1, sizes: Sequence[int] = (),
               keep_last: bool = False) -> Dict[str, Any]:
    """Train every method × seed (or × sample) run not yet done; return counts and timings."""
    from . import resampling  # noqa: F401  registers spacy-nerimb.ResampledCorpus.v1 in this process

    if not methods:
        raise ValueError("--methods is empty")
    runs = grid_runs(train, dev, output_dir, methods, seeds, sizes)
    configs = {}
    for run in runs:  # build every config first, so a bad method fails before any training
        configs[run.output] = method_config(run.method, family, configs_dir, seed=run.seed,
                                            max_steps=max_steps, eval_frequency=eval_frequency)
    done, skipped, start = [], 0, time.perf_counter()
    for i, run in enumerate(runs, 1):
        config = configs[run.output]
        signature = run_signature(config.to_str(), run, gpu_id)
        label = f"[train-grid {i}/{len(runs)}] {run.method} {run.output.name}"
        if is_done(run, signature):
            skipped += 1
            _say(f"{label}: done already, skipped")
            continue
        _say(f"{label}: training ({family}, {max_steps} steps) -> {run.output}")
        info = train_one(run, config, signature, family, gpu_id, keep_last)
        done.append(info)
        score = info["dev_macro_f"]
        _say(f"{label}: finished in {info['seconds']:.0f} s, best dev macro F1 "
             f"{'n/a' if score is None else f'{100 * score:.2f}'} "
             f"[{time.perf_counter() - start:.0f} s elapsed]")
    return {"runs": len(runs), "trained": len(done), "skipped": skipped, "seconds": time.perf_counter() - start}


def finished_runs(training_dir: Path) -> List[Tuple[Path, Dict[str, Any]]]:
    """Run directories under ``training_dir`` that hold a run file and a model-best."""
    out = []
    for run_file in sorted(training_dir.rglob(RUN_FILE)):
        info = read_run_file(run_file.parent)
        if info and (run_file.parent / "model-best" / "config.cfg").exists():
            out.append((run_file.parent, info))
    return out


def _previous_meta(path: Path) -> Dict[str, Any]:
    """The meta of an earlier evaluation result ({} if unreadable: it is then redone)."""
    try:
        return json.loads(path.read_text(encoding="utf8")).get("meta", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def evaluate_grid(training_dir: Path, data: Path, output_dir: Path, *, batch_size: int = 256,
                  gpu_id: int = -1) -> Dict[str, Any]:
    """Evaluate each finished run on ``data`` into ``output_dir/<method>/<run>.json`` (+ .md), skipping
    results that are up to date (same run signature, same data)."""
    from .evaluation import evaluate

    if not training_dir.is_dir():
        raise ValueError(f"training directory {training_dir}: not found (run train-grid first)")
    runs = finished_runs(training_dir)
    if not runs:
        raise ValueError(f"{training_dir}: no finished runs (expected <method>/<run>/{RUN_FILE} and model-best)")
    if not data.exists():
        raise ValueError(f"evaluation data {data}: no such file")
    data_md5 = md5_file(data)
    evaluated, skipped, start = 0, 0, time.perf_counter()
    for i, (run_dir, info) in enumerate(runs, 1):
        rel = run_dir.relative_to(training_dir)
        out = (output_dir / rel).with_suffix(".json")
        label = f"[evaluate-grid {i}/{len(runs)}] {rel}"
        if out.exists():
            old = _previous_meta(out)
            if old.get("signature") == info.get("signature") and old.get("data_md5") == data_md5:
                skipped += 1
                _say(f"{label}: up to date, skipped")
                continue
        meta = {k: info[k] for k in ("method", "seed", "train_size", "partition", "family", "signature") if k in info}
        meta["data_md5"] = data_md5
        result = evaluate(run_dir / "model-best", data, output=out, markdown=out.with_suffix(".md"),
                          meta=meta, batch_size=batch_size, gpu_id=gpu_id)
        evaluated += 1
        _say(f"{label}: macro F1 {100 * result['span']['macro']['f']:.2f}, micro F1 "
             f"{100 * result['span']['micro']['f']:.2f} -> {out}")
    return {"runs": len(runs), "evaluated": evaluated, "skipped": skipped, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _demote(markdown: str, levels: int = 1) -> str:
    """Push Markdown headings down ``levels`` levels."""
    return "\n".join(("#" * levels + line) if line.startswith("#") else line for line in markdown.splitlines())


def _relink(markdown: str, source_dir: Path, target_dir: Path) -> str:
    """Rewrite ``![alt](file)`` links relative to ``source_dir`` so they work from ``target_dir``."""
    import re

    def fix(match: "re.Match[str]") -> str:
        link = match.group(2)
        if "://" in link or link.startswith("/"):
            return match.group(0)
        new = os.path.relpath(source_dir / link, target_dir)
        return f"![{match.group(1)}]({Path(new).as_posix()})"

    return re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", fix, markdown)


def _read_markdown(path: Path, what: str) -> str:
    if not path.exists():
        raise ValueError(f"{what} {path}: no such file")
    return path.read_text(encoding="utf8")


def build_report(output: Path, comparison_dir: Path, *, title: str, stats: Sequence[Path] = (),
                 resampling: Sequence[Path] = (), notes: str = "") -> str:
    """Assemble statistics, resampling reports and the comparison into one Markdown file."""
    from .util import write_text_atomic

    comparison = comparison_dir / "comparison.md"
    parts = [f"# {title}", ""]
    if notes:
        parts += [notes, ""]
    for path in stats:
        parts += [_demote(_read_markdown(path, "statistics"), 1), ""]
    for path in resampling:
        parts += [_demote(_read_markdown(path, "resampling report"), 1), ""]
    body = _relink(_read_markdown(comparison, "comparison (run compare first)"), comparison_dir, output.parent)
    parts += [_demote(body, 1), ""]
    text = "\n".join(parts)
    write_text_atomic(output, text)
    return text


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def evaluate_command(
    model: Path = typer.Argument(..., help="Trained pipeline directory (e.g. training/ce/seed0/model-best)."),
    data: Path = typer.Argument(..., help="Gold DocBin (.spacy file or a directory of them)."),
    output: Path = typer.Option(Path("evaluation.json"), "--output", "-o", help="JSON output; Markdown goes beside (.md)."),
    method: Optional[str] = typer.Option(None, help="Method name recorded in the result (for compare)."),
    seed: Optional[int] = typer.Option(None, help="Seed recorded in the result (for compare)."),
    train_size: Optional[int] = typer.Option(None, help="Training size recorded in the result (for compare)."),
    batch_size: int = typer.Option(256, help="Docs per batch when predicting."),
    gpu_id: int = typer.Option(-1, help="GPU id (-1: CPU)."),
) -> None:
    """Strict span (micro, macro, per type) and token-level (B/I merged, O included) scores."""
    from .evaluation import evaluate

    def body() -> str:
        meta = {k: v for k, v in (("method", method), ("seed", seed), ("train_size", train_size)) if v is not None}
        _say(f"evaluating {model} on {data}")
        r = evaluate(model, data, output=output, markdown=output.with_suffix(".md"), meta=meta,
                     batch_size=batch_size, gpu_id=gpu_id)
        s, t = r["span"], r["token"]
        return (f"evaluated {model} on {r['meta']['n_docs']} docs: span micro F1 {100 * s['micro']['f']:.2f}, "
                f"macro F1 {100 * s['macro']['f']:.2f}, token macro F1 (O incl.) {100 * t['macro']['f']:.2f} "
                f"-> {output}, {output.with_suffix('.md')}")

    _run(body)


def compare_command(
    runs: List[Path] = typer.Argument(..., help="Evaluation JSON files or directories of them (searched recursively)."),
    baseline: str = typer.Option("ce", help="Method the others are compared with."),
    output_dir: Path = typer.Option(Path("reports"), "--output-dir", "-o", help="Where comparison.md/.json and PNGs go."),
    methods: str = typer.Option("", help="Comma-separated methods to include, in this order (default: all found)."),
    alpha: float = typer.Option(0.05, help="Significance level of the paired t-test."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the standard errors."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    title: str = typer.Option("Comparison of methods", help="Title of the Markdown report."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the PNG plots."),
) -> None:
    """Method × metric table (mean ± sd over seeds, Δ vs baseline, paired t-test, bootstrapped SE) and plots."""
    from .evaluation import compare

    def body() -> str:
        _say(f"comparing {len(runs)} run path(s) against {baseline}")
        s = compare(runs, output_dir, baseline=baseline, methods=_split(methods) or None, alpha=alpha,
                    n_boot=n_boot, seed=seed, title=title, plots=plots)
        typer.echo((output_dir / "comparison.md").read_text(encoding="utf8"))
        main = s["groups"][-1]["methods"]
        best = max(main, key=lambda m: main[m]["metrics"]["span_macro_f"]["mean"])
        return (f"compared {len(s['methods'])} methods over {len(s['runs'])} runs; best macro F1: {best} "
                f"({100 * main[best]['metrics']['span_macro_f']['mean']:.2f}) -> {output_dir / 'comparison.md'}, "
                f"{len(s['plots'])} plots")

    _run(body)


def train_grid_command(
    train: Path = typer.Argument(..., help="Training DocBin, or a low-resource manifest.json from `subsample`."),
    dev: Path = typer.Argument(..., help="Dev DocBin (model selection)."),
    output_dir: Path = typer.Argument(..., help="Runs go to <output_dir>/<method>/seed<k> (or n<size>_p<j>)."),
    methods: str = typer.Option("ce,mom,sCR", help="Comma-separated: losses (ce, wce1, wce2, focal, dice, mom, "
                                "mom_focal, or any configs/<family>-<name>.cfg), resampling (sC, sCR, sCRD, nsCRD) "
                                "or loss+resampling (mom+sCR)."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated training seeds (ignored for a manifest: partitions)."),
    family: str = typer.Option("cnn", help="Config family: cnn, minilm or gpu (configs/<family>-*.cfg)."),
    configs_dir: Path = typer.Option(Path("configs"), help="Directory of the config files."),
    max_steps: int = typer.Option(1000, min=1, help="Training steps per run."),
    eval_frequency: int = typer.Option(200, min=1, help="Steps between dev evaluations."),
    gpu_id: int = typer.Option(-1, help="GPU id (-1: CPU)."),
    sizes: str = typer.Option("", help="Manifest only: comma-separated training sizes to use (default: all)."),
    keep_last: bool = typer.Option(False, "--keep-last/--no-keep-last", help="Keep model-last (default: removed)."),
) -> None:
    """Train every method × seed with `spacy train`; finished runs (same config and data) are skipped."""

    def body() -> str:
        r = train_grid(train, dev, output_dir, methods=_split(methods), seeds=_ints(seeds, "--seeds"),
                       family=family, configs_dir=configs_dir, max_steps=max_steps, eval_frequency=eval_frequency,
                       gpu_id=gpu_id, sizes=_ints(sizes, "--sizes"), keep_last=keep_last)
        return (f"train-grid: {r['runs']} runs, {r['trained']} trained, {r['skipped']} skipped (done already) "
                f"-> {output_dir}")

    _run(body)


def evaluate_grid_command(
    training_dir: Path = typer.Argument(..., help="Output directory of train-grid."),
    data: Path = typer.Argument(..., help="Gold DocBin to evaluate on (usually the test split)."),
    output_dir: Path = typer.Argument(..., help="Results go to <output_dir>/<method>/<run>.json and .md."),
    batch_size: int = typer.Option(256, help="Docs per batch when predicting."),
    gpu_id: int = typer.Option(-1, help="GPU id (-1: CPU)."),
) -> None:
    """Evaluate every finished train-grid run; up-to-date results are skipped."""

    def body() -> str:
        r = evaluate_grid(training_dir, data, output_dir, batch_size=batch_size, gpu_id=gpu_id)
        return f"evaluate-grid: {r['runs']} runs, {r['evaluated']} evaluated, {r['skipped']} up to date -> {output_dir}"

    _run(body)


def synthetic_command(
    output_dir: Path = typer.Argument(..., help="Directory for train.spacy, dev.spacy, test.spacy."),
    n_train: int = typer.Option(2000, min=1, help="Training sentences."),
    n_dev: int = typer.Option(500, min=1, help="Dev sentences."),
    n_test: int = typer.Option(1000, min=1, help="Test sentences."),
    seed: int = typer.Option(0, help="Corpus seed."),
) -> None:
    """Write the embedded, seeded synthetic imbalanced corpus (no download)."""
    from .synthetic import write_synthetic_corpus

    def body() -> str:
        paths = write_synthetic_corpus(output_dir, {"train": n_train, "dev": n_dev, "test": n_test}, seed=seed)
        return f"synthetic corpus (seed {seed}): {n_train}/{n_dev}/{n_test} sentences -> {', '.join(paths.values())}"

    _run(body)


def report_command(
    output: Path = typer.Argument(..., help="Markdown report to write."),
    comparison_dir: Path = typer.Option(..., help="Output directory of compare (comparison.md, PNGs)."),
    title: str = typer.Option("spacy-nerimb report", help="Report title."),
    stats: List[Path] = typer.Option([], help="Markdown statistics from `stats --markdown` (repeatable)."),
    resampling: List[Path] = typer.Option([], help="Markdown resampling reports from `resample` (repeatable)."),
    notes: str = typer.Option("", help="A paragraph placed under the title."),
) -> None:
    """One Markdown report: corpus statistics, resampling reports and the method comparison."""

    def body() -> str:
        build_report(output, comparison_dir, title=title, stats=stats, resampling=resampling, notes=notes)
        return f"report -> {output}"

    _run(body)


COMMANDS = {
    "evaluate": evaluate_command,
    "compare": compare_command,
    "train-grid": train_grid_command,
    "evaluate-grid": evaluate_grid_command,
    "synthetic": synthetic_command,
    "report": report_command,
}


def register(app: typer.Typer) -> None:
    """Add the evaluation and workflow commands to the project's typer app."""
    for name, command in COMMANDS.items():
        app.command(name=name)(command)
