"""FastRP and graph inputs: the algorithm against a dense re-computation, defined edge cases,
bad input, evaluation on Cora, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

sparse = pytest.importorskip("scipy.sparse")

import uniembed  # noqa: E402
from conftest import shared  # noqa: E402
from uniembed.graph import FastRPConfig, embed, fastrp, read_edges  # noqa: E402
from uniembed.graph.edges import from_edge_arrays  # noqa: E402


def ring(n=12):
    src = np.arange(n)
    return from_edge_arrays(src, (src + 1) % n)


def test_fastrp_matches_the_formula_computed_densely():
    graph = ring()
    config = FastRPConfig(
        dim=16,
        iteration_weights=[0.5, 1.0, 2.0],
        normalization_strength=-0.5,
        self_influence=0.3,
        seed=7,
    )
    got = fastrp(graph.adjacency, config)
    # the same seed gives the same random matrix: recompute every step densely
    from uniembed.graph.fastrp import _row_normalised, _very_sparse_random

    a = graph.adjacency.toarray()
    degree = a.sum(1)
    r = _very_sparse_random(12, 16, 3.0, np.random.default_rng(7))
    current = r * (degree**-0.5)[:, None]
    expected = 0.3 * _row_normalised(r)
    for weight in (0.5, 1.0, 2.0):
        current = _row_normalised((a / degree[:, None]) @ current)
        expected = expected + weight * current
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_random_projection_has_the_published_distribution():
    from uniembed.graph.fastrp import _very_sparse_random

    r = _very_sparse_random(2000, 100, 3.0, np.random.default_rng(0))
    values, counts = np.unique(r, return_counts=True)
    np.testing.assert_allclose(values, [-np.sqrt(3), 0, np.sqrt(3)], rtol=1e-6)
    np.testing.assert_allclose(counts / r.size, [1 / 6, 2 / 3, 1 / 6], atol=0.005)


def test_deterministic_for_a_seed_and_different_across_seeds():
    graph = ring()
    a = fastrp(graph.adjacency, FastRPConfig(dim=8, seed=1))
    np.testing.assert_array_equal(a, fastrp(graph.adjacency, FastRPConfig(dim=8, seed=1)))
    assert not np.allclose(a, fastrp(graph.adjacency, FastRPConfig(dim=8, seed=2)))


def test_edge_cases_are_defined(tmp_path):
    edges = tmp_path / "e.csv"
    edges.write_text(
        "source,target\na,b\nb,a\na,b\nc,c\nb,d\n"
    )  # a duplicate, a reverse, a self-loop
    graph = read_edges(edges, extra_nodes=["z"])  # z: a labelled node without edges
    assert graph.ids.tolist() == ["a", "b", "c", "d", "z"]
    dense = graph.adjacency.toarray()
    assert dense[0, 1] == dense[1, 0] == 1.0  # duplicates and the reverse edge: one undirected edge
    assert (
        dense[2].sum() == 0 and dense[4].sum() == 0
    )  # c's self-loop dropped: c and z are isolated
    vectors = fastrp(graph.adjacency, FastRPConfig(dim=8))
    assert (
        np.isfinite(vectors).all() and not vectors[[2, 4]].any()
    )  # isolated: zero (no self-influence)
    with_self = fastrp(graph.adjacency, FastRPConfig(dim=8, self_influence=1.0))
    assert np.linalg.norm(with_self[4]) == pytest.approx(1.0, rel=1e-5)  # only its own vector
    directed = read_edges(edges, directed=True)
    assert directed.adjacency.toarray()[3, 1] == 0 and directed.adjacency.toarray()[1, 3] == 1
    weighted = tmp_path / "w.csv"
    weighted.write_text("source,target,w\n1,2,0.5\n1,2,1.5\n2,3,1\n")
    assert read_edges(weighted, weight="w").adjacency.toarray()[0, 1] == 2.0  # weights add up
    assert graph.rows_of(["d", "nope"]).tolist() == [3, -1]


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("from,to\n1,2\n", {}, r"no column\(s\) \['source', 'target'\]"),
        ("source,target,w\n1,2,heavy\n", {"weight": "w"}, "not numeric"),
        ("source,target,w\n1,2,-1\n", {"weight": "w"}, ">= 0"),
        ("source,target\n", {}, "empty"),
    ],
)
def test_bad_edge_lists_are_clear_errors(tmp_path, content, options, message):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(uniembed.InputError, match=message):
        read_edges(path, **options)


def test_bad_settings_name_the_value():
    adjacency = ring().adjacency
    for config, message in (
        (FastRPConfig(dim=0), "dim"),
        (FastRPConfig(sparsity=0.5), "sparsity"),
        (FastRPConfig(property_ratio=2), "property_ratio"),
        (FastRPConfig(iteration_weights=[]), "iteration_weights"),
    ):
        with pytest.raises(uniembed.InputError, match=message):
            fastrp(adjacency, config)
    with pytest.raises(uniembed.InputError, match="square"):
        fastrp(sparse.csr_matrix((2, 3)), FastRPConfig())


def test_scipy_and_networkx_inputs_keep_their_ids():
    nx = pytest.importorskip("networkx")
    g = nx.karate_club_graph()
    g = nx.relabel_nodes(g, {i: f"member-{i}" for i in g.nodes})
    ids, vectors = embed(g, dim=16)
    assert ids[0] == "member-0" and vectors.shape == (34, 16)
    ids2, vectors2 = embed(nx.to_scipy_sparse_array(g, format="csr"), dim=16)
    np.testing.assert_allclose(vectors2, vectors, atol=1e-6)
    assert ids2.tolist() == list(range(34))


def test_features_take_their_share_of_the_dimensions():
    graph = ring()
    features = np.eye(12, dtype=np.float32)
    mixed = fastrp(graph.adjacency, FastRPConfig(dim=16, property_ratio=0.5), features=features)
    plain = fastrp(graph.adjacency, FastRPConfig(dim=16))
    assert mixed.shape == (12, 16) and not np.allclose(mixed, plain)
    with pytest.raises(uniembed.InputError, match="features have 3 rows for 12 nodes"):
        fastrp(graph.adjacency, FastRPConfig(dim=16, property_ratio=0.5), features=features[:3])


def test_cora_node_classification_and_link_prediction():
    from uniembed.graph.evaluate import evaluate_folder

    folder = shared("cora")
    paper = FastRPConfig(dim=512, iteration_weights=[0, 0, 1, 6.67], normalization_strength=-0.64)
    structure = evaluate_folder(folder, "node-classification", paper)
    assert structure["nodes"] == 2708 and structure["accuracy"] > 0.62  # published DeepWalk: 67.2
    mixed = evaluate_folder(
        folder,
        "node-classification",
        FastRPConfig(**{**paper.__dict__, "property_ratio": 0.75}),
        use_features=True,
    )
    assert mixed["accuracy"] > structure["accuracy"] + 0.05
    assert evaluate_folder(folder, "link-prediction", paper)["auc"] > 0.75


def test_random_splits_and_multi_label_classification():
    from uniembed.graph.evaluate import node_classification

    rng = np.random.default_rng(0)
    labels = np.array([str(i % 3) for i in range(90)], dtype=object)
    x = np.eye(3)[[i % 3 for i in range(90)]] + 0.1 * rng.normal(size=(90, 3))
    single = node_classification(x, labels, repeats=3)
    assert single["splits"] == 3 and single["accuracy"] > 0.8  # chance: 0.33
    multi = np.array([f"{i % 3}|x" if i % 2 else str(i % 3) for i in range(90)], dtype=object)
    result = node_classification(np.c_[x, np.arange(90) % 2], multi, repeats=2)
    assert result["accuracy"] is None and result["micro_f1"] > 0.8 and result["decision"] == "top-k"
    assert (
        len(result["by_fraction"]) == 9
        and result["micro_f1"] == result["by_fraction"][0]["micro_f1"]
    )
    threshold = node_classification(
        np.c_[x, np.arange(90) % 2], multi, repeats=2, decision="threshold", train_fractions=[0.5]
    )
    assert threshold["decision"] == "threshold" and threshold["micro_f1"] > 0.8


def test_graph_cli_embeds_to_files_and_collections(tmp_path, capsys):
    from uniembed.cli.main import main

    edges = tmp_path / "e.csv"
    edges.write_text("source,target\n" + "".join(f"n{i},n{(i + 1) % 20}\n" for i in range(20)))
    assert (
        main(
            ["graph", "embed", str(edges), "--dim", "16", "--out", str(tmp_path / "nodes.parquet")]
        )
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "nodes.parquet")
    assert table.num_rows == 20 and table.column("id").to_pylist()[0] == "n0"
    # own vector + one hop: a node's nearest nodes are itself and its two ring neighbours
    one_hop = ["--dim", "64", "--self-influence", "1", "--iteration-weights", "1"]
    assert (
        main(["graph", "embed", str(edges), *one_hop, "--collection", str(tmp_path / "col")]) == 0
    )
    assert (
        main(["graph", "embed", str(edges), *one_hop, "--out", str(tmp_path / "one-hop.parquet")])
        == 0
    )
    query = np.asarray(
        pq.read_table(tmp_path / "one-hop.parquet").column("embedding").to_pylist()[0],
        dtype=np.float32,
    )
    hits = uniembed.Collection.open(tmp_path / "col").search(query, k=3)
    assert hits[0].id == "n0" and {h.id for h in hits[1:]} == {"n1", "n19"}
    assert main(["graph", "embed", str(edges)]) == 2
    assert "exactly one of --out" in capsys.readouterr().err
    assert main(["graph", "eval", "node-classification", str(tmp_path)]) == 2


def test_structure_and_text_go_into_one_collection(tmp_path, tiny_dir):
    from uniembed.cli.main import main

    edges = tmp_path / "e.csv"
    edges.write_text("source,target\n" + "".join(f"{i},{(i + 1) % 10}\n" for i in range(10)))
    nodes = tmp_path / "nodes.jsonl"
    nodes.write_text(
        "".join(
            json.dumps({"id": i, "text": "the bank charged me twice" if i == 3 else f"cat {i}"})
            + "\n"
            for i in range(9)
        )
    )
    code = main(
        [
            "graph",
            "embed",
            str(edges),
            "--collection",
            str(tmp_path / "papers"),
            "--nodes",
            str(nodes),
            "--features",
            "text",
            "--model",
            str(tiny_dir),
            "--dim",
            "32",
        ]
    )
    assert code == 0
    collection = uniembed.Collection.open(tmp_path / "papers")
    assert len(collection) == 10 and collection.get(["3"])[0].text == "the bank charged me twice"
    assert collection.get(["9"])[0].text is None  # a node without a text row: structure only
    assert collection.search("bank charged", k=1, mode="text")[0].id == "3"
    # the issue's own command: texts from nodes.csv beside the edge list (ids in an `id` or `node` column)
    (tmp_path / "nodes.csv").write_text(
        "node,text\n" + "".join(f"{i},paper number {i}\n" for i in range(10))
    )
    assert (
        main(
            [
                "graph",
                "embed",
                str(edges),
                "--collection",
                str(tmp_path / "papers2"),
                "--features",
                "text",
                "--model",
                str(tiny_dir),
                "--dim",
                "32",
            ]
        )
        == 0
    )
    assert uniembed.Collection.open(tmp_path / "papers2").get(["7"])[0].text == "paper number 7"
    (tmp_path / "nodes.csv").unlink()
    assert (
        main(["graph", "embed", str(edges), "--out", str(tmp_path / "x.npy"), "--features", "text"])
        == 2
    )


def test_uniembed_eval_runs_the_graph_tasks_too(capsys):
    from uniembed.cli.main import main

    assert main(["eval", "node-classification", str(shared("cora")), "--features"]) == 0
    accuracy = float(
        next(line for line in capsys.readouterr().out.splitlines() if "accuracy" in line).split(
            ":"
        )[1]
    )
    assert accuracy > 0.7


def _multilabel_problem(n=300, labels=5, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    directions = rng.normal(size=(dim, labels))
    y = (x @ directions + 0.5 * rng.normal(size=(n, labels))) > 1.0
    y[~y.any(1), 0] = True  # every node has at least one label
    return x, y


def test_joint_one_vs_rest_fit_equals_separate_scikit_learn_fits():
    from sklearn.linear_model import LogisticRegression

    from uniembed.graph.multilabel import fit_one_vs_rest

    x, y = _multilabel_problem()
    weights, bias = fit_one_vs_rest(x, y, tol=1e-8)
    for label in range(y.shape[1]):
        alone = LogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(x, y[:, label])
        np.testing.assert_allclose(weights[:, label], alone.coef_[0], atol=2e-3)
        np.testing.assert_allclose(bias[label], alone.intercept_[0], atol=2e-3)


def test_top_k_decision_and_f1_match_their_definitions():
    from sklearn.metrics import f1_score

    from uniembed.graph.multilabel import f1_scores, top_k_predictions

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.0, 0.8, 0.7]])
    truth = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 1]], dtype=bool)
    predicted = top_k_predictions(scores, truth)
    assert predicted.tolist() == [[True, False, True], [False, True, False], [False, True, True]]
    rng = np.random.default_rng(1)
    truth, guess = rng.random((50, 6)) > 0.6, rng.random((50, 6)) > 0.5
    truth[:, 5] = guess[:, 5] = (
        False  # a label nobody has: 0 in the macro mean, as scikit-learn counts it
    )
    micro, macro = f1_scores(truth, guess)
    assert micro == pytest.approx(f1_score(truth, guess, average="micro", zero_division=0))
    assert macro == pytest.approx(f1_score(truth, guess, average="macro", zero_division=0))


def test_multilabel_protocol_scores_every_train_fraction_and_rejects_bad_settings():
    from uniembed.graph.multilabel import multilabel_classification

    x, y = _multilabel_problem(n=400)
    result = multilabel_classification(x, y, shuffles=2)
    fractions = [row["train_fraction"] for row in result["by_fraction"]]
    assert fractions == pytest.approx([0.1 * i for i in range(1, 10)])
    chance = multilabel_classification(np.random.default_rng(5).normal(size=x.shape), y, shuffles=2)
    assert (
        min(r["micro_f1"] for r in result["by_fraction"])
        > max(r["micro_f1"] for r in chance["by_fraction"]) + 0.1
    )
    threshold = multilabel_classification(
        x, y, train_fractions=[0.5], shuffles=2, decision="threshold"
    )
    assert threshold["decision"] == "threshold" and len(threshold["by_fraction"]) == 1
    for bad, message in (
        ({"decision": "top"}, "decision must be one of"),
        ({"shuffles": 0}, "shuffles must be"),
        ({"train_fractions": [0.5, 1.0]}, r"strictly between 0 and 1, got \[1.0\]"),
        ({"train_fractions": []}, "strictly between"),
    ):
        with pytest.raises(uniembed.InputError, match=message):
            multilabel_classification(x, y, **bad)


def test_graph_eval_cli_prints_the_multilabel_protocol_per_fraction(tmp_path, capsys):
    from uniembed.cli.main import main

    rng = np.random.default_rng(0)
    groups = [rng.choice(4, size=rng.integers(1, 3), replace=False) for _ in range(120)]
    members = {g: [n for n in range(120) if g in groups[n]] for g in range(4)}
    edges = {
        (n, int(m))
        for n in range(120)
        for g in groups[n]
        for m in rng.choice(members[g], size=4)
        if m != n
    }
    (tmp_path / "edges.csv").write_text(
        "source,target\n" + "".join(f"{a},{b}\n" for a, b in sorted(edges))
    )
    (tmp_path / "nodes.csv").write_text(
        "node,label\n"
        + "".join(f"{n},{'|'.join(f'g{g}' for g in groups[n])}\n" for n in range(120))
    )
    assert (
        main(
            ["graph", "eval", "node-classification", str(tmp_path), "--dim", "32", "--repeats", "2"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "decision: top-k" in out and "train fraction" in out and "90%" in out
    assert main(["graph", "eval", "node-classification", str(tmp_path), "--repeats", "0"]) == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err
