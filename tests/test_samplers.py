"""Low-resource and imbalance samplers (AUC-2T paper's data generators)."""
import json

import numpy
import pytest

from spacy_nerimb.corpora import EntityArrays, convert, load_docbin
from spacy_nerimb.samplers import (
    imbalance_sample,
    low_resource_partitions,
    write_imbalance,
    write_low_resource,
)

from conftest import require_corpus


def test_low_resource_partitions_disjoint_and_seeded():
    parts = low_resource_partitions(100, 20, 5, seed=7)
    assert [len(p) for p in parts] == [20] * 5
    assert len(set(numpy.concatenate(parts).tolist())) == 100
    again = low_resource_partitions(100, 20, 5, seed=7)
    assert all((a == b).all() for a, b in zip(parts, again))
    other = low_resource_partitions(100, 20, 5, seed=8)
    assert any((a != b).any() for a, b in zip(parts, other))


def test_low_resource_overlapping_and_errors():
    parts = low_resource_partitions(50, 30, 3, seed=0, disjoint=False)
    assert all(len(set(p.tolist())) == 30 for p in parts)
    with pytest.raises(ValueError, match="disjoint partitions"):
        low_resource_partitions(50, 30, 3, seed=0)
    with pytest.raises(ValueError, match="exceeds"):
        low_resource_partitions(10, 11, 1)


def _synthetic(n=400, seed=0):
    rng = numpy.random.default_rng(seed)
    lengths, spans = [], []
    for _ in range(n):
        length = int(rng.integers(5, 30))
        k = int(rng.integers(0, 4)) if rng.random() < 0.5 else 0
        starts = sorted(rng.choice(length, size=min(k, length), replace=False).tolist())
        lengths.append(length)
        spans.append([(s, s + 1, "X") for s in starts])
    return EntityArrays.from_spans(lengths, spans)


@pytest.mark.parametrize("share", [1.0, 2.0, 5.0, 10.0])
def test_imbalance_sample_reaches_target(share):
    arrays = _synthetic()
    idx, achieved = imbalance_sample(arrays, share, 100, seed=0)
    assert len(idx) == len(set(idx.tolist())) == 100
    assert abs(achieved - share) < 0.5
    inside = arrays.count_matrix().sum(axis=1)
    assert achieved == pytest.approx(100 * inside[idx].sum() / arrays.lengths[idx].sum())
    again, _ = imbalance_sample(arrays, share, 100, seed=0)
    assert (idx == again).all()


def test_imbalance_sample_errors():
    arrays = _synthetic(20)
    with pytest.raises(ValueError, match="n_sentences"):
        imbalance_sample(arrays, 5.0, 21)
    with pytest.raises(ValueError, match="percentage"):
        imbalance_sample(arrays, 150.0, 5)


def test_real_corpus_samples(tmp_path):
    path = require_corpus("wnut17", "wnut17train.conll")
    convert(path, tmp_path / "train.spacy")
    manifest = write_imbalance(tmp_path / "train.spacy", tmp_path / "samples",
                               shares=[1, 2, 5, 10], n_sentences=200, seed=0)
    for entry in manifest["samples"]:
        assert abs(entry["entity_token_share"] - entry["target_share"]) < 0.5
        arrays = EntityArrays.from_docbin(load_docbin(entry["path"]))
        assert arrays.n_sentences == 200
        assert 100 * (arrays.type_ids >= 0).sum() / arrays.n_tokens == pytest.approx(entry["entity_token_share"], abs=1e-3)
    lr = write_low_resource(tmp_path / "train.spacy", tmp_path / "samples", sizes=[20, 50], partitions=3)
    assert len(lr["samples"]) == 6
    saved = json.loads((tmp_path / "samples" / "low_resource" / "manifest.json").read_text())
    assert saved["samples"][0]["indices"] == lr["samples"][0]["indices"]
    assert len(load_docbin(tmp_path / "samples" / "low_resource" / "n50_p2.spacy")) == 50
    assert (tmp_path / "samples" / "imbalance" / "manifest.md").exists()
