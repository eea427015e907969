"""R-Drop: the symmetric KL and its gradients against torch autograd, the two-pass
update of the component (own encoder and shared listener encoder), bad settings."""
import random

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_nerimb.losses import CRF, CrossEntropy, Focal, RDrop, configure_rdrop
from spacy_nerimb.losses.rdrop import symmetric_kl
from spacy_nerimb.models.tagger import crf_params
from spacy_nerimb.pipeline import DEFAULT_MODEL
from spacy_nerimb.synthetic import synthetic_docs
from spacy_nerimb.tags import MISSING, make_tag_names


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torch_symmetric_kl(z1, z2, weights, distribution):
    if distribution == "softmax":
        lp1, lp2 = torch.log_softmax(z1, 1), torch.log_softmax(z2, 1)
        kl12 = (lp1.exp() * (lp1 - lp2)).sum(1)
        kl21 = (lp2.exp() * (lp2 - lp1)).sum(1)
    else:  # independent Bernoulli per logit
        def kl(a, b):
            pa = torch.sigmoid(a)
            return (pa * (torch.nn.functional.logsigmoid(a) - torch.nn.functional.logsigmoid(b))
                    + (1 - pa) * (torch.nn.functional.logsigmoid(-a) - torch.nn.functional.logsigmoid(-b))).sum(1)
        kl12, kl21 = kl(z1, z2), kl(z2, z1)
    return (0.5 * (kl12 + kl21) * weights).sum()


@pytest.mark.parametrize("distribution", ["softmax", "sigmoid"])
@pytest.mark.parametrize("seed", range(3))
def test_symmetric_kl_and_gradient_match_autograd(distribution, seed):
    rng = numpy.random.default_rng(seed)
    z1, z2 = rng.normal(scale=3, size=(2, 7, 5))
    weights = (rng.random(7) > 0.3) / 5.0
    value, d1, d2 = symmetric_kl(numpy, z1, z2, weights, distribution)
    t1, t2 = (torch.tensor(z, requires_grad=True) for z in (z1, z2))
    ref = torch_symmetric_kl(t1, t2, torch.tensor(weights), distribution)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-10, abs=1e-12)
    numpy.testing.assert_allclose(d1, t1.grad.numpy(), atol=1e-12)
    numpy.testing.assert_allclose(d2, t2.grad.numpy(), atol=1e-12)
    same, g1, g2 = symmetric_kl(numpy, z1, z1, weights, distribution)
    assert same == 0.0 and not g1.any() and not g2.any()


def initialized(loss, scheme="BIO"):
    names = make_tag_names(["A", "B"], scheme)
    loss.initialize(names, {n: 1 for n in names}, labels=["A", "B"], scheme=scheme)
    return names


def test_two_passes_give_mean_task_loss_plus_alpha_kl():
    rng = numpy.random.default_rng(0)
    rdrop = RDrop(CrossEntropy(), alpha=0.7)
    names = initialized(rdrop)
    z1, z2 = rng.normal(size=(2, 9, len(names))).astype("float32")
    gold = numpy.array([0, 1, 2, MISSING, 0, 3, 4, 0, MISSING])
    lengths = numpy.array([4, 5])
    (d1, d2), value = rdrop.passes([z1, z2], gold, lengths)
    ce = CrossEntropy()
    initialized(ce)
    (c1, l1), (c2, l2) = ce(z1, gold, lengths), ce(z2, gold, lengths)
    weights = (gold != MISSING) / 7.0
    kl, k1, k2 = symmetric_kl(numpy, z1, z2, weights, "softmax")
    assert value == pytest.approx(0.5 * (l1 + l2) + 0.7 * kl, rel=1e-6)
    assert rdrop.last_kl == pytest.approx(kl)
    numpy.testing.assert_allclose(d1, 0.5 * c1 + 0.7 * k1, atol=1e-6)
    numpy.testing.assert_allclose(d2, 0.5 * c2 + 0.7 * k2, atol=1e-6)
    # the whole R-Drop gradient against autograd (CE + symmetric KL), missing tokens masked
    t1, t2 = (torch.tensor(z.astype("float64"), requires_grad=True) for z in (z1, z2))
    known = torch.tensor(gold != MISSING)
    tg = torch.tensor(numpy.where(gold == MISSING, 0, gold))
    task = sum(0.5 * torch.nn.functional.cross_entropy(t[known], tg[known], reduction="sum") / 7 for t in (t1, t2))
    total = task + 0.7 * torch_symmetric_kl(t1, t2, torch.tensor(weights), "softmax")
    total.backward()
    assert value == pytest.approx(total.item(), rel=1e-6)
    numpy.testing.assert_allclose(d1, t1.grad.numpy(), atol=1e-6)
    numpy.testing.assert_allclose(d2, t2.grad.numpy(), atol=1e-6)


