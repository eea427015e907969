"""Corpus readers and converters: real NER file formats -> DocBin, one doc per sentence.

Formats (``format=``):

* ``conll`` -- token-per-line column files, tab or space separated, tag in the last
  (or a chosen) column, blank or whitespace-only lines between sentences,
  ``-DOCSTART-`` lines ignored. Weibo-style ``char+digits`` tokens (a character
  followed by its word-segmentation position) are detected and stripped.
* ``chars`` -- character-per-line Chinese, ``char<SPACE>tag``; the same reader,
  split on the last space only (so the character itself may be any symbol).
* ``gmb`` -- the GMB/Kaggle CSV ``Sentence #,Word,POS,Tag``, Windows-1252 by default.
* ``json`` / ``jsonl`` -- raw text with character-offset entity spans, tokenised by a
  spaCy language (``zh`` by character, ``ja`` through SudachiPy).

Tag sequences go through :func:`spacy_nerimb.tags.tags_to_spans`, whose repair rule
is counted and reported in one warning per file. Every output is written through
:func:`spacy_nerimb.util.atomic_path`.
"""
import contextlib
import csv
import gc
import io
import json
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.attrs import ENT_IOB, ENT_TYPE, ORTH, SENT_START
from spacy.strings import get_string_id
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .tags import (
    INPUT_SCHEMES,
    Span,
    add_type_to_bare_tags,
    detect_input_scheme,
    iob1_to_iob2,
    tags_to_spans,
)
from .util import PathLike, atomic_path, write_json_atomic

FORMATS = ("auto", "conll", "chars", "gmb", "json", "jsonl")
SCHEMES = ("auto",) + INPUT_SCHEMES
DOCBIN_ATTRS = ("ENT_IOB", "ENT_TYPE", "SENT_START")
# ENT_IOB codes as spaCy stores them.
IOB_I, IOB_O, IOB_B = 1, 2, 3
_ENTITY_PREFIXES = {"B", "I", "E", "S", "L", "U", "O"}
Progress = Optional[Callable[[str], None]]


class CorpusError(ValueError):
    """A corpus file cannot be read; the message names the file, line and setting."""


class TagRepairWarning(UserWarning):
    """Invalid tag transitions were repaired (one warning per file)."""


class NoEntitiesWarning(UserWarning):
    """A corpus holds no entity at all."""


class MisalignedSpanWarning(UserWarning):
    """Character spans that do not fall on token boundaries (reported, not kept)."""


class SentenceBoundaryWarning(UserWarning):
    """Docs without sentence boundaries are used whole as one sentence."""


def _error(path: PathLike, line: Optional[int], message: str, text: Optional[str] = None) -> CorpusError:
    where = f"{path}, line {line}" if line is not None else f"{path}"
    shown = f": {text!r}" if text is not None else ""
    return CorpusError(f"{where}: {message}{shown}")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (big speed-up)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- Reading text ---------------------------------------------------------------------


def read_text(path: PathLike, encoding: str = "utf-8") -> str:
    """Whole file as text; a decoding failure names the line and suggests ``--encoding``."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    data = path.read_bytes()
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.end]
        raise _error(
            path,
            line,
            f"cannot decode byte(s) {bad!r} as {encoding}; the file is in another encoding: "
            "pass it with --encoding (for example --encoding cp1252 or latin-1)",
        ) from None
    except LookupError:
        raise CorpusError(f"{path}: unknown encoding {encoding!r} (setting --encoding)") from None


def _lines(text: str) -> List[str]:
    """Lines of ``text`` split on ``\\n`` only (CRLF tolerated; no Unicode line breaks)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# --- Tagged sentences (the fast reader) ---------------------------------------------------


@dataclass
class TaggedCorpus:
    """Sentences as plain token and tag lists, with the line where each sentence starts."""

    path: Path
    words: List[List[str]] = field(default_factory=list)
    tags: List[List[str]] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)
    spaces: bool = True  # whether tokens are separated by a space in the text

    def __len__(self) -> int:
        return len(self.words)

    @property
    def n_tokens(self) -> int:
        return sum(len(w) for w in self.words)


def _tag_checker() -> Callable[[str], bool]:
    """A cached validity test for one raw tag string."""
    cache: Dict[str, bool] = {}

    def ok(tag: str) -> bool:
        known = cache.get(tag)
        if known is None:
            prefix, sep, label = tag.partition("-")
            if sep:
                known = prefix.upper() in _ENTITY_PREFIXES and bool(label.strip())
            else:
                known = tag.upper() in ("O", "B", "I")
            cache[tag] = known
        return known

    return ok


