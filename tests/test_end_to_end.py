"""End to end: `spacy train` on real WNUT-17 with the CNN config, reload in a new process;
and the `demo` main job from the command line."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, require_corpus

ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")

SCORE_SCRIPT = """
import json, sys, spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy_nerimb.scoring import score_entities
nlp = spacy.load(sys.argv[1])
gold = list(DocBin().from_disk(sys.argv[2]).get_docs(nlp.vocab))
pred = nlp.pipe([nlp.make_doc(d.text) for d in gold])
scores = score_entities([Example(p, g) for p, g in zip(pred, gold)])
n_ents = sum(len(p.ents) for p in nlp.pipe([g.text for g in gold]))
print(f"micro F1 {scores['ents_f']:.3f}  macro F1 {scores['ents_macro_f']:.3f}")
print(json.dumps({"micro": scores["ents_f"], "macro": scores["ents_macro_f"], "n_ents": n_ents,
                  "types": sorted(scores["ents_per_type"])}))
"""


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kwargs)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


@pytest.mark.slow
def test_spacy_train_cnn_on_wnut17_and_reload_in_new_process(tmp_path):
    wnut = require_corpus("wnut17")
    for name, split in (("wnut17train.conll", "train"), ("emerging.dev.conll", "dev"),
                        ("emerging.test.annotated", "test")):
        run([sys.executable, "-m", "spacy_nerimb", "convert", str(wnut / name),
             str(tmp_path / f"{split}.spacy")])
    run([sys.executable, "-m", "spacy", "train", str(REPO_ROOT / "configs" / "cnn-ce.cfg"),
         "--output", str(tmp_path / "out"), "--paths.train", str(tmp_path / "train.spacy"),
         "--paths.dev", str(tmp_path / "dev.spacy"), "--training.max_steps", "300",
         "--training.eval_frequency", "150"])
    out = run([sys.executable, "-c", SCORE_SCRIPT, str(tmp_path / "out" / "model-best"),
               str(tmp_path / "test.spacy")], cwd="/")
    print(out)  # macro and micro F1, shown with pytest -s
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n_ents"] > 0
    assert 0.0 < result["micro"] <= 1.0 and 0.0 <= result["macro"] <= result["micro"] + 1.0
    assert set(result["types"]) <= {"corporation", "creative-work", "group", "location",
                                     "person", "product"}


@pytest.mark.slow
def test_demo_command_runs_and_prints_the_comparison(tmp_path):
    out = run([sys.executable, "-m", "spacy_nerimb", "demo", "--n-train", "300",
               "--max-steps", "40", "--output-dir", str(tmp_path)], cwd="/")
    assert "| method | micro P" in out and "| ce |" in out and "| mom |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"ce", "mom"}
    assert all("ents_macro_f" in r and "ents_per_type" in r for r in results.values())
