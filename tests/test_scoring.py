import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from spacy_nerimb.scoring import score_entities


def make_doc(nlp, words, ents):
    doc = Doc(nlp.vocab, words=words)
    doc.set_ents([Span(doc, s, e, label=l) for s, e, l in ents], default="outside")
    return doc


def test_strict_span_scores_match_hand_computation():
    nlp = spacy.blank("en")
    words = "Anna met Bob Smith in Paris and Rome today".split()
    gold = make_doc(nlp, words, [(0, 1, "PER"), (2, 4, "PER"), (5, 6, "LOC"), (7, 8, "LOC")])
    # predicted: Anna right, "Bob" wrong boundary, Paris right, "today" spurious DATE, Rome missed
    pred = make_doc(nlp, words, [(0, 1, "PER"), (2, 3, "PER"), (5, 6, "LOC"), (8, 9, "DATE")])
    words2 = "Smith visited Berlin".split()
    gold2 = make_doc(nlp, words2, [(0, 1, "PER"), (2, 3, "LOC")])
    pred2 = make_doc(nlp, words2, [(0, 1, "LOC"), (2, 3, "LOC")])  # wrong type counts as fp+fn
    scores = score_entities([Example(pred, gold), Example(pred2, gold2)])
    # per type (tp, fp, fn): PER (1, 1, 2); LOC (2, 1, 1); DATE (0, 1, 0)
    per = scores["ents_per_type"]
    assert per["PER"]["p"] == pytest.approx(1 / 2) and per["PER"]["r"] == pytest.approx(1 / 3)
    assert per["LOC"]["p"] == pytest.approx(2 / 3) and per["LOC"]["r"] == pytest.approx(2 / 3)
    assert per["DATE"] == {"p": 0.0, "r": 0.0, "f": 0.0}
    f_per = 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)
    assert scores["ents_macro_f"] == pytest.approx((f_per + 2 / 3 + 0.0) / 3)
    micro_p, micro_r = 3 / 6, 3 / 6
    assert scores["ents_p"] == pytest.approx(micro_p)
    assert scores["ents_r"] == pytest.approx(micro_r)
    assert scores["ents_f"] == pytest.approx(0.5)


def test_predictions_over_unannotated_tokens_are_ignored():
    nlp = spacy.blank("en")
    words = ["Anna", "in", "Paris"]
    gold = Doc(nlp.vocab, words=words, ents=["B-PER", "O", None])  # Paris unannotated
    pred = make_doc(nlp, words, [(0, 1, "PER"), (2, 3, "LOC")])
    scores = score_entities([Example(pred, gold)])
    assert scores["ents_p"] == 1.0 and scores["ents_r"] == 1.0
    assert set(scores["ents_per_type"]) == {"PER"}


def test_no_entities_anywhere_scores_zero_not_nan():
    nlp = spacy.blank("en")
    doc = make_doc(nlp, ["nothing", "here"], [])
    scores = score_entities([Example(make_doc(nlp, ["nothing", "here"], []), doc)])
    assert scores["ents_f"] == 0.0 and scores["ents_macro_f"] == 0.0


def test_scorer_resolves_through_registry():
    registry.ensure_populated()
    scorer = registry.scorers.get("spacy-nerimb.entity_scorer.v1")()
    assert scorer is score_entities
