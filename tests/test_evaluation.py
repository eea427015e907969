"""Evaluation, comparison, the training grid and the project workflow."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from spacy.tokens import Doc, DocBin, Span

from spacy_nerimb import evaluation
from spacy_nerimb.eval_cli import method_config, parse_method, train_grid
from spacy_nerimb.evaluation import (
    EvaluationError,
    bootstrap_se,
    compare,
    evaluate,
    paired_t_test,
    score_docs,
)

from conftest import REPO_ROOT

TYPES = ["PER", "LOC", "ORG"]
VOCAB = spacy.blank("en").vocab


def bio_doc(vocab, tags, words=None):
    """A doc whose entities come from IOB2 tags ("B-PER", "I-PER", "O"); "-" = unannotated token."""
    words = words or [f"w{i}" for i in range(len(tags))]
    doc = Doc(vocab, words=words)
    spans, start, label = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and not tag.startswith("I-"):
            spans.append(Span(doc, start, i, label=label))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    missing = [doc[i:i + 1] for i, t in enumerate(tags) if t == "-"]
    doc.set_ents(spans, missing=missing, default="outside")
    return doc


# ---------------------------------------------------------------------------
# An independent strict-span computation on tag sequences
# ---------------------------------------------------------------------------


def spans_from_tags(tags):
    """(start, end, type) token spans of an IOB2 sequence (an I- after O or another type opens nothing)."""
    out, start, label = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and tag != f"I-{label}":
            out.add((start, i, label))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    return out


def reference_scores(pairs):
    """Micro and macro P/R/F1 over (gold tags, predicted tags) pairs, computed from scratch."""
    tp, fp, fn = {}, {}, {}
    for gold_tags, pred_tags in pairs:
        gold, pred = spans_from_tags(gold_tags), spans_from_tags(pred_tags)
        for s in gold | pred:
            t = s[2]
            tp.setdefault(t, 0), fp.setdefault(t, 0), fn.setdefault(t, 0)
            if s in gold and s in pred:
                tp[t] += 1
            elif s in pred:
                fp[t] += 1
            else:
                fn[t] += 1

    def f(a, b, c):
        p = a / (a + b) if a + b else 0.0
        r = a / (a + c) if a + c else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    micro = f(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    per = {t: f(tp[t], fp[t], fn[t]) for t in tp}
    macro = tuple(sum(v[k] for v in per.values()) / len(per) if per else 0.0 for k in range(3))
    return micro, macro, per


def iob2(draw_tags):
    """Repair a random tag list into valid IOB2 (I- only after B-/I- of the same type)."""
    out = []
    for tag in draw_tags:
        if tag.startswith("I-") and not (out and out[-1] != "O" and out[-1][2:] == tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


TAG = st.sampled_from(["O", "O", "O"] + [f"{p}-{t}" for t in TYPES for p in "BI"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(TAG, min_size=1, max_size=12), st.lists(TAG, min_size=1, max_size=12)),
                min_size=1, max_size=5))
def test_span_scores_match_independent_computation(raw_pairs):
    vocab = VOCAB
    pairs = []
    for g, p in raw_pairs:
        n = min(len(g), len(p))
        pairs.append((iob2(g[:n]), iob2(p[:n])))
    gold = [bio_doc(vocab, g) for g, _ in pairs]
    pred = [bio_doc(vocab, p) for _, p in pairs]
    result = score_docs(gold, pred)["span"]
    micro, macro, per = reference_scores(pairs)
    assert (result["micro"]["p"], result["micro"]["r"], result["micro"]["f"]) == pytest.approx(micro)
    assert (result["macro"]["p"], result["macro"]["r"], result["macro"]["f"]) == pytest.approx(macro)
    assert set(result["per_type"]) == set(per)
    for t, (p, r, f) in per.items():
        assert (result["per_type"][t]["p"], result["per_type"][t]["r"], result["per_type"][t]["f"]) == pytest.approx((p, r, f))


def test_span_scores_on_hand_made_docs():
    vocab = spacy.blank("en").vocab
    gold = [bio_doc(vocab, ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]),
            bio_doc(vocab, ["B-LOC", "O", "B-PER"])]
    pred = [bio_doc(vocab, ["B-PER", "O", "O", "B-LOC", "O", "B-LOC"]),  # PER boundary wrong, ORG typed LOC
            bio_doc(vocab, ["B-LOC", "O", "B-PER"])]
    span = score_docs(gold, pred)["span"]
    # PER: tp 1 (doc 2), fp 1, fn 1; LOC: tp 2, fp 1, fn 0; ORG: tp 0, fp 0, fn 1
    assert span["per_type"]["PER"]["f"] == pytest.approx(0.5)
    assert span["per_type"]["LOC"]["p"] == pytest.approx(2 / 3) and span["per_type"]["LOC"]["r"] == 1.0
    assert span["per_type"]["ORG"] == {"p": 0.0, "r": 0.0, "f": 0.0, "support": 1}
    assert span["micro"]["p"] == pytest.approx(3 / 5) and span["micro"]["r"] == pytest.approx(3 / 5)
    assert span["macro"]["f"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert span["n_gold"] == 5 and span["n_predicted"] == 5


def test_token_scores_merge_b_and_i_and_include_o():
    vocab = spacy.blank("en").vocab
    # gold classes PER PER O LOC | pred classes PER O O PER
    gold = bio_doc(vocab, ["B-PER", "I-PER", "O", "B-LOC"])
    pred = bio_doc(vocab, ["B-PER", "O", "O", "B-PER"])
    token = score_docs([gold], [pred])["token"]
    per = token["per_class"]
    assert list(per) == ["LOC", "PER", "O"]  # O last
    assert (per["PER"]["p"], per["PER"]["r"], per["PER"]["support"]) == (0.5, 0.5, 2)
    assert (per["LOC"]["f"], per["LOC"]["support"]) == (0.0, 1)
    assert per["O"]["p"] == 0.5 and per["O"]["r"] == 1.0 and per["O"]["f"] == pytest.approx(2 / 3)
    assert token["macro"]["f"] == pytest.approx((0.5 + 0.0 + 2 / 3) / 3)
    assert token["macro_entities"]["f"] == pytest.approx(0.25)
    assert token["accuracy"] == pytest.approx(2 / 4)


def test_token_scores_ignore_boundaries_but_span_scores_do_not():
    vocab = spacy.blank("en").vocab
    gold = bio_doc(vocab, ["B-PER", "B-PER", "O"])  # two adjacent one-token entities
    pred = bio_doc(vocab, ["B-PER", "I-PER", "O"])  # one two-token entity
    scores = score_docs([gold], [pred])
    assert scores["token"]["per_class"]["PER"]["f"] == 1.0  # B/I merged: every token right
    assert scores["span"]["per_type"]["PER"]["f"] == 0.0  # strict spans: both wrong


def test_unannotated_gold_tokens_are_left_out_of_token_scores():
    vocab = spacy.blank("en").vocab
    gold = bio_doc(vocab, ["B-PER", "-", "O"])
    pred = bio_doc(vocab, ["B-PER", "B-LOC", "O"])
    token = score_docs([gold], [pred])["token"]
    assert token["n_tokens"] == 2 and "LOC" not in token["per_class"]


# ---------------------------------------------------------------------------
# evaluate() on a saved pipeline (an entity ruler: predictions known in advance)
# ---------------------------------------------------------------------------


@pytest.fixture
def ruler_model(tmp_path):
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PER", "pattern": "Anna"}, {"label": "LOC", "pattern": "Paris"},
                        {"label": "LOC", "pattern": "Smith"}])
    nlp.to_disk(tmp_path / "model")
    words = [["Anna", "Smith", "lives", "in", "Paris"], ["Bob", "visited", "Paris"]]
    tags = [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-PER", "O", "B-LOC"]]
    docs = [bio_doc(nlp.vocab, t, w) for w, t in zip(words, tags)]
    DocBin(docs=docs).to_disk(tmp_path / "test.spacy")
    return tmp_path / "model", tmp_path / "test.spacy"


def test_evaluate_writes_json_and_markdown(ruler_model, tmp_path):
    model, data = ruler_model
    out = tmp_path / "out" / "eval.json"
    result = evaluate(model, data, output=out, markdown=out.with_suffix(".md"), meta={"method": "ruler", "seed": 3},
                      progress=False)
    # gold: PER "Anna Smith", LOC Paris, PER Bob, LOC Paris; predicted: PER Anna, LOC Smith, LOC Paris ×2
    span = result["span"]
    assert span["per_type"]["LOC"]["p"] == pytest.approx(2 / 3) and span["per_type"]["LOC"]["r"] == 1.0
    assert span["per_type"]["PER"]["f"] == 0.0
    assert span["micro"]["p"] == pytest.approx(2 / 4) and span["micro"]["r"] == pytest.approx(2 / 4)
    # tokens: Anna PER/PER, Smith PER/LOC, lives O/O, in O/O, Paris LOC/LOC, Bob PER/O, visited O/O, Paris LOC/LOC
    per = result["token"]["per_class"]
    assert per["PER"]["p"] == 1.0 and per["PER"]["r"] == pytest.approx(1 / 3)
    assert per["LOC"]["p"] == pytest.approx(2 / 3) and per["O"]["r"] == 1.0
    saved = json.loads(out.read_text())
    assert saved["kind"] == evaluation.KIND and saved["meta"]["method"] == "ruler" and saved["meta"]["n_docs"] == 2
    md = out.with_suffix(".md").read_text()
    assert "Token-level scores per class (B/I merged, O included)" in md and "| LOC | 2 | 66.67 | 100.00 | 80.00 |" in md


def test_evaluate_errors_name_the_file(tmp_path, ruler_model):
    model, _ = ruler_model
    with pytest.raises(EvaluationError, match="missing.spacy"):
        evaluate(model, tmp_path / "missing.spacy", progress=False)
    with pytest.raises(EvaluationError, match="config.cfg"):
        evaluate(tmp_path, tmp_path / "missing.spacy", progress=False)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
def test_paired_t_test_equals_scipy_ttest_rel(n):
    rng = numpy.random.default_rng(n)
    a = rng.normal(0.8, 0.05, n)
    b = a + rng.normal(0.01, 0.02, n)
    t, p = paired_t_test(b, a)
    ref = stats.ttest_rel(b, a)
    assert t == pytest.approx(float(ref.statistic), rel=1e-10)
    assert p == pytest.approx(float(ref.pvalue), rel=1e-10)


def test_paired_t_test_edge_cases_follow_scipy():
    t, p = paired_t_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert math.isnan(t) and math.isnan(p)
    t, p = paired_t_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # constant difference
    assert t == math.inf and p == 0.0
    assert all(math.isnan(x) for x in paired_t_test([1.0], [0.0]))
    with pytest.raises(EvaluationError, match="equal size"):
        paired_t_test([1.0, 2.0], [1.0])


def test_bootstrap_se_is_seeded_and_sensible():
    values = numpy.random.default_rng(0).normal(0.7, 0.1, 200)
    assert bootstrap_se(values, seed=1) == bootstrap_se(values, seed=1)
    assert bootstrap_se(values, seed=1) != bootstrap_se(values, seed=2)
    analytic = values.std(ddof=1) / math.sqrt(values.size)
    assert bootstrap_se(values, n_boot=4000, seed=0) == pytest.approx(analytic, rel=0.1)
    assert bootstrap_se([0.5]) == 0.0


# ---------------------------------------------------------------------------
# compare(): tables and plots from evaluation results
# ---------------------------------------------------------------------------


def fake_result(method, seed, macro_f, micro_f, train_size=None):
    """An evaluation result with the fields compare reads (P = R = F1 for simplicity)."""
    prf = lambda f: {"p": f, "r": f, "f": f}  # noqa: E731
    meta = {"method": method, "seed": seed}
    if train_size is not None:
        meta["train_size"] = train_size
    return {
        "kind": evaluation.KIND,
        "meta": meta,
        "span": {"micro": prf(micro_f), "macro": prf(macro_f),
                 "per_type": {"PER": {**prf(micro_f), "support": 50}, "DRUG": {**prf(macro_f), "support": 3}}},
        "token": {"macro": prf((macro_f + 0.99) / 2), "macro_entities": prf(macro_f),
                  "per_class": {"PER": prf(micro_f), "O": prf(0.99)}},
    }


MACRO = {"ce": [0.50, 0.55, 0.52], "mom": [0.56, 0.58, 0.57], "sCR": [0.60, 0.59, 0.66]}


def write_runs(root, train_size=None, shift=0.0):
    for method, values in MACRO.items():
        for seed, v in enumerate(values):
            path = root / method / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(fake_result(method, seed, v + shift, v + 0.2 + shift, train_size)))


def test_compare_writes_table_and_plots(tmp_path):
    write_runs(tmp_path / "metrics")
    out = tmp_path / "report"
    summary = compare([tmp_path / "metrics"], out, baseline="ce", methods=["ce", "sCR", "mom"])
    md = (out / "comparison.md").read_text()
    ref = stats.ttest_rel(MACRO["sCR"], MACRO["ce"])
    vs = summary["groups"][0]["methods"]["sCR"]["vs_baseline"]["span_macro_f"]
    assert vs["p"] == pytest.approx(float(ref.pvalue)) and vs["t"] == pytest.approx(float(ref.statistic))
    assert vs["delta"] == pytest.approx(numpy.mean(MACRO["sCR"]) - numpy.mean(MACRO["ce"]))
    sd = numpy.std(MACRO["mom"], ddof=1)
    assert f"| mom | 3 |" in md and f"{100 * numpy.mean(MACRO['mom']):.2f} ± {100 * sd:.2f}" in md
    assert f"| macro F1 | sCR | " in md and f"{float(ref.pvalue):.3f}" in md
    assert summary["methods"] == ["ce", "sCR", "mom"]
    assert summary["types"] == ["DRUG", "PER"]  # rarest first
    for name in ("pr_displacement.png", "per_type_f1.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not (out / "f1_vs_train_size.png").exists()  # no training sizes
    assert json.loads((out / "comparison.json").read_text())["baseline"] == "ce"


def test_compare_with_training_sizes_plots_f1_against_size(tmp_path):
    for size, shift in ((50, -0.2), (200, 0.0), (1000, 0.1)):
        write_runs(tmp_path / f"n{size}", train_size=size, shift=shift)
    out = tmp_path / "report"
    summary = compare([tmp_path / "n50", tmp_path / "n200", tmp_path / "n1000"], out, baseline="ce")
    assert summary["train_sizes"] == [50, 200, 1000]
    md = (out / "comparison.md").read_text()
    assert "| method | n=50 | n=200 | n=1000 |" in md and "(training size 1000)" in md
    assert (out / "f1_vs_train_size.png").stat().st_size > 10_000


def test_compare_errors_are_clear(tmp_path):
    write_runs(tmp_path / "metrics")
    with pytest.raises(EvaluationError, match="baseline 'wce1' has no results; found methods: ce, mom, sCR"):
        compare([tmp_path / "metrics"], tmp_path / "out", baseline="wce1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="empty: no evaluation results"):
        compare([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(EvaluationError, match="focal"):
        compare([tmp_path / "metrics"], tmp_path / "out", methods=["ce", "focal"])


def test_runs_pair_by_seed_not_by_order(tmp_path):
    (tmp_path / "m").mkdir()
    results = [fake_result("ce", s, v, v) for s, v in ((0, 0.5), (1, 0.6), (2, 0.7))]
    results += [fake_result("mom", s, v, v) for s, v in ((2, 0.72), (0, 0.51), (1, 0.62))]
    (tmp_path / "m" / "all.json").write_text(json.dumps({"runs": results}))
    summary = compare([tmp_path / "m" / "all.json"], tmp_path / "out", plots=False)
    vs = summary["groups"][0]["methods"]["mom"]["vs_baseline"]["span_macro_f"]
    ref = stats.ttest_rel([0.51, 0.62, 0.72], [0.5, 0.6, 0.7])
    assert vs["p"] == pytest.approx(float(ref.pvalue)) and vs["n_pairs"] == 3


# ---------------------------------------------------------------------------
# The training grid
# ---------------------------------------------------------------------------


def test_parse_method():
    assert parse_method("ce") == ("ce", None)
    assert parse_method("sCR") == ("ce", "sCR")
    assert parse_method("mom+scrd") == ("mom", "sCRD")
    assert parse_method("NSCRD+focal") == ("focal", "nsCRD")
    with pytest.raises(ValueError, match="more than one resampling"):
        parse_method("sC+sCR")


def test_method_config_sets_loss_reader_and_budget():
    configs = REPO_ROOT / "configs"
    config = method_config("focal+sCR", "cnn", configs, seed=7, max_steps=50, eval_frequency=200)
    assert config["components"]["ner"]["loss"]["@losses"] == "spacy-nerimb.Focal.v1"
    assert config["corpora"]["train"]["@readers"] == "spacy-nerimb.ResampledCorpus.v1"
    assert config["corpora"]["train"]["method"] == "sCR"
    assert config["system"]["seed"] == 7 and config["training"]["max_steps"] == 50
    assert config["training"]["eval_frequency"] == 50
    mom = method_config("mom", "cnn", configs, seed=0, max_steps=10, eval_frequency=5)
    assert mom["components"]["ner"]["loss"]["@losses"] == "spacy-nerimb.MoM.v1"  # from configs/cnn-mom.cfg
    assert mom["corpora"]["train"]["@readers"] == "spacy.Corpus.v1"
    with pytest.raises(ValueError, match="no config .*cnn-nosuch.cfg"):
        method_config("nosuch", "cnn", configs, seed=0, max_steps=1, eval_frequency=1)


@pytest.mark.slow
def test_train_grid_skips_finished_runs(tmp_path):
    from spacy_nerimb.synthetic import write_synthetic_corpus

    paths = write_synthetic_corpus(tmp_path / "corpus", {"train": 60, "dev": 20}, seed=1)
    kwargs = dict(methods=["ce", "sCR"], seeds=[0], configs_dir=REPO_ROOT / "configs", max_steps=2, eval_frequency=1)
    first = train_grid(Path(paths["train"]), Path(paths["dev"]), tmp_path / "training", **kwargs)
    assert (first["trained"], first["skipped"]) == (2, 0)
    run = json.loads((tmp_path / "training" / "sCR" / "seed0" / "run.json").read_text())
    assert run["method"] == "sCR" and run["seed"] == 0
    assert not (tmp_path / "training" / "sCR" / "seed0" / "model-last").exists()
    second = train_grid(Path(paths["train"]), Path(paths["dev"]), tmp_path / "training", **kwargs)
    assert (second["trained"], second["skipped"]) == (0, 2)
    third = train_grid(Path(paths["train"]), Path(paths["dev"]), tmp_path / "training", **{**kwargs, "max_steps": 3})
    assert third["trained"] == 2  # a changed config retrains


# ---------------------------------------------------------------------------
# The weasel workflow, with a tiny budget, in a copy of the project
# ---------------------------------------------------------------------------

def test_project_workflows_chain_deps_and_outputs():
    from weasel.util import load_project_config

    config = load_project_config(REPO_ROOT)
    commands = {c["name"]: c for c in config["commands"]}
    assert {"all", "wnut17", "benchmark"} <= set(config["workflows"])
    for name, steps in config["workflows"].items():
        produced = []
        for step in steps:
            command = commands[step]  # KeyError: a workflow names a missing command
            for item in command.get("deps", []) + command.get("outputs", []):
                assert ", " not in item, f"{step}: list items merged by the variable substitution: {item}"
            for dep in command.get("deps", []):
                made = any(dep == o or dep.startswith(o + "/") for o in produced)
                external = dep.startswith(config["vars"]["data_dir"]) or (REPO_ROOT / dep).exists()
                assert made or external, f"workflow {name}, step {step}: nothing makes {dep}"
            produced += command.get("outputs", [])
    train = commands["train"]["script"][0]
    assert "train-grid" in train and "--methods ce,mom,sCR" in train


TINY = ["--vars.synth_n_train=80", "--vars.synth_n_dev=30", "--vars.synth_n_test=40", "--vars.synth_max_steps=2",
        "--vars.synth_eval_frequency=1", "--vars.synth_seeds=0,1", "--vars.synth_methods=ce,sCR"]


@pytest.mark.slow
def test_all_workflow_runs_and_then_skips(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "project.yml", project / "project.yml")
    shutil.copytree(REPO_ROOT / "configs", project / "configs")
    cmd = [sys.executable, "-m", "spacy", "project", "run", "all", str(project)] + TINY
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = project / "reports" / "synthetic" / "REPORT.md"
    text = report.read_text()
    assert "Imbalance statistics" in text and "Resampling report: sCR" in text and "| sCR | 2 |" in text
    assert (project / "reports" / "synthetic" / "pr_displacement.png").stat().st_size > 10_000
    assert len(list((project / "metrics" / "synthetic").rglob("seed*.json"))) == 4
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0
    assert second.stdout.count("nothing changed") == 7, second.stdout[-3000:]
