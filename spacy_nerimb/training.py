"""Build configs for the ``imbalanced_ner`` component and train them with ``spacy train``.

The component's own default config is the single source of model settings;
these helpers only add the loss, the data paths and the step budget, write a
complete ``config.cfg`` and call spaCy's training entry point, so every run
is one that ``python -m spacy train`` would also do.
"""
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import Config

from .scoring import score_entities
from .util import PathLike

# Loss presets by short method name: the config block of [components.ner.loss].
LOSS_PRESETS: Dict[str, Dict[str, Any]] = {
    "ce": {"@losses": "spacy-nerimb.CrossEntropy.v1"},
    "wce1": {"@losses": "spacy-nerimb.CrossEntropy.v1", "class_weights": "inverse_frequency"},
    "wce2": {"@losses": "spacy-nerimb.CrossEntropy.v1", "class_weights": "log", "beta": 1.0},
    "focal": {"@losses": "spacy-nerimb.Focal.v1", "gamma": 2.0},
    "dice": {"@losses": "spacy-nerimb.Dice.v1"},
    "mom": {"@losses": "spacy-nerimb.MoM.v1", "lam": 0.175},
    "mom_focal": {
        "@losses": "spacy-nerimb.MoM.v1",
        "lam": 0.175,
        "base": {"@losses": "spacy-nerimb.Focal.v1", "gamma": 2.0},
    },
    "auc2t": {"@losses": "spacy-nerimb.AUC2T.v1"},
    "comauc2t": {"@losses": "spacy-nerimb.CompositionalAUC2T.v1"},
    "crf": {"@losses": "spacy-nerimb.CRF.v1"},
    "crf_focal_rdrop": {
        "@losses": "spacy-nerimb.RDrop.v1",
        "loss": {
            "@losses": "spacy-nerimb.CRF.v1",
            "emission_loss": {"@losses": "spacy-nerimb.Focal.v1", "gamma": 2.0},
        },
    },
}


def loss_preset(method: str) -> Dict[str, Any]:
    if method not in LOSS_PRESETS:
        raise ValueError(f"Unknown method {method!r}: expected one of {', '.join(LOSS_PRESETS)}.")
    return dict(LOSS_PRESETS[method])


def build_config(
    loss: Dict[str, Any],
    *,
    lang: str = "en",
    component: str = "ner",
    max_steps: int = 1000,
    eval_frequency: int = 200,
    seed: int = 0,
    batch_words: int = 1000,
    learn_rate: float = 0.001,
) -> Config:
    """A complete CPU training config: blank ``lang`` + ``imbalanced_ner`` (CNN default)."""
    nlp = spacy.blank(lang)
    nlp.add_pipe("imbalanced_ner", name=component, config={"loss": loss})
    config = nlp.config.copy()
    config["paths"]["train"] = None
    config["paths"]["dev"] = None
    config["system"]["seed"] = seed
    training = config["training"]
    training["max_steps"] = max_steps
    training["eval_frequency"] = eval_frequency
    training["patience"] = 0
    training["batcher"]["size"] = batch_words
    training["optimizer"]["learn_rate"] = learn_rate
    return config


def train_config(
    config: Config,
    output_dir: PathLike,
    train_path: PathLike,
    dev_path: PathLike,
    *,
    gpu_id: int = -1,
    overrides: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write ``config.cfg`` into ``output_dir``, train with spaCy, return model-best."""
    from spacy.cli.train import train

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "config.cfg"
    config.to_disk(config_path)
    all_overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path)}
    all_overrides.update(overrides or {})
    train(config_path, output, use_gpu=gpu_id, overrides=all_overrides)
    return output / "model-best"


def read_docs(nlp: spacy.Language, path: PathLike) -> List[Any]:
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def evaluate_model(nlp: spacy.Language, docs: Iterable[Any], batch_size: int = 256) -> Dict[str, Any]:
    """Strict span scores of ``nlp`` on gold docs (micro, macro, per type)."""
    docs = list(docs)
    predicted = nlp.pipe((nlp.make_doc(d.text) for d in docs), batch_size=batch_size)
    examples = [Example(pred, gold) for pred, gold in zip(predicted, docs)]
    return score_entities(examples)
