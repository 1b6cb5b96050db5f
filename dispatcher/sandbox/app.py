"""The sandbox gateway app: provider look-alikes plus the `/_sandbox/*` routes that steer and inspect them.

Each `create_app()` builds its own `Gateway` (store, faults, config), so two apps never share state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse

from dispatcher.sandbox import graph, twilio
from dispatcher.sandbox.faults import FaultSpec
from dispatcher.sandbox.gateway import Gateway, SandboxConfig
from dispatcher.sandbox.store import PROVIDERS, Provider

__all__ = ["create_app"]


def _control_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    @router.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/faults", status_code=201)
    def add_fault(spec: FaultSpec) -> dict[str, Any]:
        return gateway.faults.add(spec).describe()

    @router.get("/faults")
    def list_faults() -> dict[str, Any]:
        faults = [rule.describe() for rule in gateway.faults.active()]
        return {"count": len(faults), "faults": faults}

    @router.delete("/faults")
    def clear_faults() -> dict[str, int]:
        return {"deleted": gateway.faults.clear()}

    @router.delete("/faults/{fault_id}")
    def remove_fault(fault_id: str) -> dict[str, int]:
        if not gateway.faults.remove(fault_id):
            raise HTTPException(404, f"no active fault {fault_id}")
        return {"deleted": 1}

    @router.get("/config")
    def get_config() -> SandboxConfig:
        return gateway.config

    @router.put("/config")
    def put_config(config: SandboxConfig) -> SandboxConfig:
        # Replaced, not mutated, so a request already inside Gateway.pause() keeps a consistent value.
        gateway.config = config
        return config

    @router.get("/messages")
    def list_messages(
        to: Annotated[str | None, Query(description="recipient, with or without +")] = None,
        provider: Annotated[Provider | None, Query()] = None,
        since: Annotated[int, Query(ge=0, description="position in the full list to start from")] = 0,
    ) -> JSONResponse:
        messages, total = gateway.store.messages(to=to, provider=provider, since=since)
        # JSONResponse directly: records are plain JSON already, and lists can be long.
        return JSONResponse({"count": len(messages), "next_since": total, "messages": messages})

    @router.delete("/messages")
    def clear_messages() -> dict[str, int]:
        return {"deleted": gateway.store.clear()}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        return gateway.store.stats()

    return router


def create_app() -> FastAPI:
    """A fresh sandbox gateway with an empty store, no faults and no added latency."""
    gateway = Gateway()
    app = FastAPI(
        title="campaign-dispatcher sandbox gateway",
        description="Speaks the providers' wire formats for demos, integration tests and benchmarks. "
        f"Providers: {', '.join(PROVIDERS)}.",
    )
    app.state.gateway = gateway
    # Provider routes first: they are the hot path and Starlette tries routes in order. No control path has the
    # shape `/{version}/{id}/messages` or `/2010-04-01/...`, so the order cannot change which route answers.
    app.include_router(twilio.build_router(gateway))
    app.include_router(graph.build_router(gateway))
    app.include_router(_control_router(gateway))
    return app
