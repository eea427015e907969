"""The shipped configs: every one resolves; the CNN and MiniLM ones really train
with `python -m spacy train` (offline) and the saved pipelines load and predict
in a new process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy import util
from spacy.training import Corpus
from spacy.training.initialize import init_nlp

from conftest import REPO_ROOT
from spacy_nerimb.synthetic import write_synthetic_corpus

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.cfg"))
OFFLINE_ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def test_there_are_configs_for_each_family_and_core_loss():
    names = {p.stem for p in CONFIGS}
    for family in ("cnn", "minilm", "gpu"):
        assert {f"{family}-ce", f"{family}-mom"} <= names


@pytest.mark.parametrize("family", ["minilm", "gpu"])
def test_focal_transformer_config_is_the_ce_config_with_the_benchmarked_focal_loss(family):
    """configs/*-focal.cfg differ from *-ce.cfg in the loss only, which is the benchmark's focal preset."""
    from spacy_nerimb.training import LOSS_PRESETS

    ce = util.load_config(REPO_ROOT / "configs" / f"{family}-ce.cfg")
    focal = util.load_config(REPO_ROOT / "configs" / f"{family}-focal.cfg")
    assert dict(focal["components"]["ner"]["loss"]) == LOSS_PRESETS["focal"]
    focal["components"]["ner"]["loss"] = ce["components"]["ner"]["loss"]
    assert focal == ce


def test_crf_focal_scr_config_is_the_crf_config_with_focal_emissions_on_scr_sentences(corpus):
    """configs/minilm-crf-focal-scr.cfg is configs/minilm-crf.cfg with the benchmark row's focal emission
    loss and the sCR-resampling reader, and that reader repeats the entity sentences of a real corpus."""
    from spacy_nerimb.training import LOSS_PRESETS

    crf = util.load_config(REPO_ROOT / "configs" / "minilm-crf.cfg")
    combo = util.load_config(REPO_ROOT / "configs" / "minilm-crf-focal-scr.cfg")
    assert dict(combo["components"]["ner"]["loss"]["emission_loss"]) == LOSS_PRESETS["focal"]
    reader = dict(combo["corpora"]["train"])
    assert reader["@readers"] == "spacy-nerimb.ResampledCorpus.v1" and reader["method"] == "sCR"
    assert reader["seed"] == "${system.seed}"
    combo["components"]["ner"]["loss"]["emission_loss"] = None
    combo["corpora"]["train"] = crf["corpora"]["train"]
    assert combo == crf

    nlp = spacy.blank("en")
    resolve = util.registry.resolve
    resampled = list(resolve({"r": {**reader, "path": corpus["train"], "seed": 0}})["r"](nlp))
    plain = list(Corpus(corpus["train"])(nlp))
    assert len(resampled) > len(plain)
    assert {ex.reference.text for ex in resampled} == {ex.reference.text for ex in plain}
    # only sentences with entities are repeated
    assert sum(not ex.reference.ents for ex in resampled) == sum(not ex.reference.ents for ex in plain)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_resolves_and_builds(path):
    config = util.load_config(path)
    name = config["components"].get("transformer", {}).get("model", {}).get("name")
    if isinstance(name, str):
        # A hub model name (GPU configs): building it needs the download. Check the loss
        # resolves and that the config asks for torch's GPU allocator.
        assert config["system"]["gpu_allocator"] == "pytorch"
        util.registry.resolve({"loss": config["components"]["ner"]["loss"]})
        return
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    assert "ner" in nlp.pipe_names
    assert nlp.get_pipe("ner").__class__.__name__ == "ImbalancedNER"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return write_synthetic_corpus(out, {"train": 120, "dev": 40}, seed=3)


def spacy_train(config, output, corpus, *overrides):
    cmd = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output),
           "--paths.train", corpus["train"], "--paths.dev", corpus["dev"], *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, env=OFFLINE_ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


PREDICT_SCRIPT = """
import json, sys, spacy
nlp = spacy.load(sys.argv[1])
docs = list(nlp.pipe(json.loads(sys.argv[2])))
print(json.dumps([[(e.start, e.end, e.label_) for e in d.ents] for d in docs]))
"""
TEXTS = ["Anna Kovacs travelled to Kaselstad last week .", "It was a quiet day .", ""]


def predict_in_new_process(model_dir):
    out = subprocess.run([sys.executable, "-c", PREDICT_SCRIPT, str(model_dir), json.dumps(TEXTS)],
                         capture_output=True, text=True, env=OFFLINE_ENV, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cnn_config_trains_and_reloads_in_new_process(corpus, tmp_path):
    log = spacy_train(REPO_ROOT / "configs" / "cnn-mom.cfg", tmp_path, corpus,
                      "--training.max_steps", "120", "--training.eval_frequency", "60")
    assert "ENTS_MACRO_F" in log
    predicted = predict_in_new_process(tmp_path / "model-last")
    in_process = spacy.load(tmp_path / "model-last")
    assert predicted == [[list(s) for s in [(e.start, e.end, e.label_) for e in d.ents]]
                         for d in in_process.pipe(TEXTS)]
    assert ["PERSON" in {s[2] for s in doc} for doc in predicted][0]


@pytest.mark.parametrize("name", ["minilm-ce", "minilm-crf-focal-scr"])
def test_minilm_config_trains_a_few_steps_offline_and_predicts(corpus, tmp_path, name):
    log = spacy_train(REPO_ROOT / "configs" / f"{name}.cfg", tmp_path, corpus,
                      "--training.max_steps", "6", "--training.eval_frequency", "3",
                      "--training.batcher.size", "300")
    assert "LOSS NER" in log and "LOSS TRANS" in log
    predicted = predict_in_new_process(tmp_path / "model-last")
    assert len(predicted) == len(TEXTS) and predicted[-1] == []
    nlp = spacy.load(tmp_path / "model-last")
    assert nlp.pipe_names == ["transformer", "ner"]
    for doc in nlp.pipe(TEXTS):  # whatever was learned in 6 steps, spans are valid
        assert all(0 <= e.start < e.end <= len(doc) for e in doc.ents)


def test_init_labels_feeds_initialize(corpus, tmp_path):
    """`spacy init labels` writes the component's labels; initialize reads them back."""
    config = REPO_ROOT / "configs" / "cnn-ce.cfg"
    cmd = [sys.executable, "-m", "spacy", "init", "labels", str(config), str(tmp_path),
           "--paths.train", corpus["train"], "--paths.dev", corpus["dev"]]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    labels = json.loads((tmp_path / "ner.json").read_text())
    assert sorted(labels) == ["DRUG", "LOC", "ORG", "PERSON", "VESSEL"]
    cfg = util.load_config(config, overrides={"paths.train": corpus["train"], "paths.dev": corpus["dev"]})
    cfg["initialize"]["components"] = {"ner": {"labels": labels + ["NEVER_SEEN"]}}
    nlp = init_nlp(cfg)
    assert nlp.get_pipe("ner").labels[-1] == "NEVER_SEEN"
