"""The ``imbalanced_ner`` component: token classification that writes ``doc.ents``.

The configured loss decides the head (its width and its decoding); the
component turns gold entities into tag ids (BILUO or BIO), masks missing
annotation, counts tags at ``initialize`` (saved in ``cfg`` so count-based
weights are rebuilt identically after loading) and writes only valid spans.
"""
from collections import Counter
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .losses import TagLoss
from .models import OUTPUT_LAYER
from .models.tagger import HEAD_REF, TOK2VEC_REF
from .scoring import score_entities
from .tags import (
    MISSING,
    biluo_to_scheme,
    check_scheme,
    make_tag_names,
    tag_ids_to_spans,
    tag_index,
)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-nerimb.TokenTagger.v1"

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

SCORE_KEYS = ("ents_f", "ents_p", "ents_r", "ents_macro_f", "ents_macro_p", "ents_macro_r")


@Language.factory(
    "imbalanced_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "model": DEFAULT_MODEL,
        "loss": {"@losses": "spacy-nerimb.CrossEntropy.v1"},
        "scheme": "BILUO",
        "scorer": {"@scorers": "spacy-nerimb.entity_scorer.v1"},
    },
    default_score_weights={
        "ents_macro_f": 1.0,
        "ents_f": 0.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_macro_p": 0.0,
        "ents_macro_r": 0.0,
        "ents_per_type": None,
    },
)
def make_imbalanced_ner(
    nlp: Language,
    name: str,
    model: Model,
    loss: TagLoss,
    scheme: str,
    scorer: Optional[Callable],
) -> "ImbalancedNER":
    """Create an ``imbalanced_ner`` component (see :class:`ImbalancedNER`)."""
    return ImbalancedNER(nlp.vocab, model, name, loss=loss, scheme=scheme, scorer=scorer)


