"""`uniembed embed --engine ray` and `collection add --engine ray` on a real two-node Ray cluster
(head and worker, one CPU each, token authentication) inside a private network namespace, so all
of Ray's traffic stays on loopback. Every driver runs in there too, with a timeout."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from uniembed import InputError

pytest.importorskip("ray", reason='the ray extra is not installed: pip install "uniembed[ray]"')
from uniembed.engines import netns

if netns.available() is not None:
    pytest.skip(
        f"Ray tests run in a private network namespace: {netns.available()}",
        allow_module_level=True,
    )
from uniembed.engines.ray_cluster import LocalRayCluster
from uniembed.scale.ray_embed import MANIFEST, RayJobError, embed_with_ray, read_vectors

CLI = [sys.executable, "-m", "uniembed.cli.main"]


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(nodes=2, cpus_per_node=1) as running:
        yield running


def write_corpus(folder, shards=2, rows=200, offset=0):
    folder.mkdir(exist_ok=True)
    texts = {}
    for s in range(offset, offset + shards):
        with open(folder / f"part{s}.jsonl", "w") as f:
            for i in range(rows):
                record = {
                    "id": f"s{s}-{i}",
                    "title": f"note {i}",
                    "text": f"the cat sat {i} times on mat {s}",
                    "year": 2000 + i % 30,
                }
                texts[record["id"]] = record
                f.write(json.dumps(record) + "\n")
    return texts


def embed(cluster, *args, timeout=300):
    return cluster.run(
        [
            *CLI,
            "embed",
            *map(str, args),
            "--engine",
            "ray",
            "--address",
            cluster.address,
            "--timeout",
            "240",
        ],
        timeout=timeout,
    )


def test_two_nodes_encode_shards_that_equal_local_encode_and_a_rerun_skips_them(
    cluster, tiny_dir, tiny_model, tmp_path
):
    texts = write_corpus(tmp_path / "corpus")
    out = tmp_path / "vectors"
    first = embed(
        cluster,
        tmp_path / "corpus",
        "-o",
        out,
        "--model",
        tiny_dir,
        "--actors",
        "2",
        "--rows-per-batch",
        "25",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "encoded 2 shard(s), 400 rows of dim 32" in first.stdout
    nodes = dict(
        part.split(": ")
        for part in first.stdout.split("rows per node: ")[1].split(")")[0].split(", ")
    )
    assert set(nodes) == {"node_0", "node_1"} and all(int(n) > 0 for n in nodes.values()), (
        first.stdout
    )  # both nodes worked
    table = read_vectors(out)
    assert (
        str(table.schema.field("embedding").type) == "fixed_size_list<element: float>[32]"
    )  # not Ray's tensor type
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(texts)
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    local = tiny_model.encode([texts[i]["text"] for i in ids])
    np.testing.assert_array_equal(vectors, local)  # bit for bit: batching.py and reproducible.py
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["fingerprint"] == tiny_model.fingerprint and set(manifest["shards"]) == {
        "part0.jsonl",
        "part1.jsonl",
    }

    write_corpus(tmp_path / "corpus", shards=1, offset=2)  # a third shard arrives
    again = embed(cluster, tmp_path / "corpus", "-o", out, "--model", tiny_dir, "--actors", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "encoded 1 shard(s), 200 rows" in again.stdout and "2 shard(s) already done" in again.stdout
    )
    assert read_vectors(out).num_rows == 600


def test_bad_input_is_refused_clearly(cluster, tiny_dir, tmp_path):
    write_corpus(tmp_path / "corpus", shards=1, rows=10)
    out = tmp_path / "vectors"
    ok = embed(cluster, tmp_path / "corpus", "-o", out, "--model", tiny_dir)
    assert ok.returncode == 0, ok.stderr[-2000:]
    other = embed(cluster, tmp_path / "corpus", "-o", out, "--model", tiny_dir, "--dim", "16")
    assert (
        other.returncode == 2
        and "holds vectors made with other settings (dim: 32 then, 16 now)" in other.stderr
    )
    no_id = embed(
        cluster,
        tmp_path / "corpus",
        "-o",
        tmp_path / "v2",
        "--model",
        tiny_dir,
        "--id-column",
        "doc",
    )
    assert (
        no_id.returncode == 2
        and "no column 'doc'" in no_id.stderr
        and "Traceback" not in no_id.stderr
    )
    assert not any((tmp_path / "v2").glob("*/*.parquet"))
    with pytest.raises(RayJobError, match="no Ray cluster at '127.0.0.1:1'"):
        embed_with_ray(
            str(tiny_dir),
            tmp_path / "corpus",
            tmp_path / "v3",
            address="127.0.0.1:1",
            show_progress=False,
        )
    with pytest.raises(InputError, match="no such file or folder"):
        embed_with_ray(str(tiny_dir), tmp_path / "absent", tmp_path / "v3", show_progress=False)


KILLER = """
import glob, os, signal, subprocess, sys, time
# once the first encoded block of the shard is written (encoding is under way), SIGKILL one actor
out, deadline = sys.argv[1], time.time() + 150
while time.time() < deadline:
    actors = subprocess.run(["pgrep", "-f", "^ray::.*EncodeBatch"], capture_output=True, text=True).stdout.split()
    if actors and glob.glob(os.path.join(out, ".incoming-*", "*.parquet")):
        os.kill(int(actors[0]), signal.SIGKILL)
        print("killed", actors[0], flush=True)
        break
    time.sleep(0.05)
