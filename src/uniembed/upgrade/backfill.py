"""Backfill: re-embed every item of a collection with the upgrade's target model, in the background.

The new vectors go to a table of their own (<collection>/upgrade/next, LanceDB): id, the SHA-256
of the text they were made from, the target's fingerprint, the vector. Each batch is one atomic
commit there, so a SIGKILL loses at most the batch in flight and a rerun starts where it stopped:
an item is done when `next` holds a vector of the target fingerprint for its current text (an
item whose text changed since is done again; one deleted since is ignored). The collection's own
rows are never touched, so searches meanwhile neither fail nor see half-written rows. One
backfill at a time (a lock file); writers and searchers of the collection are not blocked.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from uniembed.errors import CollectionLockedError, ConflictError, InputError, NotFoundError
from uniembed.store.lock import WriterLock
from uniembed.store.upgrade_state import UpgradeState, read_state, upgrade_dir

NEXT_DIR = "next"
NEXT_TABLE = "vectors"
LOCK_FILE = "backfill.lock"


@dataclass
class UpgradeStatus:
    target: str
    target_fingerprint: str
    adapter: str | None  # "procrustes (v2)", or None before `fit`
    items: int  # in the collection now
    done: int  # with a vector from the target model for their current text
    remaining: int

    @property
    def complete(self) -> bool:
        return self.remaining == 0


def text_digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def _next_table(collection_path: Path, dim: int | None = None):
    """The backfill's table; created (empty) when `dim` is given and it does not exist yet."""
    import lancedb

    db = lancedb.connect(str(upgrade_dir(collection_path) / NEXT_DIR))
    if NEXT_TABLE in db.list_tables().tables:  # (a first page; the folder holds this one table)
        return db.open_table(NEXT_TABLE)
    if dim is None:
        return None
    schema = pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text_sha", pa.string()),
            pa.field("fingerprint", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )
    return db.create_table(NEXT_TABLE, schema=schema)


def _done_digests(collection_path: Path, fingerprint: str) -> dict[str, str]:
    """id -> text digest of every backfilled vector made by `fingerprint`."""
    table = _next_table(collection_path)
    if table is None:
        return {}
    rows = table.search().select(["id", "text_sha", "fingerprint"]).limit(None).to_arrow()
    keep = pa.compute.equal(rows.column("fingerprint"), fingerprint)
    rows = rows.filter(keep)
    return dict(zip(rows.column("id").to_pylist(), rows.column("text_sha").to_pylist()))


def _todo(collection, state: UpgradeState) -> tuple[list[str], list[str], int]:
    """(ids, texts) still to re-embed, and how many items the collection holds."""
    from uniembed.store.backend import ID, TEXT

    rows = collection.backend.scan([ID, TEXT])
    ids, texts = rows.column(ID).to_pylist(), rows.column(TEXT).to_pylist()
    done = _done_digests(collection.path, state.target_fingerprint)
    todo = [(i, t) for i, t in zip(ids, texts) if done.get(i) != text_digest(t)]
    return [i for i, _ in todo], [t for _, t in todo], len(ids)


def upgrade_status(collection) -> UpgradeStatus:
    state = _state(collection)
    collection.version  # noqa: B018  (moves the reader to the latest commit)
    todo, _, items = _todo(collection, state)
    adapter = (
        None
        if state.adapter_version is None
        else f"{state.adapter_kind} (v{state.adapter_version})"
    )
    return UpgradeStatus(
        state.target_name, state.target_fingerprint, adapter, items, items - len(todo), len(todo)
    )


def backfill(
    collection,
    model,
    *,
    batch_rows: int = 256,
    show_progress: bool = True,
    stop_after_batches: int | None = None,
) -> UpgradeStatus:
    """Re-embed what is left with `model` (the upgrade's target); returns the status at the end.
    stop_after_batches: stop early (tests, or a bounded run from a scheduler); a rerun goes on."""
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InputError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    state = _state(collection)
    if model.fingerprint != state.target_fingerprint:
        raise InputError(
            f"backfill with {model.name} (fingerprint {model.fingerprint[:12]}), but the upgrade was "
            f"planned for {state.target_name} (fingerprint {state.target_fingerprint[:12]}): use that "
            "model, or fit an adapter for this one first"
        )
    busy = f"another backfill of {collection.path} is running (pid {{holder}}); one at a time"
    with backfill_lock(collection.path, busy):
        collection.version  # noqa: B018
        ids, texts, _ = _todo(collection, state)
        textless = [i for i, t in zip(ids, texts) if not t]
        if textless:
            raise InputError(
                f"{len(textless)} item(s) of {collection.path} keep no text, so the new model cannot "
                f"re-embed them (e.g. {textless[:5]}): upsert them with their text, or delete them"
            )
        table = _next_table(collection.path, state.target_dim)
        from tqdm.auto import tqdm

        with tqdm(total=len(ids), desc="backfill", unit="items", disable=not show_progress) as bar:
            for batch, start in enumerate(range(0, len(ids), batch_rows)):
                if stop_after_batches is not None and batch >= stop_after_batches:
                    break
                chunk_ids, chunk_texts = (
                    ids[start : start + batch_rows],
                    texts[start : start + batch_rows],
                )
                vectors = np.asarray(
                    model.encode(chunk_texts, prompt="document", show_progress=False),
                    dtype=np.float32,
                )
                rows = pa.table(
                    {
                        "id": chunk_ids,
                        "text_sha": [text_digest(t) for t in chunk_texts],
                        "fingerprint": [state.target_fingerprint] * len(chunk_ids),
                        "vector": pa.FixedSizeListArray.from_arrays(
                            vectors.reshape(-1), state.target_dim
                        ),
                    },
                    schema=table.schema,
                )
                # one commit: an item backfilled before (its text changed) is replaced, others added
                table.merge_insert(
                    "id"
                ).when_matched_update_all().when_not_matched_insert_all().execute(rows)
                bar.update(len(chunk_ids))
    return upgrade_status(collection)


@contextmanager
def backfill_lock(collection_path: Path, busy: str):
    """The lock that lets one backfill (or a finish) work on a collection's upgrade at a time;
    ConflictError(`busy`, its `{holder}` the pid holding it) when another has it."""
    path = upgrade_dir(collection_path) / LOCK_FILE
    with ExitStack() as held:
        try:
            held.enter_context(WriterLock(path))
        except CollectionLockedError:
            holder = path.read_text().strip() if path.is_file() else ""
            raise ConflictError(busy.replace("{holder}", holder or "unknown")) from None
        yield


def next_vectors(collection_path: Path, ids: list[str], fingerprint: str) -> np.ndarray:
    """The backfilled vectors of `ids`, in that order (every id must have one)."""
    table = _next_table(collection_path)
    rows = table.search().select(["id", "fingerprint", "vector"]).limit(None).to_arrow()
    rows = rows.filter(pa.compute.equal(rows.column("fingerprint"), fingerprint))
    position = {id_: i for i, id_ in enumerate(rows.column("id").to_pylist())}
    flat = rows.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = flat.reshape(len(rows), -1)
    return np.stack([vectors[position[id_]] for id_ in ids]) if ids else vectors[:0]


def _state(collection) -> UpgradeState:
    state = read_state(collection.path)
    if state is None:
        raise NotFoundError(
            f"no upgrade in progress for {collection.path}: start one with `uniembed upgrade fit`"
        )
    return state
