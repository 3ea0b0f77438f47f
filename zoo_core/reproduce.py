"""`zoo reproduce`: rebuild a registered version from its recipe.yaml and say how close the rebuild came.

A version's recipe.yaml records everything its run depended on (zoo_core.determinism). Reproducing it:
1. the base through the lineage: the exact parent version (or, in a chain, the parent just reproduced), or the
   external source and revision recorded; its weights are checked against the recorded sha256 when there is one;
2. the data by the recorded fingerprints: each file the reader read, in the --data folders (by name, then by
   content) or at the recorded path, then each split the run used, checked before anything trains;
3. the same recipe with the recorded seed, thread count and resolved defaults, on the CPU;
4. the comparison. Same packages, CPU capability, device, settings and base: the weights must be bit-for-bit
   identical (sha256 of model.safetensors). Otherwise the test metrics (the version's published metrics) must lie
   within the tolerance (|recorded - reproduced| <= tolerance * max(1, |recorded|)); the largest weight difference
   and the training and validation metrics of the kept epoch are reported beside them.
"""

from __future__ import annotations

import copy
import getpass
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from zoo_core.client import Registry, open_registry
from zoo_core.determinism import folder_sha256, string_values
from zoo_core.errors import DataMismatchError, MissingBaseError, ZooError
from zoo_core.registry.files import file_sha256

DEFAULT_TOLERANCE = 0.02
SPLITS = ("train", "val", "test")


@dataclass
class Row:
    """One line of the "what differed" table."""

    what: str
    recorded: Any
    reproduced: Any
    same: bool


@dataclass
class Reproduction:
    ref: str
    outcome: str  # bit-identical | within tolerance | differs
    expected: str  # what the environment allowed: bit-identical, or within tolerance
    tolerance: float
    rows: list[Row]
    checkpoint: Path
    sha256: str
    recorded_sha256: str | None
    max_weight_difference: float
    max_weight_tensor: str | None
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    attestation: dict[str, Any] | None = None  # set once recorded in the registry

    @property
    def differed(self) -> list[str]:
        return [row.what for row in self.rows if not row.same]

    def details(self) -> dict[str, Any]:
        """What an attestation keeps (zoo_core.registry.attestations)."""
        return {"expected": self.expected, "tolerance": self.tolerance, "sha256": self.sha256,
                "recorded_sha256": self.recorded_sha256,
                "max_weight_difference": self.max_weight_difference, "max_weight_tensor": self.max_weight_tensor,
                "threads": self.environment.get("num_threads"), "differed": self.differed,
                "rows": [row.__dict__ for row in self.rows], "notes": self.notes,
                "reported_by": _user()}

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "outcome": self.outcome, "checkpoint": str(self.checkpoint),
                "environment": self.environment, **self.details()}


def reproduce(ref: str, registry: Registry | str | None = None, data_dirs: list[Path] | tuple = (),
              tolerance: float = DEFAULT_TOLERANCE, threads: int | None = None, output: Path | None = None,
              base: Path | None = None, log: Callable[[str], None] = lambda m: None) -> Reproduction:
    """Re-run the version `ref` names and compare. `base`: a checkpoint folder to use as the base instead of the
    lineage parent (the chain passes the parent it reproduced); `threads`: run with another thread count than the
    recorded one (then bit-identity is not expected); `output`: where the rebuilt checkpoint goes."""
    from zoo_core.recipe import recipe_from_dict
    from zoo_core.run import run_recipe

    registry = registry if isinstance(registry, Registry) else open_registry(registry)
    info = registry.resolve(ref)
    exact = f"{info.model_id}@{info.number}"
    if "recipe.yaml" not in {f["path"] for f in info.files}:
        raise ZooError(f"{exact} has no recipe.yaml: it was not trained by the zoo (imported?), so there is "
                       "nothing to re-run")
    recorded_folder = registry.pull(exact)
    recipe = yaml.safe_load((recorded_folder / "recipe.yaml").read_text())
    resolved = recipe.pop("resolved", {}) or {}
    recipe.setdefault("defaults", 1)  # written before defaults had versions: train as it did (zoo_core.defaults)
    notes: list[str] = []
    recipe["base"] = _base(exact, info.parents, resolved, registry, base, notes)
    defaults = resolved.get("defaults") or {}
    args = {**(defaults.get("data.args") or {}), **recipe["data"]["args"]}  # the reader's defaults as they were
    recipe["data"]["args"] = _locate_data(exact, args, resolved.get("data_files") or {},
                                          [Path(d) for d in data_dirs], notes)
    train = recipe["train"]
    train["device"] = "cpu"
    train["num_threads"] = threads or defaults.get("train.num_threads") or train.get("num_threads")
    if train.get("warmup_epochs") is None and "train.warmup_epochs" in defaults:
        train["warmup_epochs"] = defaults["train.warmup_epochs"]
    output = Path(output or tempfile.mkdtemp(prefix="zoo-reproduce-")) / f"{info.model_id.replace('/', '--')}@" \
        f"{info.number}"
    recipe.update(output=str(output), publish=None)
    parsed = recipe_from_dict(recipe, source=f"recipe.yaml of {exact}")
    _check_splits(exact, parsed, resolved.get("data") or {}, recipe["data"]["args"])
    log(f"reproducing {exact}: base {recipe['base']}, {train['num_threads']} threads")
    threads_before = torch.get_num_threads()
    try:
        run_recipe(parsed, progress=False, log=lambda m: None, overwrite=True)
    finally:
        torch.set_num_threads(threads_before)  # the run pins the process's thread count; give it back
    rerun = (yaml.safe_load((output / "recipe.yaml").read_text()) or {}).get("resolved", {})
    recorded_sha = next((f["sha256"] for f in info.files if f["path"] == "model.safetensors"), None)
    return _compare(exact, resolved, rerun, recorded_folder, output, recorded_sha, tolerance, notes)


