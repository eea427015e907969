"""The imbalanced_ner component: training, prediction, serialisation, bad input."""
import random

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed

from spacy_nerimb.pipeline import ImbalancedNER
from spacy_nerimb.synthetic import synthetic_docs


TEXTS = [
    "Anna Kovacs travelled to Kaselstad last week .",
    "Shares of Mitor Labs rose sharply after the report .",
    "The patient was given lorenmab twice daily .",
    "",
    "It was a quiet day .",
]


def train_nlp(loss=None, scheme="BILUO", n_docs=300, epochs=4, seed=0):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    config = {"scheme": scheme}
    if loss is not None:
        config["loss"] = loss
    ner = nlp.add_pipe("imbalanced_ner", name="ner", config=config)
    docs = synthetic_docs(nlp.vocab, n_docs, seed=seed)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    history = []
    for _ in range(epochs):
        rng.shuffle(examples)
        losses = {}
        for i in range(0, len(examples), 32):
            nlp.update(examples[i : i + 32], sgd=optimizer, losses=losses, drop=0.1)
        history.append(losses["ner"])
    return nlp, ner, examples, history


@pytest.fixture(scope="module")
def trained():
    return train_nlp(epochs=8)


def ents_of(nlp, texts=TEXTS):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def test_training_learns_and_writes_valid_ents(trained):
    nlp, ner, examples, history = trained
    assert history[-1] < history[0] / 3
    scores = nlp.evaluate(examples[:100])
    assert scores["ents_f"] > 0.8
    assert {"ents_macro_f", "ents_macro_p", "ents_per_type"} <= set(scores)
    doc = nlp(TEXTS[0])
    assert [(e.text, e.label_) for e in doc.ents] == [("Anna Kovacs", "PERSON"), ("Kaselstad", "LOC")]
    assert all(t.ent_iob_ in ("B", "I", "O") for t in doc)


def test_tag_counts_are_saved_in_cfg(trained):
    _, ner, examples, _ = trained
    counts = ner.cfg["tag_counts"]
    assert set(counts) == set(ner.tag_names)
    n_tokens = sum(len(eg.reference) for eg in examples)
    assert sum(counts.values()) == n_tokens
    n_person = sum(1 for eg in examples for e in eg.reference.ents if e.label_ == "PERSON")
    assert counts["B-PERSON"] + counts["U-PERSON"] == n_person


def test_empty_docs_give_empty_output(trained):
    nlp = trained[0]
    assert nlp("").ents == ()
    assert [d.ents for d in nlp.pipe(["", ""])] == [(), ()]
    losses = nlp.update([Example(nlp.make_doc(""), nlp.make_doc(""))])
    assert losses["ner"] == 0.0


def test_to_disk_and_bytes_round_trip_identically(trained, tmp_path):
    nlp = trained[0]
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert ents_of(loaded) == ents_of(nlp)
    assert loaded.get_pipe("ner").cfg == nlp.get_pipe("ner").cfg
    copy = spacy.blank("en")
    copy.add_pipe("imbalanced_ner", name="ner")
    copy.from_bytes(nlp.to_bytes())
    assert ents_of(copy) == ents_of(nlp)
    scores = [s for s in nlp.get_pipe("ner").model.predict([nlp.make_doc(TEXTS[1])])]
    scores2 = [s for s in loaded.get_pipe("ner").model.predict([loaded.make_doc(TEXTS[1])])]
    numpy.testing.assert_array_equal(scores[0], scores2[0])


def test_count_based_weights_reload_identically(tmp_path):
    loss = {"@losses": "spacy-nerimb.CrossEntropy.v1", "class_weights": "inverse_frequency"}
    nlp, ner, _, history = train_nlp(loss=loss, epochs=1, n_docs=120)
    assert all(numpy.isfinite(history))
    nlp.to_disk(tmp_path / "wce")
    loaded = spacy.load(tmp_path / "wce").get_pipe("ner")
    assert loaded.loss.tag_counts == ner.loss.tag_counts
    assert ents_of(spacy.load(tmp_path / "wce")) == ents_of(nlp)


