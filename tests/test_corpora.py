"""Converters: real corpora reproduce the data README's figures; bad input gives clear errors."""
import json
import warnings
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span

from spacy_nerimb.corpora import (
    CorpusError,
    EntityArrays,
    MisalignedSpanWarning,
    NoEntitiesWarning,
    SentenceBoundaryWarning,
    TagRepairWarning,
    convert,
    docbin_from_spans,
    load_docbin,
    new_docbin,
    parse_ratios,
    read_columns,
    read_gmb_csv,
    read_json_spans,
    read_tagged,
    select_docbin,
    sentence_docbin,
    split_indices,
    strip_segmentation_digits,
    tagged_to_spans,
    write_docbin,
)
from spacy_nerimb.tags import detect_input_scheme, iob1_to_iob2

from conftest import require_corpus

# (folder, file, sentences, tokens, % entity tokens (README, 1 decimal), % sentences with
#  entities (README, integer), types, rarest type, most frequent type, tag repairs)
README_SPLITS = [
    ("wnut17", "wnut17train.conll", 3394, 62730, 5.0, 36, 6, "corporation", "person", 0),
    ("wnut17", "emerging.dev.conll", 1009, 15733, 8.0, 62, 6, None, None, 0),
    ("wnut17", "emerging.test.annotated", 1287, 23394, 7.4, 54, 6, None, None, 0),
    ("anatem", "train.tsv", 5861, 153823, 7.7, 60, 1, "Anatomy", "Anatomy", 0),
    ("anatem", "devel.tsv", 2118, 58785, 6.1, 53, 1, "Anatomy", "Anatomy", 0),
    ("anatem", "test.tsv", 3830, 99976, 7.9, 60, 1, "Anatomy", "Anatomy", 0),
    ("bc5cdr", "train.tsv", 4560, 118170, 12.0, 83, 2, None, None, 0),
    ("bc5cdr", "devel.tsv", 4581, 117453, 12.0, 83, 2, None, None, 0),
    ("bc5cdr", "test.tsv", 4797, 124750, 11.4, 83, 2, None, None, 0),
    ("zh-weibo", "weiboNER_2nd_conll.train", 1350, 73778, 6.7, 55, 8, "GPE.NOM", "PER.NOM", 10),
    ("zh-weibo", "weiboNER_2nd_conll.dev", 270, 14509, 6.7, 54, 8, None, None, 0),
    ("zh-weibo", "weiboNER_2nd_conll.test", 270, 14842, 7.3, 60, 8, None, None, 4),
]


