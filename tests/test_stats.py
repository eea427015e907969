"""Imbalance statistics: hand-made corpus, every real corpus against the data README, CLI."""
import json
import warnings

import pytest
from typer.testing import CliRunner

from spacy_nerimb.corpora import EntityArrays, TagRepairWarning
from spacy_nerimb.stats import (
    arrays_for_path,
    corpus_statistics,
    statistics_for_paths,
    statistics_markdown,
    write_statistics,
)

from conftest import require_corpus


def test_hand_made_statistics():
    # 3 sentences, 10 tokens: [B-A I-A O O], [O O O], [B-B O B-A]
    arrays = EntityArrays.from_spans([4, 3, 3], [[(0, 2, "A")], [], [(0, 1, "B"), (2, 3, "A")]])
    s = corpus_statistics(arrays)
    assert (s["tokens"], s["sentences"], s["entity_types"], s["entities"]) == (10, 3, 2, 3)
    assert s["entity_token_share"] == 40.0
    assert s["sentences_with_entities_share"] == pytest.approx(66.6667)
    assert s["bio_shares"] == {"B": 30.0, "I": 10.0, "O": 60.0}
    assert s["least_frequent_type"]["type"] == "B" and s["least_frequent_type"]["share_of_tokens"] == 10.0
    assert s["most_frequent_type"]["type"] == "A" and s["most_frequent_type"]["share_of_tokens"] == 30.0
    assert s["types"]["A"]["share_of_entity_tokens"] == 75.0


# (folder, file, tokens, sentences, % entity tokens, % sentences with entities, types,
#  rarest, its % of entity tokens, most frequent, its %) -- from ../shared/data/README.md
README = [
    ("wnut17", "wnut17train.conll", 62730, 3394, 5.0, 36, 6, "corporation", 8.5, "person", 31),
    ("anatem", "train.tsv", 153823, 5861, 7.7, 60, 1, "Anatomy", 100, "Anatomy", 100),
    ("bc5cdr", "train.tsv", 118170, 4560, 12.0, 83, 2, None, None, None, None),
    ("gmb", "ner_dataset.csv", 1048575, 47959, 15.3, 85, 8, "nat", 0.16, "geo", 28),
    ("zh-weibo", "weiboNER_2nd_conll.train", 73778, 1350, 6.7, 55, 8, "GPE.NOM", 0.3, "PER.NOM", 37),
]


@pytest.mark.parametrize("row", README, ids=[f"{r[0]}/{r[1]}" for r in README])
def test_real_corpus_statistics_match_readme(row):
    folder, name, tokens, sentences, ent, sent, types, rare, rare_pct, most, most_pct = row
    path = require_corpus(folder, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TagRepairWarning)
        s = corpus_statistics(arrays_for_path(path))
    assert (s["tokens"], s["sentences"], s["entity_types"]) == (tokens, sentences, types)
    assert abs(s["entity_token_share"] - ent) < 0.06
    assert abs(s["sentences_with_entities_share"] - sent) < 0.6
    assert sum(s["bio_shares"].values()) == pytest.approx(100.0, abs=1e-3)
    if rare:
        least, top = s["least_frequent_type"], s["most_frequent_type"]
        assert least["type"] == rare and top["type"] == most
        digits = 2 if rare_pct < 1 else 0
        assert round(least["share_of_entity_tokens"], max(digits, 1)) == pytest.approx(rare_pct, abs=0.06 if digits else 0.6)
        assert round(top["share_of_entity_tokens"]) == pytest.approx(most_pct, abs=0.6)
    else:  # bc5cdr: Chemical ~ Disease
        assert abs(s["types"]["Chemical"]["tokens"] - s["types"]["Disease"]["tokens"]) < 0.01 * s["entity_tokens"]


def test_wnut_matches_resampling_paper_table1():
    path = require_corpus("wnut17", "wnut17train.conll")
    s = corpus_statistics(arrays_for_path(path))
    # Table 1 (WNUT): 6 types, 0.43 vs 1.59, 5.03 (our 5.04: 3,160 / 62,730), 3,394, 36.18
    assert f"{s['least_frequent_type']['share_of_tokens']:.2f}" == "0.43"
    assert f"{s['most_frequent_type']['share_of_tokens']:.2f}" == "1.59"
    assert f"{s['sentences_with_entities_share']:.2f}" == "36.18"
    assert f"{s['entity_token_share']:.2f}" == "5.04"


def test_docbin_and_tagged_file_agree(tmp_path):
    path = require_corpus("wnut17", "emerging.dev.conll")
    from spacy_nerimb.corpora import convert

    convert(path, tmp_path / "dev.spacy")
    a = corpus_statistics(arrays_for_path(path))
    b = corpus_statistics(arrays_for_path(tmp_path / "dev.spacy"))
    assert a == b


def test_write_json_and_markdown(tmp_path):
    arrays_path = tmp_path / "c.conll"
    arrays_path.write_text("a\tB-X\nb\tO\n\nc\tO\n", encoding="utf8")
    stats = statistics_for_paths([arrays_path], names=["tiny"])
    write_statistics(stats, tmp_path / "s.json", tmp_path / "s.md")
    assert json.loads((tmp_path / "s.json").read_text())["tiny"]["tokens"] == 3
    text = (tmp_path / "s.md").read_text()
    assert "| tiny | 3 | 1 |" in text and "B / I / O" in text
    assert statistics_markdown(stats) == text


def test_cli_convert_stats_resample_subsample(tmp_path):
    from spacy_nerimb.cli import app

    corpus = tmp_path / "c.conll"
    lines = []
    for i in range(40):
        lines += [f"w{i}\tB-X" if i % 3 == 0 else f"w{i}\tO", "x\tO", ""]
    corpus.write_text("\n".join(lines), encoding="utf8")
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(corpus), str(tmp_path / "out"), "--split", "3:1"])
    assert result.exit_code == 0, result.output
    assert "converted" in result.output and "train: 30, test: 10" in result.output
    train = tmp_path / "out" / "train.spacy"
    result = runner.invoke(app, ["stats", str(train), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0 and "statistics of 1 corpora" in result.output
    result = runner.invoke(app, ["resample", str(train), str(tmp_path / "r.spacy"), "--method", "sC"])
    assert result.exit_code == 0 and "factor" in result.output
    result = runner.invoke(app, ["subsample", str(train), str(tmp_path / "lr"), "--sizes", "5,10",
                                 "--partitions", "2"])
    assert result.exit_code == 0 and "wrote 4 low-resource samples" in result.output
    bad = tmp_path / "bad.conll"
    bad.write_bytes("caf\u00e9\tO\n".encode("cp1252"))
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "b.spacy")])
    assert result.exit_code == 1 and "--encoding" in result.output
    assert not (tmp_path / "b.spacy").exists()
