"""A small, seeded, synthetic imbalanced NER corpus generated in code.

Used by ``python -m spacy_nerimb demo``, the project's offline ``all``
workflow and tests, so nothing needs a download. The corpus mimics real NER
imbalance: most sentences have no entity, two frequent types (PERSON, LOC),
one medium type (ORG) and two rare types (DRUG, VESSEL). Each type has its
own name morphology and typical contexts, so a model can learn it, but the
rare types are seen only a handful of times and share contexts or name
shapes with frequent ones.
"""
import random
from typing import Callable, Dict, List, Sequence, Tuple

from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from .util import PathLike, atomic_path

Token = Tuple[str, str]  # (word, entity label or "")

_SYLLABLES = ["ka", "lo", "mi", "ren", "to", "va", "sel", "dor", "an", "bri", "ce", "nu"]
_FIRST = ["Anna", "Boris", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jia",
          "Karl", "Lena", "Mateo", "Nora", "Omar", "Pia", "Ravi", "Sara", "Tomas", "Yuki"]
_LOC_SUFFIX = ["burg", "ville", "ia", "stad", "port", "ford"]
_ORG_SUFFIX = ["Corp", "Industries", "Group", "Labs", "Holdings"]
_DRUG_SUFFIX = ["mab", "pril", "statin", "olol", "cillin"]
_VESSEL_PREFIX = ["MV", "HMS", "SS"]

_TEMPLATES: List[Tuple[float, str]] = [
    (6.0, "{PERSON} said on Monday that the plan would go ahead ."),
    (5.0, "{PERSON} travelled to {LOC} last week ."),
    (4.0, "Officials in {LOC} confirmed the figures ."),
    (3.0, "{PERSON} met {PERSON} in {LOC} ."),
    (3.0, "Shares of {ORG} rose sharply after the report ."),
    (2.0, "{PERSON} , a spokesperson for {ORG} , declined to comment ."),
    (2.0, "Heavy rain fell across {LOC} and {LOC} overnight ."),
    (2.0, "The ferry to {LOC} was cancelled because of the storm ."),
    (1.5, "{PERSON} was given a medal in {LOC} ."),
    (0.4, "The patient was given {DRUG} twice daily ."),
    (0.3, "Doctors prescribed {DRUG} after the scan ."),
    (0.3, "Sales of {DRUG} rose sharply after the report ."),
    (0.4, "The cargo ship {VESSEL} docked at {LOC} ."),
    (0.3, "Crew members of the {VESSEL} were rescued ."),
    (0.3, "The {VESSEL} sailed from {LOC} on Friday ."),
    (8.0, "The patient was given water and rest ."),
    (6.0, "The ship sailed on Friday and nobody noticed ."),
    (30.0, "The meeting was postponed until next month ."),
    (20.0, "Prices went up again and nobody was surprised ."),
    (15.0, "It was a quiet day and the streets were empty ."),
    (12.0, "The committee will publish its findings later this year ."),
    (10.0, "Most people said they would vote for the proposal ."),
    (8.0, "The weather is expected to improve by the weekend ."),
]
TYPES = ("PERSON", "LOC", "ORG", "DRUG", "VESSEL")


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(n))


def _names(rng: random.Random) -> Dict[str, Callable[[], List[str]]]:
    """Name makers per type; some names lack their type's tell-tale morphology,
    so context must decide (a vessel named like a town, a one-word company)."""

    def maybe(p: float, yes: Callable[[], List[str]], no: Callable[[], List[str]]) -> List[str]:
        return yes() if rng.random() < p else no()

    capital = lambda: [_word(rng, 2).capitalize()]  # noqa: E731
    return {
        "PERSON": lambda: maybe(0.8, lambda: [rng.choice(_FIRST)] + capital(), capital),
        "LOC": lambda: maybe(0.7, lambda: [capital()[0] + rng.choice(_LOC_SUFFIX)], capital),
        "ORG": lambda: maybe(0.6, lambda: capital() + [rng.choice(_ORG_SUFFIX)], capital),
        "DRUG": lambda: maybe(
            0.7, lambda: [_word(rng, 2) + rng.choice(_DRUG_SUFFIX)], lambda: [_word(rng, 3)]
        ),
        "VESSEL": lambda: maybe(0.4, lambda: [rng.choice(_VESSEL_PREFIX)] + capital(), capital),
    }


def synthetic_sentences(n: int, seed: int = 0) -> List[List[Token]]:
    """``n`` sentences as (word, label) tokens; the same seed gives the same corpus."""
    rng = random.Random(seed)
    names = _names(rng)
    weights = [w for w, _ in _TEMPLATES]
    sentences = []
    for _ in range(n):
        template = rng.choices([t for _, t in _TEMPLATES], weights=weights)[0]
        tokens: List[Token] = []
        for piece in template.split():
            if piece.startswith("{") and piece.endswith("}"):
                label = piece[1:-1]
                tokens.extend((word, label) for word in names[label]())
            else:
                tokens.append((piece, ""))
        sentences.append(tokens)
    return sentences


def sentence_to_doc(vocab: Vocab, tokens: Sequence[Token]) -> Doc:
    """A Doc with ``doc.ents`` set from (word, label) tokens; adjacent same-label
    tokens form one entity (templates never put two same-type names side by side)."""
    doc = Doc(vocab, words=[w for w, _ in tokens])
    spans = []
    start = 0
    for i in range(1, len(tokens) + 1):
        if i == len(tokens) or tokens[i][1] != tokens[start][1]:
            if tokens[start][1]:
                spans.append(Span(doc, start, i, label=tokens[start][1]))
            start = i
    doc.set_ents(spans, default="outside")
    return doc


def synthetic_docs(vocab: Vocab, n: int, seed: int = 0) -> List[Doc]:
    return [sentence_to_doc(vocab, s) for s in synthetic_sentences(n, seed)]


def write_synthetic_corpus(
    output_dir: PathLike, sizes: Dict[str, int], seed: int = 0, lang: str = "en"
) -> Dict[str, str]:
    """Write ``{split}.spacy`` DocBins (split seeds differ) and return their paths."""
    import spacy
    from pathlib import Path

    vocab = spacy.blank(lang).vocab
    paths = {}
    for offset, (split, n) in enumerate(sorted(sizes.items())):
        docs = synthetic_docs(vocab, n, seed=seed * 1000 + offset)
        path = Path(output_dir) / f"{split}.spacy"
        with atomic_path(path) as tmp:
            DocBin(docs=docs, store_user_data=False).to_disk(tmp)
        paths[split] = str(path)
    return paths
