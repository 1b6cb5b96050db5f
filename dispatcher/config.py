"""Settings: every knob comes from a `DISPATCHER_*` environment variable through this one class."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatcher.inputs import provider_url_problem


class Settings(BaseSettings):
    """The dispatcher's configuration, shared by the API, the workers, beat and the CLI."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", env_ignore_empty=True, extra="ignore")

    database_url: str = "sqlite:///dispatcher.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Empty means "the same as redis_url" (resolved in the validator below).
    broker_url: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Where the CLI reaches the API; empty means http://{api_host}:{api_port}.
    api_url: str = ""
    api_token: SecretStr | None = None
    # The URL providers call us at, when a proxy sits in front (Twilio signs the exact URL it called).
    public_url: str = ""
    # The largest request body the API reads (JSON bodies and providers' webhooks), in MB of 2**20 bytes;
    # a larger one is a 413. A route taking bigger uploads gets its own limit in `dispatcher.api.bodies`.
    max_body_mb: int = Field(default=50, ge=1, le=100_000)

    sandbox_host: str = "127.0.0.1"
    # Checks sandbox senders' webhooks when a sender has no secret of its own (created before they got one);
    # empty means none, so such a sender's callbacks are refused.
    sandbox_webhook_secret: SecretStr | None = None
    # Senders' base_url may name localhost or a private address (the sandbox, tests); off in production so a
    # tenant cannot point our workers at internal services.
    allow_private_provider_urls: bool = False
    sandbox_port: int = 8025
    flower_port: int = 5555
    flower_user: str = "admin"
    flower_password: SecretStr | None = None

    schedule_grid_minutes: int = Field(default=15, ge=1, le=60)
    timezone: str = "UTC"
    # An occurrence beat could not fire in time fires late only within this window; older ones are `missed`.
    missed_grace_minutes: int = Field(default=15, ge=0, le=24 * 60)

    # Sending engine.
    worker_concurrency: int = Field(default=16, ge=1, le=512)
    # Celery task events from the start (Flower turns them on anyway while it runs).
    worker_events: bool = False
    publish_batch_size: int = Field(default=500, ge=1, le=10_000)
    send_lease_seconds: int = Field(default=120, ge=5)
    max_send_attempts: int = Field(default=6, ge=1, le=50)
    # Consecutive permanent failures that auto-pause a campaign (0 turns the budget off).
    error_budget: int = Field(default=50, ge=0)
    # Workers consume the send queues in batches (`workers.sending.consumer`): up to this many messages, or
    # what arrived within `send_batch_wait_ms`, on `send_batch_threads` threads of their own. Off: one
    # Celery task per message, on the pool (slower; for comparison).
    send_batches: bool = True
    send_batch_size: int = Field(default=128, ge=1, le=1000)
    send_batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    send_batch_threads: int = Field(default=2, ge=1, le=64)
    # A send waits for a rate-limit slot at most this long (holding its batch); longer goes back to the broker.
    limiter_max_wait_seconds: float = Field(default=2.0, ge=0, le=30)
    provider_connect_timeout: float = 3.0
    provider_read_timeout: float = 10.0
    # An HTTP(S) proxy for every provider call (http://proxy.internal:3128); empty: connect directly.
    # HTTP(S)_PROXY from the environment are not used, so the operator chooses here, explicitly.
    provider_proxy: str = ""

    # Contact imports: a file of more data lines than this is refused (413) before anything is imported.
    import_max_rows: int = Field(default=10_000_000, ge=1)
    # Rows a worker upserts in one transaction, which also records the import's progress.
    import_batch_rows: int = Field(default=5_000, ge=1, le=100_000)

    # Where `dispatcher up` keeps its private Redis, logs and the demo token.
    state_dir: Path = Path(".dispatcher")

    @field_validator("provider_proxy")
    @classmethod
    def _proxy_url(cls, value: str) -> str:
        if value and provider_url_problem(value, allow_private=True) is not None:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://proxy.internal:3128")
        return value

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.broker_url:
            self.broker_url = self.redis_url
        if not self.api_url:
            self.api_url = f"http://{self.api_host}:{self.api_port}"
        return self

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.sandbox_host}:{self.sandbox_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
