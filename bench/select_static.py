"""Choose the static model's settings on dev splits, never on test (issue 14):

    python -m bench.select_static      # (also bench/run.py --only select-static)

The static models are distilled from training text only (bench/encode.py's refinement corpus:
STSb train, Banking77 train, SciFact train claims less the validation part). Every setting is
scored on STSb dev (Spearman) and on SciFact validation claims (train claims held out of the
corpus, judged by their train qrels; nDCG@10 over the whole corpus), at both sizes the encode
bench ships (256 and 384 dims). Rule: the highest sum of the two scores, summed over both sizes.

Two stages, one after the other (coordinate search: the grid of all three at once costs 7x more):
1. the refinement: its strength and its start rule (uniembed.encoders.static.refine), with the
   SIF smoothing at the library's default;
2. the SIF smoothing `a` (the token weights a / (a + frequency)), on the table stage 1 chose.

The chosen values are what uniembed.encoders.static's REFINE_STRENGTH, REFINE_START and
SIF_SMOOTHING must hold; each table's last row says when they do not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

STRENGTHS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
STARTS = ("sentence", "bag")
SIF_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DIMS = (256, 384)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class _Scorer:
    """Scores a token table (already refined, before PCA) with given SIF weights, at each size."""

    def __init__(self, teacher):
        from bench import splits
        from uniembed.eval.loaders import load_sts

        self.teacher = teacher
        self.sts = load_sts(DATA / "stsb" / "sts-dev.csv")
        self.validation = splits.scifact_validation()
        self.val_column = (
            f"SciFact validation nDCG@10 ({len(self.validation.query_ids)} train claims)"
        )

    def reduced(self, table: np.ndarray) -> dict[int, np.ndarray]:
        from uniembed.encoders import static

        full = static.pca(
            table, max(DIMS)
        )  # PCA orders components by variance: smaller sizes are prefixes
        return {dim: np.ascontiguousarray(full[:, :dim]) for dim in DIMS}

    def score(self, table: np.ndarray, dim: int, weights: np.ndarray) -> tuple[float, float]:
        from bench import splits
        from uniembed.encoders import static
        from uniembed.eval.metrics import spearman

        tokenizer = self.teacher.windows.tokenizer
        model = static.StaticEncoder(
            "candidate",
            table,
            tokenizer,
            unknown_id=self.teacher.tokenizer.unk_token_id or 0,
            teacher=self.teacher.name,
            fingerprint="candidate",
            weights=weights,
        )
        first, second = (
            model.encode(self.sts.first, show_progress=False),
            model.encode(self.sts.second, show_progress=False),
        )
        dev = round(100 * spearman((first * second).sum(1).tolist(), list(self.sts.scores)), 2)
        corpus = model.encode(self.validation.corpus, show_progress=False)
        queries = model.encode(self.validation.queries, show_progress=False)
        return dev, splits.ndcg_at_10(corpus, queries, self.validation)


def run() -> dict[str, list[dict]]:
    import uniembed
    from bench import encode
    from uniembed.encoders import static

    teacher = uniembed.load(device="cpu")
    scorer = _Scorer(teacher)
    corpus = encode.refinement_corpus()
    ids = static.corpus_token_ids(teacher, corpus)
    targets = teacher.encode(corpus, show_progress=False)
    table = static.zipf_token_table(teacher)
    default_weights = static.sif_weights(ids, len(table), static.SIF_SMOOTHING)

    refine_rows, refine_totals, refined = [], {}, {}
    for start in STARTS:
        for strength in STRENGTHS:
            candidate = static.refine(
                table, teacher, corpus, strength=strength, start=start, ids=ids, targets=targets
            )
            refined[start, strength] = candidate
            refine_totals[start, strength] = 0.0
            for dim, reduced in scorer.reduced(candidate).items():
                dev, val = scorer.score(reduced, dim, default_weights)
                refine_totals[start, strength] += dev + val
                refine_rows.append(
                    {
                        "static model": f"{dim} dims",
                        "start": start,
                        "strength": strength,
                        "STSb dev Spearman": dev,
                        scorer.val_column: val,
                    }
                )
    best_start, best_strength = max(refine_totals, key=refine_totals.get)
    for row in refine_rows:
        row["chosen"] = (
            "yes" if (row["start"], row["strength"]) == (best_start, best_strength) else ""
        )
    default_ok = static.REFINE_START == best_start and np.isclose(
        static.REFINE_STRENGTH, best_strength
    )
    refine_rows.append(
        {
            "static model": "(the library's default)",
            "start": static.REFINE_START,
            "strength": static.REFINE_STRENGTH,
            "STSb dev Spearman": "-",
            scorer.val_column: "-",
            "chosen": "matches"
            if default_ok
            else f"DIFFERS: set REFINE_START = {best_start!r}, REFINE_STRENGTH = {best_strength:g}",
        }
    )

    sif_rows, sif_totals = [], {a: 0.0 for a in SIF_GRID}
    chosen_tables = scorer.reduced(refined[best_start, best_strength])
    for dim in DIMS:
        for a in SIF_GRID:
            dev, val = scorer.score(chosen_tables[dim], dim, static.sif_weights(ids, len(table), a))
            sif_totals[a] += dev + val
            sif_rows.append(
                {
                    "static model": f"{dim} dims",
                    "SIF a": a,
                    "STSb dev Spearman": dev,
                    scorer.val_column: val,
                }
            )
    chosen = max(SIF_GRID, key=lambda a: sif_totals[a])
    for row in sif_rows:
        row["chosen"] = "yes" if row["SIF a"] == chosen else ""
    sif_rows.append(
        {
            "static model": "(the library's default)",
            "SIF a": static.SIF_SMOOTHING,
            "STSb dev Spearman": "-",
            scorer.val_column: "-",
            "chosen": "matches"
            if np.isclose(static.SIF_SMOOTHING, chosen)
            else f"DIFFERS: set SIF_SMOOTHING = {chosen:g}",
        }
    )
    return {
        "Static model: refinement chosen on dev splits": refine_rows,
        "Static model: SIF smoothing chosen on dev splits": sif_rows,
    }


def main() -> int:
    from bench.run import (
        print_tables,
    )

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
