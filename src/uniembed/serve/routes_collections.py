"""The collections API: a thin HTTP shell over uniembed.Collection (same checks, same errors).

    GET    /v1/collections                          list
    POST   /v1/collections                          create {name, index, quantize, ...}
    GET    /v1/collections/{name}                   info
    DELETE /v1/collections/{name}                   drop
    POST   /v1/collections/{name}/items             add (or upsert) items {items: [{id, text, vector, image, payload}]}
    POST   /v1/collections/{name}/items/delete      delete items {ids: [...]}
    GET    /v1/collections/{name}/items/{id}        one item
    POST   /v1/collections/{name}/search            {query | vector | image (+ query), k, filter, mode, field}
    GET    /v1/collections/{name}/map               a 2D projection of a sample (uniembed/projection.py), for the page

Images travel as data URIs or bare base64, never as URLs or paths (see serve.images).

Every call runs on the service's own collection thread pool (so slow searches never starve the
tokenising of embedding requests), under the collection's readers-writer lock: searches and reads
in parallel, writes alone (see serve.collections). Text queries of collections made by the served
model are encoded through the micro-batcher, with its queue limit and 429s, like /v1/embeddings.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from uniembed.errors import MissingExtraError
from uniembed.projection import MAX_POINTS, MAX_POINTS_LIMIT, METHODS
from uniembed.serve.api_errors import ApiError
from uniembed.serve.disconnect import CLIENT_CLOSED, ClientGone, unless_client_gone
from uniembed.serve.openapi import ERROR_RESPONSES, JsonInt
from uniembed.serve.routes_embeddings import embed_through_batcher

Number = StrictFloat | StrictInt
PayloadValue = StrictStr | StrictInt | StrictFloat | StrictBool | None
FilterRule = PayloadValue | dict[str, PayloadValue | list[PayloadValue]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class FdeParams(Strict):
    repetitions: JsonInt = Field(20, ge=1, le=256)
    k_sim: JsonInt = Field(5, ge=0, le=12)
    d_proj: JsonInt | None = Field(16, ge=1, le=4096)
    final_dim: JsonInt | None = Field(None, ge=1, le=1_000_000)
    seed: JsonInt = 42


class CreateCollection(Strict):
    name: str = Field(
        description="1-64 letters, digits, '_' or '-', starting with a letter or digit"
    )
    index: Literal["exact", "hnsw", "ivfpq"] = "exact"
    quantize: Literal["none", "binary", "int8"] = "none"
    index_params: dict[str, StrictInt | StrictFloat | StrictStr] | None = None
    fields: list[str] | None = Field(None, min_length=1, max_length=16)
    dim: JsonInt | None = Field(
        None,
        ge=1,
        le=65536,
        description="vectors-only: their dimension; with the model: Matryoshka truncation",
    )
    vectors_only: StrictBool = False
    multivector: Literal["muvera"] | None = Field(
        None, description="keep token vectors and their MUVERA FDE"
    )
    fde: FdeParams | None = None
    token_storage: Literal["float16", "int8"] = "float16"
    images: Literal["bytes"] | None = Field(
        None,
        description="keep each item's image (needs an image model); "
        "path-reference collections are made with the CLI only",
    )
    max_image_bytes: JsonInt | None = Field(None, ge=1, le=1 << 30)
    relative_anchors: list[Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        None,
        min_length=2,
        max_length=10_000,
        description="store each vector as its cosines to these anchor texts: "
        "any later model that embeds them searches the collection with no adapter",
    )


class ItemIn(Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str | None = None
    image: str | None = Field(
        None,
        min_length=1,
        description="image collections: a data URI or base64 "
        "(embedded unless the item brings its vector; the text is then its caption)",
    )
    vector: list[Number] | None = Field(None, min_length=1)
    vectors: dict[str, list[Number]] | None = None
    tokens: list[list[Number]] | None = Field(
        None, description="multi-vector collections: one vector per token"
    )
    payload: dict[str, JsonValue] | None = Field(
        None,
        description="any JSON object; scalar values of "
        "identifier keys become filterable fields, nested ones are kept",
    )


class WriteItems(Strict):
    items: list[ItemIn] = Field(min_length=1)
    upsert: StrictBool = False


class DeleteItems(Strict):
    ids: list[str] = Field(min_length=1)


class SearchRequest(Strict):
    query: str | None = Field(None, min_length=1)
    image: str | None = Field(
        None,
        min_length=1,
        description="search by an image (data URI or base64), "
        "alone or with query (fused with image_weight)",
    )
    image_weight: float = Field(0.5, ge=0, le=1)
    vector: list[Number] | None = Field(None, min_length=1)
    k: JsonInt = Field(10, ge=1, le=10_000)
    filter: str | dict[str, FilterRule] | None = None
    mode: Literal["dense", "text", "hybrid"] = "dense"
    field: str | None = None
    tokens: list[list[Number]] | None = Field(
        None, description="multi-vector collections: query token vectors"
    )
    first_stage: Literal["fde", "exact", "tokens"] | None = None
    candidates: JsonInt | None = Field(None, ge=1, le=100_000)
    token_hits: JsonInt | None = Field(None, ge=1, le=10_000)
    with_items: StrictBool = Field(
        False, description="also return each hit's text and image (a data URI)"
    )


class HitOut(BaseModel):
    id: str
    score: float
    payload: dict
    text: str | None = None
    image: str | None = None
    image_path: str | None = None


class SearchResponse(BaseModel):
    hits: list[HitOut]


class WriteResponse(BaseModel):
    version: int
    count: int


def collection_routes(state):
    from fastapi import APIRouter

    registry = state.collections
    settings = state.settings
    router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)

    async def in_pool(call):
        """`call()` on the collection pool; 429 at once when `max_collection_queue` calls are
        already waiting or running (the pool's own queue is unbounded)."""
        with state.collection_admission() as admitted:
            if not admitted:
                raise ApiError(
                    429,
                    f"{settings.max_collection_queue} collection requests are already in progress; "
                    "retry later",
                    code="queue_full",
                    headers={"Retry-After": "1"},
                )
            return await asyncio.get_running_loop().run_in_executor(state.collection_pool, call)

    async def run(name: str, work, *, write: bool = False):
        """`work(collection)` on the collection pool, under the name's read (or write) lock."""

        def locked():
            with registry.writing(name) if write else registry.reading(name) as collection:
                return work(collection)

        return await in_pool(locked)

    async def batched_query_vector(name: str, request: SearchRequest):
        """The text query's vector from the batcher, when the served model made the collection;
        None otherwise (the collection then encodes it itself)."""
        served = state.model
        if (
            request.query is None
            or request.image is not None
            or request.mode == "text"
            or served is None
        ):
            return None

        def facts(collection):  # (meta, the anchors' vectors of a relative collection), or None
            if (
                collection.multivector is not None
                or collection.meta.fingerprint != served.encoder.fingerprint
            ):
                return None
            anchors = (
                collection.model.anchor_vectors()
                if collection.relative_anchors is not None
                else None
            )
            return collection.meta, anchors

        known = await run(name, facts)
        if known is None:
            return None
        meta, anchors = known
        vectors, _ = await embed_through_batcher(
            state, [request.query], prompt="query", dimensions=meta.dim
        )
        if anchors is not None:  # the collection stores cosines to its anchors: the query too
            from uniembed.spaces.relative import relative_vectors

            return relative_vectors(vectors[:1], anchors)[0]
        return vectors[0]

    @router.get("")
    async def list_collections():
        return {"collections": await in_pool(registry.names)}

    @router.post("", status_code=201)
    async def create_collection(request: CreateCollection):
        def create():
            images = (
                {"images": request.images, "max_image_bytes": request.max_image_bytes}
                if request.images
                else {}
            )
            if request.max_image_bytes is not None and not request.images:
                raise ApiError(
                    400,
                    "max_image_bytes belongs to image collections (images: bytes)",
                    param="max_image_bytes",
                )
            relative = (
                {"relative_anchors": request.relative_anchors}
                if request.relative_anchors is not None
                else {}
            )
            return registry.create(
                request.name,
                index=request.index,
                quantize=request.quantize,
                dim=request.dim,
                vectors_only=request.vectors_only,
                fields=request.fields,
                index_params=request.index_params,
                describe=lambda c: _info(request.name, c),
                **_multivector_options(request),
                **images,
                **relative,
            )

        return await in_pool(create)

    @router.get("/{name}")
    async def collection_info(name: str):
        return await run(name, lambda c: _info(name, c))

    @router.delete("/{name}")
    async def drop_collection(name: str):
        await in_pool(lambda: registry.drop(name))
        state.projections.forget(
            name
        )  # a collection made again under this name starts at version 1 again
        return {"name": name, "deleted": True}

    @router.post("/{name}/items", response_model=WriteResponse)
    async def write_items(name: str, request: WriteItems):
        if len(request.items) > settings.max_inputs:
            raise ApiError(
                413,
                f"{len(request.items)} items, over the limit of {settings.max_inputs} per request",
                param="items",
                code="too_many_items",
            )

        def write(collection):
            ids = [item.id for item in request.items]
            payloads = [item.payload or {} for item in request.items]
            method = collection.upsert if request.upsert else collection.add
            if any(item.image is not None for item in request.items):
                images = _request_images(request.items, state.image_limits)
                with_vectors = any(
                    item.vector is not None or item.vectors is not None for item in request.items
                )
                data = _data_and_texts(request.items, collection)[0] if with_vectors else None
                version = method(
                    ids,
                    data,
                    payloads=payloads,
                    texts=[item.text for item in request.items],
                    images=images,
                )
            else:
                data, texts = _data_and_texts(request.items, collection)
                version = method(ids, data, payloads=payloads, texts=texts)
            return {"version": version, "count": len(ids)}

        return await run(name, write, write=True)

    @router.post("/{name}/items/delete", response_model=WriteResponse)
    async def delete_items(name: str, request: DeleteItems):
        return await run(
            name,
            lambda c: {"version": c.delete(request.ids), "count": len(request.ids)},
            write=True,
        )

    @router.get("/{name}/items/{item_id:path}")  # ids may hold "/" (they are added in a JSON body)
    async def get_item(name: str, item_id: str):
        item = (await run(name, lambda c: c.get([item_id])))[0]
        if item is None:
            raise ApiError(
                404,
                f"no item {item_id!r} in collection {name!r}",
                param="id",
                code="item_not_found",
            )
        out = {
            "id": item.id,
            "text": item.text,
            "payload": item.payload,
            "vectors": {field: vector.tolist() for field, vector in item.vectors.items()},
        }
        out.update(_item_media(item))
        if item.tokens is not None:
            out["tokens"] = item.tokens.tolist()
        return out

    @router.post("/{name}/search", response_model=SearchResponse)
    async def search(name: str, request: SearchRequest, http: Request):
        given = [request.query is not None, request.vector is not None, request.tokens is not None]
        image = None
        if request.image is not None:
            if request.vector is not None or request.tokens is not None:
                raise ApiError(
                    400,
                    "an image query may come with a text query, not with vector or tokens",
                    param="image",
                    code="invalid_query",
                )
            image = (
                await asyncio.to_thread(
                    _request_images_decoded, [request.image], ["image"], state.image_limits
                )
            )[0]
        elif sum(given) != 1:
            raise ApiError(
                400,
                "give exactly one of query (text), vector, tokens or image",
                param="query",
                code="invalid_query",
            )
        if request.query is None and request.mode != "dense":
            raise ApiError(
                400,
                f"mode {request.mode!r} needs a text query, not vectors or an image alone",
                param="mode",
            )
        if request.query is not None or image is not None:
            query = request.query
        elif request.vector is not None:
            query = _finite(request.vector, "vector")
        else:
            query = _token_array(request.tokens, "tokens")

        query_vector = await batched_query_vector(name, request)

        def search_in(collection):
            hits = collection.search(
                query,
                request.k,
                filter=request.filter,
                field=request.field,
                mode=request.mode,
                first_stage=request.first_stage,
                candidates=request.candidates,
                token_hits=request.token_hits,
                query_vector=query_vector,
                image=image,
                image_weight=request.image_weight,
            )
            out = [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
            if request.with_items and out:
                for hit, item in zip(out, collection.get([h["id"] for h in out])):
                    if item is not None:
                        hit.update(_item_media(item), text=item.text)
            return {"hits": out}

        try:  # a search still waiting for a thread when its client leaves never runs
            return await unless_client_gone(
                http.receive, asyncio.ensure_future(run(name, search_in))
            )
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)

    @router.get("/{name}/map")
    async def collection_map(
        name: str,
        method: str = "pca",
        field: str | None = None,
        color_by: str | None = None,
        max_points: int = Query(MAX_POINTS, ge=2, le=MAX_POINTS_LIMIT),
    ):
        """Points [x, y] in [-1, 1] of (a stable sample of) the collection's items, with each
        point's id and the payload value of `color_by`; computed once per collection version."""
        if method not in METHODS:
            raise ApiError(
                400, f"method must be one of {list(METHODS)}, got {method!r}", param="method"
            )

        def draw(collection):
            if not hasattr(collection, "snapshot"):
                raise ApiError(
                    400,
                    f"collection {name!r} lives on a database server: maps are drawn for folder "
                    "collections",
                    param="name",
                    code="map_unavailable",
                )
            if color_by is not None and color_by not in collection.payload_fields:
                raise ApiError(
                    400,
                    f"color_by {color_by!r} is not a payload field of {name!r}; its fields: "
                    f"{sorted(collection.payload_fields)}",
                    param="color_by",
                )
            try:
                projection = state.projections.get(
                    name, collection, method=method, field=field, max_points=max_points
                )
            except MissingExtraError as exc:
                raise ApiError(400, str(exc), param="method", code="missing_extra") from None
            colors = None
            if (
                color_by is not None
            ):  # looked up by id: the snapshot may have been rebuilt since the projection
                snapshot = collection.snapshot()
                rows = [snapshot.row_of.get(item_id) for item_id in projection.ids]
                colors = [
                    None if row is None else snapshot.payload(row).get(color_by) for row in rows
                ]
            return {
                "name": name,
                "version": projection.version,
                "method": projection.method,
                "field": projection.field,
                "total": projection.total,
                "sampled": projection.sampled,
                "ids": projection.ids,
                "points": np.round(projection.xy, 4).tolist(),
                "color_by": color_by,
                "colors": colors,
            }

        return await run(name, draw)

    return router


def _item_media(item) -> dict:
    if isinstance(item.image, bytes):
        return {"image": _data_uri(item.image)}
    if item.image is not None:
        return {"image_path": item.image}
    return {}


def _info(name: str, collection) -> dict:
    info = collection.info()
    bytes_per_vector = info.bytes_per_vector
    return {
        "name": name,
        "count": info.count,
        "model": info.model,
        "fields": info.fields,
        "index": info.index,
        "quantize": info.quantize,
        "index_params": info.index_params,
        "version": info.version,
        "bytes_per_vector": None if math.isnan(bytes_per_vector) else bytes_per_vector,
        "disk_bytes": info.disk_bytes,
        "payload_fields": info.payload_fields,
        "multivector": info.multivector,
        "token_bytes_per_item": info.token_bytes_per_item,
        "images": info.images,
        "relative": info.relative,
    }


def _request_images_decoded(values: list[str], labels: list[str], limits) -> list:
    from uniembed.serve.images import decode_request_images

    return decode_request_images(values, labels, limits)


def _request_images(items: list[ItemIn], limits) -> list:
    """Each item's image bytes (None where it has none), checked against the server's limits from
    their headers (400 / 413 naming the item); the collection decodes them once, when it embeds."""
    from uniembed.images.decode import check_image_bytes
    from uniembed.serve.images import request_image_bytes

    out = []
    for index, item in enumerate(items):
        if item.image is None:
            out.append(None)
            continue
        where = f"items[{index}].image"
        data = request_image_bytes(item.image, where)
        check_image_bytes(data, where, limits)
        out.append(data)
    return out


_IMAGE_TYPES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def _data_uri(data: bytes) -> str:
    import base64

    kind = next((mime for magic, mime in _IMAGE_TYPES if data.startswith(magic)), None)
    if kind is None:
        kind = (
            "image/webp"
            if data[:4] == b"RIFF" and data[8:12] == b"WEBP"
            else "application/octet-stream"
        )
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _multivector_options(request: CreateCollection) -> dict:
    if request.multivector is None:
        if request.fde is not None or request.token_storage != "float16":
            raise ApiError(
                400,
                "fde and token_storage belong to multi-vector collections (multivector: muvera)",
                param="multivector",
            )
        return {}
    fde = request.fde.model_dump() if request.fde else None
    return {"multivector": request.multivector, "fde": fde, "token_storage": request.token_storage}


def _token_array(rows: list[list], param: str) -> np.ndarray:
    if len({len(row) for row in rows}) > 1:
        raise ApiError(400, f"{param}: token vectors have different lengths", param=param)
    return _finite(rows, param)


def _finite(values: list, param: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused just below
        array = np.asarray(values, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ApiError(
            400, f"{param} holds a value that is not a finite float32 number", param=param
        )
    return array


def _data_and_texts(items: list[ItemIn], collection):
    """(data, texts) for Collection.add: every item brings vectors, or every item brings a text to embed."""
    if collection.multivector is not None:
        return _token_data(items)
    if any(item.tokens is not None for item in items):
        raise ApiError(
            400,
            "tokens are for multi-vector collections; this one takes vector / vectors or text",
            param="items",
        )
    fields = list(collection.meta.fields)
    with_vectors = [item.vector is not None or item.vectors is not None for item in items]
    if all(with_vectors):
        per_field = {field: [] for field in fields}
        for index, item in enumerate(items):
            given = dict(item.vectors or {})
            if item.vector is not None:
                given[collection.meta.default_field] = item.vector
            if set(given) != set(fields):
                raise ApiError(
                    400,
                    f"items[{index}] has vectors for {sorted(given)}; this collection needs {fields}",
                    param=f"items.{index}.vectors",
                )
            for field in fields:
                per_field[field].append(given[field])
        data = {}
        for field, rows in per_field.items():
            if len({len(row) for row in rows}) != 1:
                raise ApiError(
                    400, f"vectors for field {field!r} have different lengths", param="items"
                )
            data[field] = _finite(rows, f"vectors of field {field!r}")
        return data, [item.text for item in items]
    if any(with_vectors):
        raise ApiError(
            400,
            "some items have vectors and some do not: send all with vectors or all with text",
            param="items",
        )
    missing = [index for index, item in enumerate(items) if not item.text]
    if missing:
        raise ApiError(400, f"items{missing[:5]} have neither a vector nor a text", param="items")
    texts = [item.text for item in items]
    return {field: texts for field in fields}, None


def _token_data(items: list[ItemIn]):
    """(data, texts) for a multi-vector collection: every item brings tokens, or every item a text."""
    if any(item.vector is not None or item.vectors is not None for item in items):
        raise ApiError(
            400,
            "this collection is multi-vector: send tokens (one vector per token) or text, not vector",
            param="items",
        )
    if all(item.tokens is not None for item in items):
        sets = [
            _token_array(item.tokens, f"items.{index}.tokens") for index, item in enumerate(items)
        ]
        return sets, [item.text for item in items]
    if any(item.tokens is not None for item in items):
        raise ApiError(
            400,
            "some items have tokens and some do not: send all with tokens or all with text",
            param="items",
        )
    missing = [index for index, item in enumerate(items) if not item.text]
    if missing:
        raise ApiError(400, f"items{missing[:5]} have neither tokens nor a text", param="items")
    return [item.text for item in items], None
