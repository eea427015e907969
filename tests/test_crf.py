"""CRF head and BiLSTM encoder: exact values against brute-force enumeration, gradients
against torch autograd, Viterbi against brute-force argmax, parameters that really train
and are saved, the char-level Chinese pipeline."""
import itertools
import random
import warnings

import numpy
import pytest
import spacy
import torch
from spacy import util
from spacy.training import Example
from thinc.api import fix_random_seed

from conftest import REPO_ROOT, require_corpus
from spacy_nerimb.losses import CRF, MoM, configure_crf
from spacy_nerimb.losses.crf import (
    crf_forward_backward, crf_nll, crf_potentials, crf_sequence_score, pad_batch,
)
from spacy_nerimb.losses.focal import Focal
from spacy_nerimb.models.tagger import build_bilstm, build_token_tagger, crf_params
from spacy_nerimb.pipeline import DEFAULT_MODEL
from spacy_nerimb.synthetic import synthetic_docs
from spacy_nerimb.tags import MISSING, make_tag_names, transition_constraints

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The BiLSTM runs in torch: on a small shared CPU, one intra-op thread is far faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- brute force -------------------------------------------------------------------------


def random_problem(seed, scheme, max_len=4, n_docs=3, missing=0.0):
    rng = numpy.random.default_rng(seed)
    names = make_tag_names(["A"] if scheme == "BILUO" else ["A", "B"], scheme)
    n_tags = len(names)
    lengths = rng.integers(1, max_len + 1, size=n_docs)
    n = int(lengths.sum())
    emissions = rng.normal(scale=2.0, size=(n, n_tags))
    params = [rng.normal(size=(n_tags, n_tags)), rng.normal(size=n_tags), rng.normal(size=n_tags)]
    masks = transition_constraints(names, scheme)
    # a valid gold path per doc (sampled among valid sequences), some tokens missing
    gold = []
    for length in lengths:
        valid = [y for y in itertools.product(range(n_tags), repeat=int(length)) if is_valid(y, masks)]
        gold.extend(valid[rng.integers(len(valid))])
    gold = numpy.array(gold)
    gold[rng.random(n) < missing] = MISSING
    return names, masks, emissions, params, gold, lengths


def is_valid(y, masks):
    allowed, start, end = masks
    return bool(start[y[0]] and end[y[-1]] and all(allowed[a, b] for a, b in zip(y[:-1], y[1:])))


def brute_force(emissions, gold, lengths, trans, start, end, masks=None):
    """log Z per doc and the summed NLL by enumerating every tag sequence."""
    n_tags = emissions.shape[1]
    offset, log_z, nll = 0, [], 0.0
    for length in lengths:
        em, gg = emissions[offset : offset + length], gold[offset : offset + length]
        seqs = [y for y in itertools.product(range(n_tags), repeat=int(length))
                if masks is None or is_valid(y, masks)]
        scores = numpy.array([crf_sequence_score(em, y, trans, start, end) for y in seqs])
        log_z.append(numpy.logaddexp.reduce(scores))
        agree = [s for y, s in zip(seqs, scores)
                 if all(g == MISSING or g == t for g, t in zip(gg, y))]
        if (gg != MISSING).any():
            nll += log_z[-1] - numpy.logaddexp.reduce(agree)
        offset += length
    return numpy.array(log_z), nll