def _split_column_line(line: str, separator: str) -> List[str]:
    if separator == "tab" or (separator == "auto" and "\t" in line):
        return line.split("\t")
    if separator == "last-space":
        head, sep, tail = line.rpartition(" ")
        return [head, tail] if sep else [line]
    return [part for part in line.split(" ") if part]


def strip_segmentation_digits(token: str) -> str:
    """``"北0"`` -> ``"北"``, ``"e12"`` -> ``"e"``, ``"60"`` -> ``"6"`` (Weibo char+position)."""
    end = len(token)
    while end > 0 and token[end - 1].isdigit():
        end -= 1
    return token[:end] if end > 0 else token[:1]


def _looks_segmented(words: Sequence[Sequence[str]]) -> bool:
    """Whether every token is a character followed by a digit position (Weibo style)."""
    any_token = False
    for sentence in words:
        for token in sentence:
            any_token = True
            if len(token) < 2 or not token[-1].isdigit():
                return False
    return any_token


def read_columns(
    path: PathLike,
    *,
    tag_column: int = -1,
    token_column: int = 0,
    separator: str = "auto",
    encoding: str = "utf-8",
    strip_digits: Optional[bool] = None,
) -> TaggedCorpus:
    """Read a token-per-line column file into plain token/tag lists.

    ``separator``: ``"auto"`` (tab when the line has one, else runs of spaces),
    ``"tab"``, ``"space"`` or ``"last-space"`` (char-per-line files).
    ``strip_digits``: strip Weibo segmentation positions; ``None`` = detect.
    """
    path = Path(path)
    text = read_text(path, encoding)
    corpus = TaggedCorpus(path)
    tag_ok = _tag_checker()
    words: List[str] = []
    tags: List[str] = []
    start_line = 0
    needed = max(token_column, tag_column) + 1 if tag_column >= 0 else max(token_column + 1, 2)

    def flush() -> None:
        nonlocal words, tags
        if words:
            corpus.words.append(words)
            corpus.tags.append(tags)
            corpus.lines.append(start_line)
            words, tags = [], []

    with gc_paused():
        for number, line in enumerate(_lines(text), start=1):
            if not line.strip():
                flush()
                continue
            parts = _split_column_line(line, separator)
            if parts[0] == "-DOCSTART-" or line.startswith("-DOCSTART-"):
                flush()
                continue
            if len(parts) < needed:
                raise _error(
                    path, number,
                    f"expected at least {needed} columns (token and tag; tag column {tag_column}), "
                    f"found {len(parts)}", line,
                )
            token = parts[token_column]
            tag = parts[tag_column].strip()
            if token == "":
                raise _error(path, number, "empty token", line)
            if not tag_ok(tag):
                raise _error(
                    path, number,
                    f"malformed tag {tag!r} (expected O, B/I, or PREFIX-TYPE with prefix "
                    "B, I, E, S, L, U)", line,
                )
            if not words:
                start_line = number
            words.append(token)
            tags.append(tag)
        flush()
    if strip_digits is None:
        strip_digits = _looks_segmented(corpus.words)
    if strip_digits:
        corpus.words = [[strip_segmentation_digits(t) for t in s] for s in corpus.words]
    corpus.spaces = not (strip_digits or _mostly_single_characters(corpus.words))
    return corpus


def read_chars(path: PathLike, *, encoding: str = "utf-8") -> TaggedCorpus:
    """Character-per-line Chinese: ``char<SPACE>tag``, CRLF, single-space separator lines."""
    return read_columns(path, separator="last-space", encoding=encoding, strip_digits=False)


def _mostly_single_characters(words: Sequence[Sequence[str]], share: float = 0.95) -> bool:
    """Character-level text (Chinese, Japanese): tokens are then not space separated."""
    n = sum(len(s) for s in words)
    return n > 0 and sum(len(t) == 1 for s in words for t in s) >= share * n


