"""Fine-tuning on the tiny BERT: losses against hand computations, gradient caching against the
plain loss, data checks, mining, and whole runs (saved, reloaded, resumed, deterministic)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import uniembed  # noqa: E402
from uniembed.train import TrainConfig, losses, train  # noqa: E402
from uniembed.train.data import load_training_data  # noqa: E402

WORDS = "the cat sat on the mat dog ran in sun rain blue red bank card money lost sent charged twice".split()


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


# -- losses ----------------------------------------------------------------------------------


def test_mnrl_is_cross_entropy_over_scaled_cosines():
    a, p = torch.randn(4, 8), torch.randn(4, 8)
    logits = 20 * F.normalize(a, dim=-1) @ F.normalize(p, dim=-1).T
    expected = -torch.log_softmax(logits, 1).diagonal().mean()
    assert losses.mnrl(a, p).item() == pytest.approx(expected.item(), rel=1e-5)
    n = torch.randn(4, 2, 8)
    with_negatives = losses.mnrl(a, p, n)
    all_candidates = torch.cat([F.normalize(p, dim=-1), F.normalize(n.reshape(-1, 8), dim=-1)])
    logits = 20 * F.normalize(a, dim=-1) @ all_candidates.T
    assert with_negatives.item() == pytest.approx(
        F.cross_entropy(logits, torch.arange(4)).item(), rel=1e-5
    )
    symmetric = losses.mnrl(a, p, symmetric=True)
    backwards = F.cross_entropy(
        20 * F.normalize(p, dim=-1) @ F.normalize(a, dim=-1).T, torch.arange(4)
    )
    assert symmetric.item() == pytest.approx(
        (losses.mnrl(a, p).item() + backwards.item()) / 2, rel=1e-5
    )


def test_gist_masks_what_the_guide_rates_above_the_positive():
    a = unit([1, 0, 0], [0, 1, 0])
    p = unit([0.9, 0.1, 0], [0.1, 0.9, 0.1])
    guide_a = unit([1, 0, 0], [0.1, 0, 1])
    guide_p = unit(
        [0.5, 0.5, 0], [0.9, 0.1, 0]
    )  # the guide rates p[1] above anchor 0's own positive
    got = losses.gist(a, p, None, guide_anchors=guide_a, guide_positives=guide_p, temperature=0.05)
    guide_scores = guide_a @ guide_p.T
    logits = (a @ p.T) / 0.05
    for i in range(2):
        for j in range(2):
            if j != i and guide_scores[i, j] > guide_scores[i, i]:
                logits[i, j] = float("-inf")
    assert torch.isinf(logits[0, 1]) and not torch.isinf(logits[1]).any(), (
        "one candidate masked, one kept"
    )
    assert got.item() == pytest.approx(F.cross_entropy(logits, torch.arange(2)).item(), rel=1e-5)


def test_triplet_picks_the_semi_hard_negative():
    x = unit([1, 0], [0.95, 0.31], [0.6, 0.8], [0.9, 0.44], [-1, 0])
    labels = torch.tensor([0, 0, 1, 1, 2])
    d = 1 - x @ x.T
    # anchor 0, positive 1: negatives 2, 3, 4; semi-hard = farther than d01 -> closest such
    expected = []
    for a, p in [(0, 1), (1, 0), (2, 3), (3, 2)]:
        negatives = [n for n in range(5) if labels[n] != labels[a]]
        semi = [d[a, n] for n in negatives if d[a, n] > d[a, p]]
        chosen = min(semi) if semi else max(d[a, n] for n in negatives)
        expected.append(max(0.0, float(d[a, p] - chosen + 0.2)))
    assert losses.triplet_semi_hard(x, labels).item() == pytest.approx(sum(expected) / 4, rel=1e-5)
    with pytest.raises(ValueError, match="two texts of one label"):
        losses.triplet_semi_hard(x[:3], torch.tensor([0, 1, 2]))


def test_cosent_rewards_the_right_order():
    first = unit([1, 0], [1, 0], [1, 0])
    second = unit([1, 0.1], [1, 1], [0, 1])  # cosines decreasing
    scores_agree = torch.tensor([5.0, 3.0, 0.0])
    cos = (first * second).sum(-1) * 20
    terms = [
        cos[j] - cos[i] for i in range(3) for j in range(3) if scores_agree[i] > scores_agree[j]
    ]
    expected = math.log(1 + sum(math.exp(t) for t in terms))
    assert losses.cosent(first, second, scores_agree).item() == pytest.approx(expected, rel=1e-4)
    assert losses.cosent(first, second, scores_agree.flip(0)) > 10 * losses.cosent(
        first, second, scores_agree
    )


def test_matryoshka_sums_the_loss_over_prefixes():
    a, p = torch.randn(4, 8), torch.randn(4, 8)
    got = losses.matryoshka(losses.mnrl, [8, 4, 2], a, p, None, scale=10.0)
    expected = sum(losses.mnrl(a[:, :d], p[:, :d], scale=10.0) for d in (8, 4, 2))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    weighted = losses.matryoshka(losses.mnrl, [8, 2], a, p, None, weights=[1.0, 3.0])
    assert weighted.item() == pytest.approx(
        (losses.mnrl(a, p) + 3 * losses.mnrl(a[:, :2], p[:, :2])).item(), rel=1e-5
    )


# -- gradient caching -------------------------------------------------------------------------


def _grads(model):
    return [p.grad.clone() for p in model.model.parameters() if p.grad is not None]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cached_gradients_equal_the_plain_loss(tiny_dir, mode):
    from uniembed.train.forward import cached_backward, embed

    model = uniembed.load(tiny_dir, device="cpu")
    getattr(model.model, mode)()  # train: dropout on, replayed exactly by the RNG states
    anchors = [" ".join(WORDS[i : i + 3]) for i in range(8)]
    positives = [" ".join(WORDS[i + 2 : i + 6]) for i in range(8)]
    fn = lambda texts: embed(model, texts)  # noqa: E731

    torch.manual_seed(0)
    model.model.zero_grad()
    losses.mnrl(fn(anchors), fn(positives)).backward()
    plain = _grads(model)

    torch.manual_seed(0)
    model.model.zero_grad()
    # train mode: one chunk per group draws the same dropout as the plain forward; eval: any chunking
    mini = 8 if mode == "train" else 3
    cached_backward([(fn, anchors), (fn, positives)], losses.mnrl, mini)
    cached = _grads(model)
    assert len(plain) == len(cached) > 10
    for a, b in zip(plain, cached):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# -- data ------------------------------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("rows", "loss", "message"),
    [
        ([], "mnrl", "no examples"),
        ([{"anchor": "a"}, {"anchor": "b", "positive": "c"}], "mnrl", "no positive field"),
        (
            [{"anchor": "", "positive": "x"}, {"anchor": "b", "positive": "c"}],
            "mnrl",
            "non-empty string",
        ),
        (
            [{"anchor": "a", "positive": "b", "negative": "n"}, {"anchor": "b", "positive": "c"}],
            "mnrl",
            "different numbers of negatives",
        ),
        (
            [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}],
            "triplet",
            "every label occurs once",
        ),
        ([{"text": "a"}, {"text": "b", "label": "y"}], "triplet", "no label"),
        ([{"anchor": "a", "positive": "b"}], "mnrl", "at least 2"),
        ([{"anchor": "a", "positive": "b"}] * 3, "focal", "loss must be one of"),
    ],
)
def test_bad_training_data_is_refused_before_any_compute(tmp_path, rows, loss, message):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(uniembed.InputError, match=message):
        load_training_data(path, loss)


def test_beir_folders_give_query_document_pairs(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": "d1", "title": "T", "text": "cats"}, {"_id": "d2", "title": "", "text": "dogs"}],
    )
    write_jsonl(
        folder / "queries.jsonl", [{"_id": "q1", "text": "cat?"}, {"_id": "q2", "text": "dog?"}]
    )
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"
    )
    data = load_training_data(folder, "mnrl")
    assert data.anchors == ["cat?", "dog?"] and data.positives == ["T cats", "dogs"]
    with pytest.raises(uniembed.InputError, match="needs a file"):
        load_training_data(folder, "cosent")


# -- mining ----------------------------------------------------------------------------------


def test_mining_skips_positives_and_what_the_guide_prefers():
    from helpers import KeywordEncoder
    from uniembed.train.mining import mine_hard_negatives

    model = KeywordEncoder(["cat", "dog", "bank"])
    corpus = ["cat cat", "cat dog", "dog dog", "bank bank", "cat bank"]
    mined = mine_hard_negatives(model, ["cat"], ["cat cat"], corpus, 2)
    assert mined == [["cat dog", "cat bank"]]  # the positive is never a negative
    guide = KeywordEncoder(["cat", "dog", "bank"])
    filtered = mine_hard_negatives(model, ["cat"], ["cat dog"], corpus, 2, guide=guide)
    assert (
        "cat cat" not in filtered[0]
    )  # the guide rates it above the positive: a likely false negative


# -- whole runs ------------------------------------------------------------------------------


@pytest.fixture
def pairs_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        words = list(rng.choice(WORDS, 4))
        rows.append(
            {
                "anchor": " ".join(words[:3]),
                "positive": " ".join(words[1:] + [WORDS[i % len(WORDS)]]),
            }
        )
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def run_config(tiny_dir, data, output, **overrides):
    settings = dict(
        base=str(tiny_dir),
        data=str(data),
        output=str(output),
        batch_size=8,
        learning_rate=1e-3,
        seed=3,
    )
    return TrainConfig(**{**settings, **overrides})


def weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def test_training_saves_a_model_both_libraries_load(tiny_dir, pairs_file, tmp_path):
    sts = tmp_path / "sts.jsonl"
    write_jsonl(
        sts,
        [
            {"sentence1": f"{a} cat", "sentence2": f"{a} dog", "score": float(i % 5)}
            for i, a in enumerate(WORDS)
        ],
    )
    result = train(
        run_config(
            tiny_dir, pairs_file, tmp_path / "out", eval=[f"sts:{sts}"], eval_every=3, max_steps=6
        ),
        show_progress=False,
    )
    assert result.steps == 6 and [row["step"] for row in result.history] == [3, 6]
    assert result.best_score == pytest.approx(max(row["score"] for row in result.history), abs=0.01)
    ours = uniembed.load(result.output)
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(result.output), device="cpu")
    texts = ["the cat sat", "bank card lost"]
    np.testing.assert_allclose(
        ours.encode(texts), theirs.encode(texts, normalize_embeddings=True), atol=1e-5
    )
    card = (result.output / "README.md").read_text()
    assert "pairs.jsonl (48 examples)" in card and "| 3 |" in card
    assert not (tmp_path / "out.train-state").exists()
    base = weights(tiny_dir)
    assert any(not np.allclose(base[k], v) for k, v in weights(result.output).items() if k in base)


def test_the_loss_goes_down(tiny_dir, pairs_file, tmp_path, monkeypatch):
    from uniembed.train import trainer

    seen = []
    original = trainer._Loop.loss_and_backward

    def record(self, indices):
        value = original(self, indices)
        seen.append(value)
        return value

    monkeypatch.setattr(trainer._Loop, "loss_and_backward", record)
    train(run_config(tiny_dir, pairs_file, tmp_path / "out", epochs=6), show_progress=False)
    assert np.mean(seen[-6:]) < 0.7 * np.mean(seen[:6])


def test_same_seed_same_weights_and_resume_matches_an_uninterrupted_run(
    tiny_dir, pairs_file, tmp_path, monkeypatch
):
    from uniembed.train import trainer

    config = dict(max_steps=5, checkpoint_every=2)
    train(run_config(tiny_dir, pairs_file, tmp_path / "a", **config), show_progress=False)
    train(run_config(tiny_dir, pairs_file, tmp_path / "b", **config), show_progress=False)
    for key, value in weights(tmp_path / "a").items():
        np.testing.assert_array_equal(value, weights(tmp_path / "b")[key])

    original = trainer._Loop.loss_and_backward

    def crash_at_step_4(self, indices):
        if self.step == 4:
            raise KeyboardInterrupt
        return original(self, indices)

    monkeypatch.setattr(trainer._Loop, "loss_and_backward", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(run_config(tiny_dir, pairs_file, tmp_path / "c", **config), show_progress=False)
    state = json.loads((tmp_path / "c.train-state" / "state.json").read_text())
    assert (
        state["step"] == 4 and not (tmp_path / "c").exists()
    )  # saved on the interrupt, not only at step 2
    monkeypatch.setattr(trainer._Loop, "loss_and_backward", original)
    train(run_config(tiny_dir, pairs_file, tmp_path / "c", **config), show_progress=False)
    for key, value in weights(tmp_path / "a").items():
        np.testing.assert_allclose(weights(tmp_path / "c")[key], value, atol=1e-6)
    with pytest.raises(uniembed.InputError, match="other settings"):
        (tmp_path / "d.train-state").mkdir()
        (tmp_path / "d.train-state" / "state.json").write_text(json.dumps({"config": {"seed": 1}}))
        train(run_config(tiny_dir, pairs_file, tmp_path / "d", **config), show_progress=False)


@pytest.mark.parametrize("loss", ["cached-mnrl", "triplet", "cosent", "gist"])
def test_every_loss_trains(tiny_dir, tmp_path, loss):
    if loss == "triplet":
        data = write_jsonl(
            tmp_path / "d.jsonl",
            [{"text": f"{w} {WORDS[i % 7]}", "label": str(i % 4)} for i, w in enumerate(WORDS * 2)],
        )
    elif loss == "cosent":
        data = write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"sentence1": w, "sentence2": f"{w} cat", "score": float(i % 5)}
                for i, w in enumerate(WORDS)
            ],
        )
    else:
        data = write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"anchor": w, "positive": f"{w} {WORDS[(i + 3) % len(WORDS)]}"}
                for i, w in enumerate(WORDS)
            ],
        )
    extra = {"guide": str(tiny_dir)} if loss == "gist" else {}
    result = train(
        run_config(
            tiny_dir,
            data,
            tmp_path / "out",
            loss=loss,
            max_steps=2,
            matryoshka=[32, 16],
            mini_batch=3,
            **extra,
        ),
        show_progress=False,
    )
    assert result.steps == 2 and uniembed.load(result.output).encode(["a cat"]).shape == (1, 32)


def test_hard_negatives_are_mined_into_the_batches(tiny_dir, pairs_file, tmp_path, monkeypatch):
    from uniembed.train import trainer

    widths = []
    original = trainer._Loop.loss_and_backward

    def note(self, indices):
        widths.append({len(self.data.negatives[i]) for i in indices})
        return original(self, indices)

    monkeypatch.setattr(trainer._Loop, "loss_and_backward", note)
    train(
        run_config(tiny_dir, pairs_file, tmp_path / "out", hard_negatives=2, max_steps=2),
        show_progress=False,
    )
    assert widths == [{2}, {2}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss": "gist"}, "needs a guide"),
        ({"batch_size": 1}, "at least 2"),
        ({"matryoshka": [16, 32]}, "largest first"),
        ({"matryoshka": [64, 32]}, "at most the model's 32"),
        (
            {"matryoshka": [32, 16], "matryoshka_weights": [1.0]},
            "one number >= 0 per matryoshka dim",
        ),
        ({"eval": ["sts"]}, "task:path"),
        ({"eval": ["sts:/no/such/file.csv"]}, "does not exist"),
        ({"loss": "triplet", "hard_negatives": 3}, "pair losses"),
        ({"learning_rate": 2.0}, "learning_rate"),
    ],
)
def test_bad_settings_are_refused_before_training(
    tiny_dir, pairs_file, tmp_path, overrides, message
):
    with pytest.raises(uniembed.InputError, match=message):
        train(run_config(tiny_dir, pairs_file, tmp_path / "out", **overrides), show_progress=False)


def test_the_train_command(tiny_dir, pairs_file, tmp_path, capsys):
    from uniembed.cli.main import main

    out = tmp_path / "cli-model"
    code = main(
        [
            "train",
            "--base",
            str(tiny_dir),
            "--data",
            str(pairs_file),
            "-o",
            str(out),
            "--batch-size",
            "8",
            "--max-steps",
            "2",
            "--hard-negatives",
            "mine:1",
            "--matryoshka",
            "32,16",
        ]
    )
    assert code == 0 and "after 2 steps" in capsys.readouterr().out
    assert uniembed.load(out).encode(["a cat"], dim=16).shape == (1, 16)
    assert (
        main(
            [
                "train",
                "--base",
                str(tiny_dir),
                "--data",
                str(pairs_file),
                "-o",
                str(tmp_path / "x"),
                "--hard-negatives",
                "10",
            ]
        )
        == 2
    )
    assert "mine:10" in capsys.readouterr().err
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert main(["train", "--data", str(empty), "-o", str(tmp_path / "y")]) == 2
    assert "no examples" in capsys.readouterr().err


def test_starbucks_trains_sub_models_that_load_truncated(tiny_dir, tmp_path):
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"anchor": w, "positive": f"{w} {WORDS[(i + 3) % len(WORDS)]}"}
            for i, w in enumerate(WORDS)
        ],
    )
    result = train(
        run_config(tiny_dir, data, tmp_path / "sb", starbucks=[(1, 8), (2, 16)], max_steps=3),
        show_progress=False,
    )
    small = uniembed.load(result.output, layers=1, dim=8)
    full = uniembed.load(result.output)
    assert small.dim == 8 and small.model.config.num_hidden_layers == 1 and full.dim == 32
    assert small.fingerprint != full.fingerprint != uniembed.load(result.output, dim=8).fingerprint
    # the layer-1 / dim-8 sub-model is exactly the full model's layer-1 output, pooled and truncated
    from uniembed.train.forward import embed_layers

    full.model.eval()
    with torch.no_grad():
        expected = F.normalize(
            embed_layers(full, ["the cat sat"], layers=[1])[1][:, :8], dim=-1
        ).numpy()
    np.testing.assert_allclose(small.encode(["the cat sat"]), expected, atol=1e-5)
    assert "starbucks" in (result.output / "README.md").read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": 3}, "at most the model's 2"),
        ({"dim": 64}, "at most the model's 32"),
        ({"layers": 0}, "positive integer"),
        ({"dim": 8, "backend": "onnx"}, "torch backend"),
    ],
)
def test_truncated_loading_checks_its_options(tiny_dir, options, message):
    with pytest.raises(uniembed.InputError, match=message):
        uniembed.load(tiny_dir, **options)


def test_starbucks_settings_are_checked(tiny_dir, pairs_file, tmp_path):
    with pytest.raises(uniembed.InputError, match="fit the model"):
        train(
            run_config(tiny_dir, pairs_file, tmp_path / "o", starbucks=[(3, 8)]),
            show_progress=False,
        )
    with pytest.raises(uniembed.InputError, match="small to large"):
        train(
            run_config(tiny_dir, pairs_file, tmp_path / "o", starbucks=[(2, 16), (1, 8)]),
            show_progress=False,
        )
    with pytest.raises(uniembed.InputError, match="mnrl or cosent"):
        train(
            run_config(
                tiny_dir,
                pairs_file,
                tmp_path / "o",
                loss="gist",
                guide=str(tiny_dir),
                starbucks=[(1, 8)],
            ),
            show_progress=False,
        )
