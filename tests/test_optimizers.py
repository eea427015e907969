"""``spacy-nerimb.AdamGlobalClip.v1``: Adam with one clip over all of a step's gradients."""
import subprocess
import sys
from importlib.metadata import entry_points

import numpy
import pytest
import torch
from spacy import util
from thinc.api import Config, Linear, Optimizer, PyTorchWrapper, Relu, chain, fix_random_seed

from conftest import REPO_ROOT
from spacy_nerimb.optimizers import GlobalNormClipOptimizer, configure_adam_global_clip
from spacy_nerimb.synthetic import write_synthetic_corpus

NAME = "spacy-nerimb.AdamGlobalClip.v1"
ADAM = {"L2": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "L2_is_weight_decay": True,
        "use_averages": False}


def small_model(seed: int = 0):
    """A thinc layer and a PyTorch layer: the optimiser must handle both kinds of parameter."""
    fix_random_seed(seed)
    torch.manual_seed(seed)
    model = chain(Relu(nO=5, nI=4), PyTorchWrapper(torch.nn.Linear(5, 3)))
    X = numpy.random.default_rng(seed).normal(size=(8, 4)).astype("float32")
    model.initialize(X=X)
    return model, X


def params(model):
    """Every parameter as a float64 copy, keyed by (position in the model, layer, parameter)."""
    out = {}
    for position, node in enumerate(model.walk()):
        for name in node.param_names:
            out[(position, node.name, name)] = numpy.array(node.get_param(name), dtype="float64")
        for shim in node.shims:
            for name, value in shim._model.named_parameters():
                out[(position, node.name, name)] = value.detach().numpy().astype("float64")
    return out


def grads(model):
    out = []
    for node in model.walk():
        out += [node.get_grad(name) for name in node.param_names if node.has_grad(name)]
        for shim in node.shims:
            out += [p.grad.numpy() for p in shim._model.parameters() if p.grad is not None]
    return out


def backprop_step(model, X, target_scale):
    Y, backprop = model.begin_update(X)
    backprop((Y - target_scale).astype("float32"))


def reference_step(model, optimizer, max_norm):
    """What the optimiser must do: scale every gradient by min(1, max_norm / global norm)."""
    norm = float(numpy.sqrt(sum(float((g.astype("float64") ** 2).sum()) for g in grads(model))))
    scale = min(1.0, max_norm / (norm + 1e-6))
    for g in grads(model):
        g *= scale
    model.finish_update(optimizer)
    optimizer.step_schedules()
    return norm


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_updates_equal_adam_on_globally_clipped_gradients(max_norm):
    ours, X = small_model()
    reference, _ = small_model()
    optimizer = GlobalNormClipOptimizer(0.01, max_grad_norm=max_norm, **ADAM)
    plain = Optimizer(0.01, grad_clip=0.0, **ADAM)
    assert params(ours).keys() == params(reference).keys()
    norms = []
    for step in range(4):
        backprop_step(ours, X, 3.0)
        backprop_step(reference, X, 3.0)
        ours.finish_update(optimizer)
        optimizer.step_schedules()
        norms.append(reference_step(reference, plain, max_norm))
        assert optimizer.last_grad_norm == pytest.approx(norms[-1], rel=1e-5)
    if max_norm < 1:
        assert min(norms) > max_norm, "the small bound must clip on every step"
    for key, value in params(reference).items():
        numpy.testing.assert_allclose(params(ours)[key], value, rtol=1e-5, atol=1e-6, err_msg=str(key))


def test_per_parameter_clipping_moves_differently():
    """The reason for the optimiser: thinc's per-array clip is not the global clip."""
    ours, X = small_model()
    per_array, _ = small_model()
    optimizer = GlobalNormClipOptimizer(0.01, max_grad_norm=0.05, **ADAM)
    thinc_adam = Optimizer(0.01, grad_clip=0.05, **ADAM)
    for _ in range(3):
        for model, opt in ((ours, optimizer), (per_array, thinc_adam)):
            backprop_step(model, X, 3.0)
            model.finish_update(opt)
            opt.step_schedules()
    a, b = params(ours), params(per_array)
    assert any(not numpy.allclose(a[k], b[k], rtol=1e-4) for k in a)


def test_weights_wait_for_the_end_of_the_step_and_a_new_step_flushes():
    model, X = small_model()
    optimizer = GlobalNormClipOptimizer(0.01, max_grad_norm=1.0, **ADAM)
    start = params(model)
    backprop_step(model, X, 3.0)
    model.finish_update(optimizer)
    assert all(numpy.array_equal(v, start[k]) for k, v in params(model).items()), "applied too early"
    assert not any(numpy.any(g) for g in grads(model)), "the model's gradients are consumed"
    # a training loop that never calls step_schedules(): the next step applies the held one
    backprop_step(model, X, 3.0)
    model.finish_update(optimizer)
    moved = params(model)
    assert any(not numpy.array_equal(v, start[k]) for k, v in moved.items())
    optimizer.flush()
    assert any(not numpy.array_equal(v, moved[k]) for k, v in params(model).items())
    optimizer.flush()  # nothing held: no change, no error


def test_bad_settings_are_rejected_with_what_is_expected():
    with pytest.raises(ValueError, match=r"max_grad_norm = 0.*> 0"):
        GlobalNormClipOptimizer(0.001, max_grad_norm=0)
    with pytest.raises(ValueError, match="per-parameter grad_clip"):
        GlobalNormClipOptimizer(0.001, max_grad_norm=1.0, grad_clip=1.0)


def test_resolves_through_the_registry_with_a_schedule_and_the_entry_point():
    config = Config().from_str(f"""
[optimizer]
@optimizers = "{NAME}"
max_grad_norm = 0.5
L2 = 0.01

[optimizer.learn_rate]
@schedules = "warmup_linear.v1"
warmup_steps = 2
total_steps = 10
initial_rate = 0.001
""")
    optimizer = util.registry.resolve(config)["optimizer"]
    assert isinstance(optimizer, GlobalNormClipOptimizer)
    assert optimizer.max_grad_norm == 0.5
    assert optimizer.grad_clip == 0.0
    assert isinstance(configure_adam_global_clip(), GlobalNormClipOptimizer)
    declared = {ep.name: ep.value for ep in entry_points(group="thinc_optimizers")}
    assert declared.get(NAME) == "spacy_nerimb.optimizers:configure_adam_global_clip"


def test_spacy_train_runs_with_the_optimizer(tmp_path):
    """A real ``spacy train`` on the CNN config with the optimiser swapped in learns entities."""
    corpus = write_synthetic_corpus(tmp_path / "corpus", {"train": 120, "dev": 40}, seed=3)
    config = Config().from_disk(REPO_ROOT / "configs" / "cnn-ce.cfg", interpolate=False)
    learn_rate = config["training"]["optimizer"]["learn_rate"]
    config["training"]["optimizer"] = {"@optimizers": NAME, "max_grad_norm": 1.0, "L2": 0.01,
                                       "learn_rate": learn_rate}
    path = tmp_path / "global-clip.cfg"
    config.to_disk(path)
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(path), "--output", str(tmp_path / "out"),
         "--paths.train", corpus["train"], "--paths.dev", corpus["dev"],
         "--training.max_steps", "150", "--training.eval_frequency", "50"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert rows, result.stdout[-2000:]
    last_score = float(rows[-1][-1])
    assert last_score > 0.3, result.stdout[-2000:]
