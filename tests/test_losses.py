"""Per-token losses: values and gradients against torch autograd, equivalences, bad settings."""
import inspect
import math

import numpy
import pytest
import torch
from thinc.api import registry

from spacy_nerimb.losses import (
    CrossEntropy,
    Dice,
    Focal,
    MoM,
    TagLoss,
    class_weights,
    configure_cross_entropy,
    configure_dice,
    configure_focal,
    configure_mom,
)
from spacy_nerimb.losses import cross_entropy, dice, focal, mom
from spacy_nerimb.tags import MISSING, make_tag_names

LABELS = ["PER", "LOC", "ORG"]
TAGS = make_tag_names(LABELS, "BILUO")  # 13 tags, "O" first
N_TAGS = len(TAGS)
RNG_COUNTS = numpy.random.default_rng(0)
COUNTS = {tag: int(c) for tag, c in zip(TAGS, [900] + list(RNG_COUNTS.integers(0, 60, N_TAGS - 1)))}
COUNTS["I-ORG"] = 0  # a tag never seen in training


def init(loss: TagLoss, counts=COUNTS) -> TagLoss:
    loss.initialize(TAGS, counts, labels=LABELS, scheme="BILUO")
    return loss


def batch(seed: int, n: int = 37, scale: float = 3.0, masks: str = "random", dtype="float64"):
    rng = numpy.random.default_rng(seed)
    logits = (rng.normal(size=(n, N_TAGS)) * scale).astype(dtype)
    gold = numpy.where(rng.random(n) < 0.6, 0, rng.integers(0, N_TAGS, n)).astype("int64")
    if masks == "random":
        gold[rng.random(n) < 0.3] = MISSING
    elif masks == "all":
        gold[:] = MISSING
    return logits, gold


# -- torch references: the formulas written plainly, differentiated by autograd ------------


ONES = torch.ones(N_TAGS, dtype=torch.float64)


