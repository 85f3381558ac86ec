"""Choose the static model's SIF smoothing `a` on dev splits, never on test (issue 14):

    python bench/select_static.py      # (also bench/run.py --only select-static)

The static models are distilled once per size from training text only (bench/encode.py's
refinement corpus: STSb train, Banking77 train, SciFact train claims less the validation part);
SIF weights depend only on that corpus's token counts, so each `a` re-weights the same table.
Each `a` is scored on STSb dev (Spearman) and on SciFact validation claims (train claims held
out of the corpus, judged by their train qrels; nDCG@10 over the whole corpus). Rule: the highest
sum of the two, summed over both sizes. The chosen value is what uniembed.encoders.static
.SIF_SMOOTHING must hold (the bench says when it does not).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run() -> dict[str, list[dict]]:
    import encode
    import splits
    import uniembed
    from uniembed.encoders import static
    from uniembed.eval.loaders import load_sts
    from uniembed.eval.metrics import spearman

    teacher = uniembed.load(device="cpu")
    corpus = encode.refinement_corpus()
    encode.ensure_static()
    ids = static._corpus_token_ids(teacher, corpus)
    sts = load_sts(DATA / "stsb" / "sts-dev.csv")
    validation = splits.scifact_validation()
    rows, totals = [], {a: 0.0 for a in GRID}
    for dim in (256, 384):
        model = uniembed.load(encode.static_dir(dim))
        for a in GRID:
            variant = static.StaticEncoder(model.name, model.embeddings, model.tokenizer, unknown_id=model.unknown_id,
                                           teacher=model.teacher, fingerprint=f"sif-{a}",
                                           weights=static.sif_weights(ids, len(model.embeddings), a))
            first, second = variant.encode(sts.first, show_progress=False), variant.encode(sts.second, show_progress=False)
            dev = round(100 * spearman((first * second).sum(1).tolist(), list(sts.scores)), 2)
            corpus_vectors = variant.encode(validation.corpus, show_progress=False)
            queries = variant.encode(validation.queries, show_progress=False)
            val = splits.ndcg_at_10(corpus_vectors, queries, validation)
            totals[a] += dev + val
            rows.append({"static model": f"{dim} dims", "SIF a": a, "STSb dev Spearman": dev,
                         f"SciFact validation nDCG@10 ({len(validation.query_ids)} train claims)": val})
    chosen = max(GRID, key=lambda a: totals[a])
    for row in rows:
        row["chosen"] = "yes" if row["SIF a"] == chosen else ""
    note = {"static model": "(the library's default)", "SIF a": static.SIF_SMOOTHING, "STSb dev Spearman": "-",
            f"SciFact validation nDCG@10 ({len(validation.query_ids)} train claims)": "-",
            "chosen": "matches" if np.isclose(static.SIF_SMOOTHING, chosen) else f"DIFFERS: set SIF_SMOOTHING = {chosen:g}"}
    return {"Static model: SIF smoothing chosen on dev splits": rows + [note]}


def main() -> int:
    from run import print_tables  # bench/run.py: `python bench/select_static.py` puts bench/ on sys.path

    print_tables(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
