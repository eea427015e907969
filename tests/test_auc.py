"""AUC-2T and COMAUC-2T: gradients vs torch, the min–max closed form, decoding, training, reload."""
import inspect
import json
import subprocess
import sys
import textwrap
import zlib

import numpy
import pytest
import spacy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed, registry

from spacy_nerimb.losses import (
    AUC2T,
    CompositionalAUC2T,
    MoM,
    TagLoss,
    configure_auc2t,
    configure_compositional_auc2t,
)
from spacy_nerimb.losses import auc
from spacy_nerimb.synthetic import synthetic_docs, write_synthetic_corpus
from spacy_nerimb.tags import (
    MISSING,
    make_tag_names,
    split_tag,
    tags_to_spans,
    transition_constraints,
    two_task_rows,
)

from conftest import REPO_ROOT

LABELS = ["PER", "LOC", "ORG"]


def init(loss, scheme="BILUO", labels=LABELS, counts=None):
    tags = make_tag_names(labels, scheme)
    if counts is None:
        rng = numpy.random.default_rng(0)
        counts = {t: int(c) for t, c in zip(tags, [900] + list(rng.integers(1, 60, len(tags) - 1)))}
    loss.initialize(tags, counts, labels=labels, scheme=scheme)
    return loss


def gold_batch(seed, n=41, scheme="BILUO", labels=LABELS, masks=True, entity_rate=0.4):
    rng = numpy.random.default_rng(seed)
    n_tags = len(make_tag_names(labels, scheme))
    gold = numpy.where(rng.random(n) < entity_rate, rng.integers(1, n_tags, n), 0).astype("int64")
    if masks:
        gold[rng.random(n) < 0.25] = MISSING
    return gold


# -- torch reference: the loss written plainly, one task column at a time -------------------


def torch_auc_m(h, pos, neg, margin, one_class):
    """AUC-M of one column: Var(pos) + Var(neg) + [m − mean(pos) + mean(neg)]₊²."""
    value = h.new_zeros(())
    hp, hn = h[pos], h[neg]
    if len(hp):
        value = value + ((hp - hp.mean()) ** 2).mean()
    if len(hn):
        value = value + ((hn - hn.mean()) ** 2).mean()
    if len(hp) and len(hn):
        value = value + torch.clamp(margin - hp.mean() + hn.mean(), min=0) ** 2
    elif one_class == "bound" and (len(hp) or len(hn)):
        mp = hp.mean() if len(hp) else h.new_tensor(1.0)
        mn = hn.mean() if len(hn) else h.new_tensor(0.0)
        value = value + torch.clamp(margin - mp + mn, min=0) ** 2
    return value


