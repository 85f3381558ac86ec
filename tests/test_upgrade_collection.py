"""A collection's model upgrade end to end: fit an adapter, search through it, backfill (killed,
resumed, searched meanwhile), finish; and every way to get it wrong."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import KeywordEncoder, write_tiny_bert
from test_upgrade import MappedEncoder, rotation
from uniembed import ConflictError, InputError, NotFoundError
from uniembed.store import Collection
from uniembed.upgrade.backfill import backfill, upgrade_status
from uniembed.upgrade.finish import finish
from uniembed.upgrade.fit import cancel, fit, plan

KEYWORDS = [
    "bone",
    "vitamin",
    "cat",
    "market",
    "rain",
    "river",
    "stone",
    "paper",
    "music",
    "garden",
]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(KEYWORDS, size=rng.integers(2, 6))) + f" n{i}" for i in range(n)]


@pytest.fixture
def old():
    return KeywordEncoder(KEYWORDS)


@pytest.fixture
def new(
    old,
):  # the same information in another basis and one more dimension: a perfect adapter exists
    return MappedEncoder(old, rotation(old.dim + 1, seed=5)[: old.dim], name="rotated")


@pytest.fixture
def docs(tmp_path, old):
    col = Collection.create(tmp_path / "docs", model=old, index="hnsw")
    items = texts(120)
    col.add([f"d{i}" for i in range(120)], items, payloads=[{"n": i} for i in range(120)])
    return col


def ids(hits):
    return [h.id for h in hits]


def test_fit_then_search_through_the_adapter_then_backfill_and_finish(docs, old, new):
    query = "cat market rain"
    before = ids(docs.search(query, k=5))
    with pytest.raises(
        InputError, match="makes different vectors"
    ):  # no upgrade yet: refused as ever
        Collection.open(docs.path, model=new)
    card = fit(docs, new, pairs=60, adapter="procrustes")
    assert (card.pairs, card.new_dim, card.old_dim) == (
        60,
        old.dim + 1,
        old.dim,
    ) and card.holdout_cosine > 0.99
    through = Collection.open(docs.path, model=new)
    assert ids(through.search(query, k=5)) == before  # the new model's queries, in the old space
    assert (
        upgrade_status(docs).remaining == 120 and upgrade_status(docs).adapter == "procrustes (v1)"
    )

    partly = backfill(docs, new, batch_rows=50, stop_after_batches=1, show_progress=False)
    assert (partly.done, partly.remaining) == (50, 70)
    assert ids(through.search(query, k=5)) == before  # stored vectors untouched meanwhile
    with pytest.raises(InputError, match="finish before backfill completes: 70 of 120 items"):
        finish(docs)
    assert Collection.open(docs.path).meta.fingerprint == old.fingerprint  # nothing changed

    docs.add(
        ["late"], ["cat cat cat"]
    )  # written during the upgrade: the collection's own model embeds it
    docs.upsert(["d3"], ["garden garden"])  # its text changed: backfilled again
    done = backfill(docs, new, show_progress=False)
    assert done.complete and done.items == 121
    result = finish(docs)
    assert result == {
        "items": 121,
        "model": "rotated",
        "dim": old.dim + 1,
        "data_dir": result["data_dir"],
    }
    after = Collection.open(docs.path, model=new)
    assert after.meta.fingerprint == new.fingerprint and after.meta.fields == {
        "default": old.dim + 1
    }
    assert ids(after.search(query, k=5)) == ids(
        Collection.open(docs.path, model=new).search(query, k=5)
    )
    for item in after.get(
        ["d7", "d3", "late"]
    ):  # d3 re-embedded from its new text, "late" from its own
        np.testing.assert_allclose(item.vectors["default"], new.encode([item.text])[0], atol=1e-6)
    assert [item.text for item in after.get(["d3", "late"])] == ["garden garden", "cat cat cat"]
    assert after.get(["d7"])[0].payload == {"n": 7} and after.search("cat cat cat", k=1)[
        0
    ].score == pytest.approx(1.0)
    assert not (docs.path / "upgrade").exists() and not (docs.path / "data").exists()


def test_a_reader_opened_before_finish_follows_the_switch(docs, old, new):
    reader = Collection.open(docs.path, model=old)
    fit(docs, new, pairs=60)
    backfill(docs, new, show_progress=False)
    finish(docs)
    time.sleep(0.01)
    reader.refresh_seconds = 0
    hits = reader.search(
        new.encode(["cat rain"])[0], k=3
    )  # a vector of the new model's space: accepted
    assert len(hits) == 3 and reader.meta.fingerprint == new.fingerprint
    assert len(reader) == 120


def test_adapters_are_versioned_and_ridge_works_with_few_pairs(docs, new):
    fit(docs, new, pairs=5, adapter="ridge")
    card = fit(docs, new, pairs=80, adapter="mlp")
    assert upgrade_status(docs).adapter == "mlp (v2)" and card.kind == "mlp"
    assert sorted(p.name for p in (docs.path / "upgrade").glob("adapter-v*")) == [
        "adapter-v1.json",
        "adapter-v1.safetensors",
        "adapter-v2.json",
        "adapter-v2.safetensors",
    ]
    with pytest.raises(
        InputError, match=r"procrustes needs at least as many pairs as dimensions \(12\), got 5"
    ):
        fit(docs, new, pairs=5, adapter="procrustes")


def test_a_contrastive_adapter_is_fitted_on_sentences_cut_from_the_items(tmp_path, old, new):
    col = Collection.create(tmp_path / "abstracts", model=old, index="exact")
    items = [
        f"{a} and more about this. {b} is what item {i} says next."
        for i, (a, b) in enumerate(zip(texts(100), texts(100, 1)))
    ]
    col.add([f"d{i}" for i in range(100)], items)
    card = fit(col, new, pairs=80, adapter="contrastive")
    assert (
        card.kind == "contrastive" and card.settings["pseudo_queries"] == 160
    )  # two sentences of each of 80 items
    assert upgrade_status(col).adapter == "contrastive (v1)"
    query = "cat market and more about this"
    adapted = ids(Collection.open(col.path, model=new).search(query, k=10))
    assert len(set(adapted) & set(ids(col.search(query, k=10)))) >= 8, adapted


def test_auto_fits_every_kind_on_the_items_and_their_sentences_and_keeps_the_best(
    tmp_path, old, new
):
    col = Collection.create(tmp_path / "abstracts", model=old, index="exact")
    items = [
        f"{a} and more about this. {b} is what item {i} says next."
        for i, (a, b) in enumerate(zip(texts(100), texts(100, 1)))
    ]
    col.add([f"d{i}" for i in range(100)], items)
    card = fit(col, new, pairs=80, adapter="auto")
    scores = card.settings["auto"]
    assert set(scores) == {"procrustes", "ridge", "mlp", "contrastive"}
    assert card.kind in scores and scores[card.kind] == max(scores.values())
    assert (
        upgrade_status(col).adapter == f"{card.kind} (v1)"
    )  # the state names the kind chosen, never "auto"
    query = "cat market and more about this"
    adapted = ids(Collection.open(col.path, model=new).search(query, k=10))
    assert len(set(adapted) & set(ids(col.search(query, k=10)))) >= 8, adapted


def test_an_unknown_adapter_is_refused_before_anything_is_encoded(docs, new):
    with pytest.raises(
        InputError,
        match=r"adapter must be one of \['procrustes', 'ridge', 'mlp', 'contrastive', 'auto'\], got 'magic'",
    ):
        fit(docs, new, pairs=60, adapter="magic")
    assert not (docs.path / "upgrade").exists()


def test_plan_reports_cost_and_compatibility_without_changing_anything(docs, old):
    new = MappedEncoder(old, rotation(old.dim, seed=7), name="same dims")
    report = plan(docs, new, sample=100)
    assert (
        report["items"] == 120
        and report["sample"] == 100
        and report["new model texts/s (this machine)"] > 0
    )
    compatibility = report["compatibility"]
    assert (
        compatibility["procrustes"]["held-out MRR"] > 0.9
        and compatibility["procrustes"]["held-out cosine"] > 0.99
    )
    assert compatibility["raw (no adapter)"]["held-out cosine"] < 0.9  # another basis
    assert (
        compatibility["raw (no adapter)"]["held-out MRR"]
        < compatibility["procrustes"]["held-out MRR"]
    )
    assert set(compatibility) == {
        "raw (no adapter)",
        "procrustes",
        "ridge",
        "mlp",
        "contrastive",
        "auto would keep",
    }
    assert compatibility[compatibility["auto would keep"]]["held-out MRR"] == max(
        compatibility[kind]["held-out MRR"]
        for kind in ("procrustes", "ridge", "mlp", "contrastive")
    )
    assert not (docs.path / "upgrade").exists()


def test_plan_says_which_adapters_a_small_sample_allows(docs, new):
    report = plan(docs, new, sample=20)  # at least the 12 dims: every kind fits
    assert "held-out MRR" in report["compatibility"]["procrustes"]
    small = plan(docs, new, sample=11)
    assert (
        "procrustes needs at least as many pairs as dimensions (12), got 11"
        in small["compatibility"]["procrustes"]["note"]
    )
    assert small["compatibility"]["auto would keep"] == "ridge"
    tiny = plan(docs, new, sample=5)
    assert tiny["compatibility"] == {
        "note": "too few items with text to hold any out (10 or more needed)"
    }
    for bad in (1, 0, "100", True):
        with pytest.raises(InputError, match=f"sample must be an integer >= 2, got {bad!r}"):
            plan(docs, new, sample=bad)


def test_bad_upgrades_are_refused_and_change_nothing(docs, old, new, tmp_path):
    with pytest.raises(InputError, match="same fingerprint as the model that made"):
        fit(docs, KeywordEncoder(KEYWORDS), pairs=50)
    with pytest.raises(NotFoundError, match="no upgrade in progress"):
        backfill(docs, new, show_progress=False)
    with pytest.raises(NotFoundError, match="no upgrade in progress"):
        finish(docs)
    fit(docs, new, pairs=60)
    other = MappedEncoder(old, rotation(old.dim, seed=9), name="another")
    with pytest.raises(
        InputError, match="backfill with another .* but the upgrade was planned for rotated"
    ):
        backfill(docs, other, show_progress=False)
    with pytest.raises(InputError, match="an upgrade of .* to rotated is in progress"):
        fit(docs, other, pairs=60)
    # an adapter for another collection: made for vectors of another model
    elsewhere = Collection.create(tmp_path / "elsewhere", model=other, index="exact")
    elsewhere.add(["x"], ["cat"])
    (elsewhere.path / "upgrade").mkdir()
    for name in os.listdir(docs.path / "upgrade"):
        if name.startswith(("adapter", "state")):
            (elsewhere.path / "upgrade" / name).write_bytes(
                (docs.path / "upgrade" / name).read_bytes()
            )
    with pytest.raises(InputError, match="fitted for another collection"):
        Collection.open(elsewhere.path, model=new)
    assert upgrade_status(docs).remaining == 120


def test_items_without_text_stop_the_backfill_naming_them(docs, new):
    fit(docs, new, pairs=60)
    docs.add(
        ["bare"], np.ones((1, docs.meta.fields["default"]), dtype=np.float32)
    )  # a vector, no text
    with pytest.raises(InputError, match=r"1 item\(s\) of .* keep no text.*\['bare'\]"):
        backfill(docs, new, show_progress=False)
    assert upgrade_status(docs).done == 0


def test_a_second_backfill_is_refused(docs, new):
    from uniembed.store.lock import WriterLock

    fit(docs, new, pairs=60)
    with WriterLock(
        docs.path / "upgrade" / "backfill.lock"
    ):  # as another process running a backfill
        with pytest.raises(ConflictError, match="another backfill of .* is running"):
            backfill(docs, new, show_progress=False)
        with pytest.raises(ConflictError, match="a backfill of .* is running"):
            finish(docs)
        with pytest.raises(ConflictError, match="a backfill of .* is running"):
            cancel(docs)
    cancel(docs)
    assert not (docs.path / "upgrade").exists()
    with pytest.raises(NotFoundError, match="no upgrade in progress"):
        cancel(docs)


def test_multivector_and_server_collections_say_what_happens(tmp_path, new):
    from helpers import FakeEncoder

    vectors_only = Collection.create(tmp_path / "v", model=None, dim=11)
    vectors_only.add(["a", "b"], np.eye(11, dtype=np.float32)[:2])
    with pytest.raises(InputError, match="keeps no texts"):
        fit(vectors_only, new, pairs=10)
    two = Collection.create(tmp_path / "two", model=None, dim=4, fields=["title", "body"])
    with pytest.raises(InputError, match="has 2 vector fields"):
        fit(two, FakeEncoder(4), pairs=10)


UPGRADE = [sys.executable, "-m", "uniembed.cli.main", "upgrade"]


def test_the_cli_and_a_backfill_killed_10_times_loses_nothing(tmp_path, tiny_dir):
    """A real model on both sides (two tiny BERTs); 10 SIGKILLs during the backfill (2-item
    commits, so kills land mid-run) while another thread searches without pause: no failed
    search, and at the end every item's vector is the new model's vector of its text."""
    import uniembed

    new_dir = write_tiny_bert(tmp_path / "tiny-new", seed=1)
    path = tmp_path / "docs"
    col = Collection.create(path, model=str(tiny_dir), index="hnsw")
    items = texts(1500, seed=2)
    col.add([f"d{i}" for i in range(1500)], items)

    def run(*args):
        return subprocess.run([*UPGRADE, *args], capture_output=True, text=True, timeout=300)

    planned = run("plan", str(path), "--to", str(new_dir), "--sample", "200", "--json")
    assert planned.returncode == 0 and json.loads(planned.stdout)["items"] == 1500, planned.stderr
    told = run("plan", str(path), "--to", str(new_dir), "--sample", "200")
    assert (
        told.returncode == 0
        and "  procrustes: held-out cosine 0." in told.stdout
        and "auto would keep: " in told.stdout
    )
    auto = run("fit", str(path), "--to", str(new_dir), "--pairs", "100", "--adapter", "auto")
    assert auto.returncode == 0 and "chosen by held-out MRR: procrustes 0." in auto.stdout, (
        auto.stderr
    )
    fitted = run("fit", str(path), "--to", str(new_dir), "--pairs", "500", "--adapter", "ridge")
    assert (
        fitted.returncode == 0
        and "fitted a ridge adapter 32 -> 32 dims on 500 pairs" in fitted.stdout
    ), fitted.stderr
    early = run("finish", str(path))
    assert (
        early.returncode == 2 and "finish before backfill completes: 1500 of 1500" in early.stderr
    )

    failures, searches, stop = [], [0], threading.Event()
    reader = Collection.open(path, model=uniembed.load(str(new_dir)))

    def search_forever():
        while not stop.is_set():
            try:
                assert len(reader.search("cat market", k=5)) == 5
                searches[0] += 1
            except Exception as exc:
                failures.append(repr(exc))

    thread = threading.Thread(target=search_forever)
    thread.start()
    kills = 0
    rng = np.random.default_rng(0)
    try:
        for _ in range(10):
            before = upgrade_status(col).done
            process = subprocess.Popen(
                [*UPGRADE, "backfill", str(path), "--to", str(new_dir), "--batch-rows", "2"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 120
            while (
                upgrade_status(col).done == before
                and process.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)  # until it has committed something: the kill lands mid-run
            time.sleep(rng.uniform(0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
    finally:
        stop.set()
        thread.join()
    assert failures == [] and searches[0] > 0 and kills >= 5
    status = run("status", str(path), "--json")
    remaining = json.loads(status.stdout)["remaining"]
    assert 0 <= remaining < 1500
    done = run("backfill", str(path), "--to", str(new_dir), "--batch-rows", "300")
    assert done.returncode == 0 and "1500 of 1500 items done, 0 remaining" in done.stdout, (
        done.stderr
    )
    finished = run("finish", str(path))
    assert finished.returncode == 0 and "now holds 1500 vectors" in finished.stdout, finished.stderr
    upgraded = Collection.open(path)
    new_model = uniembed.load(str(new_dir))
    stored = upgraded.get([f"d{i}" for i in range(0, 1500, 7)])
    expected = new_model.encode([item.text for item in stored], prompt="document")
    # bit for bit although the CLI process batched them otherwise (batching.py, reproducible.py)
    np.testing.assert_array_equal(np.stack([item.vectors["default"] for item in stored]), expected)
    assert upgraded.meta.fingerprint == new_model.fingerprint


def test_eval_compatibility_on_the_command_line(tmp_path, tiny_dir):
    from test_upgrade import write_beir

    new_dir = write_tiny_bert(tmp_path / "tiny-new", seed=1)
    beir = write_beir(tmp_path / "beir")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "uniembed.cli.main", "eval", "compatibility", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    done = run(
        str(beir),
        "--old",
        str(tiny_dir),
        "--new",
        str(new_dir),
        "--pairs",
        "10,40",
        "--adapter",
        "ridge",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["query model"] for r in rows] == [
        "old",
        "new",
        "new (raw)",
        "new->old ridge",
        "new->old ridge",
    ]
    assert [r.get("pairs") for r in rows[3:]] == [10, 40] and "update gain" in rows[1]
    kinds = ("procrustes", "ridge", "mlp", "contrastive")
    every = run(
        str(beir),
        "--old",
        str(tiny_dir),
        "--new",
        str(new_dir),
        "--pairs",
        "40",
        *(f"--adapter={kind}" for kind in (*kinds, "auto")),
        "--json",
    )
    assert every.returncode == 0, every.stderr
    *_, auto = rows = json.loads(every.stdout)
    assert [r["query model"] for r in rows[-5:]] == [
        f"new->old {kind}" for kind in (*kinds, "auto")
    ]
    chosen = next(
        r for r in rows if r["query model"] == "new->old " + auto["note"].removeprefix("chose ")
    )
    assert (auto["score"], auto["held-out cosine"]) == (
        chosen["score"],
        chosen["held-out cosine"],
    )  # that fit, reused
    table = run(str(beir), "--old", str(tiny_dir), "--new", str(new_dir), "--pairs", "10")
    assert table.returncode == 0 and "| task | query model |" in table.stdout
    same = run(str(beir), "--old", str(tiny_dir), "--new", str(tiny_dir))
    assert (
        same.returncode == 2
        and "same fingerprint" in same.stderr
        and "Traceback" not in same.stderr
    )
    bad = run(str(beir), "--old", str(tiny_dir), "--new", str(new_dir), "--pairs", "ten")
    assert bad.returncode == 2 and "--pairs takes integers" in bad.stderr


@pytest.mark.parametrize(
    ("index", "quantize", "params"),
    [
        ("exact", "none", None),
        ("exact", "int8", None),
        ("exact", "binary", None),
        ("hnsw", "int8", None),
        ("hnsw", "binary", None),
        ("ivfpq", "none", {"nlist": 4, "m": 16}),
    ],
)
def test_every_index_and_quantisation_survives_an_upgrade(tmp_path, old, index, quantize, params):
    from helpers import FakeEncoder

    base = FakeEncoder(16)
    new = MappedEncoder(
        base, rotation(16, seed=6), name="rotated-fake"
    )  # 16 -> 16: ivfpq's m still divides the dim
    col = Collection.create(
        tmp_path / "c", model=base, index=index, quantize=quantize, index_params=params
    )
    items = texts(300)
    col.add([f"d{i}" for i in range(300)], items)
    settings = (col.meta.index, col.meta.quantize, col.meta.index_params)
    fit(col, new, pairs=100, adapter="procrustes")
    during = Collection.open(col.path, model=new)
    assert "d4" in ids(
        during.search(items[4], k=5)
    )  # through the adapter, on this index (PQ is lossy: top 5)
    backfill(col, new, show_progress=False)
    finish(col)
    after = Collection.open(col.path, model=new)
    assert (after.meta.index, after.meta.quantize, after.meta.index_params) == settings
    assert "d4" in ids(after.search(items[4], k=5))  # the new model's own vectors, index rebuilt


def test_fit_texts_are_read_a_line_each_and_an_unreadable_file_is_named(tmp_path):
    import argparse

    from uniembed.cli.common import read_lines
    from uniembed.cli.upgrade import run_fit

    listed = tmp_path / "texts.txt"
    listed.write_text("  cat market \n\nrain river\n")
    assert read_lines(str(listed), "--texts") == ["cat market", "rain river"]
    with pytest.raises(InputError, match=r"cannot read --texts .*missing.txt: FileNotFoundError"):
        run_fit(argparse.Namespace(texts=str(tmp_path / "missing.txt")))


def test_models_given_as_relative_paths_are_recorded_so_the_collection_opens_from_anywhere(
    tmp_path, tiny_dir, monkeypatch
):
    # issue 30: finish recorded "./new" and the collection failed from any other folder
    from uniembed.cli.main import main

    shutil.copytree(tiny_dir, tmp_path / "old")
    write_tiny_bert(tmp_path / "new", seed=1)
    monkeypatch.chdir(tmp_path)
    col = Collection.create("docs", model="./old")
    assert col.meta.model == str((tmp_path / "old").resolve())
    col.add([f"d{i}" for i in range(60)], texts(60))
    assert (
        main(
            ["upgrade", "fit", "docs", "--to", "./new", "--pairs", "60", "--adapter", "procrustes"]
        )
        == 0
    )
    assert main(["upgrade", "backfill", "docs", "--to", "./new"]) == 0
    assert main(["upgrade", "finish", "docs"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    reopened = Collection.open(tmp_path / "docs")
    assert (
        reopened.meta.model == str((tmp_path / "new").resolve())
        and len(reopened.search("cat", k=3)) == 3
    )