def test_bio_scheme_trains_and_decodes():
    nlp, ner, _, history = train_nlp(scheme="BIO", epochs=3)
    assert ner.tag_names[:3] == ["O", "B-DRUG", "I-DRUG"]
    assert history[-1] < history[0]
    assert ("Anna Kovacs", "PERSON") in [(e.text, e.label_) for e in nlp(TEXTS[0]).ents]


def test_mom_loss_trains():
    nlp, _, _, history = train_nlp(loss={"@losses": "spacy-nerimb.MoM.v1", "lam": 0.3}, epochs=2)
    assert history[-1] < history[0]


def test_all_o_and_unannotated_batches_give_finite_loss(trained):
    nlp = trained[0]
    words = ["It", "was", "quiet", "."]
    all_o = Doc(nlp.vocab, words=words, ents=["O"] * 4)
    unannotated = Doc(nlp.vocab, words=words)  # no NER annotation at all: fully masked
    for gold in (all_o, unannotated):
        losses = nlp.update([Example(nlp.make_doc(gold.text), gold)], sgd=None)
        assert numpy.isfinite(losses["ner"])
    losses = nlp.update([Example(nlp.make_doc(unannotated.text), unannotated)])
    assert losses["ner"] == 0.0


def test_labels_from_initialize_argument():
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner")
    docs = synthetic_docs(nlp.vocab, 50, seed=1)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    nlp.config["initialize"]["components"]["ner"] = {"labels": ["PERSON", "LOC", "ORG", "DRUG", "VESSEL", "EXTRA"]}
    nlp.initialize(lambda: examples)
    assert nlp.get_pipe("ner").labels == ("PERSON", "LOC", "ORG", "DRUG", "VESSEL", "EXTRA")


def test_no_entities_in_training_data_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner")
    gold = Doc(nlp.vocab, words=["no", "entities"], ents=["O", "O"])
    examples = [Example(nlp.make_doc(gold.text), gold)]
    with pytest.raises(ValueError, match="no entity labels"):
        nlp.initialize(lambda: examples)
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("imbalanced_ner", name="ner")
    nlp2.config["initialize"]["components"]["ner"] = {"labels": ["PER"]}
    with pytest.raises(ValueError, match="no annotated entities"):
        nlp2.initialize(lambda: examples)


def test_unknown_label_names_the_example(trained):
    nlp = trained[0]
    gold = Doc(nlp.vocab, words=["Zorg", "arrived"], ents=["B-ALIEN", "O"])
    with pytest.raises(ValueError, match="ALIEN.*Zorg arrived"):
        nlp.update([Example(nlp.make_doc(gold.text), gold)])


def test_overlapping_gold_entities_are_rejected():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="E103"):
        Example.from_dict(nlp.make_doc("New York City"), {"entities": [(0, 8, "LOC"), (4, 13, "LOC")]})


def test_loss_must_be_a_tag_loss():
    nlp = spacy.blank("en")
    with pytest.raises(Exception, match="spacy-nerimb loss"):
        nlp.add_pipe("imbalanced_ner", config={"loss": {"@losses": "CategoricalCrossentropy.v3"}})


def test_head_width_mismatch_names_both_settings():
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner", config={"model": {"nO": 3}})
    docs = synthetic_docs(nlp.vocab, 20, seed=2)
    with pytest.raises(ValueError, match=r"needs a head of width \d+ \(softmax head.*nO = 3"):
        nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in docs])


def test_bad_scheme_is_rejected():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="scheme"):
        nlp.add_pipe("imbalanced_ner", config={"scheme": "IOE"})


def test_component_class_is_exported():
    nlp = spacy.blank("en")
    assert isinstance(nlp.add_pipe("imbalanced_ner"), ImbalancedNER)


def test_adding_a_label_after_initialize_is_a_clear_error(trained):
    ner = trained[1]
    with pytest.raises(ValueError, match="Cannot add label 'ALIEN'.*already initialized"):
        ner.add_label("ALIEN")
    assert "ALIEN" not in ner.labels