def torch_token_losses(loss: TagLoss, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(y, N_TAGS).to(z.dtype)
    if isinstance(loss, MoM):
        base = torch_token_losses(loss.base, z, y)
        return base * (loss.lam + (1 - loss.lam) * (y == loss.majority_id).to(z.dtype))
    if isinstance(loss, CrossEntropy):
        w = ONES if loss.weights is None else torch.tensor(loss.weights)
        return -w[y] * torch.log_softmax(z, dim=1).gather(1, y[:, None])[:, 0]
    if isinstance(loss, Focal):
        a = ONES if loss.weights is None else torch.tensor(loss.weights)
        if loss.mode == "softmax":
            lp = torch.log_softmax(z, dim=1).gather(1, y[:, None])[:, 0]
            return -a[y] * (1 - lp.exp()) ** loss.gamma * lp
        u = torch.where(onehot > 0, z, -z)
        log_q = torch.nn.functional.logsigmoid(u)
        return (-a[None, :] * (1 - log_q.exp()) ** loss.gamma * log_q).sum(1)
    if isinstance(loss, Dice):
        p = torch.softmax(z, dim=1)
        pt = (1 - p) ** loss.alpha * p
        s = loss.smooth
        denom = pt**2 + onehot**2 + s if loss.square else pt + onehot + s
        return (1 - (2 * pt * onehot + s) / denom).sum(1)
    raise TypeError(type(loss))


def torch_reference(loss: TagLoss, logits: numpy.ndarray, gold: numpy.ndarray):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor(gold != MISSING, dtype=torch.float64)
    y = torch.tensor(numpy.where(gold == MISSING, 0, gold))
    n = int(mask.sum())
    total = (torch_token_losses(loss, z, y) * mask).sum() / max(n, 1)
    total.backward()
    return z.grad.numpy(), float(total.detach())


LOSSES = {
    "ce": lambda: CrossEntropy(),
    "wce-inverse": lambda: CrossEntropy("inverse_frequency"),
    "wce-log": lambda: CrossEntropy("log", beta=2.0),
    "wce-mapping": lambda: CrossEntropy({"PER": 3.0, "O": 0.5, "U-LOC": 0.0}),
    "focal": lambda: Focal(gamma=2.0),
    "focal-small-gamma-alpha": lambda: Focal(gamma=0.5, alpha="inverse_frequency"),
    "focal-ovr": lambda: Focal(gamma=2.0, mode="ovr"),
    "focal-ovr-alpha": lambda: Focal(gamma=0.3, mode="ovr", alpha={"LOC": 2.0}),
    "dice": lambda: Dice(),
    "dice-unsquared": lambda: Dice(square=False),
    "dice-alpha": lambda: Dice(alpha=0.5, smooth=0.5),
    "dice-alpha0": lambda: Dice(alpha=0.0),
    "mom-ce": lambda: MoM(0.175),
    "mom-focal": lambda: MoM(0.3, base=Focal(gamma=2.0)),
    "mom-dice": lambda: MoM(0.5, base=Dice()),
    "mom-wce": lambda: MoM(0.2, base=CrossEntropy("log", beta=1.5)),
    "mom-other-majority": lambda: MoM(
        0.4, base=Focal(gamma=1.0, mode="ovr"), majority_label="I-PER"
    ),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("masks", ["none", "random", "all"])
@pytest.mark.parametrize("scale", [3.0, 8.0])
def test_value_and_gradient_match_torch(name, masks, scale):
    loss = init(LOSSES[name]())
    for seed in range(3):
        logits, gold = batch(seed, scale=scale, masks=masks)
        d_logits, value = loss(logits, gold)
        ref_grad, ref_value = torch_reference(loss, logits, gold)
        assert d_logits.dtype == logits.dtype and d_logits.shape == logits.shape
        numpy.testing.assert_allclose(d_logits, ref_grad, atol=1e-6, rtol=0)
        assert value == pytest.approx(ref_value, abs=1e-6, rel=0)
        assert numpy.isfinite(d_logits).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_stays_float32_and_close(name):
    loss = init(LOSSES[name]())
    logits, gold = batch(5)
    d64, v64 = loss(logits, gold)
    d32, v32 = loss(logits.astype("float32"), gold)
    assert d32.dtype == numpy.float32
    values, grads = loss.token_losses(logits.astype("float32"), numpy.maximum(gold, 0))
    assert values.dtype == numpy.float32 and grads.dtype == numpy.float32  # no silent upcast
    numpy.testing.assert_allclose(d32, d64, atol=1e-5)
    assert v32 == pytest.approx(v64, rel=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_degenerate_batches_are_finite(name, dtype):
    loss = init(LOSSES[name]())
    logits, gold = batch(1, dtype=dtype, masks="all")
    d_logits, value = loss(logits, gold)
    assert value == 0.0 and not d_logits.any() and d_logits.dtype == logits.dtype
    empty = numpy.zeros((0, N_TAGS), dtype=dtype)
    d_empty, value = loss(empty, numpy.zeros((0,), dtype="int64"))
    assert value == 0.0 and d_empty.shape == (0, N_TAGS)
    all_o = numpy.zeros_like(gold)
    d_logits, value = loss(logits, all_o)
    assert math.isfinite(value) and numpy.isfinite(d_logits).all()
    rng = numpy.random.default_rng(2)
    for extreme in (1e3, 1e2, 40.0):
        signs = numpy.where(rng.random(logits.shape) < 0.5, -extreme, extreme).astype(dtype)
        signs[:3] = 0.0
        signs[3, :] = extreme  # all tied
        signs[4, :] = -extreme
        signs[5, 0], signs[5, 1:] = extreme, -extreme  # one certain tag
        for g in (batch(3)[1], all_o):
            d_logits, value = loss(signs, g)
            assert math.isfinite(value) and numpy.isfinite(d_logits).all(), (extreme, g)


def test_extreme_logits_give_the_limit_gradient():
    """At a certain, correct prediction every loss has (close to) zero gradient.

    The loss is 0 too, except self-adjusting Dice with α > 0: there p̃ = (1 − p)^α p
    goes to 0 as p → 1, so each token keeps 1 − s / (1 + s) = 0.5 (with s = 1).
    """
    logits = numpy.full((2, N_TAGS), -1e3)
    logits[:, 0] = 1e3
    gold = numpy.zeros((2,), dtype="int64")
    for name, make in LOSSES.items():
        loss = init(make())
        d_logits, value = loss(logits, gold)
        assert numpy.abs(d_logits).max() < 1e-6, name
        inner = loss.base if isinstance(loss, MoM) else loss  # gold 'O': MoM factor 1
        dice_limit = isinstance(inner, Dice) and inner.alpha > 0
        expected = 1 - inner.smooth / (1 + inner.smooth) if dice_limit else 0.0
        assert value == pytest.approx(expected, abs=1e-6), name


# -- equivalences ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_base",
    [
        CrossEntropy,
        lambda: CrossEntropy("inverse_frequency"),
        lambda: Focal(gamma=2.0),
        lambda: Focal(gamma=1.5, mode="ovr", alpha="log", beta=3.0),
        Dice,
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mom_lam_one_is_exactly_the_base(make_base, dtype):
    base = init(make_base())
    wrapped = init(MoM(lam=1.0, base=make_base()))
    logits, gold = batch(7, dtype=dtype)
    d_base, v_base = base(logits, gold)
    d_mom, v_mom = wrapped(logits, gold)
    assert v_mom == v_base
    assert numpy.array_equal(d_mom, d_base)


@pytest.mark.parametrize("alpha", [None, "inverse_frequency", {"PER": 2.0}])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_focal_gamma_zero_is_exactly_cross_entropy(alpha, dtype):
    ce = init(CrossEntropy(class_weights=alpha))
    fl = init(Focal(gamma=0.0, alpha=alpha))
    for masks in ("none", "random"):
        logits, gold = batch(11, dtype=dtype, masks=masks)
        d_ce, v_ce = ce(logits, gold)
        d_fl, v_fl = fl(logits, gold)
        assert v_fl == v_ce
        assert numpy.array_equal(d_fl, d_ce)


def test_uniform_weights_are_cross_entropy():
    logits, gold = batch(4)
    d_ce, v_ce = init(CrossEntropy())(logits, gold)
    d_map, v_map = init(CrossEntropy({tag: 1.0 for tag in TAGS}))(logits, gold)
    assert v_map == v_ce and numpy.array_equal(d_map, d_ce)
    equal_counts = {tag: 50 for tag in TAGS}
    for spec in ("inverse_frequency", {"PER": 1.0}):
        d_w, v_w = init(CrossEntropy(spec), equal_counts)(logits, gold)
        assert v_w == pytest.approx(v_ce, abs=1e-12)
        numpy.testing.assert_allclose(d_w, d_ce, atol=1e-12)


@pytest.mark.parametrize("make_base", [CrossEntropy, lambda: Focal(gamma=2.0), Dice])
def test_mom_lam_zero_counts_only_majority_tokens(make_base):
    base = init(make_base())
    loss = init(MoM(lam=0.0, base=make_base()))
    logits, gold = batch(9)
    d_logits, value = loss(logits, gold)
    values, grads = base.token_losses(logits, numpy.where(gold == MISSING, 0, gold))
    keep = gold == 0
    n_annotated = int((gold != MISSING).sum())
    assert 0 < keep.sum() < n_annotated
    assert value == pytest.approx(values[keep].sum() / n_annotated, rel=1e-12)
    numpy.testing.assert_allclose(d_logits[keep], grads[keep] / n_annotated, rtol=1e-7)
    assert not d_logits[~keep].any()
    # λ in between: exactly the paper's mix of the two terms.
    mixed = init(MoM(lam=0.3, base=make_base()))
    d_mixed, v_mixed = mixed(logits, gold)
    d_full, v_full = base(logits, gold)
    assert v_mixed == pytest.approx(0.3 * v_full + 0.7 * value, abs=1e-12)
    numpy.testing.assert_allclose(d_mixed, 0.3 * d_full + 0.7 * d_logits, atol=1e-12)


def test_mom_other_majority_tag_and_delegation():
    base = Focal(gamma=2.0, alpha="inverse_frequency", mode="ovr")
    loss = MoM(lam=0.0, base=base, majority_label="I-PER")
    init(loss)
    assert base.weights is not None and base.tag_names == TAGS  # initialize was forwarded
    assert loss.majority_id == TAGS.index("I-PER")
    assert loss.head == base.head and loss.output_width(N_TAGS, 3) == base.output_width(N_TAGS, 3)
    scores = [batch(1, n=6)[0], batch(2, n=1)[0]]
    assert all(
        numpy.array_equal(a, b) for a, b in zip(loss.decode(scores), base.decode(scores))
    )
    logits, gold = batch(3)
    gold[:4] = TAGS.index("I-PER")
    d_logits, _ = loss(logits, gold)
    assert not d_logits[gold != TAGS.index("I-PER")].any() and d_logits[:4].any()


def test_focal_ovr_decodes_on_sigmoid_scores():
    loss = init(Focal(mode="ovr"))
    # Softmax would pick O (one large logit); per-tag sigmoids are indifferent there,
    # so both give the same path when the scores agree — check decode runs and is valid.
    scores = [numpy.array([[5.0] + [-5.0] * (N_TAGS - 1), [-5.0] * N_TAGS])]
    scores[0][1, TAGS.index("U-PER")] = 3.0
    (path,) = loss.decode(scores)
    assert [TAGS[i] for i in path] == ["O", "U-PER"]


# -- class weights -------------------------------------------------------------------------


def test_inverse_frequency_weights_are_sklearn_balanced():
    counts = {"O": 80, "B-PER": 10, "I-PER": 10, "L-PER": 0}
    tags = list(counts)
    w = class_weights("inverse_frequency", tags, counts)
    eff = numpy.array([80, 10, 10, 1], dtype=float)  # an unseen tag counts as 1
    numpy.testing.assert_allclose(w, eff.sum() / (4 * eff))
    assert (eff * w).sum() == pytest.approx(eff.sum())
    assert numpy.isfinite(w).all()


def test_log_weights_follow_the_paper_and_are_positive():
    counts = {"O": 80, "B-PER": 10, "I-PER": 10, "L-PER": 0}
    tags = list(counts)
    w = class_weights("log", tags, counts, beta=2.0)
    eff = numpy.array([80, 10, 10, 1], dtype=float)
    numpy.testing.assert_allclose(w, numpy.log10((eff.sum() - eff) / eff + 2.0))
    assert (w > 0).all()
    with pytest.raises(ValueError, match="beta"):
        class_weights("log", ["O"], {"O": 5}, beta=1.0)  # 'O' holds every token
    with pytest.raises(ValueError, match="beta"):
        CrossEntropy("log", beta=0.5)


def test_mapping_weights():
    w = class_weights({"PER": 2.0, "U-PER": 5.0, "O": 0.5}, TAGS, COUNTS)
    expected = numpy.ones(N_TAGS)
    for i, tag in enumerate(TAGS):
        if tag.endswith("-PER"):
            expected[i] = 2.0
    expected[TAGS.index("U-PER")] = 5.0
    expected[0] = 0.5
    numpy.testing.assert_array_equal(w, expected)
    assert class_weights(None, TAGS, COUNTS).tolist() == [1.0] * N_TAGS
    with pytest.raises(ValueError, match="'MISC'.*B-PER.*PER"):
        class_weights({"MISC": 2.0}, TAGS, COUNTS)
    with pytest.raises(ValueError, match="alpha"):
        Focal(alpha={"PER": -1.0})
    with pytest.raises(ValueError, match="class_weights"):
        CrossEntropy({"PER": float("nan")})


def test_weighted_loss_needs_initialize_and_matching_width():
    logits, gold = batch(0)
    with pytest.raises(RuntimeError, match="initialize"):
        CrossEntropy("inverse_frequency")(logits, gold)
    with pytest.raises(RuntimeError, match="initialize"):
        MoM(majority_label="I-PER")(logits, gold)
    loss = CrossEntropy("log", beta=2.0)
    loss.initialize(TAGS[:5], COUNTS)
    with pytest.raises(ValueError, match="initialize"):
        loss(logits, gold)
    # Unweighted losses and MoM over 'O' work without initialize.
    for make in (CrossEntropy, Focal, Dice, MoM):
        d_logits, value = make()(logits, gold)
        assert math.isfinite(value)


# -- bad settings --------------------------------------------------------------------------


class _NotPerToken(TagLoss):
    def __call__(self, logits, gold, lengths=None):
        return logits * 0, 0.0


@pytest.mark.parametrize(
    "make, setting",
    [
        (lambda: MoM(lam=-0.1), "lam = -0.1"),
        (lambda: MoM(lam=1.5), "lam = 1.5"),
        (lambda: MoM(lam=float("nan")), "lam"),
        (lambda: MoM(base=_NotPerToken()), "per-token"),
        (lambda: Focal(gamma=-1), "gamma"),
        (lambda: Focal(mode="sigmoid"), "mode"),
        (lambda: Focal(alpha="bogus"), "alpha"),
        (lambda: CrossEntropy(class_weights="bogus"), "class_weights.*inverse_frequency.*log"),
        (lambda: CrossEntropy(class_weights=[1.0, 2.0]), "class_weights"),
        (lambda: Dice(alpha=-0.5), "alpha"),
        (lambda: Dice(smooth=0.0), "smooth"),
        (lambda: init(CrossEntropy({"MISC": 2.0})), "MISC"),
        (lambda: init(Focal(alpha={"B-MISC": 2.0})), "B-MISC"),
        (lambda: init(MoM(majority_label="X")), "majority_label = 'X'"),
    ],
)
def test_bad_settings_name_the_setting(make, setting):
    with pytest.raises(ValueError, match=setting):
        make()


# -- registry, array module -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, func",
    [
        ("spacy-nerimb.CrossEntropy.v1", configure_cross_entropy),
        ("spacy-nerimb.Focal.v1", configure_focal),
        ("spacy-nerimb.Dice.v1", configure_dice),
        ("spacy-nerimb.MoM.v1", configure_mom),
    ],
)
def test_registered(name, func):
    assert registry.losses.get(name) is func
    assert isinstance(registry.resolve({"loss": {"@losses": name}})["loss"], TagLoss)


def test_resolve_nested_config():
    config = {
        "loss": {
            "@losses": "spacy-nerimb.MoM.v1",
            "lam": 0.2,
            "base": {"@losses": "spacy-nerimb.Focal.v1", "gamma": 2.0, "alpha": {"PER": 2.0}},
        },
        "wce": {"@losses": "spacy-nerimb.CrossEntropy.v1", "class_weights": "log", "beta": 3.0},
        "dice": {"@losses": "spacy-nerimb.Dice.v1", "alpha": 0.1, "square": False},
    }
    resolved = registry.resolve(config)
    loss = resolved["loss"]
    assert isinstance(loss, MoM) and loss.lam == 0.2
    assert isinstance(loss.base, Focal) and loss.base.gamma == 2.0
    assert loss.base.alpha == {"PER": 2.0}
    assert resolved["wce"].class_weights == "log" and resolved["wce"].beta == 3.0
    assert resolved["dice"].alpha == 0.1 and resolved["dice"].square is False
    init(loss)
    d_logits, value = loss(*batch(0))
    assert math.isfinite(value)
    with pytest.raises(Exception, match="lam"):
        registry.resolve({"loss": {"@losses": "spacy-nerimb.MoM.v1", "lam": 1.5}})


def test_training_code_uses_the_logits_array_module():
    """No loss forces numpy inside a step (cupy logits must stay on the GPU)."""
    for func in (
        cross_entropy.softmax_parts,
        cross_entropy.CrossEntropy.token_losses,
        focal.Focal.token_losses,
        focal.Focal._softmax,
        focal.Focal._ovr,
        focal.log_sigmoid,
        dice.Dice.token_losses,
        mom.MoM.token_losses,
    ):
        source = inspect.getsource(func)
        assert "numpy" not in source, func.__qualname__