@pytest.mark.parametrize("scheme", ["BIO", "BILUO"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("missing", [0.0, 0.4])
@pytest.mark.parametrize("seed", range(3))
def test_log_partition_and_nll_equal_brute_force(scheme, masked, missing, seed):
    names, masks, emissions, (T, S, E), gold, lengths = random_problem(seed, scheme, missing=missing)
    trans, start, end = crf_potentials(numpy, T, S, E, masks if masked else None)
    out = crf_nll(numpy, emissions, gold, lengths, trans, start, end)
    # Masked potentials are -1e4, i.e. probability exactly 0: enumerate valid paths only.
    log_z, nll = brute_force(emissions, gold, lengths, trans, start, end, masks if masked else None)
    assert out["nll"] == pytest.approx(nll, rel=1e-10, abs=1e-10)
    padded, valid, _ = pad_batch(numpy, emissions, lengths)
    fb = crf_forward_backward(numpy, padded, valid, trans, start, end, marginals=False)
    numpy.testing.assert_allclose(fb["log_z"], log_z, rtol=1e-12)


def torch_brute_force_nll(emissions, gold, lengths, T, S, E, masks):
    """The same NLL in torch (enumeration + logsumexp), for autograd."""
    n_tags = emissions.shape[1]
    forbid = torch.tensor(-1e4, dtype=torch.float64)
    if masks is not None:
        allowed, ok_start, ok_end = (torch.tensor(m) for m in masks)
        T, S, E = torch.where(allowed, T, forbid), torch.where(ok_start, S, forbid), torch.where(ok_end, E, forbid)
    total, offset = 0, 0
    for length in lengths:
        every, agree = [], []
        for y in itertools.product(range(n_tags), repeat=int(length)):
            s = S[y[0]] + E[y[-1]] + sum(emissions[offset + i, t] for i, t in enumerate(y))
            s = s + sum((T[a, b] for a, b in zip(y[:-1], y[1:])), torch.tensor(0.0, dtype=torch.float64))
            every.append(s)
            if all(g == MISSING or g == t for g, t in zip(gold[offset : offset + length], y)):
                agree.append(s)
        if (gold[offset : offset + length] != MISSING).any():
            total = total + torch.logsumexp(torch.stack(every), 0) - torch.logsumexp(torch.stack(agree), 0)
        offset += length
    return total


@pytest.mark.parametrize("masked,missing,seed", [(False, 0.0, 0), (True, 0.0, 1), (True, 0.5, 2), (False, 0.5, 3)])
def test_gradients_match_autograd(masked, missing, seed):
    names, masks, emissions, (T, S, E), gold, lengths = random_problem(seed, "BIO", missing=missing)
    trans, start, end = crf_potentials(numpy, T, S, E, masks if masked else None)
    out = crf_nll(numpy, emissions, gold, lengths, trans, start, end)
    tensors = [torch.tensor(a, requires_grad=True) for a in (emissions, T, S, E)]
    nll = torch_brute_force_nll(*tensors[:1], gold, lengths, *tensors[1:], masks if masked else None)
    nll.backward()
    assert out["nll"] == pytest.approx(nll.detach().item(), rel=1e-10)
    for ours, t in zip(("d_emissions", "d_trans", "d_start", "d_end"), tensors):
        numpy.testing.assert_allclose(out[ours], t.grad.numpy(), atol=1e-10)


def bound_crf(names, scheme, params=None, **kwargs):
    loss = CRF(**kwargs)
    loss.initialize(names, {}, labels=sorted({n[2:] for n in names if n != "O"}), scheme=scheme)
    layer = crf_params()
    loss.bind(layer)
    layer.initialize()
    if params is not None:
        for name, value in zip(("transitions", "start", "end"), params):
            layer.set_param(name, value.astype("float32"))
    return loss, layer


def test_loss_is_normalised_and_gradients_reach_the_layer():
    names, masks, emissions, params, gold, lengths = random_problem(5, "BILUO", missing=0.3)
    loss, layer = bound_crf(names, "BILUO", params)
    trans, start, end = loss.potentials(numpy)
    ref = crf_nll(numpy, emissions, gold, lengths, trans, start, end)
    n = int((gold != MISSING).sum())
    d, value = loss(emissions.astype("float32"), gold, lengths)
    assert value == pytest.approx(ref["nll"] / n, rel=1e-5)
    numpy.testing.assert_allclose(d, ref["d_emissions"] / n, atol=1e-6)
    numpy.testing.assert_allclose(layer.get_grad("transitions"), ref["d_trans"] / n, atol=1e-6)
    numpy.testing.assert_allclose(layer.get_grad("end"), ref["d_end"] / n, atol=1e-6)
    # A batch with no annotation: zero loss, zero gradient, nothing added to the layer.
    layer.set_grad("transitions", numpy.zeros_like(layer.get_grad("transitions")))
    d0, v0 = loss(emissions.astype("float32"), numpy.full_like(gold, MISSING), lengths)
    assert v0 == 0.0 and not d0.any() and not layer.get_grad("transitions").any()


def test_emission_term_adds_the_per_token_loss():
    names, masks, emissions, params, gold, lengths = random_problem(6, "BIO")
    plain, _ = bound_crf(names, "BIO", params)
    mixed, _ = bound_crf(names, "BIO", params, emission_loss=Focal(gamma=2.0), emission_weight=0.5)
    focal = Focal(gamma=2.0)
    focal.initialize(names, {}, scheme="BIO")
    logits = emissions.astype("float32")
    (d_c, l_c), (d_m, l_m), (d_f, l_f) = plain(logits, gold, lengths), mixed(logits, gold, lengths), focal(logits, gold, lengths)
    assert l_m == pytest.approx(l_c + 0.5 * l_f, rel=1e-6)
    numpy.testing.assert_allclose(d_m, d_c + 0.5 * d_f, atol=1e-6)


@pytest.mark.parametrize("scheme,seed", [("BIO", 0), ("BILUO", 1), ("BIO", 2)])
def test_viterbi_equals_brute_force_argmax_among_valid_sequences(scheme, seed):
    names, masks, emissions, params, _, lengths = random_problem(seed, scheme, max_len=5, n_docs=4)
    loss, _ = bound_crf(names, scheme, params, mask_invalid_transitions=False)
    T, S, E = (p.astype("float32").astype("float64") for p in params)
    docs = numpy.split(emissions.astype("float32"), numpy.cumsum(lengths)[:-1])
    decoded = loss.decode(docs)
    for em, path in zip(docs, decoded):
        seqs = [y for y in itertools.product(range(len(names)), repeat=em.shape[0]) if is_valid(y, masks)]
        best = max(seqs, key=lambda y: crf_sequence_score(em.astype("float64"), y, T, S, E))
        assert tuple(path) == best


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="per-token"):
        MoM(base=CRF())
    with pytest.raises(ValueError, match="emission_loss"):
        CRF(emission_loss=CRF())
    with pytest.raises(ValueError, match="emission_weight"):
        configure_crf(emission_weight=-1)
    with pytest.raises(ValueError, match="bilstm_depth"):
        build_token_tagger(default_tok2vec(), bilstm_depth=-1)
    with pytest.raises(ValueError, match="bilstm_width"):
        build_token_tagger(default_tok2vec(), bilstm_depth=1, bilstm_width=7)
    with pytest.raises(ValueError, match="bilstm_dropout"):
        build_token_tagger(default_tok2vec(), bilstm_depth=1, bilstm_dropout=1.0)
    with pytest.raises(ValueError, match="bilstm_skip"):
        build_token_tagger(default_tok2vec(), bilstm_depth=1, bilstm_skip="yes")
    loss = CRF()
    loss.initialize(["O", "B-X", "I-X"], {}, scheme="BIO")
    with pytest.raises(ValueError, match="'crf' parameter layer"):
        loss.bind(default_tok2vec())
    with pytest.raises(RuntimeError, match="not bound"):
        loss(numpy.zeros((2, 3), dtype="float32"), numpy.array([0, 1]), numpy.array([2]))


def test_invalid_gold_is_reported():
    loss, _ = bound_crf(["O", "B-X", "I-X"], "BIO")
    with pytest.raises(ValueError, match="break the BIO scheme"):
        loss(numpy.zeros((3, 3), dtype="float32"), numpy.array([0, 2, 0]), numpy.array([3]))
    loss.mask_invalid_transitions = False
    _, value = loss(numpy.zeros((3, 3), dtype="float32"), numpy.array([0, 2, 0]), numpy.array([3]))
    assert numpy.isfinite(value)


def default_tok2vec():
    return util.registry.resolve({"t": dict(DEFAULT_MODEL["tok2vec"])})["t"]


# --- in the pipeline ------------------------------------------------------------------------

CRF_LOSS = {"@losses": "spacy-nerimb.CRF.v1", "emission_loss": {"@losses": "spacy-nerimb.Focal.v1"}}
TEXTS = ["Anna Kovacs travelled to Kaselstad last week .", "Shares of Mitor Labs rose .", "", "Quiet ."]


def make_nlp(loss, model=None, scheme="BIO"):
    config = {"loss": loss, "scheme": scheme}
    if model is not None:
        config["model"] = model
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner", config=config)
    return nlp


def train(nlp, n_docs=120, steps=12, seed=0, drop=0.1):
    fix_random_seed(seed)
    docs = synthetic_docs(nlp.vocab, n_docs, seed=seed)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    history = []
    for step in range(steps):
        batch = rng.sample(examples, 16)
        history.append(nlp.update(batch, sgd=optimizer, drop=drop)["ner"])
    return examples, history


BILSTM_MODEL = {
    "@architectures": "spacy-nerimb.TokenTagger.v1",
    "bilstm_depth": 1,
    "bilstm_width": 32,
    "bilstm_dropout": 0.1,
    "tok2vec": dict(DEFAULT_MODEL["tok2vec"], width=32, depth=2),
}


@pytest.fixture(scope="module")
def trained_crf():
    nlp = make_nlp(CRF_LOSS, BILSTM_MODEL)
    examples, history = train(nlp, steps=25)
    return nlp, examples, history


def test_transition_scores_train(trained_crf):
    """Fails if the CRF's scores are not handed to the optimiser (they would stay 0)."""
    nlp, _, history = trained_crf
    ner = nlp.get_pipe("ner")
    layer = ner.model.get_ref("crf")
    trans = layer.get_param("transitions")
    allowed, _, _ = transition_constraints(ner.tag_names, ner.scheme)
    assert numpy.abs(trans[allowed]).max() > 1e-3
    assert numpy.abs(layer.get_param("start")).max() > 1e-3
    # forbidden moves are masked in training: no gradient ever reached them
    assert not trans[~allowed].any()
    assert history[-1] < history[0]


def test_crf_pipeline_round_trips_identically(trained_crf, tmp_path):
    nlp = trained_crf[0]
    ents = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "crf")
    loaded = spacy.load(tmp_path / "crf")
    copy = make_nlp(CRF_LOSS, BILSTM_MODEL)
    copy.from_bytes(nlp.to_bytes())
    ref = nlp.get_pipe("ner").model
    for other in (loaded, copy):
        model = other.get_pipe("ner").model
        for name in ("transitions", "start", "end"):
            numpy.testing.assert_array_equal(model.get_ref("crf").get_param(name), ref.get_ref("crf").get_param(name))
        assert [[(e.start, e.end, e.label_) for e in d.ents] for d in other.pipe(TEXTS)] == ents
        docs = [other.make_doc(t) for t in TEXTS]
        for a, b in zip(model.predict(docs), ref.predict([nlp.make_doc(t) for t in TEXTS])):
            numpy.testing.assert_array_equal(a, b)