def reproduce_chain(ref: str, registry: Registry | str | None = None, output: Path | None = None,
                    **options: Any) -> list[Reproduction]:
    """Re-run the ancestry of `ref` from its first zoo-trained ancestor down, each step from the parent the step
    before rebuilt."""
    registry = registry if isinstance(registry, Registry) else open_registry(registry)
    output = Path(output or tempfile.mkdtemp(prefix="zoo-reproduce-"))
    links, parent_folder = [], None
    for step in ancestry(ref, registry):
        link = reproduce(step, registry, output=output, base=parent_folder, **options)
        links.append(link)
        parent_folder = link.checkpoint
    return links


def ancestry(ref: str, registry: Registry) -> list[str]:
    """`ref` and its registry ancestors that were trained by the zoo (they have a recipe.yaml), oldest first."""
    info = registry.resolve(ref)
    chain = [f"{info.model_id}@{info.number}"]
    while True:
        parents = [p["ref"] for p in info.parents if p.get("ref") and not _external(p["ref"])]
        if not parents:
            break
        parent = registry.resolve(parents[0])
        if "recipe.yaml" not in {f["path"] for f in parent.files}:
            break  # an imported model: the chain's base, not a link
        info = parent
        chain.append(f"{info.model_id}@{info.number}")
    return chain[::-1]


def attest(registry: Registry | str | None, link: Reproduction) -> dict[str, Any]:
    """Record `link` in the registry as an attestation on its version."""
    registry = registry if isinstance(registry, Registry) else open_registry(registry)
    return registry.attest(link.ref, link.outcome, link.environment, link.details())


# -- the base ------------------------------------------------------------------------------------------------
def _external(ref: str) -> bool:
    return ":" in ref  # torchvision:..., hf:...@sha, scratch:..., file:...; registry refs are ns/name@N


def _base(exact: str, parents: list[dict[str, Any]], resolved: dict[str, Any], registry: Registry,
          override: Path | None, notes: list[str]) -> str:
    origin = resolved.get("base") or "scratch"
    if override is not None:
        notes.append(f"base: the reproduced parent at {override}")
        return f"file:{override}"
    if any(p.get("private") for p in parents):
        raise MissingBaseError(f"cannot reproduce {exact}: its base is a private model you cannot read")
    recorded_sha = resolved.get("base_sha256")
    parent = next((p["ref"] for p in parents if p.get("ref")), None)
    if parent is not None and not _external(parent):
        try:
            folder = registry.pull(parent)
        except ZooError as exc:
            raise MissingBaseError(f"cannot reproduce {exact}: its base {parent} cannot be fetched: {exc}") from None
        _check_base(exact, folder, recorded_sha, parent)
        return f"file:{folder}"
    reference = parent or origin
    if reference == "scratch" or reference.startswith("scratch:"):
        return origin if origin.startswith("scratch") else reference
    if reference.startswith("file:"):
        folder = Path(reference[5:])
        if not (folder / "model.safetensors").is_file():
            raise MissingBaseError(f"cannot reproduce {exact}: its base {reference} is not in the registry's lineage "
                                   "and no longer at that path (push the base and link it with --parent)")
        _check_base(exact, folder, recorded_sha, reference)
        return reference
    from zoo_core.sources import load_weights

    try:  # an external source (torchvision:, timm:, hf:ORG/NAME@SHA): it must still be loadable
        load_weights(reference)
    except ZooError as exc:
        raise MissingBaseError(f"cannot reproduce {exact}: its base {reference} cannot be loaded: {exc}") from None
    return reference


