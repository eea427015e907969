"""Training-set generators of the AUC-2T paper: low-resource and imbalance samples.

* Low-resource: ``k`` seeded partitions of ``n`` sentences each, for several ``n``
  (the paper uses 20, 50, 100, ..., 1000). Partitions of one size are disjoint when
  the corpus is large enough (``disjoint=True``), else independent draws.
* Imbalance: ``n`` sentences whose share of entity tokens is as close as possible to
  a target (the paper uses 1, 2, 5, 10 and 20 %).

Every draw takes a seed; the same seed gives the same sample.
"""
import warnings
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy

from .corpora import EntityArrays, select_docbin, write_docbin
from .resampling import load_sentences
from .util import PathLike, markdown_table, write_json_atomic, write_text_atomic

DEFAULT_SIZES = (20, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 1000)
DEFAULT_SHARES = (1.0, 2.0, 5.0, 10.0, 20.0)


class SampleWarning(UserWarning):
    """A sample could not meet its target exactly."""


def low_resource_partitions(
    n_total: int, size: int, k: int, seed: int = 0, disjoint: bool = True
) -> List[numpy.ndarray]:
    """``k`` index sets of ``size`` sentences (sorted), seeded by ``(seed, size)``."""
    if size <= 0 or k <= 0:
        raise ValueError(f"low-resource sampler: size ({size}) and partitions ({k}) must be positive")
    if size > n_total:
        raise ValueError(f"low-resource sampler: size {size} exceeds the {n_total} sentences of the corpus")
    if disjoint and size * k > n_total:
        raise ValueError(
            f"low-resource sampler: {k} disjoint partitions of {size} sentences need {size * k} "
            f"sentences, the corpus has {n_total}; lower --partitions or use --overlapping"
        )
    if disjoint:
        order = numpy.random.default_rng([seed, size]).permutation(n_total)
        return [numpy.sort(order[j * size : (j + 1) * size]) for j in range(k)]
    return [
        numpy.sort(numpy.random.default_rng([seed, size, j]).choice(n_total, size, replace=False))
        for j in range(k)
    ]


def imbalance_sample(
    arrays: EntityArrays, share: float, n_sentences: int, seed: int = 0, window: int = 256
) -> Tuple[numpy.ndarray, float]:
    """``n_sentences`` sentence indices whose entity-token share is close to ``share`` (in %).

    Greedy and seeded: sentences with and without entities are taken in a random
    order; the next one comes from the entity pool while the running share is below
    the target (the best fit among the next ``window`` of that pool), else from the
    entity-less pool. Returns ``(indices, achieved %)``.
    """
    if not 0.0 <= share <= 100.0:
        raise ValueError(f"imbalance sampler: share {share} must be a percentage in 0..100")
    if not 0 < n_sentences <= arrays.n_sentences:
        raise ValueError(f"imbalance sampler: n_sentences {n_sentences} must be in 1..{arrays.n_sentences}")
    entity_counts = arrays.count_matrix().sum(axis=1)
    rng = numpy.random.default_rng([seed, int(round(share * 1000)), n_sentences])
    pools = [rng.permutation(numpy.flatnonzero(entity_counts > 0)),
             rng.permutation(numpy.flatnonzero(entity_counts == 0))]
    cursor = [0, 0]
    chosen: List[int] = []
    ent = tok = 0
    target = share / 100.0
    for _ in range(n_sentences):
        want = 0 if (tok == 0 or ent / tok < target) else 1
        if cursor[want] >= len(pools[want]):
            want = 1 - want
        pool, at = pools[want], cursor[want]
        if want == 0:  # among the next `window` entity sentences, take the best fit
            candidates = pool[at : at + window]
            fit = numpy.abs((ent + entity_counts[candidates]) / (tok + arrays.lengths[candidates]) - target)
            best = at + int(numpy.argmin(fit))
            pool[[at, best]] = pool[[best, at]]
        index = int(pool[at])
        cursor[want] += 1
        chosen.append(index)
        ent += int(entity_counts[index])
        tok += int(arrays.lengths[index])
    achieved = 100.0 * ent / tok if tok else 0.0
    return numpy.sort(numpy.asarray(chosen, dtype="int64")), achieved


