"""The sandbox gateway app: provider look-alikes plus the `/_sandbox/*` routes that steer and inspect them.

Each `create_app()` builds its own `Gateway` (store, faults, config, callback sender), so two apps never share
state. `/_sandbox/callbacks` and `/_sandbox/replies` make the sandbox send, signed, what the real providers
would send back: delivery statuses and inbound replies.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.sandbox import graph, twilio
from dispatcher.sandbox.callbacks import CallbackError, Delivery
from dispatcher.sandbox.config import CallbackStatus, SandboxConfig
from dispatcher.sandbox.faults import FaultSpec
from dispatcher.sandbox.gateway import Gateway
from dispatcher.sandbox.store import PROVIDERS, Provider

__all__ = ["create_app"]

_WA_ID = re.compile(r"\+?\d{8,15}", re.ASCII)


class StatusRequest(BaseModel):
    """Body of `POST /_sandbox/callbacks`."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(description="Twilio SID or wamid of a stored message")
    status: CallbackStatus
    error_code: int | None = Field(default=None, ge=1, description="failed/undelivered only; default per provider")
    error_message: str | None = Field(default=None, description="Meta `error_data.details`; Twilio sends none")


class ReplyRequest(BaseModel):
    """Body of `POST /_sandbox/replies`: a WhatsApp user writing to a business number."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(alias="from", pattern=_WA_ID.pattern, description="the user's number, + optional")
    phone_number_id: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=4096)
    name: str = Field(default="Sandbox User", min_length=1)
    context_message_id: str | None = Field(default=None, description="the wamid being replied to")


def _answer(delivery: Delivery, **extra: str) -> dict[str, Any]:
    return {"delivered_to": delivery.url, "status_code": delivery.status_code, "body": delivery.body, **extra}


def _callback_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])
    errors: dict[int | str, dict[str, Any]] = {
        404: {"description": "unknown message"},
        409: {"description": "no callback URL (or Twilio auth token) known for it"},
        502: {"description": "the POST to the receiver failed"},
    }

    @router.post("/callbacks", responses=errors)
    async def send_status(request: StatusRequest) -> dict[str, Any]:
        try:
            delivery = await gateway.callbacks.send_status(
                request.message_id, request.status, gateway.config, request.error_code, request.error_message
            )
        except CallbackError as error:
            raise HTTPException(error.status, error.detail) from error
        return _answer(delivery)

    @router.post("/replies", responses=errors)
    async def send_reply(request: ReplyRequest) -> dict[str, Any]:
        try:
            message_id, delivery = await gateway.callbacks.send_reply(
                gateway.config,
                phone_number_id=request.phone_number_id,
                sender=request.sender,
                text=request.text,
                name=request.name,
                context=request.context_message_id,
            )
        except CallbackError as error:
            raise HTTPException(error.status, error.detail) from error
        return _answer(delivery, message_id=message_id)

    @router.get("/callbacks")
    def list_callbacks() -> JSONResponse:
        sent = gateway.callbacks.sent()
        return JSONResponse({"count": len(sent), "callbacks": sent})

    return router


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

    @router.patch("/config")
    def patch_config(config: SandboxConfig) -> SandboxConfig:
        """Replace only the keys given (a whole key: `whatsapp_webhooks` is not merged number by number)."""
        given = {name: getattr(config, name) for name in config.model_fields_set}  # validated values, not dumps
        gateway.config = gateway.config.model_copy(update=given)
        return gateway.config

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
    async def clear_messages() -> dict[str, int]:
        # Async so it runs on the loop: clearing cancels the automatic-status tasks, which belong to it.
        gateway.callbacks.clear()
        return {"deleted": gateway.store.clear()}

    @router.get("/stats")
    def stats() -> dict[str, Any]:
        return gateway.store.stats()

    return router


def create_app(callback_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """A fresh sandbox gateway with an empty store, no faults, no added latency and no callback targets.

    `callback_transport` replaces real HTTP for the callbacks the sandbox sends (e.g. an `httpx.MockTransport`).
    """
    gateway = Gateway(callback_transport=callback_transport)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gateway.callbacks.aclose()

    app = FastAPI(
        title="campaign-dispatcher sandbox gateway",
        description="Speaks the providers' wire formats for demos, integration tests and benchmarks. "
        f"Providers: {', '.join(PROVIDERS)}.",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    # Provider routes first: they are the hot path and Starlette tries routes in order. No control path has the
    # shape `/{version}/{id}/messages` or `/2010-04-01/...`, so the order cannot change which route answers.
    app.include_router(twilio.build_router(gateway))
    app.include_router(graph.build_router(gateway))
    app.include_router(_control_router(gateway))
    app.include_router(_callback_router(gateway))
    return app