def _check_base(exact: str, folder: Path, recorded_sha: str | None, name: str) -> None:
    if recorded_sha and file_sha256(folder / "model.safetensors") != recorded_sha:
        raise MissingBaseError(f"cannot reproduce {exact}: the weights of its base {name} are not the ones it was "
                               f"trained from (sha256 {recorded_sha[:12]}… recorded)")


# -- the data ------------------------------------------------------------------------------------------------
def _locate_data(exact: str, args: dict[str, Any], files: dict[str, dict[str, Any]], dirs: list[Path],
                 notes: list[str]) -> dict[str, Any]:
    """The reader's arguments pointing at the recorded data: each recorded file found by name in the --data
    folders, else at its recorded path, else by content anywhere under the --data folders. A file found by name
    whose content differs is kept: the split check names the splits that changed."""
    args = copy.deepcopy(args)
    for key, record in files.items():
        named = [d / record["name"] for d in dirs if (d / record["name"]).exists()]
        recorded = Path(record["path"])
        candidates = named + ([recorded] if recorded.exists() else [])
        match = next((p for p in candidates if _digest(p) == record["sha256"]), None)
        if match is None:
            match = _by_content(record, dirs)
        if match is not None:
            _set(args, key, str(match))
            if match != recorded:
                notes.append(f"data.args.{key}: found at {match}")
        elif candidates:
            _set(args, key, str(candidates[0]))
            notes.append(f"data.args.{key}: {candidates[0]} differs from the recorded file (sha256 "
                         f"{record['sha256'][:12]}…)")
        else:
            where = f" or in {', '.join(map(str, dirs))}" if dirs else " (pass --data DIR to say where it is now)"
            raise DataMismatchError(f"cannot reproduce {exact}: data file '{record['name']}' (data.args.{key}, sha256 "
                                    f"{record['sha256'][:12]}…) is neither at {record['path']}{where}")
    for key, value in args.items():  # recipes recorded before data_files: look for the file by name
        if key not in files and isinstance(value, str) and value.startswith("/") and not Path(value).exists():
            found = [d / Path(value).name for d in dirs if (d / Path(value).name).exists()]
            if found:
                args[key] = str(found[0])
    return args


def _set(args: dict[str, Any], dotted: str, value: str) -> None:
    """`args["files"]["train"] = value` for the dotted key `files.train` (list items by their index)."""
    *parents, leaf = dotted.split(".")
    node: Any = args
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def _digest(path: Path) -> str:
    return folder_sha256(path) if path.is_dir() else file_sha256(path)


def _by_content(record: dict[str, Any], dirs: list[Path]) -> Path | None:
    if record.get("folder"):
        return None
    for folder in dirs:
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size == record["size"] and file_sha256(path) == record["sha256"]:
                return path
    return None


def _check_splits(exact: str, recipe, recorded: dict[str, Any], args: dict[str, Any]) -> None:
    """Each split the run used must have the recorded fingerprint (sha256 of its exact inputs and labels)."""
    from zoo_core.pipeline import prepare
    from zoo_core.train import read_data

    prepared = prepare(read_data(recipe), recipe.data, recipe.train.seed)
    changed = [(name, recorded[name]["sha256"], prepared.provenance.get(name, {}).get("sha256"))
               for name in SPLITS if recorded.get(name, {}).get("sha256")
               and prepared.provenance.get(name, {}).get("sha256") != recorded[name]["sha256"]]
    if changed:
        files = ", ".join(f"'{v}' (data.args.{k})" for k, v in string_values(args) if Path(v).exists())
        splits = "; ".join(f"split '{name}': sha256 {want[:12]}… recorded, {(got or 'none')[:12]}… found"
                           for name, want, got in changed)
        raise DataMismatchError(f"cannot reproduce {exact}: the data in {files or 'the recorded data'} does not match "
                                f"the recorded fingerprints: {splits}")


