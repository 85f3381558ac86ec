"""Choose `uniembed train-head`'s default epoch count on SciFact validation claims, never on test
(issue 14):

    python -m bench.select_head_epochs --max-epochs 12    # (also bench/run.py --only select-head-epochs)

The head is trained as the multi-vector bench trains it (128 dims, 3 mined negatives, the
library's other defaults) on SciFact's train claims *less* the validation part (bench/splits.py),
for up to --max-epochs epochs; after each epoch the validation claims are searched by exact
MaxSim over the whole corpus through the head, and nDCG@10 is recorded. Rule: the epoch count
with the best validation nDCG@10, the smallest on a tie. TokenHeadConfig.epochs must hold it
(the table says when it does not). ~15 minutes on 2 cores (the corpus's token vectors are cached).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"


def training_folder() -> Path:
    """A BEIR folder: SciFact's corpus and claims, train judgements less the validation claims."""
    from bench import splits

    folder = CACHE / "scifact-train-less-validation"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).exists():
            (folder / name).symlink_to(splits.SCIFACT / name)
    held_out = set(splits.scifact_validation_claims())
    lines = (splits.SCIFACT / "qrels" / "train.tsv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if line.split("\t")[0] not in held_out]
    (folder / "qrels" / "train.tsv").write_text("\n".join(kept) + "\n")
    return folder


def maxsim_ndcg(
    weight: np.ndarray, docs: np.ndarray, doc_starts: np.ndarray, queries: list[np.ndarray], data
) -> float:
    """nDCG@10 (x100) of exact MaxSim through a head `weight` (dim, hidden), every document scored."""
    from uniembed.eval.metrics import ndcg_at_k

    projected = docs @ weight.T
    projected /= np.linalg.norm(projected, axis=1, keepdims=True) + 1e-12
    values = []
    for i, tokens in enumerate(queries):
        q = tokens @ weight.T
        q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
        best = np.maximum.reduceat(q @ projected.T, doc_starts, axis=1)  # (query tokens, documents)
        top = np.argsort(-best.sum(0))[:10]
        values.append(
            ndcg_at_k([data.corpus_ids[j] for j in top], data.qrels[data.query_ids[i]], 10)
        )
    return round(100 * float(np.mean(values)), 2)


def run(max_epochs: int = 12, dim: int = 128) -> dict[str, list[dict]]:
    import uniembed
    from bench import splits
    from bench.multivector import encoded
    from uniembed.eval.loaders import load_beir
    from uniembed.train import TokenHeadConfig, train_token_head

    base = uniembed.load()
    validation = splits.scifact_validation()
    corpus_tokens = encoded(
        base, load_beir(splits.SCIFACT, "test")
    )  # the corpus's token vectors, cached
    docs = corpus_tokens["docs"].astype(np.float32)
    doc_starts = np.r_[0, np.cumsum(corpus_tokens["doc_counts"])[:-1]]
    queries = base.encode_tokens(validation.queries, prompt="query")
    rows = []

    def score(epoch: int, weight: np.ndarray) -> None:
        started = time.perf_counter()
        rows.append(
            {
                "epochs": epoch,
                f"validation nDCG@10 ({len(validation.query_ids)} claims)": maxsim_ndcg(
                    weight, docs, doc_starts, queries, validation
                ),
                "scoring s": round(time.perf_counter() - started, 1),
            }
        )
        print(f"select-head-epochs: epoch {epoch}: {rows[-1]}", file=sys.stderr, flush=True)

    output = CACHE / "head-epoch-search"
    train_token_head(
        TokenHeadConfig(
            data=str(training_folder()), output=str(output), dim=dim, epochs=max_epochs
        ),
        show_progress=False,
        on_epoch=score,
    )
    key = next(k for k in rows[0] if k.startswith("validation"))
    chosen = max(rows, key=lambda r: (r[key], -r["epochs"]))["epochs"]
    for row in rows:
        row["chosen"] = "yes" if row["epochs"] == chosen else ""
    default = TokenHeadConfig(data="", output="").epochs
    rows.append(
        {
            "epochs": f"(the library's default: {default})",
            key: "-",
            "scoring s": "-",
            "chosen": "matches"
            if default == chosen
            else f"DIFFERS: set TokenHeadConfig.epochs = {chosen}",
        }
    )
    return {"train-head: epochs chosen on SciFact validation claims": rows}


def main() -> int:
    import argparse

    from bench.run import (
        print_tables,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=12)
    print_tables(run(parser.parse_args().max_epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