def torch_auc2t(loss: AUC2T, logits, gold, tag_names):
    """Reference value and gradient of AUC-2T by autograd (float64)."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    h = torch.sigmoid(z)
    labels = loss.task_labels
    k = len(labels)
    annotated = torch.tensor(gold != MISSING)
    total = z.new_zeros(())
    counts = numpy.array([loss.tag_counts[t] for t in tag_names], dtype=float)
    for j, label in enumerate(labels):
        def of_type(tag):
            prefix, lab = split_tag(tag)
            return prefix != "O" and (lab == label or not loss.typed)
        ent_tags = [i for i, t in enumerate(tag_names) if of_type(t)]
        beg_tags = [i for i in ent_tags if split_tag(tag_names[i])[0] in ("B", "U")]
        ent = torch.tensor(numpy.isin(gold, ent_tags)) & annotated
        beg = torch.tensor(numpy.isin(gold, beg_tags)) & annotated
        w_en = w_be = 1.0
        if loss.weighting == "libauc":
            p_en = counts[ent_tags].sum() / counts.sum()
            p_be = counts[beg_tags].sum() / counts.sum()
            w_en, w_be = p_en * (1 - p_en), p_be * (1 - p_be)
        total = total + w_en * torch_auc_m(h[:, j], ent, annotated & ~ent, loss.margin, loss.one_class)
        total = total + loss.lam * w_be * torch_auc_m(
            h[:, k + j], beg, annotated & ~beg, loss.margin, loss.one_class
        )
    total = total / k
    total.backward()
    return float(total.detach()), z.grad.numpy()


CASES = {
    "typed": dict(typed=True),
    "typeless-one-label": dict(typed=False),
    "libauc": dict(typed=True, weighting="libauc"),
    "variance-only": dict(typed=True, one_class="variance"),
    "margin-lam": dict(typed=True, margin=0.6, lam=7.0),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
@pytest.mark.parametrize("kind", ["random", "no-positives", "one-begin", "all-entity"])
def test_auc2t_gradient_matches_torch(case, scheme, kind):
    options = CASES[case]
    labels = LABELS if options["typed"] else ["ENTITY"]
    loss = init(AUC2T(**options), scheme=scheme, labels=labels)
    tags = loss.tag_names
    rng = numpy.random.default_rng(zlib.crc32(f"{case}/{scheme}/{kind}".encode()))
    gold = gold_batch(int(rng.integers(1000)), scheme=scheme, labels=labels)
    if kind == "no-positives":
        gold = numpy.where(gold == MISSING, MISSING, 0)
    elif kind == "one-begin":  # a single entity token: begin has one positive
        gold = numpy.where(gold == MISSING, MISSING, 0)
        gold[3] = tags.index(f"B-{labels[0]}")
    elif kind == "all-entity":  # no negative for the entity tasks of a one-label batch
        gold = numpy.full(9, tags.index(f"I-{labels[0]}"))
        gold[0] = tags.index(f"B-{labels[0]}")
    logits = rng.normal(size=(len(gold), loss.output_width(len(tags), len(labels)))) * 2.5
    d_logits, value = loss(logits, gold)
    ref_value, ref_grad = torch_auc2t(loss, logits, gold, tags)
    assert value == pytest.approx(ref_value, abs=1e-9, rel=1e-9)
    numpy.testing.assert_allclose(d_logits, ref_grad, atol=1e-6, rtol=0)
    assert numpy.isfinite(d_logits).all()
    assert not d_logits[gold == MISSING].any()


def test_typeless_ignores_types_and_equals_the_one_label_loss():
    """typed=false on 3-label tags == the one-label loss on the relabelled tags."""
    multi = init(AUC2T(typed=False, typeless_label="LOC"))
    single = init(AUC2T(typed=True), labels=["LOC"])
    gold = gold_batch(5)
    single_tags = single.tag_names
    relabel = numpy.array([single_tags.index("O" if t == "O" else f"{split_tag(t)[0]}-LOC")
                           for t in multi.tag_names])
    single_gold = numpy.where(gold == MISSING, MISSING, relabel[numpy.maximum(gold, 0)])
    logits = numpy.random.default_rng(1).normal(size=(len(gold), 2)) * 2
    d1, v1 = multi(logits, gold)
    d2, v2 = single(logits, single_gold)
    assert v1 == pytest.approx(v2, abs=1e-12) and numpy.allclose(d1, d2, atol=1e-12)
    ref_value, ref_grad = torch_auc2t(multi, logits, gold, multi.tag_names)
    assert v1 == pytest.approx(ref_value, abs=1e-9)
    numpy.testing.assert_allclose(d1, ref_grad, atol=1e-6)


def test_closed_form_equals_the_min_max_value_on_a_grid():
    """min_{a,b} max_{α≥0} of the AUC-M saddle objective == the closed form; and its
    gradient is the objective's at the optimal (a, b, α): α is at its maximum (ascended)."""
    rng = numpy.random.default_rng(3)
    m = 1.0
    for trial in range(4):
        h = rng.random(30) * (0.6 if trial % 2 else 1.0)
        pos = rng.random(30) < 0.3
        pos[:2] = [True, False]
        neg = ~pos
        values, grad = auc.auc_margin(numpy, h[:, None], pos[:, None], neg[:, None], m)
        a = numpy.linspace(-0.5, 1.5, 801)
        b = numpy.linspace(-0.5, 1.5, 801)
        alpha = numpy.linspace(0, 3, 1201)
        # The saddle objective separates: min over a, min over b, max over α ≥ 0.
        term_a = (((h[pos][None, :] - a[:, None]) ** 2).mean(axis=1)).min()
        term_b = (((h[neg][None, :] - b[:, None]) ** 2).mean(axis=1)).min()
        gap = m - h[pos].mean() + h[neg].mean()
        term_alpha = (2 * alpha * gap - alpha**2).max()
        assert values[0] == pytest.approx(term_a + term_b + term_alpha, abs=2e-5)
        # Danskin: ∇_h of the closed form == ∂f/∂h at (a*, b*, α*), α* = argmax ≥ 0.
        a_star, b_star, alpha_star = h[pos].mean(), h[neg].mean(), max(gap, 0.0)
        ht = torch.tensor(h, requires_grad=True)
        pos_t, neg_t = torch.tensor(pos), torch.tensor(neg)
        f = (((ht[pos_t] - a_star) ** 2).mean() + ((ht[neg_t] - b_star) ** 2).mean()
             + 2 * alpha_star * (m - ht[pos_t].mean() + ht[neg_t].mean()) - alpha_star**2)
        f.backward()
        numpy.testing.assert_allclose(grad[:, 0], ht.grad.numpy(), atol=1e-12)
        # Ascent on α from below its optimum increases f: α is maximised, never descended.
        if alpha_star > 0:
            df_dalpha = 2 * gap - 2 * (alpha_star / 2)
            assert df_dalpha > 0


