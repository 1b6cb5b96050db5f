"""What one sandbox app shares between its provider routers and its control routes.

Kept apart from `app.py` so the routers can depend on it without importing the app that mounts them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from dispatcher.sandbox.callbacks import CallbackSender
from dispatcher.sandbox.config import SandboxConfig
from dispatcher.sandbox.faults import FaultBook
from dispatcher.sandbox.store import MessageRecord, MessageStore

__all__ = ["Gateway"]


@dataclass
class Gateway:
    store: MessageStore = field(default_factory=MessageStore)
    faults: FaultBook = field(default_factory=FaultBook)
    config: SandboxConfig = field(default_factory=SandboxConfig)
    # Where callbacks go through; None means real HTTP. Tests may pass an httpx.MockTransport.
    callback_transport: httpx.AsyncBaseTransport | None = None
    callbacks: CallbackSender = field(init=False)

    def __post_init__(self) -> None:
        self.callbacks = CallbackSender(self.store, self.callback_transport)

    async def pause(self) -> None:
        """The configured latency, awaited before every provider answer (errors included)."""
        # Read once: a concurrent PUT replaces the config object rather than mutating it.
        latency_ms = self.config.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)

    def accepted(self, record: MessageRecord, auth_token: str | None = None) -> None:
        """Called by a provider route right after storing a message, from the event loop."""
        self.callbacks.accepted(record, self.config, auth_token)