def _convert_quietly(path: Path, out: Path, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = convert(path, out, **options)
    return report, caught


@pytest.mark.parametrize(
    "folder,name,n_sent,n_tok,ent_pct,sent_pct,n_types,rarest,most,repairs", README_SPLITS,
    ids=[f"{f}/{n}" for f, n, *_ in README_SPLITS],
)
def test_real_corpus_matches_readme_and_round_trips(
    tmp_path, folder, name, n_sent, n_tok, ent_pct, sent_pct, n_types, rarest, most, repairs
):
    path = require_corpus(folder, name)
    out = tmp_path / "out.spacy"
    report, caught = _convert_quietly(path, out)
    assert report["sentences"] == n_sent
    assert report["tokens"] == n_tok
    assert report["repairs"] == repairs
    repair_warnings = [w for w in caught if issubclass(w.category, TagRepairWarning)]
    assert len(repair_warnings) == (1 if repairs else 0)
    # read back: every entity of the tag file is a doc.ents span of its sentence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TagRepairWarning)
        spans = tagged_to_spans(read_tagged(path), "auto").spans
    docs = list(load_docbin(out).get_docs(spacy.blank("en").vocab))
    assert len(docs) == n_sent and sum(len(d) for d in docs) == n_tok
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == spans
    arrays = EntityArrays.from_docs(docs)
    share = 100.0 * (arrays.type_ids >= 0).sum() / n_tok
    assert abs(share - ent_pct) < 0.06  # the README rounds 2-decimal figures to 1 decimal
    with_entities = 100.0 * sum(1 for d in docs if d.ents) / n_sent
    assert abs(with_entities - sent_pct) < 0.6
    assert len(arrays.labels) == n_types
    if rarest:
        totals = numpy.bincount(arrays.type_ids[arrays.type_ids >= 0])
        assert arrays.labels[int(totals.argmin())] == rarest
        assert arrays.labels[int(totals.argmax())] == most


def test_wnut17_train_exact_figures():
    path = require_corpus("wnut17", "wnut17train.conll")
    corpus = read_tagged(path)
    arrays = EntityArrays.from_spans([len(w) for w in corpus.words], tagged_to_spans(corpus).spans)
    assert (len(corpus), corpus.n_tokens) == (3394, 62730)
    assert f"{100 * (arrays.type_ids >= 0).sum() / arrays.n_tokens:.2f}" == "5.04"
    # whitespace-only (single TAB) separator lines are sentence boundaries
    raw = path.read_text(encoding="utf8").split("\n")
    assert sum(1 for line in raw if line == "\t") > 0


def test_weibo_digits_stripped_and_chinese_text_unspaced(tmp_path):
    path = require_corpus("zh-weibo", "weiboNER_2nd_conll.dev")
    corpus = read_tagged(path)
    assert not corpus.spaces
    assert all(not t[-1].isdigit() or len(t) == 1 for s in corpus.words for t in s)
    convert(path, tmp_path / "dev.spacy")
    doc = next(load_docbin(tmp_path / "dev.spacy").get_docs(spacy.blank("zh").vocab))
    assert " " not in doc.text


def test_gmb_csv_full_conversion_and_seeded_split(tmp_path):
    path = require_corpus("gmb", "ner_dataset.csv")
    report = convert(path, tmp_path, split="3:1", seed=0)
    assert (report["sentences"], report["tokens"]) == (47959, 1048575)
    assert round(100 * report["entity_tokens"] / report["tokens"], 1) == 15.3
    assert report["repairs"] == 0
    parts = report["outputs"]
    assert parts["train"]["sentences"] + parts["test"]["sentences"] == 47959
    assert parts["test"]["sentences"] == 47959 // 4
    train = load_docbin(tmp_path / "train.spacy")
    test = load_docbin(tmp_path / "test.spacy")
    arrays = EntityArrays.from_docbin(train)
    both = EntityArrays.from_docbin(select_docbin(train, range(len(train))))
    assert arrays.n_tokens + EntityArrays.from_docbin(test).n_tokens == 1048575
    assert both.labels == ["art", "eve", "geo", "gpe", "nat", "org", "per", "tim"]
    totals = numpy.bincount(arrays.type_ids[arrays.type_ids >= 0])
    assert arrays.labels[int(totals.argmin())] == "nat"
    assert arrays.labels[int(totals.argmax())] == "geo"
    # sentences with entities: 85 %
    full = EntityArrays.from_spans(
        [len(w) for w in read_gmb_csv(path).words], tagged_to_spans(read_gmb_csv(path)).spans
    )
    assert round(100 * (full.count_matrix().sum(axis=1) > 0).mean()) == 85


# --- synthetic files: formats ---------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf8", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def test_conll2003_space_separated_with_docstart(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n"
        "-DOCSTART- -X- -X- O\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
    )
    corpus = read_tagged(_write(tmp_path, "c.txt", text))
    assert corpus.words == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    spans = tagged_to_spans(corpus)
    assert spans.spans == [[(0, 1, "ORG"), (2, 3, "MISC")], [(0, 2, "PER")]]
    chunk = read_columns(_write(tmp_path, "c2.txt", text), tag_column=2)
    assert chunk.tags[0] == ["B-NP", "B-VP", "B-NP", "I-NP"]


def test_iob1_detected_and_not_counted_as_repairs(tmp_path):
    text = "John I-PER\nSmith I-PER\nand O\nAnn I-PER\nBob B-PER\nmet O\nUS I-LOC\n"
    corpus = read_tagged(_write(tmp_path, "iob1.txt", text))
    assert detect_input_scheme(corpus.tags) == "IOB1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spans = tagged_to_spans(corpus)
    assert spans.scheme == "IOB1" and spans.repairs == 0
    assert spans.spans == [[(0, 2, "PER"), (3, 4, "PER"), (4, 5, "PER"), (6, 7, "LOC")]]
    assert iob1_to_iob2(["I-X", "I-X", "B-X", "O", "I-Y"]) == ["B-X", "I-X", "B-X", "O", "B-Y"]


