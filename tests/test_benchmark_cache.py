"""benchmarks/quality.py on a fresh machine: the committed results seed its resume cache."""
import copy
import importlib.util
import json

from conftest import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results" / "quality.json"


def _quality():
    """benchmarks/quality.py, loaded by path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("quality", REPO_ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jobs_and_settings(quality, work, count=3):
    data = json.loads(RESULTS.read_text())
    meta = data["meta"]
    settings = {k: meta[k] for k in quality.RUN_IDENTITY_META}
    jobs = [{**{k: copy.deepcopy(r[k]) for k in quality.RUN_FIELDS},
             "train_idx": list(range(i, i + 5)), "test_idx": [0, 1, 2], "work": str(work)}
            for i, r in enumerate(data["runs"][:count])]
    return data, jobs, settings


def test_restored_runs_are_served_from_the_cache_unchanged(tmp_path):
    quality = _quality()
    data, jobs, settings = _jobs_and_settings(quality, tmp_path)
    assert quality.restore_cache(jobs, RESULTS, tmp_path, settings) == len(jobs)
    for job, run in zip(jobs, data["runs"]):
        served = quality.run_cached(job)  # trains nothing: the restored file answers
        assert served["cached"] is True
        assert served["scores"] == run["scores"] and served["wall_seconds"] == run["wall_seconds"]
    logged = [json.loads(line) for line in (tmp_path / "invocations.jsonl").read_text().splitlines()]
    assert logged == data["meta"]["invocations"]
    # a second call finds them all in place
    assert quality.restore_cache(jobs, RESULTS, tmp_path, settings) == 0


def test_a_job_that_differs_from_every_committed_run_is_not_restored(tmp_path):
    quality = _quality()
    _, jobs, settings = _jobs_and_settings(quality, tmp_path, count=2)
    jobs[0]["budget"] = {**jobs[0]["budget"], "steps": jobs[0]["budget"]["steps"] + 1}
    jobs[1]["seed"] += 1
    assert quality.restore_cache(jobs, RESULTS, tmp_path, settings) == 0
    assert not (tmp_path / "runs").exists()


def test_results_written_under_another_test_sample_restore_nothing(tmp_path, capsys):
    quality = _quality()
    _, jobs, settings = _jobs_and_settings(quality, tmp_path)
    settings["test_size"] += 1
    settings["corpus_files"] = {**settings["corpus_files"], "wnut17": {"train": "elsewhere.conll"}}
    assert quality.restore_cache(jobs, RESULTS, tmp_path, settings) == 0
    said = capsys.readouterr().out
    assert "test_size" in said and "corpus file of wnut17" in said
    assert quality.restore_cache(jobs, tmp_path / "missing.json", tmp_path, settings) == 0


def test_verdicts_name_the_partition_count_where_rows_differ_in_it():
    """A highest mean over fewer partitions than its rivals' is flagged in the Findings."""
    quality = _quality()
    data = json.loads(RESULTS.read_text())
    report = quality.markdown(data["summary"], data["meta"], data["findings"])
    lines = {line.split("**")[1]: line for line in report.splitlines() if line.startswith("- **") and ", n = " in line}
    flagged = 0
    for item in data["findings"]:
        rows = {r["method"]: r for r in data["summary"] if (r["corpus"], r["n"]) == (item["corpus"], item["n"])}
        line = lines[f"{item['corpus']}, n = {item['n']}"]
        best = item["best_method_by_macro_mean"]
        if len({len(r["partitions"]) for r in rows.values()}) > 1:
            assert f"`{best}` (mean over {len(rows[best]['partitions'])} partitions)" in line
            flagged += 1
        else:
            assert "mean over" not in line
    assert 0 < flagged < len(data["findings"])
