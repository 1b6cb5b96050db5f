"""A fresh account with a sandbox sender and an API client, for tests on the live stack."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.support.processes import Stack


@dataclass
class Tenant:
    account_id: int
    token: str
    sender_id: int
    client: TestClient

    def post(self, path: str, json: Any, **kw: Any) -> httpx.Response:
        return self.client.post(
            path, json=json, headers={"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}, **kw
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def patch(self, path: str, json: Any) -> httpx.Response:
        return self.client.patch(path, json=json, headers={"Authorization": f"Bearer {self.token}"})

    def delete(self, path: str) -> httpx.Response:
        return self.client.delete(path, headers={"Authorization": f"Bearer {self.token}"})

    def upload(self, path: str, body: bytes, content_type: str = "text/csv") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        return self.client.post(path, content=body, headers=headers)

    def import_file(self, group_id: str, body: bytes, content_type: str = "text/csv", **params: str) -> dict[str, Any]:
        """Upload a file of contacts into the group and wait until its import is done or failed."""
        query = "&".join(f"{k}={v}" for k, v in {"groupId": group_id, **params}.items())
        response = self.upload(f"/v1/contacts/imports?{query}", body, content_type)
        assert response.status_code == 202, response.text
        return self.wait_import(response.json()["id"])

    def wait_import(self, import_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"/v1/contacts/imports/{import_id}").json()
            if body["status"] in ("done", "failed"):
                return body
            time.sleep(0.2)
        raise AssertionError(f"import {import_id} not over after {timeout}s: {body['status']} at row {body['rows']}")

    def wait_final(self, campaign_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"/v1/campaigns/{campaign_id}").json()
            if body["status"] in ("SENT", "FAILED", "CANCELLED"):
                return body
            time.sleep(0.25)
        raise AssertionError(f"campaign {campaign_id} not final after {timeout}s: {body['status']} {body['stats']}")


def make_tenant(stack: Stack, name: str = "acme", *, rate: float = 1000, burst: int = 1000) -> Tenant:
    from dispatcher.api.app import create_app
    from tests.support.databases import sandbox_account

    account_id, token, sender_id = sandbox_account(stack.db_url, name, rate=rate, burst=burst)
    return Tenant(account_id, token, sender_id, TestClient(create_app()))


def ci_phone(n: int) -> str:
    """A valid Côte d'Ivoire mobile number (10 national digits since 2021), without '+'."""
    return f"22507{n:08d}"