def test_non_crf_losses_allocate_no_crf_scores():
    nlp = make_nlp({"@losses": "spacy-nerimb.CrossEntropy.v1"})
    train(nlp, n_docs=40, steps=1)
    assert nlp.get_pipe("ner").model.get_ref("crf").has_param("transitions") is None


# --- BiLSTM ---------------------------------------------------------------------------------


def test_bilstm_is_batch_invariant_and_handles_empty_docs(trained_crf):
    nlp = trained_crf[0]
    model = nlp.get_pipe("ner").model
    docs = [nlp.make_doc(t) for t in TEXTS]
    batch = model.predict(docs)
    for doc, scores in zip(docs, batch):
        alone = model.predict([doc])[0]
        assert alone.shape == (len(doc), scores.shape[1])
        numpy.testing.assert_allclose(alone, scores, atol=1e-5)


@pytest.mark.parametrize("skip", [False, True])
def test_bilstm_gradient_matches_finite_differences(skip):
    fix_random_seed(0)
    layer = build_bilstm(width=6, depth=2, dropout=0.0, skip=skip)
    rng = numpy.random.default_rng(0)
    X = [rng.normal(size=(n, 4)).astype("float32") for n in (3, 0, 5)]
    layer.initialize(X=X)
    Y, backprop = layer.begin_update(X)
    width = 10 if skip else 6
    assert [y.shape for y in Y] == [(3, width), (0, width), (5, width)]
    if skip:  # the token vectors come first, unchanged
        numpy.testing.assert_array_equal(Y[2][:, :4], X[2])
    dY = [rng.normal(size=y.shape).astype("float32") for y in Y]
    dX = backprop(dY)

    def objective(Xs):
        return sum(float((y * d).sum()) for y, d in zip(layer.predict(Xs), dY))

    eps = 1e-2
    for doc, row, col in [(0, 0, 1), (0, 2, 3), (2, 4, 0)]:
        plus = [x.copy() for x in X]
        minus = [x.copy() for x in X]
        plus[doc][row, col] += eps
        minus[doc][row, col] -= eps
        assert dX[doc][row, col] == pytest.approx((objective(plus) - objective(minus)) / (2 * eps), rel=2e-2, abs=2e-3)


