"""`import_model`: bring a model in Hugging Face layout into a registry as a root of lineage, keeping its card."""

from __future__ import annotations

import logging
from pathlib import Path

from zoo_core.client import Registry
from zoo_core.errors import ZooError
from zoo_core.registry.types import VersionInfo

logger = logging.getLogger(__name__)


def import_model(registry: Registry, source: str, model: str, draft: bool = False,
                 visibility: str | None = None) -> VersionInfo:
    """Register `source` as the next version of `model`, with the source as its parent (relation "import").

    Args:
        registry: any `Registry` (embedded or a server).
        source: a folder in Hugging Face layout (with config.json), or `hf:ORG/NAME[@REVISION]`, fetched through
            huggingface_hub (its cache and HF_HUB_OFFLINE apply).
        model: `NAMESPACE/NAME`.
        draft: register as a draft (kept out of `latest`; published by default, its card check recorded).
    """
    if source.startswith("hf:"):
        from huggingface_hub import snapshot_download

        repo, _, revision = source[3:].partition("@")
        try:
            folder = Path(snapshot_download(repo, revision=revision or None))
        except Exception as exc:  # huggingface_hub raises many kinds; the user needs the one line
            raise ZooError(f"cannot get {source}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        parent = f"hf:{repo}@{folder.name}"  # snapshot folders are named by commit
    else:
        folder = Path(source).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise ZooError(f"'{source}' is not a model folder in Hugging Face layout (no config.json)")
        parent = f"file:{folder}"
    logger.debug("importing %s as %s", source, model)
    return registry.push(folder, model, status="draft" if draft else "published", parent=parent,
                         relation="import", visibility=visibility)
