"""What one sandbox app shares between its provider routers and its control routes.

Kept apart from `app.py` so the routers can depend on it without importing the app that mounts them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.sandbox.faults import FaultBook
from dispatcher.sandbox.store import MessageStore

__all__ = ["Gateway", "SandboxConfig", "format_retry_after"]


class SandboxConfig(BaseModel):
    """Body of `PUT /_sandbox/config` and answer of `GET /_sandbox/config`."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, le=600_000)


@dataclass
class Gateway:
    store: MessageStore = field(default_factory=MessageStore)
    faults: FaultBook = field(default_factory=FaultBook)
    config: SandboxConfig = field(default_factory=SandboxConfig)

    async def pause(self) -> None:
        """The configured latency, awaited before every provider answer (errors included)."""
        # Read once: a concurrent PUT replaces the config object rather than mutating it.
        latency_ms = self.config.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)


def format_retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds as an integer (the HTTP form), fractions kept for fast tests."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
