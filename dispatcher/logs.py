"""Structured logs for every process: JSON when not on a terminal, readable lines when on one.

Celery's, uvicorn's and our own records all go through one formatter, carry the ids bound in
`structlog.contextvars` (account, campaign, run, message), and pass a redaction step so tokens,
secrets and passwords never reach a log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"token|secret|password|passwd|authorization|api_key|apikey|credential", re.I)
# Our API tokens, Bearer credentials and URL passwords, wherever they appear in a message.
_SECRET_TEXT = re.compile(r"dsp_[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]+|(?<=://)[^/@\s:]+:[^/@\s]+(?=@)")
REDACTED = "[redacted]"


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = _SECRET_TEXT.sub(REDACTED, value)
    return event


def _scrub(value: Any) -> Any:
    return _SECRET_TEXT.sub(REDACTED, value) if isinstance(value, str) else value


class ArgsRedactor(logging.Filter):
    """Redacts the arguments of stdlib records too. Celery's task records carry the call's args and kwargs
    (a submit task's token) in `record.args`: our format leaves them out, but a handler that prints them,
    like logging's own "--- Logging error ---" report, would not."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = {key: _scrub(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_scrub(value) for value in record.args)
        return True


def configure(level: str = "INFO", *, json_logs: bool | None = None) -> None:
    """Route stdlib logging and structlog through one formatter on stderr."""
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(ArgsRedactor())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # httpx logs every request line with its URL: noisy at campaign rates.
    logging.getLogger("httpx").setLevel(logging.WARNING)
