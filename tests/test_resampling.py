"""Resampling: hand-computed repeat counts, properties, the spaCy reader and the writer."""
import json
import warnings

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, Span
from spacy.util import registry

from spacy_nerimb.corpora import (
    EntityArrays,
    SentenceBoundaryWarning,
    load_docbin,
    new_docbin,
    write_docbin,
)
from spacy_nerimb.resampling import (
    METHODS,
    VARIANTS,
    ResampledCorpus,
    create_resampled_corpus,
    importance_scores,
    rareness,
    repeat_counts,
    resample_docbin,
    resample_order,
)

from conftest import require_corpus

# Three sentences, N = 16 tokens: s0 has 2 PER tokens (length 4), s1 one LOC token
# (length 4), s2 no entity (length 8). r_PER = -log2(2/16) = 3, r_LOC = -log2(1/16) = 4.
HAND = EntityArrays.from_spans([4, 4, 8], [[(0, 2, "PER")], [(1, 2, "LOC")], []])
EXPECTED = {
    # paper: sC = 1 + c; sCR = 1 + ceil(sqrt(6)) = 4, 1 + ceil(sqrt(4)) = 3;
    # sCRD = 1 + ceil(6 / 2) = 4, 1 + ceil(4 / 2) = 3;
    # nsCRD = 1 + ceil(3 sqrt(2) / 2 = 2.12) = 4, 1 + ceil(4 / 2) = 3
    ("sC", "paper"): [3, 2, 1],
    ("sCR", "paper"): [4, 3, 1],
    ("sCRD", "paper"): [4, 3, 1],
    ("nsCRD", "paper"): [4, 3, 1],
    # reference: sCR = ceil(sqrt(7)) = 3, ceil(sqrt(5)) = 3, ceil(sqrt(1)) = 1;
    # sCRD = ceil(7 / 2) = 4, ceil(5 / 2) = 3, ceil(1 / sqrt(8)) = 1;
    # nsCRD = ceil((1 + 4.24) / 2) = 3, ceil(5 / 2) = 3, 1
    ("sC", "reference"): [3, 2, 1],
    ("sCR", "reference"): [3, 3, 1],
    ("sCRD", "reference"): [4, 3, 1],
    ("nsCRD", "reference"): [3, 3, 1],
    ("none", "paper"): [1, 1, 1],
}


def test_rareness_is_self_information():
    assert rareness(numpy.array([2, 1, 0]), 16).tolist() == [3.0, 4.0, 0.0]


@pytest.mark.parametrize("method,variant", sorted(EXPECTED))
def test_hand_computed_counts(method, variant):
    assert repeat_counts(HAND, method, variant).tolist() == EXPECTED[(method, variant)]


def test_two_types_in_one_sentence():
    # N = 8: s0 = [A A B O], s1 = [O O O O]; r_A = -log2(2/8) = 2, r_B = -log2(1/8) = 3
    arrays = EntityArrays.from_spans([4, 4], [[(0, 2, "A"), (2, 3, "B")], []])
    # sC = 1 + 3; sCR = 1 + ceil(sqrt(2*2 + 3)) = 1 + 3; sCRD = 1 + ceil(7 / 2) = 5;
    # nsCRD = 1 + ceil((2 sqrt(2) + 3) / 2 = 2.91) = 4
    assert [int(repeat_counts(arrays, m)[0]) for m in ("sC", "sCR", "sCRD", "nsCRD")] == [4, 4, 5, 4]
    # reference: ceil(sqrt(8)) = 3, ceil(8 / 2) = 4, ceil((1 + 5.83) / 2) = 4
    assert [int(repeat_counts(arrays, m, "reference")[0]) for m in ("sCR", "sCRD", "nsCRD")] == [3, 4, 4]


def test_exact_ceilings_are_not_pushed_up_by_float_noise():
    # sCR paper: sum r c = 4 exactly -> 1 + 2, not 1 + 3
    counts = numpy.array([[1.0]])
    assert importance_scores(counts, numpy.array([4]), "sCR", r=numpy.array([4.0])).tolist() == [3]
    noisy = numpy.array([0.1 + 0.2 - 0.3 + 4.0])  # 4.000000000000001
    assert importance_scores(counts, numpy.array([4]), "sCR", r=noisy).tolist() == [3]


def test_unknown_method_and_variant():
    with pytest.raises(ValueError, match="Unknown resampling method"):
        repeat_counts(HAND, "sX")
    with pytest.raises(ValueError, match="Unknown resampling variant"):
        repeat_counts(HAND, "sCR", "code")
    assert repeat_counts(HAND, "scr").tolist() == EXPECTED[("sCR", "paper")]