def test_identical_passes_equal_the_task_loss_and_crf_scores_are_averaged():
    rng = numpy.random.default_rng(1)
    crf, plain = CRF(), CRF()
    rdrop = RDrop(crf, alpha=3.0)
    names = initialized(rdrop)
    initialized(plain)
    layers = []
    for loss in (crf, plain):
        layer = crf_params()
        loss.bind(layer)
        layer.initialize()
        layer.set_param("transitions", numpy.full((5, 5), 0.3, dtype="float32"))
        layers.append(layer)
    z = rng.normal(size=(6, len(names))).astype("float32")
    gold, lengths = numpy.array([1, 2, 0, 3, 4, 0]), numpy.array([6])
    with pytest.warns(UserWarning, match="identical logits"):
        (d1, d2), value = rdrop.passes([z, z.copy()], gold, lengths)
    d, ref = plain(z, gold, lengths)
    assert value == pytest.approx(ref, rel=1e-6) and rdrop.last_kl == 0.0
    numpy.testing.assert_allclose(d1 + d2, d, atol=1e-6)
    for name in ("transitions", "start", "end"):  # ½ + ½ of the CRF's parameter gradient
        numpy.testing.assert_allclose(layers[0].get_grad(name), layers[1].get_grad(name), atol=1e-6)
    assert rdrop.head == "crf" and rdrop.kl_distribution == "softmax"
    assert rdrop.decode([z])[0].tolist() == plain.decode([z])[0].tolist()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="alpha"):
        configure_rdrop(alpha=-0.1)
    with pytest.raises(ValueError, match="R-Drop inside R-Drop"):
        RDrop(RDrop())
    with pytest.raises(ValueError, match="distribution"):
        RDrop(distribution="gauss")
    with pytest.raises(ValueError, match="2 passes"):
        rdrop = RDrop()
        initialized(rdrop)
        rdrop.passes([numpy.zeros((1, 5), dtype="float32")], numpy.array([0]), numpy.array([1]))
    assert RDrop(Focal(mode="ovr"), distribution="sigmoid").kl_distribution == "sigmoid"


# --- in the component -------------------------------------------------------------------------

SMALL_CNN = dict(DEFAULT_MODEL["tok2vec"], width=32, depth=2)


def build(loss, model):
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner", config={"loss": loss, "model": model, "scheme": "BIO"})
    return nlp


def run_updates(nlp, steps, drop, seed=0, n_docs=60):
    fix_random_seed(seed)
    docs = synthetic_docs(nlp.vocab, n_docs, seed=seed)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    kls, losses = [], []
    for _ in range(steps):
        losses.append(nlp.update(rng.sample(examples, 12), sgd=optimizer, drop=drop)["ner"])
        kls.append(nlp.get_pipe("ner").loss.last_kl)
    return kls, losses


def test_own_encoder_kl_is_zero_without_dropout_and_positive_with_it():
    loss = {"@losses": "spacy-nerimb.RDrop.v1", "alpha": 1.0}
    model = {"@architectures": "spacy-nerimb.TokenTagger.v1", "tok2vec": SMALL_CNN}
    with pytest.warns(UserWarning, match="identical logits"):
        kls, losses = run_updates(build(loss, model), steps=4, drop=0.0)
    assert kls == [0.0] * 4 and all(numpy.isfinite(losses))
    # dropout inside the CNN: the whole encoder is re-sampled, the passes differ
    kls, _ = run_updates(build(loss, model), steps=4, drop=0.3)
    assert all(kl > 0 for kl in kls[1:])  # (step 1: the zero-initialised head gives zeros)


def test_shared_listener_encoder_runs_once_and_only_the_head_is_resampled(monkeypatch):
    """tok2vec component + listener: the shared encoder's backprop must run once per batch."""
    from spacy.pipeline.tok2vec import Tok2VecListener

    calls = {"backprop": 0}
    original = Tok2VecListener.receive

    def counting_receive(self, batch_id, outputs, backprop):
        def counted(d):
            calls["backprop"] += 1
            return backprop(d)

        return original(self, batch_id, outputs, counted)

    monkeypatch.setattr(Tok2VecListener, "receive", counting_receive)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": dict(SMALL_CNN)})
    loss = {"@losses": "spacy-nerimb.RDrop.v1", "alpha": 1.0, "loss": {"@losses": "spacy-nerimb.CRF.v1"}}
    model = {
        "@architectures": "spacy-nerimb.TokenTagger.v1",
        "bilstm_depth": 1, "bilstm_width": 16, "bilstm_dropout": 0.3,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 32, "upstream": "*"},
    }
    nlp.add_pipe("imbalanced_ner", name="ner", config={"loss": loss, "model": model, "scheme": "BIO"})
    assert nlp.get_pipe("ner")._listens_to_shared_encoder()
    before = nlp.get_pipe("tok2vec").model.to_bytes()
    kls, losses = run_updates(nlp, steps=3, drop=0.0)
    assert calls["backprop"] == 3  # once per update, not once per pass
    assert all(kl > 0 for kl in kls[1:])  # the BiLSTM's own dropout differs between the passes
    assert nlp.get_pipe("tok2vec").model.to_bytes() != before  # the shared encoder did learn
    assert all(numpy.isfinite(losses))