def read_gmb_csv(path: PathLike, *, encoding: str = "cp1252") -> TaggedCorpus:
    """The GMB CSV (``Sentence #,Word,POS,Tag``; the sentence id only on first rows)."""
    path = Path(path)
    text = read_text(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise _error(path, None, "empty file (no header, no sentences)") from None
    try:
        sent_col, word_col, tag_col = (header.index(n) for n in ("sentence #", "word", "tag"))
    except ValueError:
        raise _error(path, 1, "header must name the columns 'Sentence #', 'Word' and 'Tag'",
                     ",".join(header)) from None
    corpus = TaggedCorpus(path)
    tag_ok = _tag_checker()
    words: Optional[List[str]] = None
    tags: List[str] = []
    with gc_paused():
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise _error(path, reader.line_num,
                             f"expected {len(header)} fields, found {len(row)}", ",".join(row))
            if row[sent_col].strip():
                words, tags = [], []
                corpus.words.append(words)
                corpus.tags.append(tags)
                corpus.lines.append(reader.line_num)
            elif words is None:
                raise _error(path, reader.line_num,
                             "the first row must start a sentence ('Sentence: N')", ",".join(row))
            tag = row[tag_col].strip()
            if not tag_ok(tag):
                raise _error(path, reader.line_num, f"malformed tag {tag!r}", ",".join(row))
            if row[word_col] == "":
                raise _error(path, reader.line_num, "empty token", ",".join(row))
            words.append(row[word_col])
            tags.append(tag)
    return corpus


def detect_format(path: PathLike) -> str:
    """Format from the file name: ``.csv`` -> gmb, ``.json``/``.jsonl``, else conll."""
    suffix = Path(path).suffix.lower()
    return {".csv": "gmb", ".json": "json", ".jsonl": "jsonl"}.get(suffix, "conll")


def read_tagged(
    path: PathLike,
    format: str = "auto",
    *,
    encoding: Optional[str] = None,
    tag_column: int = -1,
    strip_digits: Optional[bool] = None,
) -> TaggedCorpus:
    """Fast reader for the tagged formats (conll, chars, gmb): plain token/tag lists."""
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "gmb":
        return read_gmb_csv(path, encoding=encoding or "cp1252")
    if fmt == "chars":
        return read_chars(path, encoding=encoding or "utf-8")
    if fmt == "conll":
        return read_columns(path, tag_column=tag_column, encoding=encoding or "utf-8",
                            strip_digits=strip_digits)
    raise CorpusError(f"{path}: format {fmt!r} holds no tag columns (setting --format; "
                      f"tagged formats: conll, chars, gmb)")


# --- Tags -> spans ---------------------------------------------------------------------


@dataclass
class SpanCorpus:
    """Sentences as words plus entity spans; what a converter writes."""

    path: Path
    words: List[List[str]]
    spans: List[List[Span]]
    spaces: bool = True
    scheme: str = "IOB2"
    repairs: int = 0
    report: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)


REPAIR_RULE = (
    "an I-/E-/L- tag that does not continue an open entity of its type starts a new entity; "
    "lower-case prefixes are upper-cased; O-X is read as O"
)


def tagged_to_spans(
    corpus: TaggedCorpus, scheme: str = "auto", entity_type: Optional[str] = None
) -> SpanCorpus:
    """Parse the tags of ``corpus`` into spans, repairing and counting errors (one warning)."""
    if scheme not in SCHEMES:
        raise CorpusError(f"{corpus.path}: unknown tag scheme {scheme!r} "
                          f"(setting --scheme; expected one of {', '.join(SCHEMES)})")
    tags = corpus.tags
    bare = any(t in ("B", "I", "b", "i") for s in tags for t in s)
    if bare:
        if not entity_type:
            raise CorpusError(f"{corpus.path}: tags carry no entity type (bare B/I/O); "
                              "give one with --entity-type")
        tags = [add_type_to_bare_tags(s, entity_type) for s in tags]
    if scheme == "auto":
        scheme = detect_input_scheme(tags)
    spans: List[List[Span]] = []
    repairs = 0
    with gc_paused():
        for sentence in tags:
            if scheme == "IOB1":
                sentence = iob1_to_iob2(sentence)
            found, fixed = tags_to_spans(sentence)
            spans.append(found)
            repairs += fixed
    result = SpanCorpus(corpus.path, corpus.words, spans, corpus.spaces, scheme, repairs)
    if repairs:
        warnings.warn(
            f"{corpus.path}: repaired {repairs} tag(s) ({scheme}; rule: {REPAIR_RULE})",
            TagRepairWarning, stacklevel=2,
        )
    _check_not_empty(result)
    return result


def _check_not_empty(corpus: SpanCorpus) -> None:
    if not corpus.words:
        raise CorpusError(f"{corpus.path}: empty corpus (no sentences found)")
    if not any(corpus.spans):
        warnings.warn(f"{corpus.path}: no entities in {len(corpus.words)} sentences",
                      NoEntitiesWarning, stacklevel=3)


# --- DocBin building and selection -------------------------------------------------------


def new_docbin() -> DocBin:
    """An empty DocBin with the attributes the converters write."""
    return DocBin(attrs=list(DOCBIN_ATTRS), store_user_data=False)


