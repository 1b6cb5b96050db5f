"""FastAPI dependencies: the request's database session, the account behind its Bearer token, and the
representation a request asks for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, Protocol, TypeVar

import redis
import structlog
from fastapi import Depends, Header, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dispatcher import redis_client
from dispatcher.audience.accounts import account_for_token
from dispatcher.audience.contacts import parse_id
from dispatcher.config import Settings, get_settings
from dispatcher.db.models import Account
from dispatcher.db.session import session_factory
from dispatcher.errors import NotFound

_bearer = HTTPBearer(auto_error=False, description="An API token from `dispatcher accounts create NAME`")


def get_session() -> Iterator[Session]:
    with session_factory()() as session:
        yield session


def get_account(
    session: Annotated[Session, Depends(get_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> Account:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing Bearer token", {"WWW-Authenticate": "Bearer"})
    account = account_for_token(session, credentials.credentials)
    if account is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", {"WWW-Authenticate": "Bearer"})
    request.state.account_id = account.id
    structlog.contextvars.bind_contextvars(account_id=account.id)
    return account


def get_redis() -> redis.Redis:
    return redis_client.get_redis()


def wants_csv(
    format_: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="`csv`: the answer as CSV, as `Accept: text/csv` asks (this wins)"),
    ] = None,
    accept: Annotated[str, Header(description="`text/csv` for the answer as CSV")] = "",
) -> bool:
    """`?format=` if given, else the Accept header: CSV when it ranks `text/csv` above `application/json`
    (a tie, `*/*` or no Accept header keep JSON, the answer every client had before CSV existed)."""
    if format_ is not None:
        return format_ == "csv"
    ranks = _accept_ranks(accept)
    return ranks.get("text/csv", 0.0) > ranks.get("application/json", 0.0)


def _accept_ranks(accept: str) -> dict[str, float]:
    """`text/csv;q=0.9, application/json;q=0.5` -> {"text/csv": 0.9, "application/json": 0.5}."""
    ranks: dict[str, float] = {}
    for entry in accept.lower().split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                q = _weight(value)
        if media:
            ranks[media] = max(ranks.get(media, 0.0), q)
    return ranks


def _weight(value: str) -> float:
    try:
        q = float(value)
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0  # an unreadable weight (or NaN) asks for nothing


SessionDep = Annotated[Session, Depends(get_session)]
AccountDep = Annotated[Account, Depends(get_account)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CsvWanted = Annotated[bool, Depends(wants_csv)]
# Bounded: (page - 1) * limit is an OFFSET, and a huge one overflows PostgreSQL's bigint (a 500).
PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]


def merged(saved: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """A PATCH of a JSON object: the saved keys updated with the changes, a key set to null removed."""
    return {k: v for k, v in {**(saved or {}), **changes}.items() if v is not None}


def total_of(session: Session, query: Select[Any, *tuple[Any, ...]]) -> int:
    """How many rows `query` selects in all (a list's `total`, beside the page it returns)."""
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


class Owned(Protocol):
    @property
    def account_id(self) -> int: ...


T = TypeVar("T", bound=Owned)


def owned(session: Session, model: type[T], account_id: int, ident: str, what: str) -> T:
    """The row with this id in the caller's account; another account's id is a 404 like a missing one."""
    key = parse_id(ident)
    row = session.get(model, key) if key is not None else None
    if row is None or row.account_id != account_id:
        raise NotFound(what, ident)
    return row