# -- the comparison ------------------------------------------------------------------------------------------
def _compare(exact: str, recorded: dict[str, Any], rerun: dict[str, Any], recorded_folder: Path, output: Path,
             recorded_sha: str | None, tolerance: float, notes: list[str]) -> Reproduction:
    rows: list[Row] = []
    before, after = recorded.get("versions") or {}, rerun.get("versions") or {}
    for name in sorted(set(before) | set(after)):
        rows.append(Row(f"package {name}", before.get(name), after.get(name), before.get(name) == after.get(name)))
    env_before, env_after = recorded.get("environment") or {}, rerun.get("environment") or {}
    for key in ("device", "cpu_capability", "math_backend"):
        rows.append(Row(key.replace("_", " "), env_before.get(key, "not recorded"), env_after.get(key),
                        env_before.get(key) == env_after.get(key)))
    det_before, det_after = recorded.get("determinism") or {}, rerun.get("determinism") or {}
    for key in ("num_threads", "deterministic_algorithms", "float32_matmul_precision", "mkldnn"):
        rows.append(Row(f"setting {key}", det_before.get(key, "not recorded"), det_after.get(key),
                        det_before.get(key) == det_after.get(key)))
    if recorded.get("base_sha256") or rerun.get("base_sha256"):
        rows.append(Row("base weights", recorded.get("base_sha256"), rerun.get("base_sha256"),
                        recorded.get("base_sha256") == rerun.get("base_sha256")))
    for split in SPLITS:
        want = (recorded.get("data") or {}).get(split, {}).get("sha256")
        if want:
            got = (rerun.get("data") or {}).get(split, {}).get("sha256")
            rows.append(Row(f"data {split}", want, got, want == got))
    same_environment = all(row.same for row in rows)
    sha = file_sha256(output / "model.safetensors")
    rows.append(Row("weights sha256", recorded_sha, sha, sha == recorded_sha))
    difference, tensor = weight_difference(recorded_folder / "model.safetensors", output / "model.safetensors")
    within = True
    for split, (want, got) in _split_metrics(recorded, rerun).items():
        for name in sorted(set(want) | set(got)):
            a, b = want.get(name), got.get(name)
            rows.append(Row(f"{split} {name}", a, b, a == b))
            if split == "test":  # the version's published metrics decide; train and val are shown
                within &= a is not None and b is not None and abs(a - b) <= tolerance * max(1.0, abs(a))
    if sha == recorded_sha:
        outcome = "bit-identical"
    elif difference == 0:  # equal tensors in a file with another header (safetensors' unsorted metadata)
        outcome = "within tolerance"
        notes.append("every tensor is bit-identical, but the file's header differs (checkpoints written before "
                     "the zoo sorted safetensors' metadata)")
    elif same_environment:
        outcome = "differs"  # everything that decides the bits was the same: bit-identity was owed
        notes.append("same packages, CPU capability, settings, base and data, yet the weights differ")
    else:
        outcome = "within tolerance" if within else "differs"
    environment = {**env_after, "versions": after, **{k: det_after.get(k) for k in ("num_threads",)}}
    return Reproduction(exact, outcome, "bit-identical" if same_environment else "within tolerance", tolerance,
                        rows, output, sha, recorded_sha, difference, tensor, environment, notes)


def _metrics(resolved: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Metrics per split at the kept epoch: train loss, validation metrics, test metrics."""
    history, best = resolved.get("history") or [], resolved.get("best_epoch") or 0
    record = history[best - 1] if 0 < best <= len(history) else {}
    out = {"train": {"loss": record["train_loss"]} if "train_loss" in record else {},
           "val": {k[4:]: v for k, v in record.items() if k.startswith("val_")},
           "test": dict(resolved.get("test_metrics") or {})}
    return {split: values for split, values in out.items() if values}


def _split_metrics(recorded: dict[str, Any], rerun: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    before, after = _metrics(recorded), _metrics(rerun)
    return {split: (before.get(split, {}), after.get(split, {})) for split in SPLITS
            if split in before or split in after}


def weight_difference(a: Path, b: Path) -> tuple[float, str | None]:
    """The largest absolute difference between two weight files, and the tensor where it is (inf for a tensor
    only one of them has, or of another shape)."""
    from safetensors.torch import load_file

    first, second = load_file(a), load_file(b)
    largest, where = 0.0, None
    for name in sorted(set(first) | set(second)):
        x, y = first.get(name), second.get(name)
        if x is None or y is None or x.shape != y.shape or x.dtype != y.dtype:
            difference = math.inf
        elif x.numel() == 0:
            continue
        else:
            difference = float((x.double() - y.double()).abs().max())
        if difference > largest:
            largest, where = difference, name
    return largest, where


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