def docbin_from_spans(corpus: SpanCorpus) -> DocBin:
    """Build the DocBin arrays directly (no Doc objects): one doc per sentence.

    Equivalent to adding ``Doc(words, spaces, sent_starts, ents)`` one by one, but
    an order of magnitude faster on million-token corpora.
    """
    db = new_docbin()
    cols = {attr: db.attrs.index(attr) for attr in (ORTH, ENT_IOB, ENT_TYPE, SENT_START)}
    lengths = numpy.fromiter((len(w) for w in corpus.words), dtype="int64", count=len(corpus.words))
    n_tokens = int(lengths.sum())
    starts = numpy.zeros(len(lengths) + 1, dtype="int64")
    numpy.cumsum(lengths, out=starts[1:])
    table = numpy.zeros((n_tokens, len(db.attrs)), dtype="uint64")
    with gc_paused():
        flat = [token for sentence in corpus.words for token in sentence]
        table[:, cols[ORTH]] = numpy.fromiter(map(get_string_id, flat), dtype="uint64", count=n_tokens)
        strings = set(flat)
        del flat
        iob = numpy.full(n_tokens, IOB_O, dtype="uint64")
        types = numpy.zeros(n_tokens, dtype="uint64")
        for offset, sentence_spans in zip(starts, corpus.spans):
            for start, end, label in sentence_spans:
                iob[offset + start] = IOB_B
                iob[offset + start + 1 : offset + end] = IOB_I
                types[offset + start : offset + end] = get_string_id(label)
                strings.add(label)
    sent = numpy.full(n_tokens, -1, dtype="int64")
    sent[starts[:-1][lengths > 0]] = 1
    table[:, cols[ENT_IOB]] = iob
    table[:, cols[ENT_TYPE]] = types
    table[:, cols[SENT_START]] = sent.astype("uint64")
    spaces = numpy.full((n_tokens, 1), corpus.spaces, dtype=bool)
    spaces[starts[1:] - 1] = False
    db.tokens = list(numpy.split(table, starts[1:-1]))
    db.spaces = list(numpy.split(spaces, starts[1:-1]))
    db.strings = strings | {""}
    n = len(lengths)
    db.cats = [{} for _ in range(n)]
    db.flags = [{"has_unknown_spaces": False} for _ in range(n)]
    db.span_groups = [b"" for _ in range(n)]
    db.user_data = []
    return db


def select_docbin(db: DocBin, indices: Sequence[int]) -> DocBin:
    """A DocBin holding docs ``indices`` of ``db`` (repeats allowed; arrays are shared)."""
    out = DocBin(store_user_data=db.store_user_data)
    out.attrs = list(db.attrs)
    out.strings = set(db.strings)
    idx = [int(i) for i in indices]
    out.tokens = [db.tokens[i] for i in idx]
    out.spaces = [db.spaces[i] for i in idx]
    out.cats = [db.cats[i] for i in idx]
    out.flags = [db.flags[i] for i in idx]
    out.span_groups = [db.span_groups[i] for i in idx]
    out.user_data = [db.user_data[i] for i in idx] if len(db.user_data) == len(db.tokens) else []
    return out


def _bin_header(n_bytes: int) -> bytes:
    """The msgpack header of a binary value of ``n_bytes`` bytes (smallest form)."""
    if n_bytes < 2**8:
        return b"\xc4" + struct.pack(">B", n_bytes)
    if n_bytes < 2**16:
        return b"\xc5" + struct.pack(">H", n_bytes)
    return b"\xc6" + struct.pack(">I", n_bytes)


def _array_chunks(arrays: Sequence[numpy.ndarray], dtype: str, per_chunk: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(arrays), per_chunk):
        yield numpy.concatenate(arrays[i : i + per_chunk]).astype(dtype, copy=False).tobytes("C")


def _docbin_pieces(db: DocBin) -> Iterator[bytes]:
    """The msgpack payload of ``DocBin.to_bytes`` in pieces, token arrays streamed in chunks."""
    n_tokens = sum(len(t) for t in db.tokens)
    fields: List[Tuple[str, Any]] = [
        ("version", db.version), ("attrs", db.attrs), ("tokens", None), ("spaces", None),
        ("lengths", numpy.asarray([len(t) for t in db.tokens], dtype="int32").tobytes("C")),
        ("strings", sorted(db.strings)), ("cats", db.cats), ("flags", db.flags),
        ("span_groups", db.span_groups),
    ]
    if db.store_user_data:
        fields.append(("user_data", db.user_data))
    yield struct.pack(">B", 0x80 | len(fields))  # fixmap
    for key, value in fields:
        yield srsly.msgpack_dumps(key)
        if key == "tokens":
            yield _bin_header(n_tokens * len(db.attrs) * 8) if db.tokens else _bin_header(0)
            if db.tokens:
                yield from _array_chunks(db.tokens, "uint64")
        elif key == "spaces":
            yield _bin_header(n_tokens) if db.spaces else _bin_header(0)
            if db.spaces:
                yield from _array_chunks(db.spaces, "bool")
        else:
            yield srsly.msgpack_dumps(value)


