"""Sentence-level resampling (Wang & Wang, sC / sCR / sCRD / nsCRD) and its spaCy reader.

Paper variant (eqs. 1-4, the default), with ``c(t, s)`` the tokens of type ``t``
in sentence ``s``, ``r_t = -log2(sum_s c(t, s) / N)`` and ``l_s`` the length::

    sC    = 1 + sum_t c(t, s)
    sCR   = 1 + ceil(sqrt(sum_t r_t c(t, s)))
    sCRD  = 1 + ceil(sum_t r_t c(t, s) / sqrt(l_s))
    nsCRD = 1 + ceil(sum_t r_t sqrt(c(t, s)) / sqrt(l_s))

Reference-code variant (``variant="reference"``): the ``1 +`` moves inside::

    sCR   = ceil(sqrt(1 + sum_t r_t c))
    sCRD  = ceil((1 + sum_t r_t c) / sqrt(l_s))
    nsCRD = ceil((1 + sum_t r_t sqrt(c)) / sqrt(l_s))

(sC is the same in both.) A ceiling is taken after rounding to 9 decimals, so that
floating-point noise (``2.0000000000000004``) does not add a copy.
"""
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import numpy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry
from spacy.vocab import Vocab

from .corpora import (
    CorpusError,
    EntityArrays,
    load_docbin,
    select_docbin,
    sentence_docbin,
    write_docbin,
)
from .util import PathLike, markdown_table, write_json_atomic, write_text_atomic

METHODS = ("none", "sC", "sCR", "sCRD", "nsCRD")
VARIANTS = ("paper", "reference")
_DECIMALS = 9


def check_method(method: str) -> str:
    """Canonical method name (case-insensitive) or a clear error."""
    for name in METHODS:
        if isinstance(method, str) and method.lower() == name.lower():
            return name
    raise ValueError(f"Unknown resampling method {method!r}: expected one of {', '.join(METHODS)}.")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown resampling variant {variant!r}: expected one of {', '.join(VARIANTS)}.")
    return variant


def rareness(type_totals: numpy.ndarray, n_tokens: int) -> numpy.ndarray:
    """``r_t = -log2(total tokens of type t / N)`` (types with no token get 0)."""
    totals = numpy.asarray(type_totals, dtype="float64")
    r = numpy.zeros_like(totals)
    present = totals > 0
    if n_tokens > 0:
        r[present] = -numpy.log2(totals[present] / float(n_tokens))
    return r


def _ceil(values: numpy.ndarray) -> numpy.ndarray:
    return numpy.ceil(numpy.round(values, _DECIMALS)).astype("int64")


def importance_scores(
    counts: numpy.ndarray,
    lengths: numpy.ndarray,
    method: str = "sCR",
    variant: str = "paper",
    r: Optional[numpy.ndarray] = None,
) -> numpy.ndarray:
    """Integer repeat count per sentence from ``counts[s, t]`` and sentence lengths.

    ``r`` (rareness per type) defaults to the one of this very set of sentences.
    """
    method, variant = check_method(method), check_variant(variant)
    counts = numpy.asarray(counts, dtype="float64")
    lengths = numpy.asarray(lengths, dtype="float64")
    n = len(lengths)
    if method == "none":
        return numpy.ones(n, dtype="int64")
    if method == "sC":
        return 1 + counts.sum(axis=1).astype("int64")
    if r is None:
        r = rareness(counts.sum(axis=0), int(lengths.sum()))
    root_len = numpy.sqrt(numpy.maximum(lengths, 1.0))
    weighted = counts @ r if counts.size else numpy.zeros(n)
    if method == "sCR":
        if variant == "paper":
            return 1 + _ceil(numpy.sqrt(weighted))
        return _ceil(numpy.sqrt(1.0 + weighted))
    if method == "sCRD":
        if variant == "paper":
            return 1 + _ceil(weighted / root_len)
        return _ceil((1.0 + weighted) / root_len)
    damped = numpy.sqrt(counts) @ r if counts.size else numpy.zeros(n)
    if variant == "paper":
        return 1 + _ceil(damped / root_len)
    return _ceil((1.0 + damped) / root_len)