def test_float32_stays_float32_and_extreme_logits_are_finite():
    loss = init(AUC2T())
    gold = gold_batch(2)
    logits = numpy.random.default_rng(2).normal(size=(len(gold), 6)).astype("float32")
    d, v = loss(logits, gold)
    assert d.dtype == numpy.float32
    d64, v64 = loss(logits.astype("float64"), gold)
    assert v == pytest.approx(v64, rel=1e-4) and numpy.allclose(d, d64, atol=1e-5)
    d, v = loss(logits * 1e4, gold)
    assert numpy.isfinite(d).all() and numpy.isfinite(v)


def test_degenerate_batches():
    loss = init(AUC2T())
    d, v = loss(numpy.ones((4, 6)), numpy.full(4, MISSING))
    assert v == 0.0 and not d.any()
    d, v = loss(numpy.zeros((0, 6)), numpy.zeros((0,), dtype="int64"))
    assert v == 0.0 and d.shape == (0, 6)
    d, v = loss(numpy.ones((1, 6)), numpy.array([0]))
    assert numpy.isfinite(v) and numpy.isfinite(d).all()
    with pytest.raises(ValueError, match="width 6"):
        loss(numpy.ones((3, 4)), numpy.zeros(3, dtype="int64"))


# -- COMAUC-2T ---------------------------------------------------------------------------------


def torch_ce(logits, gold):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    keep = torch.tensor(gold != MISSING)
    y = torch.tensor(numpy.where(gold == MISSING, 0, gold))
    value = torch.nn.functional.cross_entropy(z[keep], y[keep], reduction="sum") / int(keep.sum())
    value.backward()
    return float(value.detach()), z.grad.numpy()


