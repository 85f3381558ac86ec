"""Why the open-vocabulary test fails: what the frozen anchor itself says about the left-out prompts.

bench/bind.py trains an image encoder without three Fashion-MNIST classes (trouser, dress, sandal)
and asks for them by prompt; it scores below chance. A bound image encoder can only place an
image somewhere in the anchor's space, so whatever it learns, a left-out image is classified by
how the anchor arranges the prompts. This bench measures that arrangement, text only, plus the
visual side on validation data (the left-out classes' *train* images, which the open-vocabulary
run never sees; no test image is read):

1. probes: the anchor's cosine between each left-out prompt and a few plain descriptions;
2. the ceiling of "landing on what it looks like": each left-out image placed exactly on the
   caption vectors of the seen classes its pixels resemble (a 10-NN vote in PCA-50 pixel space
   over the seen classes' train images; ConSE's convex combination, Norouzi et al. 2014), then
   classified among the three prompts, for the recipe's captions and for richer ones (WordNet
   3.0 definitions of the seen classes added).

    python -m bench.open_vocab_anchor       # (also bench/run.py --only open-vocab-anchor), about a minute
"""

from __future__ import annotations

import numpy as np

from bench import bind_recipe

DATA = bind_recipe.DATA
HELD_OUT = ["trouser", "dress", "sandal"]  # as bench/bind.py
PER_CLASS = 2000  # validation images per left-out class (of 6,000 train images each)
# WordNet 3.0 (Debian wordnet-base) definitions of the seen classes, the sense that names the garment;
# "sneaker" and "T-shirt" have no entry: "sneaker" takes WordNet's "gym shoe", T-shirt/top its "jersey"
# (a close-fitting pullover shirt). The left-out classes get none: they are not in training.
DEFINITIONS = {
    "T-shirt/top": "a close-fitting pullover shirt",
    "pullover": "a sweater that is put on by pulling it over the head",
    "coat": "an outer garment that has sleeves and covers the body from shoulder down; worn outdoors",
    "shirt": "a garment worn on the upper half of the body",
    "sneaker": "a canvas shoe with a pliable rubber sole",
    "bag": "a container used for carrying money and small personal items or accessories",
    "ankle boot": "footwear that covers the whole foot and lower leg",
}
PROBES = [
    "a photo of a shoe.",
    "footwear",
    "a shoe consisting of a sole fastened by straps to the foot",
    "a photo of sand.",
    "a photo of a beach.",
    "a garment worn on the legs",
    "a one-piece garment for a woman",
]


def run() -> dict[str, list[dict]]:
    import uniembed
    from uniembed.eval.image_data import load_labelled_images
    from uniembed.eval.image_tasks import DEFAULT_TEMPLATES, class_vectors

    anchor = uniembed.load("all-MiniLM-L6-v2")
    train = load_labelled_images(DATA / "fashion-mnist", "train")
    classes = list(train.classes)
    unseen = [classes.index(name) for name in HELD_OUT]
    prompts = class_vectors(
        anchor, classes, DEFAULT_TEMPLATES, {}
    )  # what zero-shot compares images with

    probe_vectors = anchor.encode(PROBES)
    probes = [
        {
            "text": text,
            **{f"'{classes[u]}' prompts": round(float(v @ prompts[u]), 2) for u in unseen},
        }
        for text, v in zip(PROBES, probe_vectors)
    ]
    probes.append(
        {
            "text": "(the tokens the anchor reads)",
            **{
                f"'{classes[u]}' prompts": " ".join(anchor.tokenizer.tokenize(classes[u]))
                for u in unseen
            },
        }
    )

    look_alike, truth = _look_alike(train, unseen)
    shares = {u: look_alike[truth == u].mean(0) for u in unseen}
    recipe = dict(bind_recipe.SOURCES)["fashion-mnist"]
    caption_sets = {
        "the recipe's three captions": lambda name: [c.format(label=name) for c in recipe],
        "the recipe's + a WordNet definition": lambda name: (
            [c.format(label=name) for c in recipe] + [DEFINITIONS[name]]
        ),
        "a WordNet definition only": lambda name: [DEFINITIONS[name]],
    }
    ceiling = []
    for caption_set, captions_of in caption_sets.items():
        landing = np.zeros((len(classes), prompts.shape[1]), dtype=np.float32)
        for c, name in enumerate(classes):
            if c not in unseen:
                vectors = anchor.encode(captions_of(name))
                landing[c] = vectors.mean(0) / np.linalg.norm(vectors.mean(0))
        placed = look_alike @ landing
        placed /= np.linalg.norm(placed, axis=1, keepdims=True)
        among_three = np.asarray(unseen)[(placed @ prompts[unseen].T).argmax(1)]
        among_ten = (placed @ prompts.T).argmax(1)
        ceiling.append(
            {
                "seen classes' captions": caption_set,
                **{
                    f"{classes[u]} (looks like {_top(shares[u], classes)})": round(
                        100 * float(np.mean(among_three[truth == u] == u)), 1
                    )
                    for u in unseen
                },
                "among the 3 (chance 33.3)": round(100 * float(np.mean(among_three == truth)), 2),
                "among all 10": round(100 * float(np.mean(among_ten == truth)), 2),
            }
        )
    return {
        "Open vocabulary: the anchor's cosine between the left-out prompts and plain descriptions": probes,
        "Open vocabulary: left-out images placed on the seen classes they look like (validation)": ceiling,
    }


def _look_alike(train, unseen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each left-out validation image's 10-NN vote over the seen classes (rows sum to 1), and its label."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier

    pixels = np.stack([np.asarray(image, dtype=np.float32).ravel() / 255 for image in train.images])
    labels = np.asarray(train.labels)
    seen = np.flatnonzero(~np.isin(labels, unseen))
    pca = PCA(50, random_state=0).fit(pixels[seen])
    vote = KNeighborsClassifier(10).fit(pca.transform(pixels[seen]), labels[seen])
    chosen = np.concatenate([np.flatnonzero(labels == u)[:PER_CLASS] for u in unseen])
    shares = np.zeros((len(chosen), len(train.classes)), dtype=np.float32)
    shares[:, vote.classes_] = vote.predict_proba(pca.transform(pixels[chosen]))
    return shares, labels[chosen]


def _top(share: np.ndarray, classes: list[str], n: int = 2) -> str:
    return ", ".join(f"{classes[c]} {100 * share[c]:.0f}%" for c in np.argsort(-share)[:n])


if __name__ == "__main__":
    from bench.report import markdown_table

    for title, rows in run().items():
        print(f"\n### {title}\n")
        print(markdown_table(rows))
