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
