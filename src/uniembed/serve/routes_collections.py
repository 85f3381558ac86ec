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
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from uniembed.errors import MissingExtraError
from uniembed.projection import MAX_POINTS, MAX_POINTS_LIMIT, METHODS
from uniembed.serve.api_errors import ApiError
from uniembed.serve.app import ServiceState
from uniembed.serve.collection_requests import (
    CreateCollection,
    DeleteItems,
    SearchRequest,
    SearchResponse,
    WriteItems,
    WriteResponse,
    data_and_texts,
    finite_array,
    info_of,
    item_media,
    multivector_options,
    request_images,
    request_images_decoded,
    token_array,
)
from uniembed.serve.disconnect import CLIENT_CLOSED, ClientGone, unless_client_gone
from uniembed.serve.openapi import ERROR_RESPONSES
from uniembed.serve.routes_embeddings import embed_through_batcher


def service(request: Request) -> ServiceState:
    """The running service's state (create_app keeps it on the app)."""
    return request.app.state.service


Service = Annotated[ServiceState, Depends(service)]
router = APIRouter(prefix="/v1/collections", tags=["collections"], responses=ERROR_RESPONSES)


async def in_pool(state: ServiceState, call):
    """`call()` on the collection pool; 429 at once when `max_collection_queue` calls are
    already waiting or running (the pool's own queue is unbounded)."""
    with state.collection_admission() as admitted:
        if not admitted:
            raise ApiError(
                429,
                f"{state.settings.max_collection_queue} collection requests are already in progress; "
                "retry later",
                code="queue_full",
                headers={"Retry-After": "1"},
            )
        return await asyncio.get_running_loop().run_in_executor(state.collection_pool, call)


async def run(state: ServiceState, name: str, work, *, write: bool = False):
    """`work(collection)` on the collection pool, under the name's read (or write) lock."""

    def locked():
        with (
            state.collections.writing(name)
            if write
            else state.collections.reading(name) as collection
        ):
            return work(collection)

    return await in_pool(state, locked)


async def batched_query_vector(state: ServiceState, name: str, request: SearchRequest):
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
            collection.model.anchor_vectors() if collection.relative_anchors is not None else None
        )
        return collection.meta, anchors

    known = await run(state, name, facts)
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
async def list_collections(state: Service):
    return {"collections": await in_pool(state, state.collections.names)}


@router.post("", status_code=201)
async def create_collection(state: Service, request: CreateCollection):
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
        return state.collections.create(
            request.name,
            index=request.index,
            quantize=request.quantize,
            dim=request.dim,
            vectors_only=request.vectors_only,
            fields=request.fields,
            index_params=request.index_params,
            describe=lambda c: info_of(request.name, c),
            **multivector_options(request),
            **images,
            **relative,
        )

    return await in_pool(state, create)


@router.get("/{name}")
async def collection_info(state: Service, name: str):
    return await run(state, name, lambda c: info_of(name, c))


@router.delete("/{name}")
async def drop_collection(state: Service, name: str):
    await in_pool(state, lambda: state.collections.drop(name))
    state.projections.forget(
        name
    )  # a collection made again under this name starts at version 1 again
    return {"name": name, "deleted": True}


@router.post("/{name}/items", response_model=WriteResponse)
async def write_items(state: Service, name: str, request: WriteItems):
    if len(request.items) > state.settings.max_inputs:
        raise ApiError(
            413,
            f"{len(request.items)} items, over the limit of {state.settings.max_inputs} per request",
            param="items",
            code="too_many_items",
        )

    def write(collection):
        ids = [item.id for item in request.items]
        payloads = [item.payload or {} for item in request.items]
        method = collection.upsert if request.upsert else collection.add
        if any(item.image is not None for item in request.items):
            images = request_images(request.items, state.image_limits)
            with_vectors = any(
                item.vector is not None or item.vectors is not None for item in request.items
            )
            data = data_and_texts(request.items, collection)[0] if with_vectors else None
            version = method(
                ids,
                data,
                payloads=payloads,
                texts=[item.text for item in request.items],
                images=images,
            )
        else:
            data, texts = data_and_texts(request.items, collection)
            version = method(ids, data, payloads=payloads, texts=texts)
        return {"version": version, "count": len(ids)}

    return await run(state, name, write, write=True)


@router.post("/{name}/items/delete", response_model=WriteResponse)
async def delete_items(state: Service, name: str, request: DeleteItems):
    return await run(
        state,
        name,
        lambda c: {"version": c.delete(request.ids), "count": len(request.ids)},
        write=True,
    )


@router.get("/{name}/items/{item_id:path}")  # ids may hold "/" (they are added in a JSON body)
async def get_item(state: Service, name: str, item_id: str):
    item = (await run(state, name, lambda c: c.get([item_id])))[0]
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
    out.update(item_media(item))
    if item.tokens is not None:
        out["tokens"] = item.tokens.tolist()
    return out


@router.post("/{name}/search", response_model=SearchResponse)
async def search(state: Service, name: str, request: SearchRequest, http: Request):
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
                request_images_decoded, [request.image], ["image"], state.image_limits
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
        query = finite_array(request.vector, "vector")
    else:
        query = token_array(request.tokens, "tokens")

    query_vector = await batched_query_vector(state, name, request)

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
                    hit.update(item_media(item), text=item.text)
        return {"hits": out}

    try:  # a search still waiting for a thread when its client leaves never runs
        return await unless_client_gone(
            http.receive, asyncio.ensure_future(run(state, name, search_in))
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)


@router.get("/{name}/map")
async def collection_map(
    state: Service,
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
        if not collection.supports("map"):
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
            colors = [None if row is None else snapshot.payload(row).get(color_by) for row in rows]
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

    return await run(state, name, draw)
