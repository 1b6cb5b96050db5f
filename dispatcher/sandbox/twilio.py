"""Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

Form-encoded request, HTTP Basic auth, 201 with a Message resource, errors in Twilio's envelope
`{"code", "message", "more_info", "status"}` (reference/providers.md §2).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatcher.content.encoding import analyse
from dispatcher.sandbox.faults import FaultRule
from dispatcher.sandbox.gateway import Gateway
from dispatcher.sandbox.store import MessageRecord, Outcome
from dispatcher.sandbox.wire import API_VERSION, format_retry_after, iso_millis, utc_now

__all__ = ["build_router", "twilio_error"]

_E164 = re.compile(r"\+\d{8,15}", re.ASCII)
_MAX_BODY = 1600

# Default messages for the codes the sandbox answers with; a fault's own `message` wins.
_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
}

# kind -> (HTTP status, default code)
_FAULTS: dict[str, tuple[int, int]] = {
    "permanent": (400, 21211),
    "transient": (503, 20500),
    "throttle": (429, 20429),
}


def twilio_error(
    status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "code": code,
        "message": message or _MESSAGES.get(code, f"Error {code}"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic header with a non-empty password, else None."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and password else None


def _validate(form: dict[str, str]) -> tuple[int, str | None] | None:
    """The first Twilio validation error (code, message) for the form, in the order Twilio reports them."""
    to = form.get("To", "")
    if not to:
        return 21604, None
    if not _E164.fullmatch(to):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    body = form.get("Body", "")
    if not body:
        return 21602, None
    if len(body) > _MAX_BODY:
        return 21617, None
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603, None
    return None


def _fault_response(rule: FaultRule) -> JSONResponse:
    status, default_code = _FAULTS[rule.kind]
    code = rule.spec.code or default_code
    headers = {"Retry-After": format_retry_after(rule.spec.retry_after)} if rule.kind == "throttle" else None
    return twilio_error(status, code, rule.spec.message, headers)


def build_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(tags=["twilio"])
    store = gateway.store

    def refuse(outcome: Outcome, response: JSONResponse) -> JSONResponse:
        store.count("twilio", outcome)
        return response

    @router.post(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", status_code=201)
    async def create_message(account_sid: str, request: Request) -> JSONResponse:
        raw = await request.body()
        await gateway.pause()
        credentials = _basic_credentials(request.headers.get("authorization"))
        if credentials is None or credentials[0] != account_sid:
            headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            return refuse("unauthorized", twilio_error(401, 20003, headers=headers))
        # Parsed by hand: the sandbox needs nothing of python-multipart, and first-value-wins is what we want.
        form: dict[str, str] = {}
        for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            form.setdefault(name, value)
        error = _validate(form)
        if error is not None:
            return refuse("invalid", twilio_error(400, *error))
        # Like Stripe-style idempotency keys: a retry of a request that was already accepted gets the first
        # answer and sends nothing, so a client that lost the answer can safely ask again.
        key = request.headers.get("idempotency-key")
        if key:
            first = store.replay(f"{account_sid}:{key}")
            if first is not None:
                return refuse("replayed", JSONResponse(first, status_code=201))
        rule = gateway.faults.match(form["To"])
        if rule is not None and rule.kind != "ambiguous":
            return refuse(rule.kind, _fault_response(rule))

        now = utc_now()
        sid = f"SM{uuid.uuid4().hex}"
        callback = form.get("StatusCallback") or None
        record: MessageRecord = {
            "id": sid,
            "provider": "twilio",
            "to": form["To"],
            "from": form.get("From") or form["MessagingServiceSid"],
            "body": form["Body"],
            "template": None,
            "reference": callback,
            "status_callback": callback,
            "received_at": iso_millis(now),
            "account": account_sid,
        }
        store.accept(record, "ambiguous" if rule is not None else "accepted", now)
        # The password is what status callbacks are signed with unless the config names this account's token.
        gateway.accepted(record, auth_token=credentials[1])
        resource = _resource(record, form, format_datetime(now))
        if key:
            store.remember(f"{account_sid}:{key}", resource)
        if rule is not None:
            # Stored, but answered too late: the client's read timeout fires after the message left.
            await asyncio.sleep(rule.spec.delay_seconds)
        return JSONResponse(resource, status_code=201)

    return router


def _resource(record: MessageRecord, form: dict[str, str], created: str) -> dict[str, Any]:
    """The Message resource as Twilio returns it on create (strings where Twilio sends strings)."""
    sid, account_sid = record["id"], record["account"]
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    service = form.get("MessagingServiceSid") or None
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": record["body"],
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        # Through a Messaging Service Twilio picks the sender later and answers `accepted`, not `queued`.
        "from": form.get("From") or None,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": str(analyse(record["body"] or "").segments),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service and not form.get("From") else "queued",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        "to": record["to"],
        "uri": uri,
    }
