"""OpenAPI documentation pieces shared by the routes: error shapes, the two campaign payloads, the CSV export."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from dispatcher.campaigns.export import COLUMNS
from dispatcher.campaigns.payloads import EnvelopeIn, SmsCampaignIn

_ERROR_DETAIL = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}
_MESSAGE = {"type": "object", "properties": {"detail": {"type": "string"}}}

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid Bearer token", "content": {"application/json": {"schema": _MESSAGE}}},
    404: {"description": "No such resource in this account", "content": {"application/json": {"schema": _MESSAGE}}},
    409: {
        "description": "Not possible in the resource's current state (e.g. resuming a cancelled campaign)",
        "content": {"application/json": {"schema": _MESSAGE}},
    },
    413: {
        "description": "The request body is larger than `DISPATCHER_MAX_BODY_MB` (type `too_large`); it was not read",
        "content": {"application/json": {"schema": _ERROR_DETAIL}},
    },
    422: {
        "description": "Invalid input; `loc` names the field (and contact index)",
        "content": {"application/json": {"schema": _ERROR_DETAIL}},
    },
}

_CSV_EXAMPLE = (
    ",".join(COLUMNS)
    + "\r\n+2250707123456,3,read,,,SM8f2c0e,2026-12-01T09:00:01.204518Z,2026-12-01T09:00:03.120004Z,"
    + "2026-12-01T09:12:44.908112Z,11\r\n"
    + '+2250707123457,4,failed,21610,"Unsubscribed recipient, ""STOP"" received",,,,,11\r\n'
)
MESSAGES_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of messages as JSON; with `Accept: text/csv` or `format=csv`, every message "
        "(`run` and `status` still filter; no paging) as a CSV file, streamed. CSV columns: "
        + ", ".join(COLUMNS)
        + "; times are ISO 8601 in UTC; `deliveredAt` and `readAt` are when the provider's receipts arrived.",
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}},
            "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
        },
        "headers": {
            "Content-Disposition": {
                "description": 'CSV only: `attachment; filename="campaign-{id}[-run-{run}]-messages.csv"`',
                "schema": {"type": "string"},
            }
        },
    }
}

CAMPAIGN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/SmsCampaignIn"},
                        {"$ref": "#/components/schemas/EnvelopeIn"},
                    ]
                },
                "examples": {
                    "sms": {
                        "summary": "SMS document object",
                        "value": {
                            "name": "Rentrée",
                            "contacts": [{"phone": "2250707123456", "name": "Awa Koné"}],
                            "text": "Bonjour @nom_complet bon début de semaine.",
                            "senderId": "My Sender",
                        },
                    },
                    "envelope": {
                        "summary": "WhatsApp-style envelope with channel sms",
                        "value": {
                            "title": "Rappel",
                            "contacts_and_data": {
                                "_": {"channel": "sms", "sender_label_id": "My Sender", "text": "Bonjour @code"},
                                "contacts": [{"phone": "2250707123456", "data": {"code": "A1"}}],
                            },
                        },
                    },
                },
            }
        },
    }
}


def install(app: FastAPI) -> None:
    """Generate the schema once, adding the campaign payload models the routes parse by hand."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema(
            [(SmsCampaignIn, "validation"), (EnvelopeIn, "validation")], ref_template="#/components/schemas/{model}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
