"""Tuning: search spaces, the trial reporter, studies on SQLite (run, resume, failures),
the best config and its multi-seed evaluation, and two workers sharing a PostgreSQL study."""
import csv
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from spacy.util import registry

from spacy_nerimb.losses.cross_entropy import CrossEntropy
from spacy_nerimb.tuning import (
    SearchSpace,
    TrialFailure,
    TrialMonitor,
    TuningError,
    load_base_config,
    make_trial_logger,
    monitoring,
    parse_param,
    redact,
    storage_url,
)

REPO = Path(__file__).resolve().parent.parent
CNN_CONFIG = REPO / "configs" / "cnn-ce.cfg"
TINY = {"training.max_steps": 20, "training.eval_frequency": 10}
TINY_ARGS = ["--training.max_steps", "20", "--training.eval_frequency", "10"]


# -- losses that break on purpose -------------------------------------------------
class _NaNLoss(CrossEntropy):
    def __call__(self, logits, gold, lengths=None):
        d_logits, _ = super().__call__(logits, gold, lengths)
        return d_logits, float("nan")


class _CrashLoss(CrossEntropy):
    def __call__(self, logits, gold, lengths=None):
        raise RuntimeError("boom: this loss always crashes")


@registry.losses("test-tuning.NaN.v1")
def _make_nan_loss() -> CrossEntropy:
    return _NaNLoss()


@registry.losses("test-tuning.Crash.v1")
def _make_crash_loss() -> CrossEntropy:
    return _CrashLoss()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from spacy_nerimb.synthetic import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("tuning-corpus")
    return write_synthetic_corpus(folder, {"train": 80, "dev": 40}, seed=3)


def _rows(path: Path):
    with open(path, newline="", encoding="utf8") as f:
        return list(csv.DictReader(f))


