"""Starting a collection's upgrade: `plan` (what it would cost, how compatible the new model looks
on a sample) and `fit` (an adapter new -> old from the collection's own texts, stored with it).

Pairs come from the collection itself: a seeded sample of items that have text; the old side is
the vector stored for each (exactly what searches compare against), the new side the target
model's vector of the same text. With `texts=` given instead, both models embed those texts (the
collection's own model must then be loadable).
"""

from __future__ import annotations

import shutil
import time

import numpy as np

from uniembed.encoders.registry import lasting_reference
from uniembed.errors import CollectionLockedError, ConflictError, InputError, NotFoundError
from uniembed.spaces.adapters import (
    AUTO,
    CHOICES,
    KINDS,
    AdapterCard,
    choose_by_held_out,
    fit_adapter,
    held_out_split,
    mean_reciprocal_rank,
    unit_rows,
    with_own,
)
from uniembed.store.lock import WriterLock
from uniembed.store.upgrade_state import UpgradeState, read_state, upgrade_dir, write_state
from uniembed.upgrade.pseudo import pseudo_query_vectors


def check_upgradable(collection, model=None) -> None:
    """InputError unless `collection` is one an upgrade handles (and `model` is a new one)."""
    from uniembed.store.collection import Collection

    if not isinstance(collection, Collection):
        raise InputError(
            f"model upgrades run on folder collections; {collection.path} lives on a "
            f"{getattr(collection, 'backend_name', 'server')} server (re-create it there with the new model)"
        )
    if collection.multivector is not None:
        raise InputError(
            f"{collection.path} is a multi-vector collection: its token vectors cannot be mapped by one "
            "adapter; re-create it with the new model"
        )
    if collection.images is not None:
        raise InputError(
            f"{collection.path} is an image collection: an upgrade would re-embed its images, which "
            "this version does not do; re-create it with the new model"
        )
    if collection.relative_anchors is not None:
        raise InputError(
            f"{collection.path} stores relative vectors (cosines to {len(collection.relative_anchors)} "
            "anchor texts): any model that embeds the anchors searches it as it is, with no adapter "
            "(open it with that model); re-create it to store the new model's vectors"
        )
    if len(collection.meta.fields) != 1:
        raise InputError(
            f"{collection.path} has {len(collection.meta.fields)} vector fields "
            f"({list(collection.meta.fields)}); upgrades handle collections with one"
        )
    if model is not None and model.fingerprint == collection.meta.fingerprint:
        raise InputError(
            f"{model.name} has the same fingerprint as the model that made {collection.path} "
            f"({model.fingerprint[:12]}): it is the same model, there is nothing to upgrade"
        )


def _sample(collection, n: int, seed: int) -> tuple[list[str], np.ndarray, int]:
    """(texts, stored vectors) of up to n items with text, and how many items have text."""
    from uniembed.store.backend import ID, TEXT, vector_column

    field = collection.meta.default_field
    collection.version  # noqa: B018  (the latest commit)
    rows = collection.backend.scan([ID, TEXT, vector_column(field)])
    texts = rows.column(TEXT).to_pylist()
    with_text = np.flatnonzero([bool(t) for t in texts])
    if len(with_text) == 0:
        raise InputError(
            f"{collection.path} keeps no texts, so its items cannot be re-embedded; pass texts= "
            "(--texts FILE) to fit an adapter, and re-create the collection to move it"
        )
    chosen = np.sort(np.random.default_rng(seed).permutation(with_text)[:n])
    flat = (
        rows.column(vector_column(field)).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    )
    stored = flat.reshape(len(texts), -1)[chosen]
    return [texts[i] for i in chosen], stored, len(with_text)


def _encode(model, texts: list[str], show_progress: bool) -> np.ndarray:
    return np.asarray(
        model.encode(texts, prompt="document", show_progress=show_progress), dtype=np.float32
    )


