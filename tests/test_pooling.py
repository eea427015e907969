"""``spacy-nerimb.reduce_first_piece.v1``: first word piece per token, zero for a token without one."""
from importlib.metadata import entry_points

import numpy
import pytest
import spacy
from spacy import util
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Config, fix_random_seed
from thinc.types import Ragged

from conftest import REPO_ROOT
from spacy_nerimb.models import reduce_first_piece

NAME = "spacy-nerimb.reduce_first_piece.v1"
NO_PIECE = "\ufe0f"  # a variation selector: the MiniLM tokenizer gives it no word piece (WNUT-17 test set)


def ragged(lengths, width=3, seed=0):
    rows = int(sum(lengths))
    data = numpy.random.default_rng(seed).normal(size=(rows, width))
    return Ragged(data, numpy.asarray(lengths, dtype="int32"))


def test_each_token_gets_its_first_piece_and_an_empty_token_zeros():
    X = ragged([2, 0, 3, 1, 0])
    Y, _ = reduce_first_piece()(X, is_train=False)
    assert Y.shape == (5, 3)
    numpy.testing.assert_array_equal(Y[0], X.dataXd[0])
    numpy.testing.assert_array_equal(Y[1], numpy.zeros(3))
    numpy.testing.assert_array_equal(Y[2], X.dataXd[2])
    numpy.testing.assert_array_equal(Y[3], X.dataXd[5])
    numpy.testing.assert_array_equal(Y[4], numpy.zeros(3))


def test_thincs_reduce_first_cannot_take_an_empty_token():
    """The reason for this layer: thinc's own first-row pooling rejects empty segments."""
    reduce_first = util.registry.resolve({"p": {"@layers": "reduce_first.v1"}})["p"]
    with pytest.raises(Exception):
        reduce_first(ragged([2, 0, 1]), is_train=False)


def test_gradient_matches_central_differences():
    X = ragged([3, 0, 1, 2, 0, 4], width=4, seed=1)
    weights = numpy.random.default_rng(2).normal(size=(6, 4))
    layer = reduce_first_piece()

    def objective(data):
        Y, _ = layer(Ragged(data, X.lengths), is_train=False)
        return float((Y * weights).sum())

    _, backprop = layer(X, is_train=True)
    dX = backprop(weights).dataXd
    assert dX.shape == X.dataXd.shape
    numeric = numpy.zeros_like(X.dataXd)
    eps = 1e-6
    for index in numpy.ndindex(*X.dataXd.shape):
        up, down = X.dataXd.copy(), X.dataXd.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (objective(up) - objective(down)) / (2 * eps)
    numpy.testing.assert_allclose(dX, numeric, atol=1e-6)
    assert not dX[1:3].any()  # pieces after the first get no gradient


def test_no_tokens_at_all():
    Y, backprop = reduce_first_piece()(Ragged(numpy.zeros((0, 5), dtype="float32"),
                                              numpy.zeros(0, dtype="int32")), is_train=True)
    assert Y.shape == (0, 5)
    assert backprop(Y).dataXd.shape == (0, 5)


def test_resolves_through_the_registry_and_the_entry_point():
    layer = util.registry.resolve({"p": {"@layers": NAME}})["p"]
    assert layer.name == "reduce_first_piece"
    declared = {ep.name: ep.value for ep in entry_points(group="thinc_layers")}
    assert declared.get(NAME) == "spacy_nerimb.models.pooling:reduce_first_piece"


@pytest.fixture(scope="module")
def first_piece_nlp():
    """configs/minilm-ce.cfg with the listener pooling its tokens' first word pieces."""
    config = Config().from_disk(REPO_ROOT / "configs" / "minilm-ce.cfg", interpolate=False)
    config["components"]["ner"]["model"]["tok2vec"]["pooling"] = {"@layers": NAME}
    config["training"]["optimizer"]["learn_rate"] = 1e-3  # no warm-up: a few steps must move the weights
    fix_random_seed(0)
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def test_a_transformer_pipeline_trains_and_predicts_on_tokens_without_word_pieces(first_piece_nlp):
    nlp = first_piece_nlp
    words = [["Anna", "Kovacs", "visited", "Kaselstad", NO_PIECE, "!"],
             ["Shares", "of", "Mitor", "Labs", NO_PIECE, "rose"]]
    ents = [["B-PER", "I-PER", "O", "B-LOC", "O", "O"], ["O", "O", "B-ORG", "I-ORG", "O", "O"]]
    examples = [Example(Doc(nlp.vocab, words=w), Doc(nlp.vocab, words=w, ents=e))
                for w, e in zip(words, ents)]
    optimizer = nlp.initialize(lambda: examples)
    doc = nlp.get_pipe("transformer")(Doc(nlp.vocab, words=words[0]))
    assert list(doc._.trf_data.align.lengths)[4] == 0, "the test needs a token without word pieces"
    head = nlp.get_pipe("ner").model
    before = {name: head.get_ref("output_layer").get_param(name).copy() for name in ("W", "b")}
    losses = {}
    for _ in range(3):
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert numpy.isfinite(losses["ner"]) and losses["ner"] > 0
    after = head.get_ref("output_layer").get_param("W")
    assert not numpy.allclose(before["W"], after)
    predicted = nlp(Doc(nlp.vocab, words=words[1]))
    assert len(predicted) == 6
    assert all(ent.label_ in {"PER", "LOC", "ORG"} for ent in predicted.ents)
