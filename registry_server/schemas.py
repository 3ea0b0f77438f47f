"""The JSON API's bodies, in and out, as pydantic models: FastAPI validates them and /docs shows their schemas.
Field names are the wire's (the zoo's client, the Hub's clients and the tests read them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zoo_core.registry.rankings import SCORE_NAMES


# -- in -------------------------------------------------------------------------------------------------------------
class FileIn(BaseModel):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class VersionIn(BaseModel):
    files: list[FileIn]
    status: Literal["published", "draft"] = "published"
    parent: str | None = None
    relation: str | None = None
    visibility: Literal["public", "private"] | None = None
    description: str | None = None
    aliases: list[str] = Field(default_factory=list, max_length=16,
                               description="aliases to point at the new version in the same transaction (as "
                                           "POST .../aliases would: a complete card needed but for `latest`)")


class AliasIn(BaseModel):
    alias: str
    version: int


class StatusIn(BaseModel):
    status: Literal["published", "deprecated", "yanked"]
    reason: str | None = None


# -- out ------------------------------------------------------------------------------------------------------------
class FileOut(BaseModel):
    path: str
    size: int
    sha256: str


class ParentOut(BaseModel):
    ref: str | None = Field(description="another version (`ns/name@3`) or an outside source (`torchvision:...`, "
                                        "`hf:...`); null for a private model the caller cannot see")
    relation: str
    private: bool = Field(False, description="the parent is a private model the caller cannot see")


class AttestationIn(BaseModel):
    """A reproduction of a version: `zoo reproduce --record` sends it."""

    outcome: Literal["bit-identical", "within tolerance", "differs"]
    environment: dict[str, Any] = {}
    details: dict[str, Any] = {}


class AttestationOut(AttestationIn):
    by: str | None = Field(description="the namespace of the token that recorded it (local: an embedded registry)")
    at: str


class RankingIn(BaseModel):
    """A version's transferability scores on a named data set: `zoo rank --record DATASET` sends one per registry
    candidate."""

    dataset: str = Field(description="the data set's name, chosen by whoever ranked (1-100 of A-Z a-z 0-9 . _ -)")
    fingerprint: str = Field(description="sha256 of the labelled examples scored")
    by: Literal[SCORE_NAMES] = Field(description="the score the rank is by")
    scores: dict[str, float] = Field(description="every score computed, by name")
    rank: int = Field(description="1 = the best of the candidates ranked together")
    of: int = Field(description="how many candidates were ranked together")
    examples: int = Field(description="labelled examples scored")


class RankingOut(RankingIn):
    score: float = Field(description="the score the rank is by")
    recorded_by: str | None = Field(description="the namespace of the token that recorded it")
    at: str


class VersionOut(BaseModel):
    """One version: what `Registry.resolve` returns."""

    model_id: str
    number: int
    status: str
    commit: str = Field(description="40-hex sha1 of the version's manifest: the Hub clients' revision")
    created_at: str
    created_by: str | None
    backbone: str | None
    family: str | None
    strategy: str | None
    metrics: dict[str, float]
    aliases: list[str]
    files: list[FileOut] = []
    parents: list[ParentOut] = []
    card: str | None = None
    status_reason: str | None = None
    size: int | None = Field(None, description="bytes, all files together")
    card_complete: bool = Field(True, description="whether the model card has every section the zoo asks for "
                                                  "(aliases other than `latest` need it)")
    card_missing: list[str] = Field([], description="what the card lacks")
    message: str | None = Field(None, description="the commit message it was published with (Hub clients)")
    attestations: list[AttestationOut] = Field([], description="reproductions of this version, oldest first")
    rankings: list[RankingOut] = Field([], description="transferability scores on named data sets, newest first")


class ModelOut(BaseModel):
    """A model: the Hub's ModelInfo at `latest` (when one is published: `sha`, `siblings`, `cardData`, ...) plus the
    zoo's summary and every version."""

    model_config = ConfigDict(extra="allow")

    id: str
    task: str | None
    modality: str | None
    license: str | None
    description: str | None
    tags: list[str] | None
    visibility: str
    created_at: str
    updated_at: str
    versions: list[VersionOut]


class ResultVersion(BaseModel):
    number: int
    status: str
    aliases: list[str]
    metrics: dict[str, float]


class SearchResult(BaseModel):
    id: str
    task: str | None
    modality: str | None
    description: str | None
    license: str | None
    tags: list[str] | None
    visibility: str
    updated_at: str
    latest: int = Field(description="the number of the version `latest` names, which the filters matched")
    backbone: str | None
    family: str | None
    strategy: str | None
    metrics: dict[str, float]
    versions: list[ResultVersion]
    card_complete: bool = Field(True, description="whether the latest version's card is complete")
    card_missing: list[str] = []
    library: str | None = None


class SearchOut(BaseModel):
    total: int
    page: int
    per_page: int
    results: list[SearchResult]
    facets: dict[str, list[tuple[str, int]]] | None = Field(
        None, description="with facets=true: per facet, (value, count) among all matches, most common first")


class LineageNode(BaseModel):
    id: str = Field(description="`ns/name@N`, or an outside source")
    depth: int = Field(description="negative: ancestors; positive: descendants")
    version_id: int | None = None
    status: str | None = None
    strategy: str | None = None
    backbone: str | None = None
    external: bool | None = None


class LineageEdge(BaseModel):
    child: str
    parent: str
    relation: str


class LineageOut(BaseModel):
    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]


class AliasEventOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    alias: str
    from_: int | None = Field(alias="from")
    to: int | None
    actor: str | None
    at: str


class BlobOut(BaseModel):
    sha256: str
    size: int


class ErrorOut(BaseModel):
    """Every error answer (also in the `X-Error-Code` / `X-Error-Message` headers, for the Hub's clients)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="the message")
    type: str = Field(description="the error class, which the zoo's client raises again")
    code: str = Field(description="the Hub's error code (RepoNotFound, RevisionNotFound, EntryNotFound) when there "
                                  "is one, else the type; also in the X-Error-Code header")
    status: int


ERRORS: dict[int | str, dict[str, Any]] = {"4XX": {"model": ErrorOut, "description": "an error, in one shape"}}
