"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dispatcher import redis_client
from dispatcher.db.session import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is alive (no dependency is checked: a Redis outage must not restart the API)."""
    return {"ok": True}


@router.get("/readyz", response_model=None)
def readyz() -> JSONResponse:
    """The database and Redis answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis_client.get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
