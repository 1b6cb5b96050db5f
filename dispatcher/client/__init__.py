"""Python client of the campaign-dispatcher API, sync (`Client`) and async (`AsyncClient`), on httpx.

It mirrors the SMS SDK document (`sms.campain.create/list/get`) as `client.campaigns.create/list/get`::

    from dispatcher.client import Client

    with Client(base_url="http://127.0.0.1:8000", token="dsp_...") as client:
        campaign = client.campaigns.create(
            contacts=[{"phone": "2250707123456", "name": "Awa Koné"}],
            text="Bonjour @nom_complet",
            sender_id="My Sender",
        )
        print(client.campaigns.get(campaign.id).stats.sent)
        for progress in client.campaigns.watch(campaign.id):  # until SENT, FAILED or CANCELLED
            print(progress.status, progress.stats.pending)

`client.contacts.import_file(path, group_id=...)` uploads a CSV or NDJSON file of contacts (streamed, never
read whole) and `client.contacts.watch_import(id)` follows the import until it is done or failed.

Every call returns a pydantic model (`Campaign`, `CampaignPage`, `Sender`...) or raises a `DispatcherError`
subclass: `AuthenticationError` (401), `NotFoundError` (404), `ConflictError` (409), `ValidationError` (422,
with `.errors`), `ServerError` (5xx) or `TransportError` (no answer).
"""

from dispatcher.client._clients import AsyncClient, Client
from dispatcher.client.errors import (
    AuthenticationError,
    ConflictError,
    DispatcherError,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationError,
)
from dispatcher.client.models import (
    Campaign,
    CampaignErrorSummary,
    CampaignPage,
    CampaignRecipient,
    CampaignRun,
    CampaignStats,
    Contact,
    ContactImport,
    ContactPage,
    Group,
    GroupContactsAdded,
    ImportRowError,
    Message,
    MessagePage,
    Page,
    Sender,
    Template,
)

__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Campaign",
    "CampaignErrorSummary",
    "CampaignPage",
    "CampaignRecipient",
    "CampaignRun",
    "CampaignStats",
    "Client",
    "ConflictError",
    "Contact",
    "ContactImport",
    "ContactPage",
    "DispatcherError",
    "Group",
    "GroupContactsAdded",
    "ImportRowError",
    "Message",
    "MessagePage",
    "NotFoundError",
    "Page",
    "Sender",
    "ServerError",
    "Template",
    "TransportError",
    "ValidationError",
]