def test_bioes_and_bare_bio_with_type(tmp_path):
    bioes = read_tagged(_write(tmp_path, "b.txt", "a S-X\nb B-Y\nc E-Y\nd O\n"))
    result = tagged_to_spans(bioes)
    assert result.scheme == "BIOES" and result.spans == [[(0, 1, "X"), (1, 3, "Y")]]
    bare = read_tagged(_write(tmp_path, "bare.txt", "a B\nb I\nc O\nd B\n"))
    with pytest.raises(CorpusError, match="--entity-type"):
        tagged_to_spans(bare)
    typed = tagged_to_spans(bare, entity_type="Disease")
    assert typed.spans == [[(0, 2, "Disease"), (3, 4, "Disease")]]


def test_repairs_counted_in_one_warning(tmp_path):
    text = "a O\nb I-PER\nc I-PER\n\nd B-PER\ne I-LOC\n\nf i-ORG\ng O-X\n"
    corpus = read_tagged(_write(tmp_path, "rep.txt", text))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tagged_to_spans(corpus, "IOB2")
    # I- opening (1), type switch (1), lower-case opening i- (1), O-X (1)
    assert result.repairs == 4
    repair = [w for w in caught if issubclass(w.category, TagRepairWarning)]
    assert len(repair) == 1 and "repaired 4 tag(s)" in str(repair[0].message)
    assert result.spans == [[(1, 3, "PER")], [(0, 1, "PER"), (1, 2, "LOC")], [(0, 1, "ORG")]]


def test_chars_format_crlf_and_single_space_separators(tmp_path):
    text = "北 B-LOC\n京 I-LOC\n是 O\n \n我 O\n　 O\n爱 O\n"
    path = _write(tmp_path, "chars.txt", text, newline="\r\n")
    report = convert(path, tmp_path / "chars.spacy", format="chars")
    assert (report["sentences"], report["tokens"], report["entities"]) == (2, 6, 1)
    docs = list(load_docbin(tmp_path / "chars.spacy").get_docs(spacy.blank("zh").vocab))
    assert docs[0].text == "北京是" and docs[0].ents[0].text == "北京"
    assert docs[1][1].text == "\u3000"  # an ideographic space is a character token


def test_strip_segmentation_digits():
    assert strip_segmentation_digits("北0") == "北"
    assert strip_segmentation_digits("e12") == "e"
    assert strip_segmentation_digits("60") == "6"
    assert strip_segmentation_digits("\ufffd\ufffd0") == "\ufffd\ufffd"


def test_gmb_style_csv_cp1252_crlf_quoted(tmp_path):
    text = (
        "Sentence #,Word,POS,Tag\n"
        "Sentence: 1,Caf\u00e9,NNP,B-geo\n,in,IN,O\n,\"10,000\",CD,O\n,\"\"\"\",``,O\n"
        "Sentence: 2,Mr.,NNP,B-per\n,Smith,NNP,I-per\n"
    )
    path = _write(tmp_path, "g.csv", text, encoding="cp1252", newline="\r\n")
    corpus = read_gmb_csv(path)
    assert corpus.words == [["Caf\u00e9", "in", "10,000", '"'], ["Mr.", "Smith"]]
    assert tagged_to_spans(corpus).spans == [[(0, 1, "geo")], [(0, 2, "per")]]
    with pytest.raises(CorpusError, match="--encoding"):
        read_gmb_csv(path, encoding="utf-8")


def test_gmb_malformed_rows(tmp_path):
    bad = _write(tmp_path, "bad.csv", "Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O\n,b,NN\n")
    with pytest.raises(CorpusError, match=r"bad\.csv, line 3: expected 4 fields"):
        read_gmb_csv(bad)
    headless = _write(tmp_path, "h.csv", "Sentence #,Word,POS,Tag\n,a,DT,O\n")
    with pytest.raises(CorpusError, match="line 2: the first row must start a sentence"):
        read_gmb_csv(headless)
    with pytest.raises(CorpusError, match="empty file"):
        read_gmb_csv(_write(tmp_path, "e.csv", ""))


# --- bad input -----------------------------------------------------------------------


def test_malformed_line_names_file_line_and_text(tmp_path):
    path = _write(tmp_path, "m.conll", "a\tO\nb\tB-PER\nbroken-line-without-tag\nc\tO\n")
    with pytest.raises(CorpusError) as err:
        read_tagged(path)
    message = str(err.value)
    assert "m.conll, line 3" in message and "broken-line-without-tag" in message