"""


def test_a_worker_killed_mid_job_is_retried_and_no_shard_is_half_written(
    cluster, tiny_dir, tmp_path
):
    texts = write_corpus(tmp_path / "corpus", shards=1, rows=20_000)
    out = tmp_path / "vectors"
    killer = cluster.popen([sys.executable, "-c", KILLER, str(out)], stdout=-1, text=True)
    result = embed(
        cluster,
        tmp_path / "corpus",
        "-o",
        out,
        "--model",
        tiny_dir,
        "--actors",
        "2",
        "--rows-per-batch",
        "50",
    )
    killed = killer.communicate(timeout=150)[0]
    assert "killed" in killed
    print(
        "after the kill:", "retried, complete" if result.returncode == 0 else result.stderr[-500:]
    )
    if result.returncode == 0:  # Ray restarted the actor and retried its batches
        table = read_vectors(out)
        assert sorted(table.column("id").to_pylist()) == sorted(texts)
    else:  # or the job failed clearly, keeping nothing of the shard
        assert "the Ray job failed" in result.stderr and not any(out.glob("part*/*.parquet"))
    assert not any(out.glob(".incoming-*"))


def test_collection_add_with_ray_ingests_vectors_from_the_cluster(
    cluster, tiny_dir, tiny_model, tmp_path
):
    texts = write_corpus(tmp_path / "corpus", shards=1, rows=120)
    collection = tmp_path / "docs"
    created = cluster.run(
        [*CLI, "collection", "create", collection, "--model", tiny_dir], timeout=120
    )
    assert created.returncode == 0, created.stderr
    added = cluster.run(
        [
            *CLI,
            "collection",
            "add",
            collection,
            tmp_path / "corpus" / "part0.jsonl",
            "--text",
            "title,text",
            "--engine",
            "ray",
            "--address",
            cluster.address,
            "--timeout",
            "240",
        ],
        timeout=300,
    )
    assert added.returncode == 0 and "120 items now" in added.stdout, added.stderr[-3000:]
    from uniembed.store import Collection

    col = Collection.open(collection)
    item = col.get(["s0-7"])[0]
    record = texts["s0-7"]
    assert item.text == f"{record['title']} {record['text']}" and item.payload == {
        "year": record["year"]
    }
    expected = tiny_model.encode([item.text], prompt="document")[0]
    np.testing.assert_array_equal(item.vectors["default"], expected)
    assert col.search(record["title"] + " " + record["text"], k=1)[0].id == "s0-7"
