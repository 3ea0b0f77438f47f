"""Model cards: Hugging Face's format (YAML front matter + Markdown sections), filled from the run."""

from __future__ import annotations

from typing import Any

import yaml

PLACEHOLDER = "_Not stated in the recipe._"


def base_model_id(origin: str) -> str:
    """`hf:org/name@sha` -> `org/name` (the Hub's own vocabulary); other origins stay as they are."""
    if origin.startswith("hf:") and not origin[3:].startswith("/"):
        return origin[3:].split("@")[0]
    return origin


def render_card(*, recipe, result, origin: str | None, data_provenance: dict, versions: dict[str, str],
                task: str = "image-classification", relation: str = "finetune",
                reproducibility: dict | None = None) -> str:
    """The card's Markdown. `relation` is the strategy's (`Strategy.relation`), the card's `base_model_relation`."""
    card = recipe.card
    metrics = result.metrics
    meta: dict[str, Any] = {
        "library_name": "transfer-zoo",
        "tags": ["transfer-zoo", recipe.strategy.name, result.model.spec.family, *card.tags],
        "pipeline_tag": task,
    }
    if card.license:
        meta["license"] = card.license
    if card.language:
        meta["language"] = card.language
    if origin and not origin.startswith("scratch"):
        meta["base_model"] = base_model_id(origin)
        meta["base_model_relation"] = relation
    if card.datasets:
        meta["datasets"] = card.datasets
    if metrics:
        meta["model-index"] = [{
            "name": recipe.output.rsplit("/", 1)[-1] if recipe.output else "model",
            "results": [{
                "task": {"type": task},
                "dataset": {"name": (card.datasets or [recipe.data.reader])[0], "type": recipe.data.reader,
                            "split": recipe.data.test or "test"},
                "metrics": [{"type": k, "value": round(v, 4)} for k, v in metrics.items() if k != "loss"],
            }],
        }]
    spec = result.model.spec
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# {meta['model-index'][0]['name'] if metrics else spec.name}", "",
        card.description or (f"A {spec.name} ({spec.family}) transferred with the `{recipe.strategy.name}` "
                             f"strategy to {len(result.classes)} classes: {', '.join(result.classes)}."), "",
        "## Intended use", "", card.intended_use or PLACEHOLDER, "",
        "## Training data", "",
        f"Reader `{recipe.data.reader}` with arguments `{recipe.data.args}`.", "",
        "| split | examples | sha256 |", "|---|---|---|",
        *[f"| {name} | {p.get('size', '')} | `{p.get('sha256', '')[:16]}…` |" for name, p in data_provenance.items()
          if isinstance(p, dict) and "sha256" in p],
        "",
        "## Training procedure", "",
        f"- Base: `{origin or 'scratch'}`",
        f"- Strategy: `{recipe.strategy.name}` {recipe.strategy.params or ''}",
        *_optimisation(recipe, result),
        f"- Labels per class: {recipe.data.labels_per_class or 'all'}",
        f"- Software: {', '.join(f'{k} {v}' for k, v in versions.items())}", "",
        "## Evaluation", "",
        *(["| metric | value |", "|---|---|", *[f"| {k} | {v:.4f} |" for k, v in metrics.items()]]
          if metrics else ["_No test split was evaluated._"]),
        *_per_class(result),
        "",
        *_reproducibility(reproducibility),
        "## Limitations", "", card.limitations or PLACEHOLDER, "",
    ]
    return "\n".join(lines)


def _reproducibility(record: dict | None) -> list[str]:
    """What was pinned (zoo_core.determinism), and what could not be made deterministic."""
    if not record or "determinism" not in record:
        return []
    pinned, env = record["determinism"], record["environment"]
    nondeterministic = record.get("nondeterministic") or []
    return [
        "## Reproducibility", "",
        f"Pinned: seed {pinned['seed']} (initialisation, data order, augmentation, splits), "
        f"{pinned['num_threads']} intra-op threads, deterministic algorithms "
        f"{'on' if pinned['deterministic_algorithms'] else 'off'}, on {env['device']} "
        f"(CPU capability {env['cpu_capability']}, BLAS {env['math_backend']['blas']}). "
        "`zoo reproduce` re-runs `recipe.yaml`; with the same packages, thread count and CPU capability the "
        "weights come out bit-for-bit identical.", "",
        *(["Not deterministic: " + "; ".join(nondeterministic) + "."] if nondeterministic else
          ["Nothing in this run is known to be non-deterministic."]), "",
    ]


def _optimisation(recipe, result) -> list[str]:
    """How the head (and backbone) were trained, and how the kept epoch was chosen."""
    lines = _training(recipe, result)
    if auto := result.extra.get("auto"):
        metric = recipe.train.select_metric
        tried = "; ".join(f"{i + 1}. {c['description']}: {metric} {c['validation'][metric]:.4f}, loss "
                          f"{c['validation']['loss']:.4f}" for i, c in enumerate(auto["candidates"]))
        lines.append(f"- Strategy chosen by `auto`: candidate {auto['chosen'] + 1} of {len(auto['candidates'])}, by "
                     f"{auto['rule']} ({auto['validation_size']} validation examples; the test split was not "
                     f"consulted): {tried}")
    return lines


def _training(recipe, result) -> list[str]:
    probe, selection = result.extra.get("probe"), result.extra.get("selection") or {}
    if probe:
        return [f"- Head: logistic regression fitted to convergence (L-BFGS) on the frozen features, "
                f"C = {probe['C']:.4g} ({probe['selected_by']}), seed {recipe.train.seed}"]
    lines = [f"- Epochs: {recipe.train.epochs} (best: {result.best_epoch}), batch size {recipe.train.batch_size}, "
             f"{recipe.train.optimizer} at lr {recipe.train.lr}, {recipe.train.schedule} schedule, "
             f"seed {recipe.train.seed}"]
    if "metric" in selection:
        tie = f", ties to the {selection['tie_break']}" if selection.get("tie_break") else ""
        carved = ", carved from the training split" if selection.get("validation_carved") else ""
        lines.append(f"- Epoch chosen by {selection['metric']}{tie} ({selection['validation_size']} validation "
                     f"examples{carved})")
    elif "rule" in selection:
        lines.append(f"- Epoch kept: {selection['rule']}")
    if head := result.extra.get("head_init"):
        lines.append(f"- Head started as the {head['rule']}, C = {head['C']:.4g}")
    return lines


def _per_class(result) -> list[str]:
    lines = []
    per_class, threshold = result.extra.get("test_per_class_f1"), result.extra.get("threshold")
    if per_class:
        lines += ["", "| class | F1 |", "|---|---|", *[f"| {name} | {f1:.4f} |" for name, f1 in per_class.items()]]
    if threshold:
        lines += ["", f"Decision threshold on P({result.classes[1]}): {threshold['value']:.4g}, chosen by "
                      f"{threshold['chosen_by']} on {threshold['validation_size']} validation examples (folded "
                      "into the head's bias, so plain argmax applies it)."]
    return lines
