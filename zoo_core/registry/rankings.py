"""Rank scores: `zoo rank --record DATASET` keeps each registry candidate's transferability scores on a named data set,
so a model's page can say "ranked #2 of 9 for pneumonia-32 by LogME" and the next user of that data starts there.

Like attestations (attestations.py), anyone known to the registry who can read a version may record one (ranking
other people's models is the point); records are append-only and name who recorded them. The data set is a name the
recorder chose plus a fingerprint of the labelled examples scored (so two rankings under one name on different data
can be told apart). Scores must be finite numbers: one bad record must not break a page for everyone.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlmodel import Session, select

from zoo_core.errors import AuthError, ZooError
from zoo_core.registry.models import RankScore
from zoo_core.registry.refs import parse_ref
from zoo_core.registry.types import ADMIN, RANKINGS_SHOWN, Viewer

SCORE_NAMES = ("logme", "hscore", "leep", "nce", "ridge")  # zoo_core.transferability.SCORES
DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
MAX_CANDIDATES = 10_000
SHOWN = RANKINGS_SHOWN  # rankings listed with a version, newest first


class RankingsMixin:
    """Rank-score operations of `RegistryService` (which provides `engine` and the row helpers)."""

    def record_rank(self, model_ref: str, dataset: str, fingerprint: str, by: str, scores: dict[str, float],
                    rank: int, of: int, examples: int, viewer: Viewer = ADMIN) -> dict[str, Any]:
        """Record the scores the version `model_ref` names got on a data set, and its place among `of` candidates
        ranked by `by`; returns the stored record."""
        if not viewer.admin and not viewer.namespaces:
            raise AuthError("recording a ranking needs a token (whoever ranks is recorded)")
        _check(dataset, fingerprint, by, scores, rank, of, examples)
        ref = parse_ref(model_ref)
        with Session(self.engine) as session:
            model, _ = self._model(session, ref, viewer)
            version = self._version(session, model, ref)
            row = RankScore(version_id=version.id, dataset=dataset, fingerprint=fingerprint, by=by,
                            score=float(scores[by]), scores={k: float(v) for k, v in scores.items()}, rank=rank,
                            of=of, examples=examples, actor=viewer.name)
            session.add(row)
            session.commit()
            session.refresh(row)
            return _as_dict(row)

    def _rankings(self, session: Session, version_id: int) -> list[dict[str, Any]]:
        rows = session.exec(select(RankScore).where(RankScore.version_id == version_id)
                            .order_by(RankScore.id.desc()).limit(SHOWN)).all()
        return [_as_dict(row) for row in rows]


def _check(dataset: str, fingerprint: str, by: str, scores: dict[str, float], rank: int, of: int,
           examples: int) -> None:
    if not isinstance(dataset, str) or not DATASET.fullmatch(dataset):
        raise ZooError(f"a ranking's data set name is 1-100 letters, digits, '.', '_' or '-', starting with a "
                       f"letter or digit, not {dataset!r}")
    if not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint):
        raise ZooError("a ranking's data fingerprint is a sha256 (64 lowercase hex digits)")
    if not isinstance(scores, dict) or not scores:
        raise ZooError("a ranking needs its scores, e.g. {\"logme\": 0.42}")
    for name, value in scores.items():
        if name not in SCORE_NAMES:
            raise ZooError(f"unknown score {name!r}: one of {', '.join(SCORE_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ZooError(f"score {name} must be a finite number, not {value!r}")
    if by not in scores:
        raise ZooError(f"the ranking is by {by!r}, which is not among its scores ({', '.join(scores)})")
    for what, value, low, high in (("of", of, 1, MAX_CANDIDATES), ("rank", rank, 1, of),
                                   ("examples", examples, 1, 10**9)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ZooError(f"a ranking's {what} must be a whole number from {low} to {high}, not {value!r}")


def _as_dict(row: RankScore) -> dict[str, Any]:
    return {"dataset": row.dataset, "fingerprint": row.fingerprint, "by": row.by, "score": row.score,
            "scores": row.scores, "rank": row.rank, "of": row.of, "examples": row.examples, "recorded_by": row.actor,
            "at": row.at.isoformat()}