@pytest.mark.parametrize("typed", [True, False])
@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_comauc_alternates_and_each_step_matches_torch(typed, scheme):
    labels = LABELS if typed else ["ENTITY"]
    loss = init(CompositionalAUC2T(typed=typed, ce_steps=2, auc_steps=1), scheme=scheme, labels=labels)
    tags = loss.tag_names
    split = len(tags)  # one label when typeless: the CE head covers O + the prefixes
    width = loss.output_width(len(tags), len(labels))
    assert width == split + 2 * len(labels)
    gold = gold_batch(11, scheme=scheme, labels=labels)
    logits = numpy.random.default_rng(4).normal(size=(len(gold), width)) * 2
    phases = []
    for _ in range(6):
        phase = loss.phase(loss.step)
        d, v = loss(logits, gold)
        phases.append(phase)
        if phase == "ce":
            ref_v, ref_g = torch_ce(logits[:, :split], gold)
            assert not d[:, split:].any()
            numpy.testing.assert_allclose(d[:, :split], ref_g, atol=1e-6)
        else:
            ref_v, ref_g = torch_auc2t(loss.auc, logits[:, split:], gold, tags)
            assert not d[:, :split].any()
            numpy.testing.assert_allclose(d[:, split:], ref_g, atol=1e-6)
        assert v == pytest.approx(ref_v, abs=1e-9)
    assert phases == ["ce", "ce", "auc", "ce", "ce", "auc"]


def test_comauc_typeless_collapses_types_for_ce():
    loss = init(CompositionalAUC2T(typed=False, typeless_label="ORG"))
    assert loss.output_width(13, 3) == 5 + 2
    gold = numpy.array([0, 1, 5, 9, MISSING])  # O, B-PER, B-LOC, B-ORG, missing
    logits = numpy.zeros((5, 7))
    d, _ = loss(logits, gold)  # step 0: CE over O, B, I, L, U
    ref_v, ref_g = torch_ce(logits[:, :5], numpy.array([0, 1, 1, 1, MISSING]))
    numpy.testing.assert_allclose(d[:, :5], ref_g, atol=1e-9)
    # Softmax decoding maps back onto the component's tags with the one label.
    softmax = init(CompositionalAUC2T(typed=False, typeless_label="ORG", decode_with="softmax"))
    scores = numpy.full((2, 7), -5.0)
    scores[0, 1], scores[1, 3] = 5.0, 5.0  # B then L (CE tags O, B, I, L, U)
    (path,) = softmax.decode([scores])
    assert [softmax.tag_names[i] for i in path] == ["B-ORG", "L-ORG"]


# -- Figure 1 and decoding ------------------------------------------------------------------------


def logits_from_rows(entity, begin, big=4.0):
    rows = numpy.array([entity, begin], dtype=float).T
    return numpy.where(rows > 0, big, -big)


def test_paper_figure_1_two_task_rows_and_back():
    words = "Germany Representative To The European Union".split()
    tags = ["B", "O", "O", "O", "B", "I"]
    typed_tags = [t if t == "O" else f"{t}-ENTITY" for t in tags]
    entity, begin = two_task_rows(typed_tags)
    assert entity == [1, 0, 0, 0, 1, 1]
    assert begin == [1, 0, 0, 0, 1, 0]
    # Back through the real decoder of the loss, in both schemes.
    for scheme, expected in [("BIO", typed_tags),
                             ("BILUO", ["U-ENTITY", "O", "O", "O", "B-ENTITY", "L-ENTITY"])]:
        loss = init(AUC2T(typed=False), scheme=scheme, labels=["ENTITY"])
        (path,) = loss.decode([logits_from_rows(entity, begin)])
        assert [loss.tag_names[i] for i in path] == expected
    # The same sentence through the target builder of the loss.
    loss = init(AUC2T(typed=False), scheme="BIO", labels=["ENTITY"])
    gold = numpy.array([loss.tag_names.index(t) for t in typed_tags])
    ent, beg, mask = loss.targets(numpy, gold)
    assert ent[:, 0].astype(int).tolist() == entity and beg[:, 0].astype(int).tolist() == begin
    assert len(words) == len(tags)


def test_algorithm_1_rules():
    loss = init(AUC2T(typed=False, threshold=0.5), scheme="BIO", labels=["X"])
    p = numpy.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.9], [0.7, 0.2], [0.8, 0.8], [0.6, 0.6]])
    # I first (opens), I, begin-without-entity -> O, I with no open entity -> opens, B, B
    assert loss.decode_spans(p) == [(0, 2, "X"), (3, 4, "X"), (4, 5, "X"), (5, 6, "X")]
    loss.threshold = 0.85
    assert loss.decode_spans(p) == [(0, 2, "X")]