def write_low_resource(
    input_path: PathLike, output_dir: PathLike, *, sizes: Sequence[int] = DEFAULT_SIZES,
    partitions: int = 5, seed: int = 0, disjoint: bool = True,
) -> Dict[str, Any]:
    """Write ``low_resource/n{size}_p{j}.spacy`` files and a manifest."""
    db = load_sentences(input_path)
    arrays = EntityArrays.from_docbin(db, source=str(input_path))
    out = Path(output_dir)
    entries = []
    for size in sizes:
        for j, idx in enumerate(low_resource_partitions(len(db), size, partitions, seed, disjoint)):
            path = write_docbin(select_docbin(db, idx), out / "low_resource" / f"n{size}_p{j}.spacy")
            entries.append(_entry(path, arrays, idx, size=size, partition=j))
    manifest = {"input": str(input_path), "mode": "low-resource", "seed": seed,
                "disjoint": disjoint, "samples": entries}
    _write_manifest(out / "low_resource", manifest)
    return manifest


def write_imbalance(
    input_path: PathLike, output_dir: PathLike, *, shares: Sequence[float] = DEFAULT_SHARES,
    n_sentences: int = 100, seed: int = 0, tolerance: float = 0.5,
) -> Dict[str, Any]:
    """Write ``imbalance/share{p}_n{n}.spacy`` files and a manifest (warns when a target is missed)."""
    db = load_sentences(input_path)
    arrays = EntityArrays.from_docbin(db, source=str(input_path))
    out = Path(output_dir)
    entries = []
    for share in shares:
        idx, achieved = imbalance_sample(arrays, share, n_sentences, seed)
        if abs(achieved - share) > tolerance:
            warnings.warn(
                f"{input_path}: target {share} % entity tokens with {n_sentences} sentences "
                f"reached {achieved:.2f} % (the corpus cannot do better with this size)",
                SampleWarning, stacklevel=2,
            )
        name = f"share{share:g}_n{n_sentences}.spacy"
        path = write_docbin(select_docbin(db, idx), out / "imbalance" / name)
        entries.append(_entry(path, arrays, idx, target_share=share))
    manifest = {"input": str(input_path), "mode": "imbalance", "seed": seed,
                "n_sentences": n_sentences, "samples": entries}
    _write_manifest(out / "imbalance", manifest)
    return manifest


def _entry(path: Path, arrays: EntityArrays, idx: numpy.ndarray, **extra: Any) -> Dict[str, Any]:
    entity_counts = arrays.count_matrix()[idx].sum()
    tokens = int(arrays.lengths[idx].sum())
    return {"path": str(path), **extra, "sentences": int(len(idx)), "tokens": tokens,
            "entity_token_share": round(100.0 * float(entity_counts) / tokens, 4) if tokens else 0.0,
            "indices": [int(i) for i in idx]}


def _write_manifest(folder: Path, manifest: Dict[str, Any]) -> None:
    write_json_atomic(folder / "manifest.json", manifest)
    keys = [k for k in ("size", "partition", "target_share") if k in manifest["samples"][0]] \
        if manifest["samples"] else []
    rows = [[Path(e["path"]).name] + [e[k] for k in keys] + [e["sentences"], e["tokens"],
            f"{e['entity_token_share']:.2f}"] for e in manifest["samples"]]
    text = f"# {manifest['mode']} samples of {manifest['input']} (seed {manifest['seed']})\n\n"
    text += markdown_table(["file"] + keys + ["sentences", "tokens", "% entity tokens"], rows)
    write_text_atomic(folder / "manifest.md", text)

