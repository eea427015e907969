"""Tuning commands of ``python -m spacy_nerimb``: tune, tune-eval, tune-report.

Extra ``--section.key value`` arguments are config overrides, as with ``spacy train``
(e.g. ``--training.max_steps 300``).
"""
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import typer

_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _fail(message: str) -> "typer.Exit":
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _overrides(ctx: typer.Context) -> Dict[str, Any]:
    from spacy.cli._util import parse_config_overrides

    try:
        return parse_config_overrides(list(ctx.args))
    except SystemExit:
        raise _fail(f"cannot read the config overrides {ctx.args} (expected --section.key value)") from None


def _optuna():
    try:
        import optuna
    except ImportError:
        raise _fail("tuning needs Optuna: pip install 'spacy-nerimb[tune]' (optuna, matplotlib)") from None
    return optuna


def _seeds(text: str) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(f"--seeds expects comma-separated integers, got {text!r}") from None


def tune(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Base training config (an imbalanced_ner pipeline)."),
    train: Path = typer.Option(..., "--train", help="Training data (.spacy)."),
    dev: Path = typer.Option(..., "--dev", help="Dev data (.spacy): the objective is measured here."),
    space: Optional[Path] = typer.Option(None, "--space", help="Search space (YAML or JSON); default: all methods, paper ranges."),
    n_trials: int = typer.Option(20, "--n-trials", min=0, help="Finished trials the study should hold (all workers together)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1, help="Seconds after which this worker starts no new trial."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL (postgresql://…, sqlite:///…); default: OUTPUT_DIR/study.db."),
    study_name: str = typer.Option("nerimb-tune", "--study-name", help="Study to create or join."),
    seed: int = typer.Option(0, "--seed", help="Training seed of every trial; also the sampler seed unless --sampler-seed."),
    sampler_seed: Optional[int] = typer.Option(None, "--sampler-seed", help="TPE seed (give each worker of a shared study its own)."),
    output_dir: Path = typer.Option(Path("tuning"), "--output-dir", "-o", help="Trials, reports, plots and best/config.cfg go here."),
    objective: str = typer.Option("ents_macro_f", "--objective", help="Dev score to maximise (ents_macro_f, ents_f, ents_macro_r, …)."),
    pruning: bool = typer.Option(True, "--pruning/--no-pruning", help="Median pruning on the intermediate dev scores."),
    prune_startup: int = typer.Option(5, "--prune-startup", min=0, help="Trials that finish before pruning starts."),
    prune_warmup: Optional[int] = typer.Option(None, "--prune-warmup", min=0, help="Steps before a trial can be pruned (default: eval_frequency)."),
    startup_trials: int = typer.Option(10, "--startup-trials", min=1, help="Random trials before TPE takes over."),
    component: Optional[str] = typer.Option(None, "--component", help="Component to tune (default: the imbalanced_ner one)."),
    enqueue: List[str] = typer.Option([], "--enqueue", help='Parameters to try first, as JSON (repeatable), e.g. \'{"method": "ce"}\'.'),
    keep_models: bool = typer.Option(False, "--keep-models", help="Keep every trial's model-best (disk!)."),
    heartbeat: int = typer.Option(60, "--heartbeat", min=1, help="Seconds between heartbeats; a trial silent for twice that is failed and queued again."),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU id, or -1 for CPU."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Optuna's own log."),
) -> None:
    """Tune the imbalance method and its hyper-parameters on dev with an Optuna study."""
    optuna = _optuna()
    from .tuning import SearchSpace, TuneSettings, TuningError, run_study, stderr_printer

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.ERROR)
    start = time.perf_counter()
    try:
        queued = [json.loads(item) for item in enqueue]
    except json.JSONDecodeError as err:
        raise _fail(f"--enqueue expects JSON objects: {err}") from None
    try:
        settings = TuneSettings(
            config_path=config, train_path=train, dev_path=dev, output_dir=output_dir,
            space=SearchSpace.load(space) if space else None, n_trials=n_trials, timeout=timeout,
            storage=storage, study_name=study_name, seed=seed, sampler_seed=sampler_seed,
            objective=objective, pruning=pruning, prune_startup=prune_startup, prune_warmup=prune_warmup,
            startup_trials=startup_trials, component=component, config_overrides=_overrides(ctx),
            enqueue=queued, keep_models=keep_models, heartbeat=heartbeat, gpu_id=gpu_id,
            progress=stderr_printer(),
        )
        summary = run_study(settings)
    except TuningError as err:
        raise _fail(str(err)) from None
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary["trials"].items()))
    best = summary.get("best")
    tail = (f"best trial {best['number']} {objective} {best['value']:.4f} ({json.dumps(best['params'])}) "
            f"-> {output_dir / 'best' / 'config.cfg'}" if best else "no complete trial yet")
    typer.echo(f"study {study_name}: {counts}; {tail} [{time.perf_counter() - start:.1f} s]")