def test_typed_decoding_rules():
    loss = init(AUC2T(typed=True))
    k = len(LABELS)
    # Token 0: PER begins; token 1: LOC is best (a flicker); token 2: PER again; token 3: O.
    ent = numpy.array([[0.9, 0.1, 0.1], [0.6, 0.7, 0.1], [0.9, 0.2, 0.1], [0.1, 0.2, 0.3]])
    beg = numpy.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]])
    probs = numpy.concatenate([ent, beg], axis=1)
    assert probs.shape[1] == 2 * k
    assert loss.decode_spans(probs) == [(0, 1, "PER"), (1, 2, "LOC"), (2, 3, "PER")]
    loss.typed_decoding = "span"
    assert loss.decode_spans(probs) == [(0, 3, "PER")]


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 12),
    n_labels=st.integers(1, 3),
    scheme=st.sampled_from(["BIO", "BILUO"]),
    typed=st.booleans(),
    rule=st.sampled_from(["token", "span"]),
    threshold=st.floats(0.05, 0.95),
    comauc=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_decoding_is_always_valid(n, n_labels, scheme, typed, rule, threshold, comauc, seed):
    labels = ["A", "B", "C"][:n_labels]
    options = dict(typed=typed, threshold=threshold, typed_decoding=rule,
                   typeless_label=None if typed else labels[-1])
    loss = CompositionalAUC2T(**options) if comauc else AUC2T(**options)
    init(loss, scheme=scheme, labels=labels)
    tags = loss.tag_names
    width = loss.output_width(len(tags), n_labels)
    rng = numpy.random.default_rng(seed)
    scores = [rng.normal(size=(n, width)) * 3, rng.normal(size=(1, width)) * 3]
    allowed, start, end = transition_constraints(tags, scheme)
    for path in loss.decode(scores):
        path = [int(i) for i in path]
        if not path:
            continue
        assert start[path[0]] and end[path[-1]]
        assert all(allowed[a, b] for a, b in zip(path, path[1:]))
        spans, repairs = tags_to_spans([tags[i] for i in path])
        assert repairs == 0
        if not typed:
            assert {label for _, _, label in spans} <= {labels[-1]}


# -- settings, registry, contract ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, setting",
    [
        (dict(margin=0), "margin"), (dict(margin=-1.0), "margin"), (dict(margin=float("nan")), "margin"),
        (dict(lam=-0.1), "lam"), (dict(threshold=0.0), "threshold"), (dict(threshold=1.0), "threshold"),
        (dict(threshold=1.5), "threshold"), (dict(weighting="p(1-p)"), "weighting"),
        (dict(typed="yes"), "typed"), (dict(typed_decoding="vote"), "typed_decoding"),
        (dict(one_class="skip"), "one_class"), (dict(typeless_label=""), "typeless_label"),
    ],
)
def test_bad_settings_name_the_setting(kwargs, setting):
    for make in (AUC2T, CompositionalAUC2T):
        with pytest.raises(ValueError, match=setting):
            make(**kwargs)


@pytest.mark.parametrize("kwargs, setting", [(dict(ce_steps=0), "ce_steps"), (dict(auc_steps=1.5), "auc_steps"),
                                             (dict(decode_with="crf"), "decode_with")])
def test_bad_schedule_settings(kwargs, setting):
    with pytest.raises(ValueError, match=setting):
        CompositionalAUC2T(**kwargs)


def test_typeless_label_must_be_clear():
    with pytest.raises(ValueError, match="typeless_label.*TypelessCorpus"):
        init(AUC2T(typed=False))
    with pytest.raises(ValueError, match="typeless_label = 'GPE'"):
        init(AUC2T(typed=False, typeless_label="GPE"))
    loss = init(AUC2T(typed=False, typeless_label="LOC"))
    assert loss.task_labels == ["LOC"] and loss.output_width(13, 3) == 2


