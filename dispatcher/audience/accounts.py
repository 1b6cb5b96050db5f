"""Accounts and API tokens. A token is shown once; only its sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.db.models import Account, ApiKey

TOKEN_PREFIX = "dsp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_account(session: Session, name: str) -> tuple[Account, str]:
    account = Account(name=name)
    session.add(account)
    session.flush()
    return account, issue_token(session, account)


def issue_token(session: Session, account: Account) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(account_id=account.id, token_hash=hash_token(token), prefix=token[:10]))
    session.flush()
    return token


def account_for_token(session: Session, token: str) -> Account | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.token_hash == hash_token(token), ApiKey.revoked.is_(False)))
    return session.get(Account, key.account_id) if key else None