def tune_eval(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Config to evaluate, e.g. OUTPUT_DIR/best/config.cfg."),
    train: Path = typer.Option(..., "--train", help="Training data (.spacy)."),
    dev: Path = typer.Option(..., "--dev", help="Dev data (.spacy): model-best is chosen here."),
    test: Optional[Path] = typer.Option(None, "--test", help="Test data (.spacy) to score each model-best on."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated training seeds."),
    workers: int = typer.Option(1, "--workers", min=1, help="Seeds trained in parallel local processes."),
    output_dir: Path = typer.Option(Path("tuning/eval"), "--output-dir", "-o", help="seed_N/ models, eval.json, eval.md."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Share the seeds with workers on other machines through this database."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Name of the shared evaluation study (with --storage)."),
    keep_models: bool = typer.Option(True, "--keep-models/--drop-models", help="Keep each seed's model-best."),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU id, or -1 for CPU."),
) -> None:
    """Train a config with several seeds in parallel processes; dev/test scores mean ± sd."""
    from .tuning import TuningError, evaluate_seeds, format_mean_sd, stderr_printer

    if storage:
        _optuna().logging.set_verbosity(30)
    start = time.perf_counter()
    try:
        result = evaluate_seeds(config, train, dev, output_dir, seeds=_seeds(seeds), test_path=test,
                                workers=workers, overrides=_overrides(ctx), storage=storage,
                                study_name=study_name, keep_models=keep_models, gpu_id=gpu_id,
                                progress=stderr_printer())
    except TuningError as err:
        raise _fail(str(err)) from None
    parts = [f"{split} macro F1 {format_mean_sd(stats['ents_macro_f'])}" for split, stats in result["summary"].items()]
    missing = f"; missing seeds {result['missing_seeds']}" if result["missing_seeds"] else ""
    typer.echo(f"{len(result['runs'])} seed(s): {', '.join(parts) or 'no result'}{missing} -> "
               f"{output_dir / 'eval.md'} [{time.perf_counter() - start:.1f} s]")


def tune_report(
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL (default: OUTPUT_DIR/study.db)."),
    study_name: str = typer.Option("nerimb-tune", "--study-name", help="Study to report."),
    output_dir: Path = typer.Option(Path("tuning"), "--output-dir", "-o", help="Where the reports go."),
) -> None:
    """Write the trials table, best config and plots of a stored study (all workers)."""
    _optuna().logging.set_verbosity(40)
    from .tuning import TuningError, report_study

    try:
        summary = report_study(storage, study_name, output_dir)
    except TuningError as err:
        raise _fail(str(err)) from None
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary["trials"].items()))
    best = summary.get("best")
    tail = f"best trial {best['number']} {best['value']:.4f}" if best else "no complete trial"
    typer.echo(f"study {study_name}: {counts}; {tail} -> {output_dir / 'trials.md'}")


def register(app: typer.Typer) -> None:
    """Add the tuning commands to the project's typer app."""
    app.command(name="tune", context_settings=_EXTRA_ARGS)(tune)
    app.command(name="tune-eval", context_settings=_EXTRA_ARGS)(tune_eval)
    app.command(name="tune-report")(tune_report)
