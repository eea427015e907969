"""Every entry point in setup.cfg resolves through the spaCy/thinc registries,
in a fresh process that never imports spacy_nerimb itself."""
import configparser
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import spacy
from spacy.training import Example

from conftest import REPO_ROOT
from spacy_nerimb.losses.base import TagLoss
from spacy_nerimb.training import LOSS_PRESETS, loss_preset

# entry-point group -> registry name in spacy.util.registry
GROUPS = {
    "spacy_factories": "_entry_point_factories",  # spaCy loads these at Language init
    "spacy_architectures": "architectures",
    "spacy_scorers": "scorers",
    "spacy_readers": "readers",
    "spacy_misc": "misc",
    "spacy_loggers": "loggers",
    "thinc_losses": "losses",
    "thinc_layers": "layers",
    "thinc_optimizers": "optimizers",
}


def declared_entry_points():
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    section = parser["options.entry_points"]
    declared = {}
    for group in GROUPS:
        lines = [l.strip() for l in section.get(group, "").splitlines() if l.strip()]
        declared[group] = {l.split("=")[0].strip(): l.split("=", 1)[1].strip() for l in lines}
    return declared


def test_setup_cfg_declares_the_core_names():
    declared = declared_entry_points()
    assert "imbalanced_ner" in declared["spacy_factories"]
    assert "spacy-nerimb.TokenTagger.v1" in declared["spacy_architectures"]
    assert "spacy-nerimb.entity_scorer.v1" in declared["spacy_scorers"]
    for name in ("CrossEntropy", "Focal", "Dice", "MoM"):
        assert f"spacy-nerimb.{name}.v1" in declared["thinc_losses"]


def test_installed_entry_points_match_setup_cfg():
    for group, names in declared_entry_points().items():
        installed = {ep.name: ep.value for ep in entry_points(group=group)}
        for name, target in names.items():
            assert installed.get(name) == target, (
                f"{group}:{name} not installed as {target}; run pip install -e ."
            )


def test_every_name_resolves_in_a_fresh_process():
    declared = {g: sorted(n) for g, n in declared_entry_points().items()}
    script = f"""
import json, sys
from spacy.util import registry
registry.ensure_populated()
assert "spacy_nerimb" not in sys.modules
declared = json.loads({json.dumps(json.dumps(declared))})
groups = {GROUPS!r}
found = {{}}
for group, names in declared.items():
    for name in names:
        func = registry.get(groups[group], name)
        found[name] = callable(func)
print(json.dumps(found))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {name for names in declared.values() for name in names}
    assert set(found) == expected and all(found.values())


def test_factory_builds_from_a_fresh_process_by_name_only():
    script = (
        "import spacy; nlp = spacy.blank('en'); "
        "ner = nlp.add_pipe('imbalanced_ner'); print(type(ner).__name__, type(ner.loss).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ImbalancedNER", "CrossEntropy"]


@pytest.mark.parametrize(
    "loss",
    [
        {"@losses": "spacy-nerimb.CrossEntropy.v1", "class_weights": "log", "beta": 2.0},
        {"@losses": "spacy-nerimb.MoM.v1", "lam": 0.2,
         "base": {"@losses": "spacy-nerimb.Focal.v1", "gamma": 2.0}},
        {"@losses": "spacy-nerimb.Dice.v1", "alpha": 0.01, "smooth": 1.0},
    ],
)
def test_loss_configs_resolve(loss):
    from thinc.api import registry

    resolved = registry.resolve({"loss": loss})["loss"]
    assert type(resolved).__name__ == loss["@losses"].split(".")[1]



@pytest.mark.parametrize("method", sorted(LOSS_PRESETS))
def test_every_loss_preset_builds_and_trains_a_component(method):
    """Each short method name (CLI, tuning, benchmarks) resolves to a working component."""
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("imbalanced_ner", config={"loss": loss_preset(method)})
    assert isinstance(ner.loss, TagLoss)
    eg = Example.from_dict(nlp.make_doc("Anna met Bo ."), {"entities": [(0, 4, "PER"), (9, 11, "PER")]})
    optimizer = nlp.initialize(lambda: [eg])
    losses = nlp.update([eg], sgd=optimizer)
    assert losses[ner.name] > 0
    assert all(e.label_ == "PER" for e in nlp("Anna met Bo .").ents)
