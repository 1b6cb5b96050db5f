"""The HTTP API: `create_app()` builds the FastAPI application served by `dispatcher api`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from dispatcher.api import openapi
from dispatcher.api.bodies import BodyGuard, BodyLimit, body_limits
from dispatcher.api.routes import (
    campaigns,
    contacts,
    conversations,
    health,
    imports,
    metrics,
    rejections,
    senders,
    templates,
    webhooks,
)
from dispatcher.config import get_settings
from dispatcher.errors import (
    Conflict,
    IdempotencyMismatch,
    InputError,
    NotFound,
    SpecError,
    TooLarge,
    UnsupportedMediaType,
    user_message,
)


def _body_loc(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "loc": ["body", *e["loc"]]} for e in errors]


def create_app() -> FastAPI:
    app = FastAPI(
        title="campaign-dispatcher",
        version="0.1.0",
        description="SMS and WhatsApp campaigns: submit, schedule, follow. Every /v1 route needs a Bearer token.",
    )
    for router in (
        campaigns.router,
        senders.router,
        templates.router,
        conversations.router,
        webhooks.router,
        imports.router,
        contacts.contacts_router,
        contacts.groups_router,
        health.router,
        metrics.router,
        rejections.router,
    ):
        app.include_router(router)

    @app.exception_handler(SpecError)
    def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return JSONResponse({"detail": _body_loc(exc.errors)}, status_code=422)

    @app.exception_handler(InputError)
    def _input_error(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)

    @app.exception_handler(TooLarge)
    def _too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(UnsupportedMediaType)
    def _media_type(_: Request, exc: UnsupportedMediaType) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=415)

    @app.exception_handler(NotFound)
    def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": f"{exc.what} {exc.ident} not found"}, status_code=404)

    @app.exception_handler(IdempotencyMismatch)
    def _idempotency(_: Request, exc: IdempotencyMismatch) -> JSONResponse:
        detail = [{"loc": ["header", "Idempotency-Key"], "msg": str(exc), "type": "idempotency"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Conflict)
    def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own shape, minus echoed input (it may hold phone numbers or secrets).
        detail = [{"loc": list(e["loc"]), "msg": user_message(e["msg"]), "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_middleware(BodyGuard)
    # Added last, so it runs first: BodyGuard reads JSON bodies whole, so the size must be checked before.
    app.add_middleware(BodyLimit, limits=body_limits(get_settings()))
    openapi.install(app)
    return app
