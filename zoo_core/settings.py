"""Every `ZOO_*` environment variable the zoo reads, declared once with its default and meaning.

`get_settings()` builds them from the current environment on each call (tests and long-lived processes change the
environment, so nothing is cached); `zoo info --settings` prints them and where each value came from. Command-line
options (`--registry`, `--max-upload`) still win over these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from zoo_core.errors import ZooError

ENV_PREFIX = "ZOO_"


class Settings(BaseSettings):
    """The zoo's configuration; each field is read from `ZOO_<FIELD>` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    registry: str = Field("~/.zoo", description="The registry: a folder (embedded: SQLite + blobs) or the URL of "
                                                "`zoo serve` (http:// or https://).")
    token: SecretStr | None = Field(None, description="API token sent to a registry server (writing needs one).")
    database_url: str | None = Field(None, description="Database of an embedded registry or of the server, e.g. "
                                                       "postgresql+psycopg://...; default: SQLite in the folder.")
    blob_url: str | None = Field(None, description="Where file contents live: a folder or s3://bucket/prefix; "
                                                   "default: the registry folder's blobs/.")
    s3_endpoint_url: str | None = Field(None, description="Endpoint of an S3-compatible store (MinIO, moto); "
                                                          "default: AWS.")
    cache: str = Field("~/.cache/zoo", description="Where versions pulled from a registry server are written.")
    max_upload: int = Field(20 * 1024**3, gt=0, description="Largest file the server accepts, in bytes.")
    # huggingface_hub 1.x/2.x send every file the server asks for through Git LFS over Xet instead when hf_xet is
    # installed (the zoo does not speak Xet); files below the threshold ride inside the commit, which the server
    # decodes as it streams in (flat memory), so a high threshold keeps push_to_hub working with every client.
    lfs_threshold: int = Field(1024**3, gt=0, description="Files from this size up (bytes) reach the server through "
                               "Git LFS from Hub clients (1.x/2.x clients need HF_HUB_DISABLE_XET=1 for them); "
                               "smaller ones ride inside the commit, streamed.")
    max_body: int = Field(16 * 1024**2, gt=0, description="Largest request body (bytes) the server reads whole "
                          "(JSON: versions, aliases, Hub calls); uploads stream and are bounded by max_upload.")
    header_timeout: float = Field(10.0, ge=0, description="Seconds a client has to send a request's headers, from "
                                  "connecting or from its previous response (0: no limit); then 408 and closed.")
    body_timeout: float = Field(30.0, gt=0, description="Seconds a request body may stall (no bytes arriving) "
                                "before the server gives up on it (408).")
    lfs_secret: SecretStr | None = Field(None, description="Key that signs the server's Git LFS upload URLs; set the "
                                         "same one on every server process behind one registry (default: random "
                                         "per process).")
    load_plugins: str | None = Field(None, description="Comma-separated plugin entry points to load (empty: none "
                                                       "besides the built-ins); default: all installed.")
    card_policy: Literal["required", "aliases", "off"] = Field(
        "aliases", description="What a model card must hold: `required`: a complete card to publish; `aliases`: "
                               "any card publishes, aliases other than `latest` need a complete one; `off`: no "
                               "check enforced (every version still records what its card lacks).")
    trace_plugins: bool = Field(False, description="Print every plugin hook call (for debugging a plugin).")


def get_settings() -> Settings:
    """The settings as the environment says now; a malformed value is a user error naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ZooError(f"bad setting: {problems}") from None


def describe_settings(settings: Settings | None = None) -> list[dict[str, Any]]:
    """One row per setting: name, environment variable, value (secrets masked), default, source, description."""
    settings = settings or get_settings()
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        rows.append({"name": name, "variable": f"{ENV_PREFIX}{name.upper()}", "value": _shown(value),
                     "default": field.default, "source": "environment" if name in settings.model_fields_set
                     else "default", "description": field.description})
    return rows


def _shown(value: Any) -> Any:
    """Secrets keep only their last four characters; passwords inside URLs are hidden."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return "****" + secret[-4:] if len(secret) > 8 else "****"
    if isinstance(value, str) and "://" in value and "@" in value.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = value.split("://", 1)
        userinfo, host = rest.split("@", 1)
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:****@{host}" if ":" in userinfo else value
    return value
