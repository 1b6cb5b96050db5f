"""`client.templates`: message templates at `/v1/templates`.

Needs a server that has templates: against one without `/v1/templates` routes every call raises
`NotFoundError` (404). The list answer is read as `{"data": [...]}` or a bare array.
"""

from __future__ import annotations

from dispatcher.client._base import AsyncResource, SyncResource, async_call, sync_call
from dispatcher.client._call import Call, compact, model, model_list, path
from dispatcher.client.models import Template

TemplateList = list[Template]


class TemplateCalls:
    """Each template call, described once."""

    @staticmethod
    def create(
        name: str,
        *,
        language: str,
        body: str,
        status: str | None = None,
        channel: str | None = None,
    ) -> Call[Template]:
        """Create a template (`POST /v1/templates`), e.g. body "Bonjour {{1}}". `status` (PENDING, APPROVED,
        REJECTED) and `channel` ("whatsapp") are left to the server's defaults when not given."""
        payload = compact(name=name, language=language, body=body, status=status, channel=channel)
        return Call("POST", "/v1/templates", model(Template), body=payload)

    @staticmethod
    def list() -> Call[TemplateList]:
        """Every template of the account."""
        return Call("GET", "/v1/templates", model_list(Template))

    @staticmethod
    def get(template_id: str | int) -> Call[Template]:
        return Call("GET", path("v1", "templates", template_id), model(Template))


class Templates(SyncResource):
    """`client.templates` of the sync `Client` (needs a server with templates)."""

    create = sync_call(TemplateCalls.create)
    list = sync_call(TemplateCalls.list)
    get = sync_call(TemplateCalls.get)


class AsyncTemplates(AsyncResource):
    """`client.templates` of the `AsyncClient` (needs a server with templates)."""

    create = async_call(TemplateCalls.create)
    list = async_call(TemplateCalls.list)
    get = async_call(TemplateCalls.get)