sentence = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 3), st.sampled_from("ABC")), max_size=3),
    )
)


def _spans(n, raw):
    """Non-overlapping spans from raw (start, width, label) draws."""
    taken, spans = set(), []
    for start, width, label in raw:
        end = min(n, start + width)
        if not taken.intersection(range(start, end)):
            taken.update(range(start, end))
            spans.append((start, end, label))
    return sorted(spans)


@settings(max_examples=40, deadline=None)
@given(st.lists(sentence, min_size=1, max_size=25), st.integers(0, 2**16))
def test_every_sentence_at_least_once_and_entityless_exactly_once(corpus, seed):
    lengths = [n for n, _ in corpus]
    spans = [_spans(n, raw) for n, raw in corpus]
    arrays = EntityArrays.from_spans(lengths, spans)
    for method in METHODS:
        for variant in VARIANTS:
            counts = repeat_counts(arrays, method, variant)
            assert (counts >= 1).all()
            for count, sent_spans in zip(counts, spans):
                if not sent_spans:
                    assert count == 1
                elif method == "sC":
                    assert count == 1 + sum(e - s for s, e, _ in sent_spans)
            order = resample_order(counts, seed, shuffle=True)
            assert numpy.bincount(order, minlength=len(counts)).tolist() == counts.tolist()


# --- the reader ------------------------------------------------------------------------


def _tiny_corpus(tmp_path, multi_sentence=False):
    """Six sentences (one doc each), two with a rare entity; or three two-sentence docs."""
    vocab = spacy.blank("en").vocab
    db = new_docbin()
    rows = [
        (["Alice", "met", "Bob", "."], [(0, 1, "PER"), (2, 3, "PER")]),
        (["It", "rained", "."], []),
        (["Visit", "Paris", "now", "."], [(1, 2, "LOC")]),
        (["Nothing", "to", "see", "."], []),
        (["Acme", "Corp", "grew", "."], [(0, 2, "ORG")]),
        (["The", "end", "."], []),
    ]
    if multi_sentence:
        for (w1, s1), (w2, s2) in zip(rows[::2], rows[1::2]):
            doc = Doc(vocab, words=w1 + w2, sent_starts=[True] + [False] * (len(w1) - 1) + [True] + [False] * (len(w2) - 1))
            doc.set_ents([Span(doc, s, e, l) for s, e, l in s1] + [Span(doc, s + len(w1), e + len(w1), l) for s, e, l in s2], default="outside")
            db.add(doc)
    else:
        for words, spans in rows:
            doc = Doc(vocab, words=words, sent_starts=[True] + [False] * (len(words) - 1))
            doc.set_ents([Span(doc, s, e, l) for s, e, l in spans], default="outside")
            db.add(doc)
    path = tmp_path / ("multi.spacy" if multi_sentence else "tiny.spacy")
    write_docbin(db, path)
    return path, rows


def _texts(reader, nlp):
    return [eg.reference.text.strip() for eg in reader(nlp)]


def test_reader_is_registered_reiterable_and_seeded(tmp_path):
    path, rows = _tiny_corpus(tmp_path)
    nlp = spacy.blank("en")
    make = registry.readers.get("spacy-nerimb.ResampledCorpus.v1")
    reader = make(path, method="sCR", seed=1)
    first, second = _texts(reader, nlp), _texts(reader, nlp)
    assert first == second
    arrays = EntityArrays.from_spans([len(w) for w, _ in rows], [s for _, s in rows])
    counts = repeat_counts(arrays, "sCR")
    assert len(first) == counts.sum()
    for (words, _), count in zip(rows, counts):
        assert first.count(" ".join(words)) == count
    other = _texts(make(path, method="sCR", seed=2), nlp)
    assert sorted(other) == sorted(first) and other != first
    assert _texts(create_resampled_corpus(path, method="sCR", seed=1), nlp) == first


def test_reader_none_passes_through_and_no_shuffle_is_back_to_back(tmp_path):
    path, rows = _tiny_corpus(tmp_path)
    nlp = spacy.blank("en")
    texts = [" ".join(w) for w, _ in rows]
    assert _texts(ResampledCorpus(path, method="none", shuffle=False), nlp) == texts
    plain = _texts(ResampledCorpus(path, method="sC", shuffle=False), nlp)
    assert plain[:3] == [texts[0]] * 3 and plain[3] == texts[1]