def test_mom_refuses_auc():
    for loss in (AUC2T(), CompositionalAUC2T()):
        with pytest.raises(ValueError, match="per-token base"):
            MoM(base=loss)


def test_registry_resolves_names():
    assert registry.losses.get("spacy-nerimb.AUC2T.v1") is configure_auc2t
    assert registry.losses.get("spacy-nerimb.CompositionalAUC2T.v1") is configure_compositional_auc2t
    resolved = registry.resolve({
        "a": {"@losses": "spacy-nerimb.AUC2T.v1", "typed": False, "lam": 10.0},
        "c": {"@losses": "spacy-nerimb.CompositionalAUC2T.v1", "ce_steps": 2, "auc_steps": 3},
    })
    assert isinstance(resolved["a"], AUC2T) and resolved["a"].lam == 10.0 and not resolved["a"].typed
    assert isinstance(resolved["c"], TagLoss) and (resolved["c"].ce_steps, resolved["c"].auc_steps) == (2, 3)
    with pytest.raises(Exception, match="margin"):
        registry.resolve({"a": {"@losses": "spacy-nerimb.AUC2T.v1", "margin": 0}})
    reader = spacy.util.registry.readers.get("spacy-nerimb.TypelessCorpus.v1")
    assert reader is auc.create_typeless_corpus


def test_training_code_uses_the_logits_array_module():
    for func in (auc.auc_margin, auc.sigmoid, AUC2T.__call__, AUC2T.targets, CompositionalAUC2T.__call__):
        assert "numpy" not in inspect.getsource(func), func.__qualname__


def test_typeless_reader_relabels_and_keeps_missing(tmp_path):
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Anna", "met", "Bo", "in", "Oslo"], ents=["B-PER", "O", "B-PER", "O", "B-LOC"])
    unannotated = Doc(nlp.vocab, words=["no", "annotation"])
    DocBin(docs=[doc, unannotated]).to_disk(tmp_path / "x.spacy")
    read = auc.create_typeless_corpus(str(tmp_path / "x.spacy"), label="ENTITY")
    examples = list(read(nlp))
    assert [(e.start, e.end, e.label_) for e in examples[0].reference.ents] == [
        (0, 1, "ENTITY"), (2, 3, "ENTITY"), (4, 5, "ENTITY")]
    assert not examples[1].reference.has_annotation("ENT_IOB")


# -- in the component, spacy train, reload in a new process ----------------------------------------


PREDICT = textwrap.dedent(
    """
    import json, sys, spacy
    nlp = spacy.load(sys.argv[1])
    texts = json.loads(sys.argv[2])
    ner = nlp.get_pipe("ner")
    out = {"ents": [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)],
           "scores": [s.tolist() for s in ner.model.predict([nlp.make_doc(t) for t in texts])]}
    print(json.dumps(out))
    """
)


def predict_here(nlp, texts):
    ner = nlp.get_pipe("ner")
    return {"ents": [[[e.start, e.end, e.label_] for e in d.ents] for d in nlp.pipe(texts)],
            "scores": [s.tolist() for s in ner.model.predict([nlp.make_doc(t) for t in texts])]}