def repeat_counts(arrays: EntityArrays, method: str = "sCR", variant: str = "paper") -> numpy.ndarray:
    """Repeat count of every sentence of ``arrays`` (never below 1)."""
    counts = importance_scores(arrays.count_matrix(), arrays.lengths, method, variant)
    return numpy.maximum(counts, 1)


def resample_order(counts: numpy.ndarray, seed: int = 0, shuffle: bool = True) -> numpy.ndarray:
    """Sentence indices, each repeated ``counts[i]`` times: back to back, or shuffled (seeded)."""
    order = numpy.repeat(numpy.arange(len(counts), dtype="int64"), counts)
    if shuffle:
        numpy.random.default_rng(seed).shuffle(order)
    return order


def resampling_report(
    arrays: EntityArrays, counts: numpy.ndarray, method: str, variant: str
) -> Dict[str, Any]:
    """Size-increase factor and per-type token share before and after resampling."""
    matrix = arrays.count_matrix()
    before_types = matrix.sum(axis=0)
    after_types = (matrix * counts[:, None]).sum(axis=0)
    n_before = arrays.n_tokens
    n_after = int((arrays.lengths * counts).sum())
    ent_before, ent_after = int(before_types.sum()), int(after_types.sum())

    def pct(x: float, total: float) -> float:
        return round(100.0 * x / total, 4) if total else 0.0

    per_type = {
        label: {
            "tokens_before": int(before_types[i]), "tokens_after": int(after_types[i]),
            "share_before": pct(before_types[i], n_before), "share_after": pct(after_types[i], n_after),
            "share_of_entities_before": pct(before_types[i], ent_before),
            "share_of_entities_after": pct(after_types[i], ent_after),
        }
        for i, label in enumerate(arrays.labels)
    }
    return {
        "method": method, "variant": variant,
        "sentences_before": arrays.n_sentences, "sentences_after": int(counts.sum()),
        "tokens_before": n_before, "tokens_after": n_after,
        "size_increase_factor": round(float(counts.sum()) / max(arrays.n_sentences, 1), 4),
        "token_increase_factor": round(n_after / max(n_before, 1), 4),
        "entity_token_share_before": pct(ent_before, n_before),
        "entity_token_share_after": pct(ent_after, n_after),
        "max_repeats": int(counts.max()) if len(counts) else 0,
        "per_type": per_type,
    }


def report_markdown(report: Dict[str, Any]) -> str:
    """The resampling report as Markdown."""
    head = (
        f"# Resampling report: {report['method']} ({report['variant']} variant)\n\n"
        f"- sentences: {report['sentences_before']} -> {report['sentences_after']} "
        f"(size-increase factor {report['size_increase_factor']:.4f})\n"
        f"- tokens: {report['tokens_before']} -> {report['tokens_after']} "
        f"(factor {report['token_increase_factor']:.4f})\n"
        f"- entity tokens: {report['entity_token_share_before']:.2f} % -> "
        f"{report['entity_token_share_after']:.2f} %\n\n"
    )
    rows = [
        [label, v["tokens_before"], v["share_before"], v["tokens_after"], v["share_after"]]
        for label, v in sorted(report["per_type"].items(), key=lambda kv: kv[1]["tokens_before"])
    ]
    return head + markdown_table(
        ["type", "tokens before", "% of tokens before", "tokens after", "% of tokens after"], rows
    )


def load_sentences(path: PathLike, vocab: Optional[Vocab] = None) -> DocBin:
    """A DocBin (file or directory) as one doc per sentence."""
    return sentence_docbin(load_docbin(path), vocab, source=str(path))


