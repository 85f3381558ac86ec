"""Collections of relative vectors (cosines to fixed anchor texts): any later model that embeds the
anchors searches them at once, with no adapter; and every way to get them wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import KeywordEncoder
from test_upgrade import MappedEncoder, rotation
from test_upgrade_collection import KEYWORDS, texts
from uniembed import InputError
from uniembed.errors import CollectionDamagedError
from uniembed.spaces.relative import RelativeEncoder, relative_vectors
from uniembed.store import Collection

ANCHORS = [
    "bone vitamin",
    "cat market",
    "rain river",
    "stone paper",
    "music garden",
    "cat rain stone",
    "vitamin music",
    "paper river garden",
    "bone market",
    "garden cat",
]


@pytest.fixture
def old():
    return KeywordEncoder(KEYWORDS)


@pytest.fixture
def relative(tmp_path, old):
    col = Collection.create(tmp_path / "rel", model=old, index="exact", relative_anchors=ANCHORS)
    col.add([f"d{i}" for i in range(60)], texts(60))
    return col


def ids(hits):
    return [h.id for h in hits]


def test_the_collection_stores_each_items_cosines_to_the_anchors(relative, old):
    items = texts(60)
    expected = relative_vectors(
        old.encode(items, prompt="document"), old.encode(ANCHORS, prompt="document")
    )
    stored = np.stack(
        [item.vectors["default"] for item in relative.get([f"d{i}" for i in range(60)])]
    )
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    assert relative.meta.fields == {"default": len(ANCHORS)} and relative.info().relative[
        "anchors"
    ] == len(ANCHORS)
    reopened = Collection.open(
        relative.path, model=old
    )  # the anchors come back from the collection's folder
    assert reopened.relative_anchors == ANCHORS
    assert ids(reopened.search("cat market", k=5)) == ids(relative.search("cat market", k=5))


@pytest.mark.parametrize("extra_dims", [0, 3])
def test_a_new_model_in_another_basis_searches_it_at_once_without_an_adapter(
    relative, old, tmp_path, extra_dims
):
    new = MappedEncoder(old, rotation(old.dim + extra_dims, seed=4)[: old.dim], name="rotated")
    assert new.fingerprint != old.fingerprint
    searched = Collection.open(relative.path, model=new)
    for query in ("cat market", "rain river stone", "vitamin"):
        assert ids(searched.search(query, k=8)) == ids(relative.search(query, k=8))
    plain = Collection.create(tmp_path / "plain", model=old)
    plain.add(["a"], ["cat"])
    with pytest.raises(InputError, match="makes different vectors and cannot be used with it"):
        Collection.open(
            plain.path, model=new
        )  # the same new model on absolute vectors needs an adapter


def test_an_encoder_already_relative_is_used_as_it_is_when_its_anchors_match(relative, old):
    new = MappedEncoder(old, rotation(old.dim, seed=4), name="rotated")
    searched = Collection.open(relative.path, model=RelativeEncoder(new, ANCHORS))
    assert ids(searched.search("cat market", k=8)) == ids(relative.search("cat market", k=8))
    with pytest.raises(InputError, match="is relative to other anchors than collection"):
        Collection.open(relative.path, model=RelativeEncoder(new, ANCHORS[:5]))


def test_writes_through_a_new_model_still_store_the_collections_own_vectors(tmp_path, tiny_dir):
    import uniembed
    from helpers import write_tiny_bert

    col = Collection.create(tmp_path / "rel", model=str(tiny_dir), relative_anchors=ANCHORS)
    new = uniembed.load(str(write_tiny_bert(tmp_path / "tiny-new", seed=1)))
    Collection.open(col.path, model=new).add(["late"], ["garden music"])
    expected = RelativeEncoder(uniembed.load(str(tiny_dir)), ANCHORS).encode(
        ["garden music"], prompt="document"
    )
    np.testing.assert_allclose(col.get(["late"])[0].vectors["default"], expected[0], atol=1e-6)
    assert not np.allclose(
        expected,
        RelativeEncoder(new, ANCHORS).encode(["garden music"], prompt="document"),
        atol=1e-3,
    )


def test_the_relative_encoder_is_the_same_space_for_any_rotation(old):
    new = MappedEncoder(old, rotation(old.dim, seed=9), name="rotated")
    a, b = RelativeEncoder(old, ANCHORS), RelativeEncoder(new, ANCHORS)
    np.testing.assert_allclose(
        a.encode(["bone cat", "river"]), b.encode(["bone cat", "river"]), atol=1e-5
    )
    assert a.fingerprint != b.fingerprint and a.space == b.space and a.dim == len(ANCHORS)
    with pytest.raises(InputError, match=r"one dimension per anchor \(10\); dim=4 cannot cut them"):
        a.encode(["bone"], dim=4)


@pytest.mark.parametrize(
    ("anchors", "options", "message"),
    [
        ("bone cat", {}, "relative_anchors must be a list of texts, got str"),
        (["bone"], {}, "needs at least 2 texts, got 1"),
        (["bone", ""], {}, r"relative_anchors\[1\] must be a non-empty string, got ''"),
        (["bone", 3], {}, r"relative_anchors\[1\] must be a non-empty string, got 3"),
        (["bone", "cat", "bone"], {}, r"relative_anchors\[2\] repeats relative_anchors\[0\]"),
        (ANCHORS, {"dim": 4}, "relative_anchors= and dim= do not combine"),
        (ANCHORS, {"multivector": "muvera"}, "relative_anchors= and multivector= do not combine"),
        (ANCHORS, {"model": None, "dim": 4}, "needs a model to embed the anchors"),
    ],
)
def test_bad_relative_options_are_refused_and_nothing_is_made(
    tmp_path, old, anchors, options, message
):
    with pytest.raises(InputError, match=message):
        Collection.create(tmp_path / "rel", **{"model": old, **options}, relative_anchors=anchors)
    assert not (tmp_path / "rel").exists()


def test_relative_collections_live_in_folders_only():
    with pytest.raises(InputError, match="relative_anchors= is for folder collections"):
        Collection.create(
            "postgresql://nobody@localhost/none#docs", model=None, dim=4, relative_anchors=ANCHORS
        )


def test_a_changed_anchor_file_is_damage(relative):
    (relative.path / "anchors.json").write_text(json.dumps(ANCHORS[::-1]))
    with pytest.raises(
        CollectionDamagedError,
        match="anchors.json is not the anchor set the collection was made with",
    ):
        Collection.open(relative.path)
    (relative.path / "anchors.json").unlink()
    with pytest.raises(CollectionDamagedError, match="its anchors.json cannot be read"):
        Collection.open(relative.path)


def test_an_upgrade_is_refused_with_the_reason(relative, old):
    from uniembed.upgrade.fit import fit

    new = MappedEncoder(old, rotation(old.dim, seed=4), name="rotated")
    with pytest.raises(
        InputError, match="stores relative vectors .* searches it as it is, with no adapter"
    ):
        fit(relative, new, pairs=20, adapter="ridge")
    assert not (relative.path / "upgrade").exists()


def test_the_command_line_creates_and_searches_a_relative_collection(tmp_path, tiny_dir):
    from helpers import write_tiny_bert

    anchors = tmp_path / "anchors.txt"
    anchors.write_text("\n".join(ANCHORS) + "\n\n")
    records = tmp_path / "docs.jsonl"
    records.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts(30)))
    )
    path = tmp_path / "rel"

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "uniembed.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    created = run(
        "collection",
        "create",
        str(path),
        "--model",
        str(tiny_dir),
        "--relative-anchors",
        str(anchors),
    )
    assert created.returncode == 0 and "relative to 10 anchors" in created.stdout, created.stderr
    assert run("collection", "add", str(path), str(records)).returncode == 0
    other = write_tiny_bert(
        tmp_path / "tiny-new", seed=1
    )  # another model entirely: no adapter, no error
    searched = run("search", str(path), "cat market", "--model", str(other), "--json")
    assert searched.returncode == 0 and len(json.loads(searched.stdout)) == 10, searched.stderr
    missing = run(
        "collection",
        "create",
        str(tmp_path / "other"),
        "--model",
        str(tiny_dir),
        "--relative-anchors",
        str(tmp_path / "no.txt"),
    )
    assert (
        missing.returncode == 2
        and "cannot read --relative-anchors" in missing.stderr
        and "Traceback" not in missing.stderr
    )