def test_malformed_tag_is_an_error(tmp_path):
    path = _write(tmp_path, "t.conll", "a\tO\nb\tX-PER\n")
    with pytest.raises(CorpusError, match=r"line 2: malformed tag 'X-PER'"):
        read_tagged(path)


def test_wrong_encoding_suggests_option(tmp_path):
    path = _write(tmp_path, "latin.conll", "caf\u00e9\tO\nParis\tB-LOC\n", encoding="cp1252")
    with pytest.raises(CorpusError, match=r"line 1: cannot decode.*--encoding"):
        read_tagged(path)
    assert read_tagged(path, encoding="cp1252").words == [["caf\u00e9", "Paris"]]


def test_empty_file_and_no_entities(tmp_path):
    empty = _write(tmp_path, "empty.conll", "\n \n\t\n")
    with pytest.raises(CorpusError, match="empty corpus"):
        convert(empty, tmp_path / "e.spacy")
    assert not (tmp_path / "e.spacy").exists()
    plain = _write(tmp_path, "plain.conll", "a\tO\nb\tO\n")
    with pytest.warns(NoEntitiesWarning, match="no entities"):
        convert(plain, tmp_path / "p.spacy")
    assert (tmp_path / "p.spacy").exists()


def test_failed_conversion_leaves_no_output(tmp_path):
    bad = _write(tmp_path, "bad.conll", "a\tO\nb\n")
    with pytest.raises(CorpusError):
        convert(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not list(tmp_path.glob("**/*.tmp"))


# --- JSON / JSONL --------------------------------------------------------------------


def test_jsonl_spans_misaligned_reported_not_silently_dropped(tmp_path):
    records = [
        {"text": "Apple Inc. hired Tim Cook.", "entities": [
            {"name": "Apple Inc.", "span": [0, 10], "type": "ORG"},
            {"name": "Tim Coo", "span": [17, 24], "type": "PER"},  # ends mid-token
        ]},
        {"text": "Paris is nice.", "entities": [{"start": 0, "end": 5, "label": "LOC"}]},
        {"text": "Nothing here.", "entities": []},
    ]
    path = _write(tmp_path, "r.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.warns(MisalignedSpanWarning, match="1 span\\(s\\) do not align"):
        report = convert(path, tmp_path / "r.spacy", lang="en")
    assert report["entities"] == 2
    assert report["misaligned"] == [
        {"record": 1, "start": 17, "end": 24, "label": "PER", "text": "Tim Coo"}
    ]
    docs = list(load_docbin(tmp_path / "r.spacy").get_docs(spacy.blank("en").vocab))
    assert [(e.text, e.label_) for d in docs for e in d.ents] == [("Apple Inc.", "ORG"), ("Paris", "LOC")]
    expanded, rep = read_json_spans(path, lang="en", alignment="expand")
    assert rep["misaligned"] == [] and rep["entities"] == 3


def test_json_list_chinese_by_character(tmp_path):
    data = [{"text": "我爱北京天安门", "entities": [[2, 4, "LOC"], [4, 7, "LOC"]]}]
    path = _write(tmp_path, "zh.json", json.dumps(data, ensure_ascii=False))
    db, report = read_json_spans(path, lang="zh")
    doc = next(db.get_docs(spacy.blank("zh").vocab))
    assert len(doc) == 7 and [e.text for e in doc.ents] == ["北京", "天安门"]


def test_json_japanese_needs_sudachi_or_works(tmp_path):
    data = [{"text": "山田太郎は東京に住む。", "entities": [{"name": "東京", "span": [5, 7], "type": "地名"}]}]
    path = _write(tmp_path, "ja.json", json.dumps(data, ensure_ascii=False))
    try:
        import sudachipy  # noqa: F401
    except ImportError:
        with pytest.raises(CorpusError, match="pip install sudachipy sudachidict-core"):
            read_json_spans(path, lang="ja")
        return
    db, report = read_json_spans(path, lang="ja")
    doc = next(db.get_docs(spacy.blank("ja").vocab))
    assert [e.text for e in doc.ents] == ["東京"]


def test_json_bad_records(tmp_path):
    path = _write(tmp_path, "bad.jsonl", '{"text": "a b"}\n{"txt": "oops"}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl, line 2: record has no 'text'"):
        read_json_spans(path)
    path = _write(tmp_path, "bad2.jsonl", '{"text": "a b", "entities": [[0, 99, "X"]]}\n')
    with pytest.raises(CorpusError, match="outside the text"):
        read_json_spans(path)
    path = _write(tmp_path, "bad3.jsonl", '{"text": "a b"\n')
    with pytest.raises(CorpusError, match="line 1: invalid JSON"):
        read_json_spans(path)


# --- DocBin helpers and splits --------------------------------------------------------


def test_fast_docbin_equals_doc_by_doc(tmp_path):
    path = _write(tmp_path, "x.conll", "New\tB-LOC\nYork\tI-LOC\nis\tO\n\nBob\tB-PER\n")
    spans = tagged_to_spans(read_tagged(path))
    fast = docbin_from_spans(spans)
    vocab = spacy.blank("en").vocab
    slow = new_docbin()
    for words, sent_spans in zip(spans.words, spans.spans):
        doc = Doc(vocab, words=words, sent_starts=[True] + [False] * (len(words) - 1))
        doc.set_ents([Span(doc, s, e, label) for s, e, label in sent_spans], default="outside")
        slow.add(doc)
    assert fast.attrs == slow.attrs
    for a, b in zip(fast.tokens, slow.tokens):
        assert (a == b).all()
    fast_docs = list(fast.get_docs(vocab))
    assert [d.text for d in fast_docs] == ["New York is", "Bob"]
    assert [e.text for e in fast_docs[0].ents] == ["New York"]


def test_split_is_seeded_and_complete():
    ratios = parse_ratios("8:1:1")
    a = split_indices(103, ratios, seed=3)
    b = split_indices(103, ratios, seed=3)
    c = split_indices(103, ratios, seed=4)
    assert all((a[k] == b[k]).all() for k in a)
    assert any(len(a[k]) != len(c[k]) or (a[k] != c[k]).any() for k in a)
    assert sorted(numpy.concatenate(list(a.values())).tolist()) == list(range(103))
    assert [len(a[k]) for k in ("train", "dev", "test")] == [83, 10, 10]
    with pytest.raises(CorpusError, match="--split"):
        parse_ratios("1:2:3:4")


def test_sentence_docbin_splits_multi_sentence_docs(tmp_path):
    vocab = spacy.blank("en").vocab
    db = new_docbin()
    doc = Doc(vocab, words=["A", "b", ".", "C", "d", "."], sent_starts=[True, False, False, True, False, False])
    doc.set_ents([Span(doc, 3, 4, "X")])
    db.add(doc)
    out = sentence_docbin(db, vocab)
    docs = list(out.get_docs(vocab))
    assert [d.text.strip() for d in docs] == ["A b .", "C d ."]
    assert [(e.text, e.label_) for e in docs[1].ents] == [("C", "X")]
    plain = new_docbin()
    plain.add(Doc(vocab, words=["no", "bounds"]))
    with pytest.warns(SentenceBoundaryWarning, match="no sentence boundaries"):
        assert len(sentence_docbin(plain, vocab)) == 1


def test_load_docbin_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        load_docbin(tmp_path / "missing.spacy")
    junk = tmp_path / "junk.spacy"
    junk.write_bytes(b"not a docbin")
    with pytest.raises(CorpusError, match="not a spaCy DocBin"):
        load_docbin(junk)
    write_docbin(new_docbin(), tmp_path / "d" / "a.spacy")
    assert len(load_docbin(tmp_path / "d")) == 0


def test_streamed_write_is_byte_identical_to_spacy(tmp_path):
    vocab = spacy.blank("en").vocab
    db = new_docbin()
    for words in (["a", "b"], ["c"], ["d", "e", "f"]):
        doc = Doc(vocab, words=words, sent_starts=[True] + [False] * (len(words) - 1))
        doc.set_ents([Span(doc, 0, 1, "X")], default="outside")
        db.add(doc)
    for candidate in (db, select_docbin(db, [2, 0, 0, 1, 2]), new_docbin()):
        write_docbin(candidate, tmp_path / "s.spacy")
        assert (tmp_path / "s.spacy").read_bytes() == candidate.to_bytes()