def predict_in_new_process(path, texts):
    out = subprocess.run([sys.executable, "-c", PREDICT, str(path), json.dumps(texts)],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


TEXTS = ["Anna Kovacs travelled to Kaselstad last week .",
         "Shares of Mitor Labs rose sharply after the report .",
         "The cargo ship MV Dorka docked at Lorenport .", "It was a quiet day .", ""]


@pytest.mark.slow
def test_spacy_train_auc2t_config_saves_a_model_that_reloads_identically(tmp_path):
    paths = write_synthetic_corpus(tmp_path, {"train": 200, "dev": 40}, seed=3)
    cmd = [sys.executable, "-m", "spacy", "train", str(REPO_ROOT / "configs" / "cnn-auc2t.cfg"),
           "--output", str(tmp_path / "out"), "--paths.train", paths["train"],
           "--paths.dev", paths["dev"], "--training.max_steps", "30",
           "--training.eval_frequency", "15"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    model = tmp_path / "out" / "model-last"
    nlp = spacy.load(model)
    ner = nlp.get_pipe("ner")
    assert isinstance(ner.loss, AUC2T) and ner.loss.lam == 100.0 and ner.loss.typed
    assert ner.model.get_ref("output_layer").get_dim("nO") == 2 * len(ner.labels)
    here = predict_here(nlp, TEXTS)
    there = predict_in_new_process(model, TEXTS)
    assert there["ents"] == [[list(e) for e in d] for d in here["ents"]]
    assert there["scores"] == here["scores"]


def train_in_process(loss, n_docs=200, epochs=3, typeless=False, seed=0):
    fix_random_seed(seed)  # the result must not depend on the tests that ran before
    nlp = spacy.blank("en")
    nlp.add_pipe("imbalanced_ner", name="ner", config={"loss": loss})
    docs = synthetic_docs(nlp.vocab, n_docs, seed=4)
    if typeless:
        docs = [auc.make_typeless(d) for d in docs]
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    history = []
    for _ in range(epochs):
        losses = {}
        for i in range(0, len(examples), 25):
            nlp.update(examples[i : i + 25], sgd=optimizer, losses=losses, drop=0.1)
        history.append(losses["ner"])
    return nlp, history


@pytest.mark.slow
def test_comauc_typeless_trains_and_reloads_identically_in_a_new_process(tmp_path):
    loss = {"@losses": "spacy-nerimb.CompositionalAUC2T.v1", "typed": False}
    nlp, history = train_in_process(loss, typeless=True)
    ner = nlp.get_pipe("ner")
    assert ner.labels == ("ENTITY",)
    assert all(numpy.isfinite(history))
    nlp.to_disk(tmp_path / "m")
    here = predict_here(nlp, TEXTS)
    assert any(here["ents"])
    there = predict_in_new_process(tmp_path / "m", TEXTS)
    assert there == json.loads(json.dumps(here))


@pytest.mark.slow
def test_typed_auc2t_learns_the_synthetic_corpus():
    nlp, history = train_in_process({"@losses": "spacy-nerimb.AUC2T.v1"}, n_docs=300, epochs=4)
    assert history[-1] < history[0] / 3
    test = [Example(nlp.make_doc(d.text), d) for d in synthetic_docs(nlp.vocab, 150, seed=9)]
    scores = nlp.evaluate(test)
    assert scores["ents_per_type"]["PERSON"]["f"] > 0.5 and scores["ents_per_type"]["LOC"]["f"] > 0.5


@pytest.mark.slow
def test_spacy_train_typeless_comauc_config_reads_typeless_corpora(tmp_path):
    """The typeless config relabels typed synthetic data through its reader, end to end."""
    paths = write_synthetic_corpus(tmp_path, {"train": 120, "dev": 30}, seed=5)
    cmd = [sys.executable, "-m", "spacy", "train",
           str(REPO_ROOT / "configs" / "cnn-comauc2t-typeless.cfg"),
           "--output", str(tmp_path / "out"), "--paths.train", paths["train"],
           "--paths.dev", paths["dev"], "--training.max_steps", "10",
           "--training.eval_frequency", "10"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    nlp = spacy.load(tmp_path / "out" / "model-last")
    ner = nlp.get_pipe("ner")
    assert ner.labels == ("ENTITY",)
    assert isinstance(ner.loss, CompositionalAUC2T) and not ner.loss.typed
    meta = json.loads((tmp_path / "out" / "model-last" / "meta.json").read_text())
    assert "ents_f" in meta["performance"]
    assert all(e.label_ == "ENTITY" for e in nlp(TEXTS[0]).ents)
