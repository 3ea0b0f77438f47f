"""What a publishable model card must say, checked with huggingface_hub's own card parser."""

from __future__ import annotations

import re

import yaml

from zoo_core.card import PLACEHOLDER
from zoo_core.errors import CardError, ZooError

REQUIRED_SECTIONS = {
    "intended use": "an 'Intended use' section",
    "training data": "a 'Training data' section",
    "evaluation": "an 'Evaluation' section with metrics",
    "limitations": "a 'Limitations' section",
}


# What the registry enforces of a card (every version records what its card lacks, whatever the policy):
CARD_POLICIES = {
    "required": "a version needs a complete card to be published (drafts excepted)",
    "aliases": "any card publishes; aliases other than `latest` need a complete card",
    "off": "nothing enforced",
}


def check_alias_card(aliases, missing: list[str], policy: str, whose: str, advice: str) -> None:
    """The `aliases` policy's rule, for `set_alias` and a publish that moves aliases alike: an alias other than
    `latest` may not point at a version whose card lacks something (unless the policy is `off`)."""
    protected = [alias for alias in aliases if alias != "latest"]
    if protected and missing and policy != "off":
        raise CardError(f"alias '{protected[0]}' needs a complete model card, and {whose} card lacks "
                        f"{', '.join(missing)}; {advice}")


def check_card_policy(policy: str) -> str:
    if policy not in CARD_POLICIES:
        raise ZooError(f"card policy is one of {', '.join(CARD_POLICIES)}, not '{policy}'")
    return policy


FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def front_matter(text: str) -> str:
    """The YAML between a card's opening `---` lines ('' when it has none)."""
    match = FRONT_MATTER.match(text)
    return match.group(1) if match else ""


def has_yaml_aliases(text: str) -> bool:
    """Whether YAML text uses anchors or aliases (`&a`, `*a`). Ten nested aliases turn 600 bytes into 17 MB once
    loaded ("billion laughs"); no card or recipe needs them, so the registry refuses such files at publication and
    never expands them when it reads one. Looks at the parser's events only: nothing is built."""
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return True
    except yaml.YAMLError:
        return False  # malformed YAML is for whoever parses it to report (or ignore)
    return False


def parse_card(text: str) -> tuple[dict, str]:
    """(metadata, markdown body); a card without front matter has empty metadata, and so has one whose front
    matter uses YAML aliases (publication refuses those; this keeps any stored before from being expanded)."""
    if not text.lstrip().startswith("---"):
        return {}, text  # (huggingface_hub would log a warning for each such card)
    if has_yaml_aliases(front_matter(text)):
        return {}, FRONT_MATTER.sub("", text, count=1)
    # huggingface_hub's ModelCard(text, ignore_metadata_errors=True), step by step, with libyaml's parser where
    # ModelCard's yaml.safe_load uses the pure-Python one (a fifth of a publish's CPU; the same constructor builds the
    # data). YAML that libyaml refuses is read by the pure-Python parser, as ModelCard would.
    # (imported here, not at the top: huggingface_hub costs every `zoo` command 0.3 s to start)
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(text)
    if match is None:
        return {}, text
    try:
        data = yaml.load(match.group(2), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        data = yaml.safe_load(match.group(2))
    if not isinstance(data or {}, dict):
        raise ValueError("repo card metadata block should be a dict")
    return ModelCardData(**(data or {}), ignore_metadata_errors=True).to_dict(), text[match.end():]


def sections(body: str) -> dict[str, str]:
    found, current = {}, None
    for line in body.splitlines():
        match = re.match(r"^#{2,6}\s+(.*?)\s*$", line)
        if match:
            current = match.group(1).strip().lower()
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


METRIC_ROW = re.compile(r"^\|\s*[\w-]+\s*\|\s*[0-9.]+\s*\|", re.MULTILINE)


def _content(present: dict[str, str], key: str) -> str:
    text = next((v for k, v in present.items() if k.startswith(key)), "").strip()
    return "" if text == PLACEHOLDER else text


def missing_for_publication(text: str | None, parsed: tuple[dict, str] | None = None) -> list[str]:
    """What a card lacks to be published: required sections with real content, metrics, a license. `parsed`: the
    card's `parse_card`, when the caller has it (parsing is most of the cost)."""
    if not text or not text.strip():
        return ["a model card (README.md)"]
    meta, body = parsed or parse_card(text)
    present = sections(body)
    missing = [what for key, what in REQUIRED_SECTIONS.items() if not _content(present, key)]
    if _content(present, "evaluation") and not (meta.get("model-index") or METRIC_ROW.search(body)):
        missing.append("evaluation metrics (model-index in the metadata, or a metrics table)")
    if not meta.get("license"):
        missing.append("a license in the card's metadata")
    return missing
