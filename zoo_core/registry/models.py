"""Registry tables. Schema changes go through Alembic migrations (zoo_core/registry/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Namespace(SQLModel, table=True):
    """A user or an organisation: the `acme` of `acme/pneumonia-resnet18`."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    kind: str = Field(default="org", max_length=8)
    created_at: datetime = Field(default_factory=utcnow)


class Model(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    namespace_id: int = Field(foreign_key="namespace.id", index=True)
    name: str = Field(max_length=96)
    task: str | None = Field(default=None, max_length=64)
    modality: str | None = Field(default=None, max_length=16)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    license: str | None = Field(default=None, max_length=64)
    visibility: str = Field(default="public", max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Version(SQLModel, table=True):
    """One immutable version of a model: its files never change once published."""

    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    number: int
    status: str = Field(default="published", max_length=12, index=True)
    commit: str = Field(max_length=40, index=True)
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    card: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    card_data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    backbone: str | None = Field(default=None, max_length=64, index=True)
    family: str | None = Field(default=None, max_length=32, index=True)
    strategy: str | None = Field(default=None, max_length=32, index=True)
    library: str | None = Field(default=None, max_length=32)
    status_reason: str | None = Field(default=None, max_length=500)
    # the card check at publication: aliases other than `latest` need a complete card (see cards.CARD_POLICIES)
    card_complete: bool = Field(default=True, index=True)
    card_missing: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # a Hub commit's message


class VersionMetric(SQLModel, table=True):
    """Metrics as rows, so filters (`accuracy >= 0.9`) and sorts are plain, portable SQL."""

    # (name, value, version_id): a metric filter read from the index alone (migration 0009)
    __table_args__ = (Index("ix_metric_name_value_version", "name", "value", "version_id"),)

    version_id: int = Field(foreign_key="version.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=32)
    value: float


class FileEntry(SQLModel, table=True):
    __tablename__ = "file"
    __table_args__ = (UniqueConstraint("version_id", "path"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    path: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64, index=True)


class Alias(SQLModel, table=True):
    model_id: int = Field(foreign_key="model.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=48)
    version_id: int = Field(foreign_key="version.id", index=True)


class AliasEvent(SQLModel, table=True):
    """Append-only history of alias moves."""

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    alias: str = Field(max_length=48)
    from_version: int | None = None
    to_version: int | None = None
    actor: str | None = Field(default=None, max_length=64)
    at: datetime = Field(default_factory=utcnow)


class LineageEdge(SQLModel, table=True):
    """child version -> parent (another version, or an external source such as torchvision:resnet50...)."""

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="version.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="version.id", index=True)
    parent_external: str | None = Field(default=None, max_length=255)
    relation: str = Field(default="finetune", max_length=24)
    recipe: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Token(SQLModel, table=True):
    """API tokens, stored as sha256 hashes; a token reads and (unless read-only) writes one namespace, until it
    expires or is revoked (registry/tokens.py)."""

    id: int | None = Field(default=None, primary_key=True)
    namespace_id: int = Field(foreign_key="namespace.id", index=True)
    name: str = Field(max_length=64)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    read_only: bool = False
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class Attestation(SQLModel, table=True):
    """Someone re-ran a version's recipe (`zoo reproduce --record`) and says what came out: append-only."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    outcome: str = Field(max_length=20, index=True)  # bit-identical | within tolerance | differs
    actor: str | None = Field(default=None, max_length=64)
    at: datetime = Field(default_factory=utcnow)
    environment: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RankScore(SQLModel, table=True):
    """A version's transferability scores on a named data set (`zoo rank --record`), recorded by whoever ranked it:
    append-only (registry/rankings.py)."""

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", index=True)
    dataset: str = Field(max_length=100, index=True)
    fingerprint: str = Field(max_length=64)  # sha256 of the labelled examples scored
    by: str = Field(max_length=16)  # the score the rank is by: logme | hscore | leep | nce | ridge
    score: float
    scores: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    rank: int
    of: int
    examples: int
    actor: str | None = Field(default=None, max_length=64)
    at: datetime = Field(default_factory=utcnow)


class Upload(SQLModel, table=True):
    """Who uploaded which bytes, and until when that counts: publishing a file needs the writer's own upload of it
    (or a version the writer can read holding the same bytes), and `gc` keeps a blob while an upload of it lasts."""

    __table_args__ = (UniqueConstraint("owner", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=64)
    sha256: str = Field(max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
