"""The README's Python quickstart runs as written, and its commands match CI."""
import re

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf8")


def test_python_quickstart_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"### Python\n\n```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README quickstart", "exec"), {})
    assert "(Anna Kovacs, Lisbon)" in capsys.readouterr().out
    import spacy

    assert [e.text for e in spacy.load(tmp_path / "my-model")("Anna Kovacs flew to Lisbon .").ents] == [
        "Anna Kovacs", "Lisbon"]


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    test_cmd = re.search(r"(python -m pytest[^`\n]*)", README).group(1)
    assert test_cmd in ci
    assert "pip install torch==2.13.0" in ci and 'pip install -e ".[test]"' in ci


def _readme_tables():
    """benchmarks/readme_tables.py, loaded by path (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", REPO_ROOT / "benchmarks" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_quality_tables_are_the_committed_results():
    """Every quality table in the README is what benchmarks/readme_tables.py writes from quality.json."""
    assert _readme_tables().main(["--check", str(REPO_ROOT / "README.md")]) == 0


def test_readme_table_check_names_a_changed_number(tmp_path, capsys):
    tables = _readme_tables()
    import json

    data = json.loads((REPO_ROOT / "benchmarks" / "results" / "quality.json").read_text())
    title, body = tables.all_tables(data)[0]
    first_cell = body.splitlines()[2].split(" | ")[1]  # CE's macro F1 on the first corpus
    changed = tmp_path / "README.md"
    changed.write_text(README.replace(body, body.replace(first_cell, "0.999 ± 0.000", 1)))
    assert tables.main(["--check", str(changed)]) == 1
    assert title in capsys.readouterr().err
