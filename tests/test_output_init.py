"""The emission layer's initialisation (``output_init`` of spacy-nerimb.TokenTagger.v1).

Behind a pre-trained transformer a zero-initialised head passes no gradient to
the encoder at first; the transformer configs therefore start it at N(0, 0.02).
"""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy import util
from spacy.tokens import Doc
from thinc.api import Config, fix_random_seed

from spacy_nerimb.models import OUTPUT_LAYER
from spacy_nerimb.models.tagger import HEAD_INIT_STD, TOK2VEC_REF, build_token_tagger
from spacy_nerimb.pipeline import DEFAULT_MODEL

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
WORDS = [["Anna", "Kovacs", "visited", "Kaselstad", "."], ["Shares", "of", "Mitor", "Labs", "rose"]]


def tagger(output_init: str, seed: int = 0):
    fix_random_seed(seed)
    tok2vec = util.registry.resolve({"t": dict(DEFAULT_MODEL["tok2vec"])})["t"]
    model = build_token_tagger(tok2vec, nO=7, output_init=output_init)
    docs = [Doc(spacy.blank("en").vocab, words=w) for w in WORDS]
    model.initialize(X=docs)
    return model, docs


def test_zeros_is_the_default_and_starts_at_zero():
    fix_random_seed(0)
    tok2vec = util.registry.resolve({"t": dict(DEFAULT_MODEL["tok2vec"])})["t"]
    model = build_token_tagger(tok2vec, nO=7)
    model.initialize(X=[Doc(spacy.blank("en").vocab, words=w) for w in WORDS])
    assert not numpy.any(model.get_ref(OUTPUT_LAYER).get_param("W"))


def test_normal_init_has_the_stated_spread_and_follows_the_seed():
    W = tagger("normal", seed=3)[0].get_ref(OUTPUT_LAYER).get_param("W")
    assert W.shape[0] == 7
    assert abs(float(W.mean())) < 0.005
    assert 0.8 * HEAD_INIT_STD < float(W.std()) < 1.2 * HEAD_INIT_STD
    again = tagger("normal", seed=3)[0].get_ref(OUTPUT_LAYER).get_param("W")
    other = tagger("normal", seed=4)[0].get_ref(OUTPUT_LAYER).get_param("W")
    numpy.testing.assert_array_equal(W, again)
    assert not numpy.array_equal(W, other)


@pytest.mark.parametrize("output_init, reaches_encoder", [("zeros", False), ("normal", True)])
def test_only_a_nonzero_head_passes_gradient_to_the_encoder(output_init, reaches_encoder):
    """The reason for ``normal`` behind a pre-trained encoder, shown on the first step."""
    model, docs = tagger(output_init)
    scores, backprop = model.begin_update(docs)
    backprop([numpy.ones_like(s) for s in scores])
    grads = [node.get_grad(name) for node in model.get_ref(TOK2VEC_REF).walk()
             for name in node.param_names if node.has_grad(name)]
    assert grads, "the tok2vec should hold gradients after backprop"
    assert any(numpy.any(g) for g in grads) is reaches_encoder


def test_unknown_output_init_is_rejected_with_the_choices():
    tok2vec = util.registry.resolve({"t": dict(DEFAULT_MODEL["tok2vec"])})["t"]
    with pytest.raises(ValueError, match=r"output_init = 'xavier'.*'zeros' or 'normal'"):
        build_token_tagger(tok2vec, output_init="xavier")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.cfg")), ids=lambda p: p.name)
def test_transformer_configs_use_the_fine_tuning_settings(path):
    """Every config with a transformer listener starts its head at N(0, 0.02), clips at 0.1 per
    parameter, pools each word's first word piece and tags with BIO; the CNN configs keep
    spaCy's zero start (docs/transformers.md)."""
    config = Config().from_disk(path, interpolate=False)
    tok2vec = config["components"]["ner"]["model"]["tok2vec"]
    is_transformer = "Transformer" in str(tok2vec.get("@architectures", ""))
    model = config["components"]["ner"]["model"]
    if is_transformer:
        assert model.get("output_init") == "normal"
        assert config["training"]["optimizer"]["grad_clip"] == pytest.approx(0.1)
        assert tok2vec["pooling"] == {"@layers": "spacy-nerimb.reduce_first_piece.v1"}
        assert config["components"]["ner"]["scheme"] == "BIO"
    else:
        assert model.get("output_init", "zeros") == "zeros"
