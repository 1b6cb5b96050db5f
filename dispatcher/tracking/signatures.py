"""Webhook signatures, computed on the raw request, exactly as the providers compute them.

* Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`. Re-serialising the
  parsed JSON would change the bytes, so the raw body is signed and checked.
* Twilio: `X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...))`
  with the form parameters sorted by name, over the exact URL Twilio called.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping


def meta_signature(app_secret: str, body: bytes) -> str:
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    pairs = sorted(params.items() if isinstance(params, Mapping) else params)
    payload = url + "".join(name + value for name, value in pairs)
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid(expected: str, given: str | None) -> bool:
    """Constant-time comparison; a missing header is never valid."""
    return given is not None and hmac.compare_digest(expected.encode(), given.strip().encode())