def write_docbin(db: DocBin, path: PathLike) -> Path:
    """Write ``db`` in spaCy's DocBin format, atomically and streamed.

    The bytes decode exactly like ``db.to_disk(path)``, but the token arrays are
    compressed chunk by chunk instead of being stacked and copied whole, so a
    resampled corpus (copies sharing arrays) never exists twice in memory.
    """
    path = Path(path)
    compressor = zlib.compressobj()
    with atomic_path(path) as tmp:
        with tmp.open("wb") as file:
            for piece in _docbin_pieces(db):
                file.write(compressor.compress(piece))
            file.write(compressor.flush())
    return path


def load_docbin(path: PathLike) -> DocBin:
    """A ``.spacy`` file, or every ``*.spacy`` file of a directory (sorted), as one DocBin."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.spacy"))
        if not files:
            raise CorpusError(f"{path}: no .spacy files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise CorpusError(f"{path}: no such file or directory")
    merged: Optional[DocBin] = None
    for file in files:
        try:
            db = DocBin().from_disk(file)
        except (ValueError, KeyError, TypeError) as err:
            raise CorpusError(f"{file}: not a spaCy DocBin (.spacy) file: {err}") from None
        if merged is None:
            merged = db
        else:
            if merged.attrs != db.attrs:
                raise CorpusError(f"{file}: stores other token attributes than {files[0]}")
            merged.merge(db)
    assert merged is not None
    return merged


def _column(db: DocBin, attr: int) -> Optional[int]:
    return db.attrs.index(attr) if attr in db.attrs else None


def sentence_docbin(db: DocBin, vocab: Optional[Vocab] = None, *, source: str = "") -> DocBin:
    """Split multi-sentence docs on their sentence boundaries (one doc per sentence).

    Docs with no sentence boundary at all are kept whole, with one warning.
    """
    col = _column(db, SENT_START)
    unmarked = 0
    multi: List[int] = []
    for i, tokens in enumerate(db.tokens):
        if len(tokens) <= 1:
            continue
        if col is None:
            unmarked += 1
            continue
        starts = tokens[:, col].astype("int64")
        if not starts[1:].any():
            unmarked += 1
        elif (starts[1:] == 1).any():
            multi.append(i)
    if unmarked:
        warnings.warn(
            f"{source or 'corpus'}: {unmarked} doc(s) carry no sentence boundaries; each is used "
            "whole as one sentence", SentenceBoundaryWarning, stacklevel=2,
        )
    if not multi:
        return db
    split_docs = dict(zip(multi, select_docbin(db, multi).get_docs(vocab or Vocab())))
    out = select_docbin(db, [])
    aligned = len(db.user_data) == len(db.tokens)
    for i in range(len(db)):
        if i in split_docs:
            for sent in split_docs[i].sents:
                out.add(sent.as_doc())
            continue
        out.tokens.append(db.tokens[i])
        out.spaces.append(db.spaces[i])
        out.cats.append(db.cats[i])
        out.flags.append(db.flags[i])
        out.span_groups.append(db.span_groups[i])
        if aligned and db.store_user_data:
            out.user_data.append(db.user_data[i])
    return out


# --- Flat entity arrays (stats, resampling, samplers) -----------------------------------


@dataclass
class EntityArrays:
    """Per-token entity annotation of a corpus of sentences as flat numpy arrays."""

    labels: List[str]  # type id -> label (sorted)
    type_ids: numpy.ndarray  # int32 per token; -1 = outside any entity
    begins: numpy.ndarray  # bool per token: first token of an entity
    lengths: numpy.ndarray  # int64 per sentence

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def n_sentences(self) -> int:
        return int(len(self.lengths))

    def sentence_ids(self) -> numpy.ndarray:
        """Sentence index of every token."""
        return numpy.repeat(numpy.arange(len(self.lengths)), self.lengths)

    def count_matrix(self) -> numpy.ndarray:
        """``c[s, t]``: tokens of type ``t`` in sentence ``s`` (int64, sentences x types)."""
        n, k = len(self.lengths), len(self.labels)
        inside = self.type_ids >= 0
        flat = self.sentence_ids()[inside] * k + self.type_ids[inside]
        return numpy.bincount(flat, minlength=n * k).reshape(n, k)

    @classmethod
    def from_spans(cls, lengths: Sequence[int], spans: Sequence[Sequence[Span]]) -> "EntityArrays":
        """From sentence lengths and ``(start, end, label)`` spans."""
        lengths_arr = numpy.asarray(lengths, dtype="int64")
        labels = sorted({label for sent in spans for _, _, label in sent})
        index = {label: i for i, label in enumerate(labels)}
        offsets = numpy.concatenate([[0], numpy.cumsum(lengths_arr)[:-1]]).astype("int64")
        type_ids = numpy.full(int(lengths_arr.sum()), -1, dtype="int32")
        begins = numpy.zeros(len(type_ids), dtype=bool)
        for offset, sent in zip(offsets, spans):
            for start, end, label in sent:
                type_ids[offset + start : offset + end] = index[label]
                begins[offset + start] = True
        return cls(labels, type_ids, begins, lengths_arr)

    @classmethod
    def from_docbin(cls, db: DocBin, *, source: str = "") -> "EntityArrays":
        """From the stored arrays of a DocBin (no Doc objects are built)."""
        type_col, iob_col = _column(db, ENT_TYPE), _column(db, ENT_IOB)
        if type_col is None or iob_col is None:
            raise CorpusError(f"{source or 'DocBin'}: stores no entity annotation (ENT_IOB/ENT_TYPE)")
        lengths = numpy.fromiter((len(t) for t in db.tokens), dtype="int64", count=len(db.tokens))
        if len(db.tokens):
            table = numpy.concatenate(db.tokens)
        else:
            table = numpy.zeros((0, len(db.attrs)), dtype="uint64")
        hashes, iob = table[:, type_col], table[:, iob_col]
        inside = hashes != 0
        unique, inverse = numpy.unique(hashes[inside], return_inverse=True)
        wanted = {int(h) for h in unique}
        by_hash = {h: s for h, s in ((get_string_id(s), s) for s in db.strings) if h in wanted}
        names = [by_hash.get(int(h), str(int(h))) for h in unique]
        labels = sorted(names)
        index = {label: i for i, label in enumerate(labels)}
        lookup = numpy.array([index[n] for n in names], dtype="int32")
        type_ids = numpy.full(len(hashes), -1, dtype="int32")
        if len(unique):
            type_ids[inside] = lookup[inverse.reshape(-1)]
        return cls(labels, type_ids, iob == IOB_B, lengths)

    @classmethod
    def from_docs(cls, docs: Sequence[Doc]) -> "EntityArrays":
        """From Doc objects (their ``doc.ents``)."""
        return cls.from_spans(
            [len(d) for d in docs], [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]
        )


# --- JSON / JSONL with character offsets -------------------------------------------------


def make_tokenizer_nlp(lang: str):
    """A blank spaCy pipeline for ``lang``; ``ja`` needs SudachiPy (clear error if absent)."""
    import spacy

    try:
        return spacy.blank(lang)
    except ImportError as err:
        if lang == "ja":
            raise CorpusError(
                "Japanese tokenisation needs SudachiPy: pip install sudachipy sudachidict-core "
                f"(setting --lang ja; {err})"
            ) from None
        raise CorpusError(f"cannot create a tokenizer for --lang {lang!r}: {err}") from None
    except Exception as err:  # spaCy raises its own error types for unknown languages
        raise CorpusError(f"cannot create a tokenizer for --lang {lang!r}: {err}") from None


def _records(path: Path, text: str, jsonl: bool) -> Iterator[Tuple[int, Any]]:
    """``(line or record number, record)`` pairs from JSON (a list) or JSONL text."""
    if jsonl:
        for number, line in enumerate(_lines(text), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise _error(path, number, f"invalid JSON ({err.msg})", line[:200]) from None
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise _error(path, err.lineno, f"invalid JSON ({err.msg})") from None
    if isinstance(data, dict):
        data = data.get("data", data.get("records", [data]))
    if not isinstance(data, list):
        raise _error(path, None, "expected a list of records with 'text' and 'entities'")
    for number, record in enumerate(data, start=1):
        yield number, record


def _entity_fields(entity: Any) -> Tuple[int, int, str]:
    """``(start, end, label)`` from ``{"span": [s, e], "type"}``, ``{start, end, label}`` or ``[s, e, label]``."""
    if isinstance(entity, (list, tuple)) and len(entity) >= 3:
        return int(entity[0]), int(entity[1]), str(entity[2])
    if isinstance(entity, dict):
        label = entity.get("type", entity.get("label"))
        if "span" in entity:
            start, end = entity["span"][:2]
        else:
            start, end = entity["start"], entity["end"]
        if label is None:
            raise KeyError("type")
        return int(start), int(end), str(label)
    raise TypeError(f"unsupported entity {entity!r}")


def read_json_spans(
    path: PathLike,
    *,
    lang: str = "en",
    jsonl: Optional[bool] = None,
    encoding: str = "utf-8",
    text_key: str = "text",
    entities_key: str = "entities",
    alignment: str = "strict",
    nlp: Any = None,
) -> Tuple[DocBin, Dict[str, Any]]:
    """JSON/JSONL records with raw text and character spans -> DocBin (one doc per record).

    Spans that do not fall on token boundaries (``alignment="strict"``) or that overlap
    an earlier entity are left out of the doc, listed in the returned report and
    summarised in one :class:`MisalignedSpanWarning`. ``alignment="expand"`` or
    ``"contract"`` snap them to tokens instead (spaCy's ``char_span`` modes).
    """
    path = Path(path)
    if alignment not in ("strict", "expand", "contract"):
        raise CorpusError(f"{path}: alignment {alignment!r} must be strict, expand or contract")
    if jsonl is None:
        jsonl = path.suffix.lower() == ".jsonl"
    text = read_text(path, encoding)
    if not text.strip():
        raise _error(path, None, "empty file (no records)")
    nlp = nlp or make_tokenizer_nlp(lang)
    db = new_docbin()
    misaligned: List[Dict[str, Any]] = []
    overlapping: List[Dict[str, Any]] = []
    n_entities = empty = 0
    for number, record in _records(path, text, jsonl):
        if not isinstance(record, dict) or text_key not in record:
            raise _error(path, number, f"record has no {text_key!r} field", str(record)[:200])
        raw = record[text_key]
        if not isinstance(raw, str):
            raise _error(path, number, f"{text_key!r} is not a string", str(raw)[:200])
        if not raw.strip():
            empty += 1
            continue
        doc = nlp.make_doc(raw)
        spans = []
        for entity in record.get(entities_key) or []:
            try:
                start, end, label = _entity_fields(entity)
            except (KeyError, TypeError, ValueError, IndexError):
                raise _error(path, number, "malformed entity (expected span/start/end and type/label)",
                             str(entity)[:200]) from None
            if not 0 <= start < end <= len(raw):
                raise _error(path, number, f"entity offsets {start}..{end} outside the text "
                             f"(length {len(raw)})", str(entity)[:200])
            span = doc.char_span(start, end, label=label, alignment_mode=alignment)
            info = {"record": number, "start": start, "end": end, "label": label,
                    "text": raw[start:end]}
            if span is None or len(span) == 0:
                misaligned.append(info)
                continue
            spans.append((span, info))
        kept = []
        taken = numpy.zeros(len(doc), dtype=bool)
        for span, info in sorted(spans, key=lambda s: (s[0].start, -len(s[0]))):
            if taken[span.start : span.end].any():
                overlapping.append(info)
                continue
            taken[span.start : span.end] = True
            kept.append(span)
        doc.set_ents(kept, default="outside")
        for i, token in enumerate(doc):
            token.is_sent_start = i == 0
        n_entities += len(kept)
        db.add(doc)
    report = {
        "records": len(db), "entities": n_entities, "empty_records_skipped": empty,
        "misaligned": misaligned, "overlapping": overlapping, "alignment": alignment,
    }
    if misaligned or overlapping:
        shown = "; ".join(f"record {m['record']} {m['start']}..{m['end']} {m['text']!r}"
                          for m in (misaligned + overlapping)[:5])
        warnings.warn(
            f"{path}: {len(misaligned)} span(s) do not align with {lang} tokens and "
            f"{len(overlapping)} overlap another entity; they are not in the output (all are listed "
            f"in the conversion report, --report FILE; alignment 'expand' or 'contract' snaps "
            f"spans to tokens, --alignment): {shown}",
            MisalignedSpanWarning, stacklevel=2,
        )
    if not len(db):
        raise _error(path, None, "no records with text")
    if not n_entities:
        warnings.warn(f"{path}: no entities in {len(db)} records", NoEntitiesWarning, stacklevel=2)
    return db, report


# --- Splits and the convert entry point --------------------------------------------------


def parse_ratios(spec: Union[str, Sequence[float]]) -> Dict[str, float]:
    """``"3:1"`` -> train/test, ``"8:1:1"`` -> train/dev/test (normalised to sum 1)."""
    if isinstance(spec, str):
        try:
            parts = [float(p) for p in spec.replace(",", ":").split(":") if p.strip()]
        except ValueError:
            raise CorpusError(f"split ratios {spec!r} must be numbers like 3:1 or 8:1:1 (setting --split)") from None
    else:
        parts = [float(p) for p in spec]
    names = {2: ("train", "test"), 3: ("train", "dev", "test")}.get(len(parts))
    if names is None or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise CorpusError(f"split ratios {spec!r}: give 2 (train:test) or 3 (train:dev:test) "
                          "non-negative numbers (setting --split)")
    total = sum(parts)
    return {name: p / total for name, p in zip(names, parts)}


def split_indices(n: int, ratios: Dict[str, float], seed: int = 0) -> Dict[str, numpy.ndarray]:
    """Seeded random split of ``range(n)``; each part keeps corpus order. Rounding goes to train."""
    order = numpy.random.default_rng(seed).permutation(n)
    names = list(ratios)
    sizes = {name: int(numpy.floor(ratios[name] * n)) for name in names}
    first = names[0]
    sizes[first] = n - sum(sizes[name] for name in names[1:])
    parts: Dict[str, numpy.ndarray] = {}
    start = 0
    for name in names:
        parts[name] = numpy.sort(order[start : start + sizes[name]])
        start += sizes[name]
    return parts


def convert(
    input_path: PathLike,
    output: PathLike,
    *,
    format: str = "auto",
    scheme: str = "auto",
    entity_type: Optional[str] = None,
    tag_column: int = -1,
    encoding: Optional[str] = None,
    strip_digits: Optional[bool] = None,
    lang: str = "en",
    alignment: str = "strict",
    split: Optional[Union[str, Sequence[float]]] = None,
    seed: int = 0,
    report_path: Optional[PathLike] = None,
    progress: Progress = None,
) -> Dict[str, Any]:
    """Convert one corpus file to DocBin(s); returns a report (also written as JSON if asked).

    ``output``: a ``.spacy`` file, or a directory (``<stem>.spacy``, or one file per
    split part with ``split="3:1"`` / ``"8:1:1"``).
    """
    input_path, output = Path(input_path), Path(output)
    say = progress or (lambda message: None)
    fmt = detect_format(input_path) if format == "auto" else format
    if fmt not in FORMATS:
        raise CorpusError(f"unknown format {format!r} (setting --format; expected one of {', '.join(FORMATS)})")
    say(f"reading {input_path} ({fmt})")
    report: Dict[str, Any] = {"input": str(input_path), "format": fmt}
    if fmt in ("json", "jsonl"):
        db, json_report = read_json_spans(
            input_path, lang=lang, jsonl=fmt == "jsonl", encoding=encoding or "utf-8",
            alignment=alignment,
        )
        report.update(json_report)
        arrays = EntityArrays.from_docbin(db)
    else:
        tagged = read_tagged(input_path, fmt, encoding=encoding, tag_column=tag_column,
                             strip_digits=strip_digits)
        spans = tagged_to_spans(tagged, scheme, entity_type)
        report.update({"scheme": spans.scheme, "repairs": spans.repairs})
        say(f"building {len(spans)} docs")
        db = docbin_from_spans(spans)
        arrays = EntityArrays.from_spans([len(w) for w in spans.words], spans.spans)
    report.update({
        "sentences": arrays.n_sentences, "tokens": arrays.n_tokens,
        "entities": int(arrays.begins.sum()), "entity_tokens": int((arrays.type_ids >= 0).sum()),
        "labels": arrays.labels,
    })
    outputs: Dict[str, Dict[str, Any]] = {}
    if split is None:
        target = output if output.suffix == ".spacy" else output / f"{input_path.stem}.spacy"
        say(f"writing {target}")
        write_docbin(db, target)
        outputs["all"] = {"path": str(target), "sentences": len(db)}
    else:
        if output.suffix == ".spacy":
            raise CorpusError(f"{output}: with --split the output must be a directory")
        ratios = parse_ratios(split)
        report["split"] = {"ratios": ratios, "seed": seed}
        for name, idx in split_indices(len(db), ratios, seed).items():
            target = output / f"{name}.spacy"
            say(f"writing {target} ({len(idx)} sentences)")
            write_docbin(select_docbin(db, idx), target)
            outputs[name] = {"path": str(target), "sentences": int(len(idx)),
                             "tokens": int(arrays.lengths[idx].sum())}
    report["outputs"] = outputs
    if report_path is not None:
        write_json_atomic(report_path, report)
    return report