def test_existing_configs_keep_their_model_unchanged():
    """No BiLSTM unless asked: the head is the plain linear emission layer."""
    model = build_token_tagger(default_tok2vec())
    assert not model.has_ref("bilstm")
    assert model.get_ref("head").layers == [model.get_ref("output_layer")]  # with_array(Linear)
    names = [node.name for node in model.walk()]
    assert "bilstm" not in names and names.count("crf") == 1


# --- character-level Chinese --------------------------------------------------------------


def test_zh_char_pipeline_trains_and_predicts(tmp_path):
    from spacy_nerimb.corpora import convert, load_docbin

    source = require_corpus("zh-weibo", "weiboNER_2nd_conll.dev")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tag repairs are the converter's business
        convert(source, tmp_path / "dev.spacy")
    config = util.load_config(REPO_ROOT / "configs" / "zh-cnn-crf.cfg")
    config["components"]["ner"]["model"]["bilstm_width"] = 32
    config["components"]["ner"]["model"]["tok2vec"]["width"] = 32
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.lang == "zh" and nlp.tokenizer.segmenter == "char"
    gold = list(load_docbin(tmp_path / "dev.spacy").get_docs(nlp.vocab))[:80]
    examples = [Example(nlp.make_doc(d.text), d) for d in gold]
    # one token per character (a few corpus tokens are two broken-encoding characters)
    assert sum(len(eg.predicted) == len(eg.reference) for eg in examples) >= 0.9 * len(examples)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    history = [nlp.update(examples[i : i + 16], sgd=optimizer, drop=0.1)["ner"] for i in range(0, 80, 16)]
    assert all(numpy.isfinite(history))
    assert set(nlp.get_pipe("ner").labels) <= {"GPE.NAM", "GPE.NOM", "LOC.NAM", "LOC.NOM",
                                                 "ORG.NAM", "ORG.NOM", "PER.NAM", "PER.NOM"}
    doc = nlp("我在北京看到了张三。")
    assert [t.text for t in doc][:3] == ["我", "在", "北"]
    assert all(0 <= e.start < e.end <= len(doc) for e in doc.ents)