def fit(
    collection,
    model,
    *,
    pairs: int = 5000,
    adapter: str = "procrustes",
    texts: list[str] | None = None,
    target: str | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> AdapterCard:
    """Fit an adapter from `model` (the new one) into the collection's space and store it as the
    next adapter version; from then on `Collection.open(path, model=model)` searches through it.
    adapter: a kind of `adapters.KINDS`, or "auto": every kind the pairs allow, the best held-out
    ranking kept (the card says which, and every candidate's score).
    target: how to load `model` again (a catalogue name or folder), for backfill and finish."""
    check_upgradable(collection, model)
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 2:
        raise InputError(f"pairs must be an integer >= 2, got {pairs!r}")
    if adapter not in CHOICES:  # before any encoding
        raise InputError(f"adapter must be one of {list(CHOICES)}, got {adapter!r}")
    state = read_state(collection.path)
    if state is not None and state.target_fingerprint != model.fingerprint:
        raise InputError(
            f"an upgrade of {collection.path} to {state.target_name} is in progress; finish it or "
            "cancel it (`uniembed upgrade cancel`) before planning another model"
        )
    if texts is not None:
        if (
            not isinstance(texts, list)
            or not texts
            or not all(isinstance(t, str) and t for t in texts)
        ):
            raise InputError("texts must be a non-empty list of non-empty strings")
        texts = texts[:pairs]
        old = np.asarray(
            collection.model.encode(
                texts, prompt="document", dim=collection.meta.dim, show_progress=show_progress
            ),
            dtype=np.float32,
        )
    else:
        texts, old, _ = _sample(collection, pairs, seed)
    new = _encode(model, texts, show_progress)
    queries = {}
    if adapter in (
        "contrastive",
        AUTO,
    ):  # the new model's vectors of sentences cut from the same items
        vectors, owners = pseudo_query_vectors(model, texts, show_progress=show_progress)
        queries = {"queries": vectors, "owners": owners}
    fitted = fit_adapter(
        new,
        old,
        adapter,
        **queries,
        new_fingerprint=model.fingerprint,
        old_fingerprint=collection.meta.fingerprint,
        seed=seed,
        show_progress=show_progress,
    )
    version = (state.adapter_version or 0) + 1 if state is not None else 1
    fitted.save(upgrade_dir(collection.path), f"adapter-v{version}")
    write_state(
        collection.path,
        UpgradeState(
            target_model=lasting_reference(target or model.source or model.name),
            target_name=model.name,
            target_fingerprint=model.fingerprint,
            target_dim=int(new.shape[1]),
            old_fingerprint=collection.meta.fingerprint,
            adapter_version=version,
            adapter_kind=fitted.card.kind,
        ),
    )
    return fitted.card


def plan(
    collection, model, *, sample: int = 1000, seed: int = 0, show_progress: bool = False
) -> dict:
    """What an upgrade to `model` would cost and how compatible it looks, from a sample:
    {items, items with text, sample, new model texts/s, backfill hours, bytes per vector old/new,
    compatibility: per adapter kind the sample allows, its held-out cosine and held-out MRR (as
    `fit` measures them: the held-out items' vectors and sentences, mapped, must find the item's
    stored vector among the sample's), the raw new vectors' when the dims agree, and the kind
    `fit --adapter auto` would keep}."""
    check_upgradable(collection, model)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 2:
        raise InputError(f"sample must be an integer >= 2, got {sample!r}")
    texts, old, with_text = _sample(collection, sample, seed)
    started = time.perf_counter()
    new = _encode(model, texts, show_progress)
    rate = len(texts) / max(time.perf_counter() - started, 1e-9)
    report = {
        "collection": str(collection.path),
        "items": len(collection),
        "items with text": with_text,
        "sample": len(texts),
        "new model": model.name,
        "new model texts/s (this machine)": round(rate, 1),
        "backfill hours (one process)": round(with_text / rate / 3600, 3),
        "bytes per vector old/new": f"{old.shape[1] * 4}/{new.shape[1] * 4}",
        "compatibility": {},
    }
    _, held, _ = held_out_split(len(texts), seed)  # the rows fit_adapter measures on
    if len(held) == 0:
        report["compatibility"]["note"] = (
            "too few items with text to hold any out (10 or more needed)"
        )
        return report
    queries, owners = pseudo_query_vectors(model, texts, show_progress=show_progress)
    if new.shape[1] == old.shape[1]:
        report["compatibility"]["raw (no adapter)"] = _raw_agreement(
            new, old, queries, owners, held
        )
    fitted = {}
    for kind in KINDS:
        try:
            fitted[kind] = fit_adapter(
                new,
                old,
                kind,
                queries=queries,
                owners=owners,
                new_fingerprint=model.fingerprint,
                old_fingerprint=collection.meta.fingerprint,
                seed=seed,
            )
        except InputError as exc:
            report["compatibility"][kind] = {"note": str(exc)}
            continue
        card = fitted[kind].card
        report["compatibility"][kind] = {
            "held-out cosine": card.holdout_cosine,
            "held-out MRR": card.settings["held_out_mrr"],
        }
    report["compatibility"]["auto would keep"] = choose_by_held_out(fitted)
    return report


def _raw_agreement(
    new: np.ndarray, old: np.ndarray, queries: np.ndarray, owners: np.ndarray, held: np.ndarray
) -> dict:
    """The held-out measures of the new model's vectors as they are, against the stored ones."""
    new, old, queries = (unit_rows(x.astype(np.float64)) for x in (new, old, queries))
    held_queries, held_owners = with_own(new, queries, owners, held)
    return {
        "held-out cosine": round(float(np.mean(np.sum(new[held] * old[held], axis=1))), 4),
        "held-out MRR": round(mean_reciprocal_rank(held_queries, held_owners, old), 4),
    }


def cancel(collection) -> None:
    """Drop the upgrade in progress (adapters, backfilled vectors); the collection is untouched."""
    from uniembed.upgrade.backfill import LOCK_FILE

    folder = upgrade_dir(collection.path)
    if not folder.is_dir():
        raise NotFoundError(f"no upgrade in progress for {collection.path}")
    try:
        with WriterLock(folder / LOCK_FILE):
            doomed = folder.with_name(f".{folder.name}-cancelled-{time.time_ns()}")
            folder.rename(
                doomed
            )  # gone from its name at once: a crash mid-delete leaves no half upgrade
    except CollectionLockedError:
        raise ConflictError(
            f"a backfill of {collection.path} is running: stop it before cancelling"
        ) from None
    shutil.rmtree(doomed, ignore_errors=True)
