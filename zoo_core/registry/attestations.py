"""Attestations: a reproduction of a version (`zoo reproduce --record`), recorded by whoever ran it.

Anyone who can read a version and is known to the registry (an embedded registry's owner, or a token's namespace)
may attest: reproducing someone else's model is the point. Attestations are append-only; each says who, when,
in which environment, and the outcome: bit-identical (same sha256 of model.safetensors), within tolerance
(metrics within the stated tolerance), or differs.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, select

from zoo_core.errors import AuthError, ZooError
from zoo_core.registry.models import Attestation
from zoo_core.registry.refs import parse_ref
from zoo_core.registry.types import ADMIN, Viewer

OUTCOMES = ("bit-identical", "within tolerance", "differs")
REPRODUCED = OUTCOMES[:2]  # what `search --reproduced` and the catalog's badge count as reproduced
MAX_DOCUMENT = 64 * 1024  # bytes of JSON per attestation's environment and details


class AttestationsMixin:
    """Attestation operations of `RegistryService` (which provides `engine` and the row helpers)."""

    def attest(self, model_ref: str, outcome: str, environment: dict[str, Any] | None = None,
               details: dict[str, Any] | None = None, viewer: Viewer = ADMIN) -> dict[str, Any]:
        """Record a reproduction of the version `model_ref` names; returns the stored attestation."""
        if outcome not in OUTCOMES:
            raise ZooError(f"an attestation's outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}")
        if not viewer.admin and not viewer.namespaces:
            raise AuthError("recording an attestation needs a token (whoever attests is recorded)")
        environment, details = environment or {}, details or {}
        for what, document in (("environment", environment), ("details", details)):
            if not isinstance(document, dict) or len(json.dumps(document, default=str)) > MAX_DOCUMENT:
                raise ZooError(f"an attestation's {what} must be a JSON object of at most {MAX_DOCUMENT} bytes")
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            version = self._version(session, model, ref, viewer)
            row = Attestation(version_id=version.id, outcome=outcome, actor=viewer.name,
                              environment=json.loads(json.dumps(environment, default=str)),
                              details=json.loads(json.dumps(details, default=str)))
            session.add(row)
            session.commit()
            session.refresh(row)
            return _as_dict(row)

    def _attestations(self, session: Session, version_id: int) -> list[dict[str, Any]]:
        rows = session.exec(select(Attestation).where(Attestation.version_id == version_id)
                            .order_by(Attestation.id)).all()
        return [_as_dict(row) for row in rows]


def reproduced_versions():
    """Ids of versions with at least one attestation that reproduced them (bit-identical or within tolerance)."""
    return select(Attestation.version_id).where(Attestation.outcome.in_(REPRODUCED))


def _as_dict(row: Attestation) -> dict[str, Any]:
    return {"outcome": row.outcome, "by": row.actor, "at": row.at.isoformat(), "environment": row.environment,
            "details": row.details}
