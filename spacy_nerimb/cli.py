"""The ``python -m spacy_nerimb`` command line (typer)."""
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="spacy-nerimb",
    help="Named-entity recognition on imbalanced data for spaCy.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """spacy-nerimb: imbalance-aware NER for spaCy (demo, data and evaluation tools)."""


@app.command()
def demo(
    methods: str = typer.Option("ce,mom", help="Comma-separated methods: ce, wce1, wce2, focal, dice, mom, mom_focal."),
    output_dir: Optional[Path] = typer.Option(None, help="Where corpus, models and results go (default: a temp dir)."),
    n_train: int = typer.Option(1500, min=10, help="Synthetic training sentences."),
    max_steps: int = typer.Option(300, min=1, help="Training steps per method."),
    seed: int = typer.Option(0, help="Seed for the corpus and training."),
) -> None:
    """Train CE and MoM on a synthetic imbalanced corpus (CPU, offline) and compare them."""
    from .demo import run_demo

    names = [m.strip() for m in methods.split(",") if m.strip()]
    run_demo(names, output_dir=output_dir, n_train=n_train, max_steps=max_steps, seed=seed)


def _register_commands() -> None:
    """Add the command groups of the other modules (data, evaluation, tuning)."""
    from . import data_cli, eval_cli, tune_cli

    for module in (data_cli, eval_cli, tune_cli):
        module.register(app)


_register_commands()
