import itertools

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_nerimb.tags import (
    biluo_to_scheme,
    constrained_viterbi,
    make_tag_names,
    spans_to_tags,
    tag_ids_to_spans,
    tags_to_spans,
    transition_constraints,
)


def is_valid(tags, scheme):
    """Independent validity check of a tag sequence, written from the scheme rules."""
    open_label = None
    for tag in tags:
        prefix, _, label = tag.partition("-")
        if scheme == "BILUO":
            if prefix in ("I", "L"):
                if open_label != label:
                    return False
                open_label = label if prefix == "I" else None
            else:
                if open_label is not None:
                    return False
                open_label = label if prefix == "B" else None
        else:
            if prefix == "I" and open_label != label:
                return False
            open_label = label if prefix in ("B", "I") else None
    return scheme == "BIO" or open_label is None


def test_tag_names_layout():
    assert make_tag_names(["PER"], "BILUO") == ["O", "B-PER", "I-PER", "L-PER", "U-PER"]
    assert make_tag_names(["PER", "LOC"], "bio") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    with pytest.raises(ValueError, match="scheme"):
        make_tag_names(["PER"], "IOBES2")


def test_biluo_to_bio():
    assert [biluo_to_scheme(t, "BIO") for t in ["U-X", "B-X", "I-X", "L-X", "O", None]] == [
        "B-X", "B-X", "I-X", "I-X", "O", None]
    assert biluo_to_scheme("L-X", "BILUO") == "L-X"


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_transition_masks_agree_with_validity(scheme):
    names = make_tag_names(["A", "B"], scheme)
    allowed, start, end = transition_constraints(names, scheme)
    for n in (1, 2, 3):
        for seq in itertools.product(range(len(names)), repeat=n):
            ok = start[seq[0]] and end[seq[-1]] and all(allowed[a, b] for a, b in zip(seq, seq[1:]))
            assert ok == is_valid([names[i] for i in seq], scheme)


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["BILUO", "BIO"]),
    n_labels=st.integers(1, 3),
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    seed=st.integers(0, 2**31 - 1),
)
def test_decoding_random_logits_gives_valid_spans(scheme, n_labels, lengths, seed):
    rng = numpy.random.default_rng(seed)
    names = make_tag_names([f"T{i}" for i in range(n_labels)], scheme)
    allowed, start, end = transition_constraints(names, scheme)
    scores = [rng.normal(scale=5.0, size=(n, len(names))) for n in lengths]
    paths = constrained_viterbi(scores, allowed, start, end)
    assert [len(p) for p in paths] == lengths
    for path in paths:
        tags = [names[i] for i in path]
        assert is_valid(tags, scheme), tags
        spans, repairs = tags_to_spans(tags)
        assert repairs == 0
        assert spans_to_tags(len(tags), spans, scheme) == tags


def test_viterbi_is_best_valid_sequence_by_brute_force():
    rng = numpy.random.default_rng(3)
    names = make_tag_names(["A", "B"], "BILUO")
    allowed, start, end = transition_constraints(names, "BILUO")
    for _ in range(20):
        n = int(rng.integers(1, 4))
        scores = rng.normal(size=(n, len(names)))
        best = max(
            (seq for seq in itertools.product(range(len(names)), repeat=n)
             if is_valid([names[i] for i in seq], "BILUO")),
            key=lambda seq: sum(scores[t, s] for t, s in enumerate(seq)),
        )
        assert tuple(constrained_viterbi([scores], allowed, start, end)[0]) == best


def test_tags_to_spans_repairs_and_counts():
    spans, repairs = tags_to_spans(["I-X", "I-Y", "O", "B-X", "L-X", "i-Z", "O-Q", "S-W"])
    assert spans == [(0, 1, "X"), (1, 2, "Y"), (3, 5, "X"), (5, 6, "Z"), (7, 8, "W")]
    assert repairs == 4  # I-X opens, I-Y switches type, i-Z lower case + opens, O-X
    assert tags_to_spans(["B-X", "B-X", "I-X"]) == ([(0, 1, "X"), (1, 3, "X")], 0)
    with pytest.raises(ValueError, match="token 1"):
        tags_to_spans(["O", "Q-X"])
    with pytest.raises(ValueError, match="Malformed"):
        tags_to_spans(["PER"])


def test_spans_to_tags_rejects_overlap():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags(4, [(0, 2, "A"), (1, 3, "B")])
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags(2, [(1, 3, "A")])
    assert tag_ids_to_spans([0, 4, 1, 3], make_tag_names(["A"], "BILUO")) == [(1, 2, "A"), (2, 4, "A")]
