"""Data commands of ``python -m spacy_nerimb``: convert, stats, resample, subsample."""
import time
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import typer


def _say(message: str) -> None:
    typer.echo(f"… {message}", err=True)


def _fail(err: Exception) -> "typer.Exit":
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code=1)


def _run(action: Callable[[], str]) -> None:
    """Run a command body; print its summary line, or a clean error (exit code 1)."""
    start = time.perf_counter()
    previous = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *args, **kw: f"warning ({cat.__name__}): {msg}\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            summary = action()
    except (ValueError, OSError) as err:  # CorpusError is a ValueError
        raise _fail(err) from None
    finally:
        warnings.formatwarning = previous
    typer.echo(f"{summary} [{time.perf_counter() - start:.1f} s]")


def _ints(text: str, option: str) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(ValueError(f"{option} expects comma-separated integers, got {text!r}")) from None


def _floats(text: str, option: str) -> List[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(ValueError(f"{option} expects comma-separated numbers, got {text!r}")) from None


def convert(
    input_path: Path = typer.Argument(..., help="Corpus file (column/CoNLL, chars, GMB CSV, JSON/JSONL)."),
    output: Path = typer.Argument(..., help="Output .spacy file, or a directory."),
    format: str = typer.Option("auto", "--format", "-f", help="auto, conll, chars, gmb, json, jsonl."),
    scheme: str = typer.Option("auto", help="Tag scheme: auto, IOB1, IOB2, BIOES, BILUO."),
    entity_type: Optional[str] = typer.Option(None, help="Type for bare B/I/O tags."),
    tag_column: int = typer.Option(-1, help="Column of the tag (0-based; -1 = last)."),
    encoding: Optional[str] = typer.Option(None, help="File encoding (default utf-8; cp1252 for gmb)."),
    strip_digits: Optional[bool] = typer.Option(None, "--strip-digits/--keep-digits",
                                                help="Weibo char+digit tokens (default: detect)."),
    lang: str = typer.Option("en", help="spaCy language for JSON/JSONL tokenisation (zh, ja, ...)."),
    alignment: str = typer.Option("strict", help="JSON spans off token boundaries: strict (report), expand, contract."),
    split: Optional[str] = typer.Option(None, help="Seeded split ratios: 3:1 (train:test) or 8:1:1 (train:dev:test)."),
    seed: int = typer.Option(0, help="Seed of the split."),
    report: Optional[Path] = typer.Option(None, help="Write the conversion report (JSON) here."),
) -> None:
    """Convert a corpus to DocBin (one doc per sentence, entities as doc.ents)."""
    from .corpora import convert as run_convert

    def body() -> str:
        result = run_convert(
            input_path, output, format=format, scheme=scheme, entity_type=entity_type,
            tag_column=tag_column, encoding=encoding, strip_digits=strip_digits, lang=lang,
            alignment=alignment, split=split, seed=seed, report_path=report, progress=_say,
        )
        parts = ", ".join(f"{name}: {o['sentences']}" for name, o in result["outputs"].items())
        extra = f", {result['repairs']} tag repairs" if result.get("repairs") else ""
        if result.get("misaligned") or result.get("overlapping"):
            extra += f", {len(result['misaligned'])} misaligned + {len(result['overlapping'])} overlapping spans left out"
        return (f"converted {input_path}: {result['sentences']} sentences, {result['tokens']} tokens, "
                f"{result['entities']} entities{extra} -> {parts}")

    _run(body)


def stats(
    inputs: List[Path] = typer.Argument(..., help="Corpus files (.spacy, directories, or tagged files)."),
    format: str = typer.Option("auto", "--format", "-f", help="auto, conll, chars, gmb, spacy."),
    encoding: Optional[str] = typer.Option(None, help="File encoding for tagged files."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the statistics as JSON."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Write them as Markdown."),
) -> None:
    """Imbalance statistics (resampling paper's Table 1 + B/I/O shares)."""
    from .stats import statistics_for_paths, statistics_markdown, write_statistics

    def body() -> str:
        result = statistics_for_paths(inputs, format=format, encoding=encoding)
        typer.echo(statistics_markdown(result))
        write_statistics(result, json_path, markdown_path)
        written = [str(p) for p in (json_path, markdown_path) if p]
        return f"statistics of {len(result)} corpora" + (f" -> {', '.join(written)}" if written else "")

    _run(body)


def resample(
    input_path: Path = typer.Argument(..., help="Training DocBin (.spacy file or directory)."),
    output: Path = typer.Argument(..., help="Resampled .spacy file."),
    method: str = typer.Option("sCR", help="none, sC, sCR, sCRD, nsCRD."),
    variant: str = typer.Option("paper", help="paper (eqs. 1-4) or reference (the authors' code)."),
    seed: int = typer.Option(0, help="Seed of the shuffle."),
    shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle", help="Shuffle copies (else back to back)."),
    report: Optional[Path] = typer.Option(None, help="Report JSON path (default <output>.report.json; .md beside)."),
) -> None:
    """Write a resampled DocBin plus a report (size-increase factor, per-type shares)."""
    from .resampling import resample_docbin

    def body() -> str:
        _say(f"resampling {input_path} with {method} ({variant})")
        r = resample_docbin(input_path, output, method=method, variant=variant, seed=seed,
                            shuffle=shuffle, report_path=report)
        return (f"resampled {input_path} with {r['method']} ({r['variant']}): {r['sentences_before']} -> "
                f"{r['sentences_after']} sentences (factor {r['size_increase_factor']:.2f}), entity tokens "
                f"{r['entity_token_share_before']:.2f} % -> {r['entity_token_share_after']:.2f} % -> {output}")

    _run(body)


def subsample(
    input_path: Path = typer.Argument(..., help="Training DocBin (.spacy file or directory)."),
    output_dir: Path = typer.Argument(..., help="Directory for the samples and manifest."),
    mode: str = typer.Option("low-resource", help="low-resource or imbalance."),
    sizes: str = typer.Option("20,50,100,150,200,250,300,350,400,450,500,1000",
                              help="low-resource: sentences per partition (comma-separated)."),
    partitions: int = typer.Option(5, help="low-resource: partitions per size."),
    overlapping: bool = typer.Option(False, "--overlapping", help="low-resource: independent draws, not disjoint."),
    shares: str = typer.Option("1,2,5,10,20", help="imbalance: target % of entity tokens (comma-separated)."),
    n_sentences: int = typer.Option(100, help="imbalance: sentences per sample."),
    seed: int = typer.Option(0, help="Seed of the draws."),
) -> None:
    """Low-resource (n sentences x k partitions) or imbalance (target entity share) samples."""
    from .samplers import write_imbalance, write_low_resource

    def body() -> str:
        if mode == "low-resource":
            size_list = _ints(sizes, "--sizes")
            _say(f"drawing {partitions} partitions for sizes {size_list}")
            m = write_low_resource(input_path, output_dir, sizes=size_list, partitions=partitions,
                                   seed=seed, disjoint=not overlapping)
        elif mode == "imbalance":
            share_list = _floats(shares, "--shares")
            _say(f"drawing {n_sentences}-sentence samples for shares {share_list} %")
            m = write_imbalance(input_path, output_dir, shares=share_list, n_sentences=n_sentences, seed=seed)
        else:
            raise ValueError(f"unknown --mode {mode!r}: expected low-resource or imbalance")
        return f"wrote {len(m['samples'])} {mode} samples of {input_path} -> {output_dir}"

    _run(body)


def register(app: typer.Typer) -> None:
    """Add the data commands to the project's typer app."""
    for command in (convert, stats, resample, subsample):
        app.command(name=command.__name__)(command)