# -- search spaces ------------------------------------------------------------------
def test_space_from_yaml_with_every_dimension_kind(tmp_path):
    path = tmp_path / "space.yml"
    path.write_text(
        "methods:\n"
        "  ce: {}\n"
        "  focal:\n"
        "    gamma: {low: 0, high: 10}\n"
        "  mom:\n"
        "    lam: {low: 0.0, high: 1.0}\n"
        "    base: {'@losses': 'spacy-nerimb.Focal.v1', gamma: 2.0}\n"
        "  mine:\n"
        "    loss: {'@losses': 'spacy-nerimb.Dice.v1'}\n"
        "    smooth: [0.5, 1.0]\n"
        "resampling: [none, scr]\n"
        "params:\n"
        "  training.optimizer.learn_rate: {low: 1e-4, high: 1e-2, log: true}\n"
        "  training.dropout: 0.2\n"
        "  training.max_steps: {low: 10, high: 30, type: int, step: 10}\n"
    )
    space = SearchSpace.load(path)
    assert list(space.methods) == ["ce", "focal", "mom", "mine"]
    gamma = space.methods["focal"].params["gamma"]
    assert (gamma.kind, gamma.low, gamma.high) == ("float", 0.0, 10.0)  # ints stay a float range
    assert space.methods["mom"].params["base"].kind == "fixed"
    assert space.methods["mine"].params["smooth"].choices == (0.5, 1.0)
    assert space.resampling.choices == ("none", "sCR")  # canonical names
    lr = space.params["training.optimizer.learn_rate"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)  # YAML reads 1e-4 as a string
    assert space.params["training.dropout"].kind == "fixed"
    assert space.params["training.max_steps"].kind == "int"
    again = SearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again.to_dict() == space.to_dict()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"methods": {"nosuch": {}}}, "methods.nosuch: unknown method"),
        ({"methods": {"focal": {"gamma": {"low": 3, "high": 1}}}}, "low (3.0) must be below high"),
        ({"methods": {"focal": {"gamma": {"low": 0}}}}, "needs 'low' and 'high'"),
        ({"methods": {"dice": {"alpha": {"low": 0, "high": 1, "log": True}}}}, "log range needs low > 0"),
        ({"methods": ["ce"], "resampling": ["none", "sXR"]}, "unknown resampling method 'sXR'"),
        ({"methods": ["ce"], "param": {}}, "unknown top-level key"),
        ({"methods": {"x": {"loss": "focal"}}}, "methods.x.loss: expected a block"),
    ],
)
def test_space_errors_name_the_setting(data, message):
    with pytest.raises(TuningError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchSpace.from_dict(data, source="space.yml")


def test_space_check_against_config_and_registry():
    base = load_base_config(CNN_CONFIG)
    SearchSpace.default().check(base, "ner")  # every default method/reader is usable
    typo = SearchSpace.from_dict({"methods": ["ce"], "params": {"training.optimizer.learnrate": 0.1}}, "s.yml")
    with pytest.raises(TuningError, match="did you mean 'training.optimizer.learn_rate'"):
        typo.check(base, "ner")
    bad_arg = SearchSpace.from_dict({"methods": {"focal": {"gama": [1.0, 2.0]}}}, "s.yml")
    with pytest.raises(TuningError, match="methods.focal: the loss block"):
        bad_arg.check(base, "ner")
    missing = SearchSpace.from_dict({"methods": {"x": {"loss": {"@losses": "no-such.Loss.v1"}}}}, "s.yml")
    with pytest.raises(TuningError, match="'no-such.Loss.v1' is not registered"):
        missing.check(base, "ner")


def test_param_spec_and_urls():
    assert parse_param(3, "p").kind == "fixed"
    assert parse_param({"choices": ["a", "b"]}, "p").choices == ("a", "b")
    with pytest.raises(TuningError, match="p: 'log' and 'step'"):
        parse_param({"low": 1, "high": 2, "log": True, "step": 0.5}, "p")
    assert storage_url(None, "/x/out") == "sqlite:////x/out/study.db"
    assert storage_url("postgresql://u:pw@h/db", "/x") == "postgresql://u:pw@h/db"
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("sqlite:////a/b.db") == "sqlite:////a/b.db"


# -- the trial reporter ------------------------------------------------------------
def _info(step, value, loss=1.0):
    return {"step": step, "losses": {"ner": loss}, "other_scores": {"ents_macro_f": value, "ents_f": 0.5},
            "score": value}


def test_reporter_reports_prunes_and_fails():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.create_trial(value=0.9, intermediate_values={0: 0.5, 10: 0.9}))
    trial = study.ask()
    seen = []
    base = lambda nlp, stdout, stderr: (seen.append, lambda: None)  # noqa: E731
    monitor = TrialMonitor(trial)
    with monitoring(monitor):
        log_step, finalize = make_trial_logger("ents_macro_f", base)(None)
    log_step(None)  # a step without evaluation
    log_step(_info(0, 0.6))  # above the median of step 0: goes on
    assert monitor.history == [(0, 0.6)] and seen[0] is None and len(seen) == 2
    with pytest.raises(optuna.TrialPruned, match="pruned at step 10"):
        log_step(_info(10, 0.1))  # far below 0.9 at step 10
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {0: 0.6, 10: 0.1}
    with pytest.raises(TrialFailure, match="training loss of 'ner' is nan at step 20"):
        log_step(_info(20, 0.7, loss=float("nan")))
    with pytest.raises(TuningError, match="--objective 'ents_macro_f' is not a dev score; available: ents_f"):
        log_step({"step": 30, "losses": {}, "other_scores": {"ents_f": 0.5}})
    # without a tuning run the logger only passes steps on
    log_step2, _ = make_trial_logger("ents_macro_f", base)(None)
    log_step2(_info(0, 0.0, loss=float("nan")))


def test_requeue_interrupted_and_budget_count():
    optuna = pytest.importorskip("optuna")
    from spacy_nerimb.tuning import finished_count, requeue_interrupted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.create_trial(value=0.5, params={"x": 0.1}, distributions=dist))
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL, params={"x": 0.7},
                                        distributions=dist, user_attrs={"interrupted": True}))
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL, params={"x": 0.9},
                                        distributions=dist, user_attrs={"error": "NaN"}))
    assert finished_count(study) == 3
    assert requeue_interrupted(study) == [1]
    assert requeue_interrupted(study) == []  # once only
    assert finished_count(study) == 2  # the interrupted one is run again, not counted
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert study.trials[-1].params == {"x": 0.7} and study.trials[-1].user_attrs["retry_of"] == 1


# -- studies on SQLite ---------------------------------------------------------------
SPACE = {
    "methods": {"ce": {}, "focal": {"gamma": {"low": 0.0, "high": 5.0}}, "mom": {"lam": {"low": 0.0, "high": 1.0}}},
    "resampling": ["none", "sCR"],
    "params": {"training.optimizer.learn_rate": {"low": 0.0005, "high": 0.01, "log": True}},
}


def _settings(corpus, out, **kwargs):
    from spacy_nerimb.tuning import TuneSettings

    base = dict(config_path=CNN_CONFIG, train_path=corpus["train"], dev_path=corpus["dev"], output_dir=out,
                space=SearchSpace.from_dict(SPACE), config_overrides=dict(TINY), seed=0, prune_startup=1,
                progress=lambda msg: None)
    base.update(kwargs)
    return TuneSettings(**base)


