"""The README's quality tables, written from ``benchmarks/results/quality.json``.

The README copies its quality tables from this script's output, so each number there comes from
the committed results file. ``--check README.md`` exits non-zero when a table that the script
writes is not in the README verbatim (the test suite runs this check).

    python benchmarks/readme_tables.py                    # print the tables
    python benchmarks/readme_tables.py --check README.md  # are they in the README as written?
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

RESULTS = Path(__file__).resolve().parent / "results" / "quality.json"

CNN_ROWS = [
    ("ce", "CE"), ("wce1", "WCE-1"), ("wce2", "WCE-2"), ("focal", "focal"), ("dice", "Dice"),
    ("mom", "MoM(CE)"), ("mom_focal", "MoM(focal)"), ("auc2t", "AUC-2T (typed)"),
    ("comauc2t", "COMAUC-2T (typed)"), ("crf", "CRF"), ("crf_focal_rdrop", "CRF + focal + R-Drop"),
    ("ce+sC", "CE + sC"), ("ce+sCR", "CE + sCR"), ("ce+sCRD", "CE + sCRD"), ("ce+nsCRD", "CE + nsCRD"),
    ("mom+sCR", "MoM + sCR (a-priori pick)"), ("spacy_ner", "spaCy `ner` (peer)"),
]
CNN_CORPORA = [("gmb", "GMB"), ("wnut17", "WNUT-17"), ("anatem", "AnatEM"), ("bc5cdr", "BC5CDR"),
               ("weibo", "Weibo")]
# Weibo's 1,350 training sentences hold 3 disjoint partitions of 400, not of 500
CNN_SIZE_OF = {"weibo": {500: 400}}
WNUT_MINILM_ROWS = [
    ("minilm_ce", "CE, mean"),
    ("minilm_ce_first_piece", "CE, first piece (`configs/minilm-ce.cfg` before BIO)"),
    ("minilm_crf", "CRF, mean"),
    ("minilm_crf_first_piece", "CRF, first piece (`configs/minilm-crf.cfg` before BIO)"),
    ("minilm_focal", "focal, mean"), ("minilm_wce1", "WCE-1, mean"), ("minilm_mom", "MoM(CE), mean"),
    ("minilm_ce_first_piece_bio", "CE, first piece, BIO tags (`configs/minilm-ce.cfg`)"),
    ("minilm_crf_first_piece_bio", "CRF, first piece, BIO tags (`configs/minilm-crf.cfg`)"),
    ("hf_minilm_ce", "Hugging Face token classification, CE (peer)"),
    ("minilm_ce_clip1_zero_head", "CE, mean, zero head + clip 1.0 (our first config)"),
]
OTHER_CORPORA = [("gmb", "GMB"), ("anatem", "AnatEM"), ("bc5cdr", "BC5CDR")]
OTHER_MINILM_ROWS = [
    ("minilm_ce_first_piece", "CE, first piece, BILUO"), ("minilm_ce_first_piece_bio", "CE, first piece, BIO"),
    ("minilm_crf_first_piece", "CRF, first piece, BILUO"),
    ("minilm_crf_first_piece_bio", "CRF, first piece, BIO"),
    ("hf_minilm_ce", "Hugging Face CE (peer)"), ("spacy_ner", "spaCy `ner`, CNN (peer)"),
]
# the imbalance methods with the shipped MiniLM settings, each against CE with the same settings
SHIPPED_LOSS_ROWS = [
    ("minilm_ce_first_piece_bio", "CE (`configs/minilm-ce.cfg`)"),
    ("minilm_wce1_first_piece_bio", "WCE-1"), ("minilm_wce2_first_piece_bio", "WCE-2"),
    ("minilm_focal_first_piece_bio", "focal"), ("minilm_dice_first_piece_bio", "Dice"),
    ("minilm_mom_first_piece_bio", "MoM(CE)"),
    *((f"minilm_mom_lam{lam}_first_piece_bio", f"MoM(CE), λ = {lam}") for lam in ("0.5", "0.9")),
    ("minilm_mom_focal_first_piece_bio", "MoM(focal)"),
    ("minilm_auc2t_first_piece_bio", "AUC-2T (typed)"), ("minilm_comauc2t_first_piece_bio", "COMAUC-2T (typed)"),
    *((f"minilm_ce+{method}_first_piece_bio", f"CE + {method}") for method in ("sC", "sCR", "sCRD", "nsCRD")),
    ("minilm_crf_first_piece_bio", "CRF (`configs/minilm-crf.cfg`)"),
    ("minilm_crf_focal_first_piece_bio", "CRF with a focal emission loss"),
    ("minilm_crf_focal+sCR_first_piece_bio", "CRF with a focal emission loss + sCR (`configs/minilm-crf-focal-scr.cfg`)"),
    ("hf_minilm_ce", "Hugging Face CE (peer)"),
]
SHIPPED_LOSS_CORPORA = [("wnut17", "WNUT-17")] + OTHER_CORPORA
SHIPPED_HEAD = "method (first piece, BIO)"  # first column of the shipped-settings and combination tables
# the best MiniLM combination and its parts, each against the Hugging Face peer
COMBINATION_ROWS = [
    ("minilm_ce_first_piece_bio", "CE"), ("minilm_ce+sCR_first_piece_bio", "CE + sCR"),
    ("minilm_crf_first_piece_bio", "CRF"), ("minilm_crf_focal_first_piece_bio", "CRF, focal emission loss"),
    ("minilm_crf_focal+sCR_first_piece_bio", "CRF, focal emission loss + sCR"),
]


def p_value(p: Optional[float]) -> str:
    """A two-sided p-value as the tables print it."""
    return "–" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def mean_sd(stat: Dict[str, Any]) -> str:
    """"mean ± sd" of a summary statistic, 3 decimals."""
    return f"{stat['mean']:.3f} ± {stat['sd']:.3f}"


def table(head: Sequence[str], rows: List[List[str]]) -> str:
    from spacy_nerimb.util import markdown_table

    return markdown_table(head, rows).rstrip("\n")


class Results:
    """quality.json indexed by (corpus, n, method) and by paired comparison."""

    def __init__(self, data: Dict[str, Any]):
        self.rows = {(r["corpus"], r["n"], r["method"]): r for r in data["summary"]}
        self.pairs = {(f["corpus"], f["n"], c["a"], c["b"], c["metric"]): c
                      for f in data["findings"] for c in f["comparisons"]}

    def row(self, corpus: str, n: int, method: str) -> Optional[Dict[str, Any]]:
        return self.rows.get((corpus, n, method))

    def versus(self, corpus: str, n: int, a: str, b: str, metric: str = "macro_f") -> str:
        """"Δ (p)" of a vs b, paired over their common partitions ("–" where not run)."""
        found = self.pairs.get((corpus, n, a, b, metric))
        return "–" if found is None or a == b else f"{found['delta']:+.3f} ({p_value(found['p'])})"


def cnn_table(res: Results, n: int) -> str:
    """Every CNN method on every corpus: macro F1, then (Δ vs CE, p) paired over partitions."""
    sizes = {c: CNN_SIZE_OF.get(c, {}).get(n, n) for c, _ in CNN_CORPORA}
    corpora = [(c, label) for c, label in CNN_CORPORA if res.row(c, sizes[c], "ce")]
    head = ["method"] + [f"{label}{'' if sizes[c] == n or n != 500 else f' (n = {sizes[c]})'} macro F1 "
                         "(Δ vs CE, p)" for c, label in corpora]
    rows = []
    for method, label in CNN_ROWS:
        cells = []
        for corpus, _ in corpora:
            r = res.row(corpus, sizes[corpus], method)
            if r is None:
                cells.append("–")
                continue
            stat = r["macro_f"]
            cells.append(mean_sd(stat) + ("" if method == "ce" else
                                          f" ({stat['delta_vs_ce']:+.3f}, {p_value(stat['p_vs_ce'])})"))
        rows.append([label] + cells)
    return table(head, rows)


def wnut_minilm_table(res: Results) -> str:
    """WNUT-17 MiniLM rows at n = 500 and 200, each paired with the Hugging Face peer."""
    head = ["method"]
    for n in (500, 200):
        head += [f"n = {n} macro F1", "micro F1", "Δ macro vs HF (p)", "parts"]
    rows = []
    for method, label in WNUT_MINILM_ROWS:
        cells = []
        for n in (500, 200):
            r = res.row("wnut17", n, method)
            cells += ([mean_sd(r["macro_f"]), mean_sd(r["micro_f"]), res.versus("wnut17", n, method, "hf_minilm_ce"),
                       str(len(r["partitions"]))] if r else ["–"] * 4)
        rows.append([label] + cells)
    return table(head, rows)


def versus_table(res: Results, n: int, corpora: Sequence[Tuple[str, str]], rows: Sequence[Tuple[str, str]],
                 against: str, against_label: str, first_head: str = "method") -> str:
    """Macro F1 of each row on each corpus at size n, paired with the row ``against`` (rows not run
    anywhere are left out; ``parts``: the partition counts of the row)."""
    head = [first_head]
    for _, label in corpora:
        head += [f"{label} macro F1", f"Δ vs {against_label} (p)"]
    lines = []
    for method, label in rows:
        cells, parts = [], set()
        for corpus, _ in corpora:
            r = res.row(corpus, n, method)
            if r:
                parts.add(len(r["partitions"]))
            cells += [mean_sd(r["macro_f"]), res.versus(corpus, n, method, against)] if r else ["–", "–"]
        if parts:
            lines.append([label] + cells + ["/".join(map(str, sorted(parts)))])
    return table(head + ["parts"], lines)


def other_minilm_table(res: Results, n: int) -> str:
    """GMB, AnatEM and BC5CDR MiniLM rows at size n, each paired with the Hugging Face peer."""
    return versus_table(res, n, OTHER_CORPORA, OTHER_MINILM_ROWS, "hf_minilm_ce", "HF")


def shipped_loss_table(res: Results, n: int) -> str:
    """The imbalance methods with the shipped MiniLM settings, each paired with CE under the same settings."""
    return versus_table(res, n, SHIPPED_LOSS_CORPORA, SHIPPED_LOSS_ROWS, SHIPPED_LOSS_ROWS[0][0], "CE",
                        first_head=SHIPPED_HEAD)


def combination_table(res: Results, n: int) -> str:
    """The best MiniLM combination and its parts (shipped settings), each paired with the Hugging Face peer."""
    return versus_table(res, n, SHIPPED_LOSS_CORPORA, COMBINATION_ROWS, "hf_minilm_ce", "HF",
                        first_head=SHIPPED_HEAD)


def all_tables(data: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(title, Markdown table) for every quality table in the README, in README order."""
    res = Results(data)
    tables = [("CNN, n = 500 (Weibo 400)", cnn_table(res, 500)), ("CNN, n = 200", cnn_table(res, 200)),
              ("MiniLM, WNUT-17", wnut_minilm_table(res))]
    tables += [(f"MiniLM, GMB / AnatEM / BC5CDR, n = {n}", other_minilm_table(res, n)) for n in (500, 200)]
    only_here = [m for m, _ in SHIPPED_LOSS_ROWS if m not in dict(WNUT_MINILM_ROWS + OTHER_MINILM_ROWS)]
    for n in (500, 200):
        if any(res.row(c, n, m) for c, _ in SHIPPED_LOSS_CORPORA for m in only_here):
            tables.append((f"MiniLM imbalance methods with the shipped settings, n = {n}", shipped_loss_table(res, n)))
        if any(res.row(c, n, COMBINATION_ROWS[-1][0]) for c, _ in SHIPPED_LOSS_CORPORA):
            tables.append((f"MiniLM, the best combination vs the Hugging Face peer, n = {n}",
                           combination_table(res, n)))
    return tables


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(RESULTS), help="quality.json to read")
    parser.add_argument("--check", metavar="README", help="exit 1 unless every table is in this file verbatim")
    args = parser.parse_args(argv)
    tables = all_tables(json.loads(Path(args.results).read_text()))
    if args.check:
        text = Path(args.check).read_text()
        missing = [title for title, body in tables if body not in text]
        for title in missing:
            print(f"{args.check}: the quality table '{title}' differs from {args.results} "
                  "(rerun this script and copy its output)", file=sys.stderr)
        return 1 if missing else 0
    for title, body in tables:
        print(f"{title}:\n\n{body}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