def test_reader_examples_and_gold_preproc(tmp_path):
    path, _ = _tiny_corpus(tmp_path)
    nlp = spacy.blank("en")
    egs = list(ResampledCorpus(path, method="sC", gold_preproc=True, shuffle=False)(nlp))
    assert [t.text for t in egs[0].predicted] == ["Alice", "met", "Bob", "."]
    assert egs[0].reference is egs[1].reference  # copies share one reference doc
    assert egs[0].predicted is not egs[1].predicted
    assert [e.text for e in egs[0].reference.ents] == ["Alice", "Bob"]


def test_reader_splits_multi_sentence_docs(tmp_path):
    path, rows = _tiny_corpus(tmp_path, multi_sentence=True)
    nlp = spacy.blank("en")
    texts = _texts(ResampledCorpus(path, method="none", shuffle=False), nlp)
    assert texts == [" ".join(w) for w, _ in rows]
    single, _ = _tiny_corpus(tmp_path)
    assert sorted(_texts(ResampledCorpus(path, method="nsCRD"), nlp)) == sorted(
        _texts(ResampledCorpus(single, method="nsCRD"), nlp)
    )


def test_reader_warns_without_sentence_boundaries_and_on_long_sentences(tmp_path):
    vocab = spacy.blank("en").vocab
    db = new_docbin()
    doc = Doc(vocab, words=["one", "long", "doc", "without", "bounds"])
    doc.set_ents([Span(doc, 0, 1, "X")], default="outside")
    db.add(doc)
    db.add(Doc(vocab, words=["short"]))
    write_docbin(db, tmp_path / "nb.spacy")
    nlp = spacy.blank("en")
    with pytest.warns(SentenceBoundaryWarning):
        assert len(list(ResampledCorpus(tmp_path / "nb.spacy", method="none")(nlp))) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(ResampledCorpus(tmp_path / "nb.spacy", method="none", max_length=3)(nlp))
    assert len(out) == 1
    assert any("longer than max_length=3" in str(w.message) for w in caught)


def test_reader_limit(tmp_path):
    path, rows = _tiny_corpus(tmp_path)
    texts = _texts(ResampledCorpus(path, method="none", limit=2, shuffle=False), spacy.blank("en"))
    assert texts == [" ".join(w) for w, _ in rows[:2]]


def test_resample_docbin_writes_copies_and_report(tmp_path):
    path, rows = _tiny_corpus(tmp_path)
    report = resample_docbin(path, tmp_path / "out.spacy", method="sC", seed=0)
    db = load_docbin(tmp_path / "out.spacy")
    assert len(db) == report["sentences_after"] == 3 + 1 + 2 + 1 + 3 + 1
    assert report["size_increase_factor"] == pytest.approx(11 / 6, abs=1e-4)
    saved = json.loads((tmp_path / "out.spacy.report.json").read_text())
    assert saved["per_type"]["PER"]["tokens_after"] == 2 * 3
    assert saved["entity_token_share_after"] > saved["entity_token_share_before"]
    assert (tmp_path / "out.spacy.report.md").read_text().startswith("# Resampling report")
    docs = list(db.get_docs(spacy.blank("en").vocab))
    assert sum(1 for d in docs if d.text.strip() == "Alice met Bob .") == 3


def test_real_corpus_factors_are_plausible():
    path = require_corpus("wnut17", "wnut17train.conll")
    from spacy_nerimb.corpora import read_tagged, tagged_to_spans

    spans = tagged_to_spans(read_tagged(path))
    arrays = EntityArrays.from_spans([len(w) for w in spans.words], spans.spans)
    n = arrays.n_sentences
    factors = {m: repeat_counts(arrays, m).sum() / n for m in ("sC", "sCR", "sCRD", "nsCRD")}
    # entity-less sentences (64 %) stay once; sC adds one copy per entity token
    assert factors["sC"] == pytest.approx(1 + arrays.count_matrix().sum() / n)
    assert all(f > 1.0 for f in factors.values())


@pytest.mark.slow
def test_reader_in_a_real_spacy_training_run(tmp_path):
    from spacy.cli.init_config import init_config
    from spacy.cli.train import train

    path, _ = _tiny_corpus(tmp_path)
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency")
    config["corpora"]["train"] = {
        "@readers": "spacy-nerimb.ResampledCorpus.v1", "path": "${paths.train}",
        "method": "sCR", "seed": 1,
    }
    config["training"]["max_steps"] = 6
    config["training"]["eval_frequency"] = 3
    config.to_disk(tmp_path / "config.cfg")
    train(tmp_path / "config.cfg", tmp_path / "model",
          overrides={"paths.train": str(path), "paths.dev": str(path)})
    nlp = spacy.load(tmp_path / "model" / "model-last")
    assert set(nlp.get_pipe("ner").labels) == {"LOC", "ORG", "PER"}
