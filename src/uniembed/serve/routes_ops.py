"""/health (the process answers), /ready (the model is loaded), /metrics (Prometheus text)."""

from __future__ import annotations

from uniembed.serve.openapi import ERROR_RESPONSES


def ops_routes(state):
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse, Response

    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health():
        return {"status": "ok"}

    @router.get("/ready", responses={503: ERROR_RESPONSES[503]})
    async def ready():
        model = state.require_model()  # 503 with the reason until loaded
        return JSONResponse({"status": "ready", "model": model.id, "dim": model.dim})

    @router.get(
        "/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}
    )
    async def metrics():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    return router
