"""A collection that lives in Milvus: `Collection.create("milvus://host:19530/docs")`.

The same API as a folder collection for dense search (add, upsert, delete, get, search with
filters; the same Hit and Item objects and errors), with Milvus as the store and the search
engine, through pymilvus' `MilvusClient`. Written for, and tested against, a Milvus 2.3.5 server
(the newest installable from PyPI); newer clusters were not tested.

Layout: one Milvus collection `uniembed_<name>` per uniembed collection, fields `id` (VARCHAR,
primary key), `text`, `payload` (the payload JSON as given), `vec` (FLOAT_VECTOR, or
BINARY_VECTOR for quantize="binary", whose float vectors are kept as base64 in `vec_f32` to rescore
the candidates exactly); payload values to filter on are dynamic fields `p_<key>`. One shared
collection `uniembed_meta` keeps each collection's settings, payload field types and version.

Indexes (index, quantize): exact+none (FLAT), hnsw+none (HNSW), ivf+none (IVF_FLAT), exact+binary
(BIN_FLAT), ivf+binary (BIN_IVF_FLAT); inner product for floats, Hamming for bits.
Filters become a Milvus boolean expression: field names are checked identifiers and every value is
written as a JSON literal (Milvus 2.3 has no bound parameters for expressions).
Consistency: "session" by default (this process reads its own writes at once; other processes'
writes within Milvus' bounded staleness, 5 s by default), "strong" (every read sees every
acknowledged write: each waits for the server's next time tick, 200 ms by default) or "bounded"
(Milvus' own default).

What Milvus 2.3 lacks, refused with a clear error: text and hybrid search (no full-text search),
more than one vector field, transactions (a write is acknowledged when Milvus has it; an add split
into several requests, over REQUEST_BYTES, is not atomic; concurrent writers are not serialised,
so the version counts writes only approximately), multi-vector and image collections.
"""

from __future__ import annotations

import base64
import contextlib
import json

import numpy as np

from uniembed.encoders.base import Encoder
from uniembed.errors import ConflictError, InputError, NotFoundError, StoreUnavailableError
from uniembed.store.collection import load_model, model_name, refuse_parts, vector_dim
from uniembed.store.meta import CollectionMeta
from uniembed.store.milvus_client import (
    CONSISTENCY,
    DEFAULT_PARAMS,
    INDEXES,
    MAX_TOPK,
    MAX_VARCHAR,
    META,
    PREFIX,
    batches,
    call_milvus,
    check_params,
    check_search_params,
    compile_filter,
    connect,
    create_tables,
    floats,
    index_search_params,
    literal,
    meta_row,
    parse_url,
    payload_of,
)
from uniembed.store.remote import RemoteCollection
from uniembed.store.rows import (
    check_ids,
    check_payloads,
    check_vector_fields,
    dump_payloads,
    payload_types,
    vectors_and_texts,
)
from uniembed.types import CollectionInfo, Hit, Item


