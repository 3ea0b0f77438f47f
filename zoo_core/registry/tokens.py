"""API tokens: made on the registry's machine, shown once, stored as sha256 hashes. Each reads (and, unless
read-only, writes) one namespace until it expires or is revoked; every request looks its token up again, so a
revocation takes effect on the next request. The last use is recorded, at most once a minute per token (a write per
request would cost every read)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, select

from zoo_core.errors import AuthError, NotFoundError, ZooError
from zoo_core.registry.models import Namespace, Token, utcnow
from zoo_core.registry.types import ANONYMOUS, Viewer

LAST_USED_EVERY = timedelta(seconds=60)
# built once, with a bound parameter (building a statement costs more than running it on SQLite); columns, not rows
TOKEN_LOOKUP = (select(Token.id, Token.name, Token.revoked_at, Token.expires_at, Token.last_used_at, Token.read_only,
                       Namespace.name.label("namespace"))
                .join(Namespace, Token.namespace_id == Namespace.id).where(Token.token_hash == bindparam("hash")))
NOT_OURS = ("invalid token: it is not a token of this zoo registry (a huggingface.co login stored on this machine is "
            "sent too): pass token=<zoo token> (zoo token create NAMESPACE on the server), or `hf auth logout` / "
            "unset HF_TOKEN to read public models anonymously")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their time zone; they were stored in UTC."""
    return moment.replace(tzinfo=utcnow().tzinfo) if moment is not None and moment.tzinfo is None else moment


class TokensMixin:
    """The token side of `RegistryService` (which provides `engine` and `_namespace`)."""

    def create_token(self, namespace: str, name: str = "default", *, expires_in: float | None = None,
                     read_only: bool = False) -> str:
        """A new token for `namespace`, returned once. `expires_in`: seconds it lasts (default: until revoked)."""
        if expires_in is not None and expires_in <= 0:
            raise ZooError("a token's lifetime must be positive (seconds)")
        if not name or len(name) > 64 or any(ord(c) < 32 for c in name):
            raise ZooError("a token's name is 1 to 64 printable characters")
        token = "zoo_" + secrets.token_urlsafe(32)
        expires_at = utcnow() + timedelta(seconds=expires_in) if expires_in is not None else None
        with Session(self.engine) as session:
            ns = self._namespace(session, namespace)
            session.add(Token(namespace_id=ns.id, name=name, token_hash=hash_token(token), expires_at=expires_at,
                              read_only=read_only))
            session.commit()
        return token

    def viewer_for(self, token: str | None) -> Viewer:
        """Who a request's token makes it: AuthError (401) when the token is unknown, expired or revoked."""
        who, due = self.check_token(token)
        if due is not None:
            self.mark_used(due)
        return who

    def check_token(self, token: str | None) -> tuple[Viewer, int | None]:
        """`viewer_for` without its write: the viewer, and the token's id when its `last_used_at` is due to be
        renewed (`mark_used`), else None. A read only: the server runs it on its event loop where reads run there
        (SQLite), and the rare renewal, a write, in its thread pool."""
        if not token:
            return ANONYMOUS, None
        with self.engine.connect() as connection:  # a connection, not a session: every write asks, twice
            found = connection.execute(TOKEN_LOOKUP, {"hash": hash_token(token)}).first()
            if found is None:
                raise AuthError(NOT_OURS)
            now = utcnow()
            if found.revoked_at is not None:
                raise AuthError(f"this token ('{found.name}' of {found.namespace}) was revoked on "
                                f"{_aware(found.revoked_at):%Y-%m-%d %H:%M} UTC; ask for a new one")
            if found.expires_at is not None and _aware(found.expires_at) <= now:
                raise AuthError(f"this token ('{found.name}' of {found.namespace}) expired on "
                                f"{_aware(found.expires_at):%Y-%m-%d %H:%M} UTC; ask for a new one")
            due = found.last_used_at is None or now - _aware(found.last_used_at) >= LAST_USED_EVERY
            return (Viewer(namespaces=frozenset({found.namespace}), name=found.namespace, read_only=found.read_only),
                    found.id if due else None)

    def mark_used(self, token_id: int) -> None:
        """Renew a token's `last_used_at` (shown by `zoo token list`; once a minute at most, see check_token)."""
        with self.write_lock, Session(self.engine) as session:  # queued with this process's other writers (db.py)
            session.exec(update(Token).where(Token.id == token_id).values(last_used_at=utcnow()))
            session.commit()

    def token_info(self, token: str) -> dict[str, Any]:
        """Whom a token belongs to (the Hub's whoami): its namespace, its name and what it may do."""
        self.viewer_for(token)
        with Session(self.engine) as session:
            found, ns = session.exec(select(Token, Namespace).join(Namespace)
                                     .where(Token.token_hash == hash_token(token))).one()
            return {"namespace": ns.name, "name": found.name, "created_at": found.created_at.isoformat(),
                    "read_only": found.read_only}

    def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every token (of `namespace`), oldest first: never the secret, which is not stored."""
        with Session(self.engine) as session:
            stmt = select(Token, Namespace).join(Namespace).order_by(Token.id)
            if namespace:
                stmt = stmt.where(Namespace.name == namespace)
            now = utcnow()
            out = []
            for found, ns in session.exec(stmt):
                expires, revoked = _aware(found.expires_at), _aware(found.revoked_at)
                state = "revoked" if revoked else "expired" if expires and expires <= now else "active"
                out.append({"id": found.id, "namespace": ns.name, "name": found.name, "state": state,
                            "read_only": found.read_only, "created_at": _aware(found.created_at).isoformat(),
                            "expires_at": expires.isoformat() if expires else None,
                            "last_used_at": _aware(found.last_used_at).isoformat() if found.last_used_at else None,
                            "revoked_at": revoked.isoformat() if revoked else None})
            return out

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        """Revoke a token by its id (`zoo token list`); it is refused from the next request on. The row stays, so
        the list still says who had it and when it was last used."""
        with Session(self.engine) as session:
            found = session.get(Token, token_id)
            if found is None:
                raise NotFoundError(f"no token with id {token_id} (zoo token list shows them)")
            if found.revoked_at is None:
                found.revoked_at = utcnow()
                session.add(found)
                session.commit()
        return next(t for t in self.list_tokens() if t["id"] == token_id)
