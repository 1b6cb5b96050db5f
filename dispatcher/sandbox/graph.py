"""Meta WhatsApp Cloud API: `POST /{version}/{phone-number-id}/messages` on the Graph API.

JSON request with a Bearer token, 200 with `contacts` and `messages[].id` (a wamid), errors in the Graph
envelope `{"error": {"message": "(#code) title", "type", "code", "error_data", "fbtrace_id"}}`
(reference/providers.md §1).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatcher.sandbox.faults import FaultRule
from dispatcher.sandbox.gateway import Gateway
from dispatcher.sandbox.store import MessageRecord, Outcome, TemplateRecord
from dispatcher.sandbox.wire import describe_error, format_retry_after, iso_millis, new_wamid, utc_now

__all__ = ["build_router", "graph_error"]

_VERSION = re.compile(r"v\d+(\.\d+)?", re.ASCII)
_TO = re.compile(r"\+?\d{8,15}", re.ASCII)
_MAX_TEXT = 4096
_MAX_CALLBACK_DATA = 512

# kind -> (HTTP status, default code). Meta does not promise 429 for throttling: 130429 comes with a 400.
_FAULTS: dict[str, tuple[int, int]] = {
    "permanent": (400, 131026),
    "transient": (500, 131000),
    "throttle": (400, 130429),
}


def graph_error(
    status: int,
    code: int,
    details: str | None = None,
    *,
    transient: bool = False,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    title, details = describe_error(code, details)
    error: dict[str, Any] = {
        "message": f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": secrets.token_urlsafe(13)[:17],
    }
    if transient:
        error["is_transient"] = True
    return JSONResponse({"error": error}, status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class _Send:
    to: str
    body: str | None
    template: TemplateRecord | None
    reference: str | None


class _Invalid(Exception):
    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(131008, f"Required parameter is missing: {field}")
    return value


def _parameters(template: dict[str, Any]) -> list[str]:
    """Body parameters, refused the way Meta refuses them (empty, newline, tab, 4+ consecutive spaces)."""
    components = template.get("components") or []
    if not isinstance(components, list):
        raise _Invalid(100, "template.components must be an array")
    values: list[str] = []
    for component in components:
        if not isinstance(component, dict) or component.get("type") != "body":
            continue  # header and button components do not feed the body text
        for parameter in component.get("parameters") or []:
            if not isinstance(parameter, dict) or parameter.get("type") != "text":
                raise _Invalid(100, "the sandbox only supports body parameters of type text")
            value = parameter.get("text")
            if not isinstance(value, str) or not value.strip():
                raise _Invalid(131009, "Parameter value is not valid: a text parameter cannot be empty")
            if "\n" in value or "\t" in value or "    " in value:
                raise _Invalid(
                    131009, "Param text cannot have new-line/tab characters or more than 4 consecutive spaces"
                )
            values.append(value)
    return values


def _parse(payload: object) -> _Send:
    if not isinstance(payload, dict):
        raise _Invalid(100, "The request body must be a JSON object")
    if payload.get("messaging_product") != "whatsapp":
        raise _Invalid(100, "The parameter messaging_product is required and must be 'whatsapp'")
    if payload.get("recipient_type", "individual") != "individual":
        raise _Invalid(100, "recipient_type must be 'individual'")
    to = payload.get("to")
    if not isinstance(to, str) or not _TO.fullmatch(to):
        raise _Invalid(100, f"Invalid parameter: to must be 8 to 15 digits with an optional leading +, got {to!r}")
    reference = payload.get("biz_opaque_callback_data")
    if reference is not None and (not isinstance(reference, str) or len(reference) > _MAX_CALLBACK_DATA):
        raise _Invalid(100, f"biz_opaque_callback_data must be a string of at most {_MAX_CALLBACK_DATA} characters")
    kind = payload.get("type", "text")
    if kind == "text":
        text = payload.get("text")
        body = _text(text.get("body") if isinstance(text, dict) else None, "text.body")
        if len(body) > _MAX_TEXT:
            raise _Invalid(100, f"text.body is longer than {_MAX_TEXT} characters")
        return _Send(to, body, None, reference)
    if kind != "template":
        raise _Invalid(100, f"the sandbox only supports message types text and template, got {kind!r}")
    template = payload.get("template")
    if not isinstance(template, dict):
        raise _Invalid(131008, "Required parameter is missing: template")
    language = template.get("language")
    record = TemplateRecord(
        name=_text(template.get("name"), "template.name"),
        language=_text(language.get("code") if isinstance(language, dict) else None, "template.language.code"),
        parameters=_parameters(template),
    )
    return _Send(to, None, record, reference)


def _fault_response(rule: FaultRule) -> JSONResponse:
    status, default_code = _FAULTS[rule.kind]
    headers = {"Retry-After": format_retry_after(rule.spec.retry_after)} if rule.kind == "throttle" else None
    return graph_error(
        status, rule.spec.code or default_code, rule.spec.message, transient=rule.kind == "transient", headers=headers
    )


def build_router(gateway: Gateway) -> APIRouter:
    router = APIRouter(tags=["whatsapp_cloud"])
    store = gateway.store

    def refuse(outcome: Outcome, response: JSONResponse) -> JSONResponse:
        store.count("whatsapp_cloud", outcome)
        return response

    @router.post("/{version}/{phone_number_id}/messages")
    async def send_message(version: str, phone_number_id: str, request: Request) -> JSONResponse:
        raw = await request.body()
        await gateway.pause()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refuse("unauthorized", graph_error(401, 190))
        if not _VERSION.fullmatch(version):
            return refuse("invalid", graph_error(400, 2500, f"Unknown path components: /{version}"))
        try:
            send = _parse(json.loads(raw))
        except ValueError:  # JSON syntax or encoding error
            return refuse("invalid", graph_error(400, 100, "The request body is not valid JSON"))
        except _Invalid as invalid:
            return refuse("invalid", graph_error(400, invalid.code, invalid.details))
        rule = gateway.faults.match(send.to)
        if rule is not None and rule.kind != "ambiguous":
            return refuse(rule.kind, _fault_response(rule))

        now = utc_now()
        digits = send.to.lstrip("+")
        record: MessageRecord = {
            "id": new_wamid(digits),
            "provider": "whatsapp_cloud",
            "to": f"+{digits}",
            "from": phone_number_id,
            "body": send.body,
            "template": send.template,
            "reference": send.reference,
            "status_callback": None,
            "received_at": iso_millis(now),
            "account": phone_number_id,
        }
        store.accept(record, "ambiguous" if rule is not None else "accepted", now)
        gateway.accepted(record)
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": send.to, "wa_id": digits}],
            "messages": [{"id": record["id"], "message_status": "accepted"}],
        }
        if rule is not None:
            # Stored, but answered too late: the client's read timeout fires after the message left.
            await asyncio.sleep(rule.spec.delay_seconds)
        return JSONResponse(answer)

    return router