class MilvusCollection(RemoteCollection):
    """One collection in a Milvus server (see the module docstring)."""

    backend_name = "milvus"
    home = "milvus"
    features = frozenset()
    parse_url = staticmethod(parse_url)  # (checks a URL without connecting)

    def __init__(
        self,
        url: str,
        meta: CollectionMeta,
        model: Encoder | None,
        consistency: str = "session",
        search_params: dict | None = None,
    ):
        uri, token, self.name, self.path = parse_url(url)
        if consistency not in CONSISTENCY:
            raise InputError(
                f"consistency must be one of {sorted(CONSISTENCY)}, got {consistency!r}"
            )
        self.meta = meta
        self.consistency = CONSISTENCY[consistency]
        self.collection = PREFIX + self.name
        self._model = model
        self._client = connect(uri, token, self.path)
        self._index = INDEXES[(meta.index, meta.quantize)]
        self.search_params = {
            **DEFAULT_PARAMS[self._index],
            **meta.index_params,
            **check_search_params(self._index, search_params),
        }
        self._fields: dict[str, str] | None = (
            None  # payload field types, remembered until a write or an unknown field
        )

    # -- creating and opening ----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        url: str,
        *,
        model: str | Encoder | None = "default",
        dim: int | None = None,
        fields: list[str] | None = None,
        index: str = "exact",
        quantize: str = "none",
        index_params: dict | None = None,
        consistency: str = "session",
        **unsupported,
    ) -> MilvusCollection:
        refuse_parts(cls, unsupported)
        uri, token, name, shown = parse_url(url)
        if (index, quantize) not in INDEXES:
            choices = ", ".join(f"{i}+{q}" for i, q in INDEXES)
            raise InputError(
                f"index {index!r} with quantize {quantize!r} is not supported by the milvus backend "
                f"(Milvus 2.3); choose one of: {choices}"
            )
        if fields is not None and len(fields) != 1:
            raise InputError(
                f"the milvus backend keeps one vector field per collection (Milvus 2.3), got {fields}"
            )
        kind = INDEXES[(index, quantize)]
        params = check_params(kind, index_params)
        encoder = load_model(model)
        dims = vector_dim(encoder, dim)
        if quantize == "binary" and dims % 8:
            raise InputError(
                f"quantize='binary' needs a dimension divisible by 8 (Milvus packs bits in bytes), got {dims}"
            )
        field = check_vector_fields(fields)[0]
        meta = CollectionMeta(
            model=model_name(model, encoder),
            fingerprint=encoder.fingerprint if encoder else None,
            fields={field: dims},
            index=index,
            index_params=params,
            quantize=quantize,
            dim=dim if encoder else None,
            backend="milvus",
        )
        client = connect(uri, token, shown)
        call_milvus(shown, lambda: create_tables(client, name, meta))
        return cls(url, meta, encoder, consistency)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        model: Encoder | None = None,
        consistency: str = "session",
        search_params: dict | None = None,
    ) -> MilvusCollection:
        """Open a collection; `search_params` ({"ef_search", "nprobe", "rescore"}, as the index has
        them) tunes this opener's searches without rebuilding anything."""
        uri, token, name, shown = parse_url(url)
        client = connect(uri, token, shown)
        row = call_milvus(shown, lambda: meta_row(client, name))
        if row is None:
            raise NotFoundError(f"no collection {name!r} in {shown.rsplit('/', 1)[0]}")
        meta = CollectionMeta(
            **{k: v for k, v in json.loads(row["meta"]).items() if k != "payload_fields"}
        )
        collection = cls(url, meta, None, consistency, search_params)
        if model is not None:
            collection.check_model(model)
            collection._model = model
        return collection

    def drop(self) -> None:
        def work():
            self._client.drop_collection(self.collection)
            self._client.delete(META, filter=f"name == {literal(self.name)}")

        self._call(work)

    # -- writing ------------------------------------------------------------------------------
    def delete(self, ids) -> int:
        """Remove items by id (unknown ids are ignored). Returns the version."""
        ids = check_ids(ids)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            self._call(self._client.delete, self.collection, filter=f"id in {literal(chunk)}")
        return self._bump()

    def _write(self, mode: str, ids, data, payloads, texts, images) -> int:
        if images is not None:
            raise InputError(
                "images= needs an image collection; the milvus backend keeps no images"
            )
        ids = check_ids(ids)
        payloads = check_payloads(payloads, len(ids))
        payload_json = dump_payloads(payloads)
        vectors, kept_texts = vectors_and_texts(self.meta.fields, ids, data, texts, self._encode)
        for what, values in (("text", kept_texts), ("payload", payload_json)):
            big = next(
                (
                    i
                    for i, v in enumerate(values)
                    if v is not None and len(v.encode()) > MAX_VARCHAR
                ),
                None,
            )
            if big is not None:
                raise InputError(
                    f"{what} {big} is {len(values[big].encode())} bytes; Milvus keeps at most {MAX_VARCHAR} per field"
                )
        row = self._call(lambda: meta_row(self._client, self.name))
        if row is None:
            raise NotFoundError(f"collection {self.path} no longer exists (dropped)")
        known = json.loads(row["meta"]).get("payload_fields", {})
        if mode == "insert":
            present = self._present(ids)
            if present:
                raise ConflictError(
                    f"{len(present)} id(s) already in the collection, e.g. {sorted(present)[:5]}; use upsert"
                )
        types = payload_types(payloads, known)
        if (
            types != known
        ):  # the field types first: a crash after this leaves a known field with no rows, harmless
            self._save_meta(types, row["version"])
            row = None  # _bump reads the new meta
        rows = self._rows(
            ids, vectors[self.meta.default_field], kept_texts, payloads, payload_json, types
        )
        send = self._client.insert if mode == "insert" else self._client.upsert
        for batch in batches(rows):
            self._call(send, self.collection, batch)
        self._fields = None
        return self._bump(row)

    def _rows(
        self, ids, vectors: np.ndarray, texts, payloads, payload_json, types: dict[str, str]
    ) -> list[dict]:
        binary = self.meta.quantize == "binary"
        rows = []
        for i, id_ in enumerate(ids):
            row = {
                "id": id_,
                "text": texts[i] or "",
                "has_text": texts[i] is not None,
                "payload": payload_json[i],
            }
            if binary:
                row["vec"] = np.packbits(vectors[i] > 0).tobytes()
                row["vec_f32"] = base64.b64encode(vectors[i].astype("<f4").tobytes()).decode()
            else:
                row["vec"] = vectors[i].tolist()
            for key, value in payloads[i].items():
                if key in types and value is not None:
                    row["p_" + key] = float(value) if types[key] == "float" else value
            rows.append(row)
        return rows

    def _present(self, ids: list[str]) -> set[str]:
        found = set()
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            result = self._call(
                self._client.query,
                self.collection,
                filter=f"id in {literal(chunk)}",
                output_fields=["id"],
                consistency_level="Strong",
            )
            found.update(r["id"] for r in result)
        return found

    def _save_meta(self, types: dict[str, str], version: int) -> None:
        import dataclasses

        meta = {**dataclasses.asdict(self.meta), "payload_fields": types}
        self._call(
            lambda: self._client.upsert(
                META,
                [
                    {
                        "name": self.name,
                        "meta": json.dumps(meta),
                        "version": version,
                        "vec": [0.0, 0.0],
                    }
                ],
            )
        )

    def _bump(self, row: dict | None = None) -> int:
        """Count a write in the meta row (read again unless the caller just read it)."""
        if row is None:
            row = self._call(lambda: meta_row(self._client, self.name))
        if row is None:
            raise NotFoundError(f"collection {self.path} no longer exists (dropped)")
        version = int(row["version"]) + 1
        self._call(
            lambda: self._client.upsert(
                META,
                [{"name": self.name, "meta": row["meta"], "version": version, "vec": [0.0, 0.0]}],
            )
        )
        return version

    # -- reading ------------------------------------------------------------------------------
    def get(self, ids) -> list[Item | None]:
        ids = check_ids(ids)
        vector_field = "vec_f32" if self.meta.quantize == "binary" else "vec"
        found = {}
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            rows = self._call(
                self._client.query,
                self.collection,
                filter=f"id in {literal(chunk)}",
                output_fields=["id", "text", "has_text", "payload", vector_field],
                consistency_level=self.consistency,
            )
            for row in rows:
                vector = (
                    floats(row[vector_field])
                    if vector_field == "vec_f32"
                    else np.asarray(row["vec"], np.float32)
                )
                found[row["id"]] = Item(
                    row["id"],
                    row["text"] if row["has_text"] else None,
                    json.loads(row["payload"]) if row["payload"] else {},
                    {self.meta.default_field: vector},
                )
        return [found.get(id_) for id_ in ids]

    def search(
        self,
        query=None,
        k: int = 10,
        *,
        filter=None,
        field: str | None = None,
        mode: str = "dense",
        query_vector: np.ndarray | None = None,
        image=None,
        image_weight: float = 0.5,
        **multivector,
    ) -> list[Hit]:
        """The k best items for a text or a vector (dense mode only: Milvus 2.3 has no text search)."""
        field, k = self._check_search(query, k, mode, field, image, multivector)
        if k > MAX_TOPK:
            raise InputError(f"k={k} is over {MAX_TOPK}, the most hits one Milvus search returns")
        if mode != "dense":
            raise InputError(
                f"mode {mode!r} is not supported by the milvus backend (Milvus 2.3 has no full-text "
                "search); use mode='dense', or a folder or postgresql collection"
            )
        expression = compile_filter(self._conditions(filter)) if filter else ""
        vector = self._query_vector(query if query_vector is None else query_vector, field)
        params = self.search_params
        if self.meta.quantize == "binary":
            return self._binary_hits(vector, k, expression, params)
        search_params = {"metric_type": "IP", "params": index_search_params(self._index, params, k)}
        result = self._call(
            lambda: self._client.search(
                self.collection,
                data=[vector.tolist()],
                anns_field="vec",
                limit=k,
                filter=expression,
                search_params=search_params,
                output_fields=["payload"],
                consistency_level=self.consistency,
            )
        )
        return [
            Hit(hit["id"], float(hit["distance"]), payload_of(hit["entity"])) for hit in result[0]
        ]

    def _binary_hits(self, vector: np.ndarray, k: int, expression: str, params: dict) -> list[Hit]:
        """Hamming candidates from the bit index, rescored by the stored float vectors."""
        candidates = min(MAX_TOPK, k * params["rescore"])
        search_params = {
            "metric_type": "HAMMING",
            "params": index_search_params(self._index, params, candidates),
        }
        result = self._call(
            lambda: self._client.search(
                self.collection,
                data=[np.packbits(vector > 0).tobytes()],
                anns_field="vec",
                limit=candidates,
                filter=expression,
                search_params=search_params,
                output_fields=["payload", "vec_f32"],
                consistency_level=self.consistency,
            )
        )
        hits = [
            (float(floats(h["entity"]["vec_f32"]) @ vector), h["id"], h["entity"])
            for h in result[0]
        ]
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        return [Hit(id_, score, payload_of(entity)) for score, id_, entity in hits[:k]]

    # -- facts ---------------------------------------------------------------------------------------
    def _read_payload_fields(self) -> dict[str, str]:
        return self.payload_fields

    @property
    def payload_fields(self) -> dict[str, str]:
        row = self._call(lambda: meta_row(self._client, self.name))
        if row is None:
            raise NotFoundError(f"collection {self.path} no longer exists (dropped)")
        return dict(json.loads(row["meta"]).get("payload_fields", {}))

    @property
    def version(self) -> int:
        row = self._call(lambda: meta_row(self._client, self.name))
        if row is None:
            raise NotFoundError(f"collection {self.path} no longer exists (dropped)")
        return int(row["version"])

    def __len__(self) -> int:
        result = self._call(
            lambda: self._client.query(
                self.collection,
                filter="",
                output_fields=["count(*)"],
                consistency_level=self.consistency,
            )
        )
        return int(result[0]["count(*)"])

    def bulk_load(self):
        """`with col.bulk_load(): col.add(...)`: the same loop on every home; Milvus needs nothing
        special (it indexes each segment as it seals; wait_for_index() waits for the last)."""
        return contextlib.nullcontext(self)

    def rebuild(self) -> int:
        """Flush and compact the collection's segments (drops deleted rows), then wait until the
        index covers every row."""
        self._call(lambda: self._client.flush(self.collection))
        self._call(lambda: self._client.compact(self.collection))
        self.wait_for_index()
        return self.version

    def wait_for_index(self, timeout_s: float = 600.0) -> None:
        """Seal the growing segments (flush) and wait until Milvus has indexed every row: until
        then it searches the unindexed rows by brute force, which is exact but slow."""
        import time

        self._call(lambda: self._client.flush(self.collection))
        deadline = time.monotonic() + timeout_s
        while True:
            index = self._call(lambda: self._client.describe_index(self.collection, "vec"))
            if int(index.get("pending_index_rows", 0)) == 0 and int(
                index.get("indexed_rows", 0)
            ) >= int(index.get("total_rows", 0)):
                return
            if time.monotonic() > deadline:
                raise StoreUnavailableError(
                    f"Milvus at {self.path} did not finish indexing within {timeout_s:g} s "
                    f"({index.get('indexed_rows')} of {index.get('total_rows')} rows)"
                )
            time.sleep(0.5)

    def info(self) -> CollectionInfo:
        dim = self.meta.fields[self.meta.default_field]
        count = len(self)
        first_stage = dim / 8 if self.meta.quantize == "binary" else 4 * dim
        return CollectionInfo(
            path=self.path,
            count=count,
            model=self.meta.model,
            fingerprint=self.meta.fingerprint,
            fields=dict(self.meta.fields),
            index=self.meta.index,
            quantize=self.meta.quantize,
            index_params=dict(self.meta.index_params),
            bytes_per_vector=float(first_stage) if count else float("nan"),
            disk_bytes=0,
            version=self.version,
            payload_fields=self.payload_fields,
        )

    def _call(self, work, *args, **kwargs):
        return call_milvus(self.path, work, *args, **kwargs)