@pytest.mark.slow
def test_study_runs_resumes_and_best_config_trains_and_reloads(corpus, tmp_path):
    optuna = pytest.importorskip("optuna")
    import spacy
    from typer.testing import CliRunner

    from spacy_nerimb.cli import app
    from spacy_nerimb.tuning import run_study

    out = tmp_path / "study"
    summary = run_study(_settings(corpus, out, n_trials=3))
    assert sum(summary["trials"].values()) == 3
    first = _rows(out / "trials.csv")
    assert [r["number"] for r in first] == ["0", "1", "2"]
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in first), first
    assert (out / "study.db").exists() and (out / "trials.md").read_text().count("\n| ") >= 3
    if _importable("matplotlib"):
        assert (out / "plots" / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"
        if sum(r["state"] == "COMPLETE" for r in first) >= 2:
            assert (out / "plots" / "param_importances.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert any("matplotlib is not installed" in n for n in summary["plot_notes"])
    assert (out / "best" / "config.cfg").exists()

    # resume: the same storage, a larger budget; numbers go on, history is untouched
    run_study(_settings(corpus, out, n_trials=5))
    rows = _rows(out / "trials.csv")
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [(r["state"], r["value"]) for r in rows[:3]] == [(r["state"], r["value"]) for r in first]
    study = optuna.load_study(study_name="nerimb-tune", storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[3].params != study.trials[0].params  # no replay of the start-up points
    messages = []
    run_study(_settings(corpus, out, n_trials=5, progress=messages.append))  # budget reached
    assert "the study already has its trials; writing the reports only" in messages
    assert _rows(out / "trials.csv") == rows

    # the best config is a ready config: train it (2 seeds, 2 processes) and reload it
    best = json.loads((out / "best" / "trial.json").read_text())
    result = CliRunner().invoke(app, [
        "tune-eval", str(out / "best" / "config.cfg"), "--train", corpus["train"], "--dev", corpus["dev"],
        "--seeds", "0,1", "--workers", "2", "-o", str(tmp_path / "eval"), *TINY_ARGS,
    ])
    assert result.exit_code == 0, result.output
    assert "2 seed(s): dev macro F1" in result.output
    evaluation = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert [r["seed"] for r in evaluation["runs"]] == [0, 1]
    # seed 0 is the study's seed: the same training, so the same dev score as the best trial
    assert evaluation["runs"][0]["dev"]["ents_macro_f"] == pytest.approx(best["value"], abs=1e-9)
    stats = evaluation["summary"]["dev"]["ents_macro_f"]
    values = [r["dev"]["ents_macro_f"] for r in evaluation["runs"]]
    assert stats["mean"] == pytest.approx(sum(values) / 2)
    nlp = spacy.load(tmp_path / "eval" / "seed_0" / "model-best")
    loss = nlp.config["components"]["ner"]["loss"]
    assert {k: loss[k] for k in best["overrides"]["components.ner.loss"]} == best["overrides"]["components.ner.loss"]
    doc = nlp("Anna Lomi travelled to Kaloburg last week .")
    assert len(doc) == 8 and all(ent.label_ in nlp.get_pipe("ner").labels for ent in doc.ents)


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_study_goes_on(corpus, tmp_path):
    pytest.importorskip("optuna")
    from spacy_nerimb.tuning import run_study

    space = SearchSpace.from_dict({"methods": {
        "ce": {}, "nan": {"loss": {"@losses": "test-tuning.NaN.v1"}},
        "crash": {"loss": {"@losses": "test-tuning.Crash.v1"}}}})
    out = tmp_path / "fails"
    messages = []
    summary = run_study(_settings(corpus, out, space=space, n_trials=3, pruning=False, progress=messages.append,
                                  enqueue=[{"method": "nan"}, {"method": "crash"}, {"method": "ce"}]))
    assert summary["trials"] == {"fail": 2, "complete": 1}
    rows = _rows(out / "trials.csv")
    assert [(r["method"], r["state"]) for r in rows] == [("nan", "FAIL"), ("crash", "FAIL"), ("ce", "COMPLETE")]
    assert "nan" in rows[0]["error"].lower()  # the component or the reporter stops on a NaN loss
    assert "RuntimeError: boom" in rows[1]["error"]
    assert any(m.startswith("trial 1 failed: RuntimeError: boom") for m in messages)
    assert summary["best"]["number"] == 2

    # resuming with another space is refused (Optuna cannot change a parameter's choices)
    with pytest.raises(TuningError, match="was run with another search space"):
        run_study(_settings(corpus, out, n_trials=4))
    # an objective that is no dev score stops the study after one trial, with a clear error
    with pytest.raises(TuningError, match="--objective 'ents_nosuch' is not a dev score; available: .*ents_macro_f"):
        run_study(_settings(corpus, out, n_trials=3, study_name="bad-objective", objective="ents_nosuch",
                            space=SearchSpace.from_dict({"methods": ["ce"]})))
    import optuna

    bad = optuna.load_study(study_name="bad-objective", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.state.name for t in bad.trials] == ["FAIL"]


def test_cli_reports_a_bad_space_cleanly(corpus, tmp_path):
    pytest.importorskip("optuna")
    from typer.testing import CliRunner

    from spacy_nerimb.cli import app

    space = tmp_path / "space.yml"
    space.write_text("methods:\n  focal:\n    gamma: {low: 5, high: 1}\n")
    result = CliRunner().invoke(app, ["tune", str(CNN_CONFIG), "--train", corpus["train"], "--dev", corpus["dev"],
                                      "--space", str(space), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert f"error: {space}: methods.focal.gamma: low (5.0) must be below high (1.0)" in result.output


# -- PostgreSQL: two workers, one study -------------------------------------------------
def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 in a temp dir; stopped at the end (and by a
    watchdog after 10 minutes whatever happens)."""
    if not (_importable("psycopg") or _importable("psycopg2")):
        pytest.skip("no PostgreSQL driver: pip install 'psycopg[binary]'")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed: apt-get install postgresql")
    as_user = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the 'postgres' account
        runuser = shutil.which("runuser")
        try:
            import pwd

            account = pwd.getpwnam("postgres")
        except KeyError:
            account = None
        if not runuser or account is None:
            pytest.skip("running as root without a 'postgres' account/runuser to start PostgreSQL")
        as_user = [runuser, "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="nerimb-pg-"))
    if as_user:
        os.chown(home, account.pw_uid, account.pw_gid)
    data, port = home / "data", _free_port()
    env = dict(os.environ, LC_ALL="C", LANG="C")
    watchdog = None
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "tuner", "--auth=trust", "--no-sync",
                        "-E", "UTF8"], check=True, capture_output=True, timeout=120, env=env)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "server.log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90, env=env)
        watchdog = subprocess.Popen(
            [*as_user, "sh", "-c", f"sleep 600; exec {pg_ctl} -D {data} -m immediate stop"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        yield f"postgresql://tuner@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                           capture_output=True, timeout=90, env=env)
        if watchdog is not None:
            try:
                os.killpg(watchdog.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            watchdog.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(postgres_url, corpus, tmp_path):
    from spacy_nerimb.tuning import report_study

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"methods": {"ce": {}, "focal": {"gamma": {"low": 0.0, "high": 5.0}}}}))
    workers = []
    for k in (1, 2):
        command = [sys.executable, "-m", "spacy_nerimb", "tune", str(CNN_CONFIG), "--train", corpus["train"],
                   "--dev", corpus["dev"], "--space", str(space), "--storage", postgres_url,
                   "--study-name", "shared", "--n-trials", "6", "--sampler-seed", str(k), "--no-pruning",
                   "-o", str(tmp_path / f"worker{k}"), *TINY_ARGS]
        workers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    deadline = time.monotonic() + 300
    for proc in workers:
        try:
            outputs.append(proc.communicate(timeout=max(1, deadline - time.monotonic()))[0])
        except subprocess.TimeoutExpired:
            for p in workers:
                p.kill()
            pytest.fail("tuning workers did not finish within 300 s")
        assert proc.returncode == 0, outputs[-1]
    summary = report_study(postgres_url, "shared", tmp_path / "report")
    rows = _rows(tmp_path / "report" / "trials.csv")
    numbers = [int(r["number"]) for r in rows]
    assert len(numbers) == len(set(numbers)) and sorted(numbers) == list(range(len(numbers)))
    assert len(rows) >= 6 and sum(r["state"] in ("COMPLETE", "FAIL", "PRUNED") for r in rows) >= 6
    pids = {str(p.pid) for p in workers}
    by_worker = {r["worker"].rsplit(":", 1)[1] for r in rows}
    assert by_worker == pids, (by_worker, pids, outputs)  # both workers' trials in one table
    table = (tmp_path / "report" / "trials.md").read_text()
    assert all(f":{pid} |" in table for pid in pids)
    assert "postgresql://tuner@127.0.0.1" in summary["storage"]