class ImbalancedNER(TrainablePipe):
    """Named-entity tagger with a pluggable, imbalance-aware loss."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "imbalanced_ner",
        *,
        loss: TagLoss,
        scheme: str = "BILUO",
        scorer: Optional[Callable] = score_entities,
    ) -> None:
        if not isinstance(loss, TagLoss):
            raise ValueError(
                f"[components.{name}.loss] must be a spacy-nerimb loss (a TagLoss, e.g. "
                f'{{"@losses": "spacy-nerimb.CrossEntropy.v1"}}), got {type(loss).__name__}.'
            )
        self.vocab = vocab
        self.model = model
        self.name = name
        self.loss = loss
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "scheme": check_scheme(scheme),
            "tag_counts": {},
        }

    # -- labels and tags --------------------------------------------------------
    @property
    def labels(self) -> tuple:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.cfg["labels"])

    @property
    def scheme(self) -> str:
        return self.cfg["scheme"]

    @property
    def tag_names(self) -> List[str]:
        return make_tag_names(self.labels, self.scheme)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"Invalid entity label {label!r} for '{self.name}': expected a non-empty string.")
        if label in self.cfg["labels"]:
            return 0
        if self.cfg["tag_counts"]:
            # The head is sized for the tag set built at initialize; a new label
            # would change that width, so it needs a fresh initialize.
            raise ValueError(
                f"Cannot add label {label!r} to '{self.name}': it is already initialized "
                f"with labels {list(self.labels)}. Add the label to "
                f"[initialize.components.{self.name}.labels] and initialize a new pipeline."
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def _bind_loss(self) -> None:
        """Hand tag list and counts to the loss and size the head for it."""
        self.loss.initialize(
            self.tag_names, self.cfg["tag_counts"], labels=self.labels, scheme=self.scheme
        )
        width = self.loss.output_width(len(self.tag_names), len(self.labels))
        head = self.model.get_ref(OUTPUT_LAYER) if self.model.has_ref(OUTPUT_LAYER) else None
        if head is None:
            raise ValueError(
                f"The model of '{self.name}' has no '{OUTPUT_LAYER}' layer: use "
                "spacy-nerimb.TokenTagger.v1 (or an architecture that names its head so)."
            )
        if head.has_dim("nO") is True and head.get_dim("nO") != width:
            raise ValueError(
                f"The loss {type(self.loss).__name__} of '{self.name}' needs a head of "
                f"width {width} ({self.loss.head} head for {len(self.labels)} labels, "
                f"scheme {self.scheme}), but [components.{self.name}.model] has "
                f"nO = {head.get_dim('nO')}. Leave nO unset."
            )
        if head.has_dim("nO") is None:
            head.set_dim("nO", width)
        # Hook for losses with their own model parameters (the CRF's transition
        # scores live in the model so the optimiser updates them and they are saved).
        bind = getattr(self.loss, "bind", None)
        if bind is not None:
            bind(self.model)

    # -- gold -------------------------------------------------------------------
    def gold_tag_ids(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Gold tag id per predicted token, batch concatenated; MISSING where unknown."""
        index = tag_index(self.tag_names)
        ids: List[int] = []
        for eg in examples:
            for i, biluo in enumerate(eg.get_aligned_ner()):
                tag = biluo_to_scheme(biluo, self.scheme)
                if tag is None:
                    ids.append(MISSING)
                elif tag in index:
                    ids.append(index[tag])
                else:
                    raise ValueError(
                        f"Unknown entity label {tag.split('-', 1)[-1]!r} in example "
                        f"{eg.reference.text[:60]!r} (token {i}): '{self.name}' knows "
                        f"{list(self.labels)}. Add it with [initialize.components."
                        f"{self.name}.labels] or re-run initialize."
                    )
        return numpy.asarray(ids, dtype="int32")

    # -- training -----------------------------------------------------------------
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Set labels (given, or read from the data), count tags, size the head."""
        validate_get_examples(get_examples, "ImbalancedNER.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            found = sorted(
                {ent.label_ for eg in get_examples() for ent in eg.reference.ents}
            )
            for label in found:
                self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"'{self.name}' has no entity labels: the training data has no entities "
                f"and no [initialize.components.{self.name}.labels] were given."
            )
        counts: Counter = Counter()
        index_names = self.tag_names
        for eg in get_examples():
            counts.update(index_names[i] for i in self.gold_tag_ids([eg]) if i != MISSING)
        n_entity_tags = sum(c for tag, c in counts.items() if tag != "O")
        if n_entity_tags == 0:
            raise ValueError(
                f"The training data for '{self.name}' has no annotated entities: "
                "nothing to learn. Check the corpus path and its conversion."
            )
        self.cfg["tag_counts"] = {tag: int(counts.get(tag, 0)) for tag in index_names}
        self._bind_loss()
        self.model.initialize(X=[eg.predicted for eg in islice(get_examples(), 10)])

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """One training step: forward, loss, backward, optimiser."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "ImbalancedNER.update")
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        docs = [eg.predicted for eg in examples]
        if getattr(self.loss, "n_passes", 1) > 1:
            loss = self._update_passes(examples, docs)
        else:
            scores, backprop = self.model.begin_update(docs)
            loss, d_scores = self.get_loss(examples, scores)
            backprop(d_scores)
        if sgd not in (None, False):
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: List) -> tuple:
        """Loss and per-doc gradients from the configured loss (see losses.base)."""
        validate_examples(examples, "ImbalancedNER.get_loss")
        ops = self.model.ops
        lengths = ops.asarray1i([s.shape[0] for s in scores])
        flat = ops.flatten(scores)
        gold = ops.asarray1i(self.gold_tag_ids(examples))
        d_flat, loss = self.loss(flat, gold, lengths)
        self._check_finite(loss)
        return float(loss), ops.unflatten(d_flat, lengths)

    def _check_finite(self, loss: float) -> None:
        if not numpy.isfinite(loss):
            raise ValueError(
                f"'{self.name}' got a non-finite loss ({loss}) from "
                f"{type(self.loss).__name__}; lower the learning rate or check the settings."
            )

    def _update_passes(self, examples: List[Example], docs: List[Doc]) -> float:
        """Forward/backward for a loss that compares several dropout passes (R-Drop).

        With a tok2vec that listens to a shared component (transformer or
        tok2vec), the shared encoder runs once: only the component's own layers
        after it (ref ``head``) run once per pass, and the summed gradient goes
        back to the listener once. Otherwise the whole model runs once per pass.
        """
        model, ops = self.model, self.model.ops
        n_passes = int(self.loss.n_passes)
        shared = self._listens_to_shared_encoder()
        if shared:
            tokvecs, backprop_tokvecs = model.get_ref(TOK2VEC_REF).begin_update(docs)
            head = model.get_ref(HEAD_REF)
            runs = [head.begin_update(tokvecs) for _ in range(n_passes)]
        else:
            runs = [model.begin_update(docs) for _ in range(n_passes)]
        lengths = ops.asarray1i([s.shape[0] for s in runs[0][0]])
        gold = ops.asarray1i(self.gold_tag_ids(examples))
        d_flats, loss = self.loss.passes([ops.flatten(s) for s, _ in runs], gold, lengths)
        self._check_finite(loss)
        d_inputs = [bp(ops.unflatten(d, lengths)) for (_, bp), d in zip(runs, d_flats)]
        if shared:
            backprop_tokvecs([sum(parts[1:], parts[0]) for parts in zip(*d_inputs)])
        return float(loss)

    def _listens_to_shared_encoder(self) -> bool:
        """Whether the model's tok2vec holds a listener (spaCy or spacy-transformers)."""
        if not (self.model.has_ref(TOK2VEC_REF) and self.model.has_ref(HEAD_REF)):
            if any(hasattr(node, "upstream_name") for node in self.model.walk()):
                raise ValueError(
                    f"{type(self.loss).__name__} runs several passes; with a shared encoder "
                    f"the model of '{self.name}' must name its own layers 'tok2vec' and "
                    "'head' (spacy-nerimb.TokenTagger.v1 does)."
                )
            return False
        return any(hasattr(node, "upstream_name") for node in self.model.get_ref(TOK2VEC_REF).walk())

    # -- prediction ---------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> List[numpy.ndarray]:
        """Best valid tag-id sequence per doc."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((0,), dtype="int64") for _ in docs]
        scores = self.model.predict(docs)
        return self.loss.decode(scores)

    def set_annotations(self, docs: Iterable[Doc], tag_ids: List[numpy.ndarray]) -> None:
        """Write the decoded spans to ``doc.ents`` (all other tokens become ``O``)."""
        names = self.tag_names
        for doc, ids in zip(docs, tag_ids):
            spans = [
                Span(doc, start, end, label=label)
                for start, end, label in tag_ids_to_spans(ids, names)
            ]
            doc.set_ents(spans, default="outside")

    # -- serialisation ----------------------------------------------------------
    def from_bytes(self, bytes_data, *, exclude=tuple()):
        super().from_bytes(bytes_data, exclude=exclude)
        if self.labels:
            self._bind_loss()
        return self

    def from_disk(self, path, *, exclude=tuple()):
        super().from_disk(path, exclude=exclude)
        if self.labels:
            self._bind_loss()
        return self