def resample_docbin(
    input_path: PathLike,
    output: PathLike,
    *,
    method: str = "sCR",
    variant: str = "paper",
    seed: int = 0,
    shuffle: bool = True,
    report_path: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """Write a resampled DocBin plus a report (``<output>.report.json`` / ``.md`` by default).

    Copies share the stored token arrays of the original sentence until the
    single serialisation step, so no duplicated Doc objects are ever built.
    """
    method, variant = check_method(method), check_variant(variant)
    db = load_sentences(input_path)
    arrays = EntityArrays.from_docbin(db, source=str(input_path))
    counts = repeat_counts(arrays, method, variant)
    order = resample_order(counts, seed, shuffle)
    write_docbin(select_docbin(db, order), output)
    report = resampling_report(arrays, counts, method, variant)
    report.update({"input": str(input_path), "output": str(output), "seed": seed, "shuffle": shuffle})
    base = Path(report_path) if report_path else Path(str(output) + ".report.json")
    write_json_atomic(base, report)
    write_text_atomic(base.with_suffix(".md"), report_markdown(report))
    report["report_files"] = [str(base), str(base.with_suffix(".md"))]
    return report


class ResampledCorpus:
    """Re-iterable reader: yields each training sentence ``repeat_count`` times, lazily.

    Every call reads the DocBin again and yields the same sequence for the same
    seed. Copies of a sentence share one reference Doc; each gets its own
    predicted Doc, built only when it is yielded.
    """

    def __init__(
        self,
        path: PathLike,
        method: str = "sCR",
        variant: str = "paper",
        seed: int = 0,
        shuffle: bool = True,
        gold_preproc: bool = False,
        max_length: int = 0,
        limit: int = 0,
    ) -> None:
        if path is None:
            raise CorpusError("ResampledCorpus.v1: 'path' is not set (set [paths.train] or pass path=)")
        self.path = Path(path)
        self.method = check_method(method)
        self.variant = check_variant(variant)
        self.seed = seed
        self.shuffle = shuffle
        self.gold_preproc = gold_preproc
        self.max_length = max_length
        self.limit = limit

    def sentences(self, vocab: Vocab) -> DocBin:
        """The sentence DocBin after ``limit`` and ``max_length`` (long ones skipped, with a warning)."""
        db = load_sentences(self.path, vocab)
        if self.limit and self.limit > 0:
            db = select_docbin(db, range(min(self.limit, len(db))))
        if self.max_length and self.max_length > 0:
            keep = [i for i, t in enumerate(db.tokens) if len(t) <= self.max_length]
            if len(keep) < len(db):
                warnings.warn(
                    f"{self.path}: skipped {len(db) - len(keep)} sentence(s) longer than "
                    f"max_length={self.max_length}", UserWarning, stacklevel=2,
                )
                db = select_docbin(db, keep)
        return db

    def order(self, db: DocBin) -> numpy.ndarray:
        """Indices of the sentences to yield, repeats included."""
        if self.method == "none":
            counts = numpy.ones(len(db), dtype="int64")
        else:
            counts = repeat_counts(EntityArrays.from_docbin(db, source=str(self.path)),
                                   self.method, self.variant)
        return resample_order(counts, self.seed, self.shuffle)

    def __call__(self, nlp: Language) -> Iterator[Example]:
        db = self.sentences(nlp.vocab)
        order = self.order(db)
        references: List[Doc] = list(db.get_docs(nlp.vocab))
        texts: Dict[int, Any] = {}  # per original sentence: its text (or words and spaces)
        for index in order:
            yield self._example(nlp, references[index], texts, int(index))

    def _example(self, nlp: Language, reference: Doc, texts: Dict[int, Any], index: int) -> Example:
        source = texts.get(index)
        if source is None:
            if self.gold_preproc:
                source = ([t.text for t in reference], [bool(t.whitespace_) for t in reference])
            else:
                source = reference.text
            texts[index] = source
        if self.gold_preproc:
            predicted = Doc(nlp.vocab, words=source[0], spaces=source[1])
        else:
            predicted = nlp.make_doc(source)
        return Example(predicted, reference)


@registry.readers("spacy-nerimb.ResampledCorpus.v1")
def create_resampled_corpus(
    path: Optional[Path],
    method: str = "sCR",
    variant: str = "paper",
    seed: int = 0,
    shuffle: bool = True,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """spaCy reader: a DocBin corpus with each sentence repeated by its importance score."""
    return ResampledCorpus(path, method, variant, seed, shuffle, gold_preproc, max_length, limit)
