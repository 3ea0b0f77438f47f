"""Built-in weight sources: `file:` (a Transfer Zoo checkpoint folder) and `scratch:` (random weights)."""

from __future__ import annotations

from zoo_core.checkpoint import load_checkpoint
from zoo_core.hookspecs import hookimpl
from zoo_core.sources import PretrainedWeights, WeightSource


class FileSource(WeightSource):
    name = "file"
    description = "a Transfer Zoo checkpoint folder: file:PATH"

    def load(self, reference: str) -> PretrainedWeights:
        checkpoint = load_checkpoint(reference)
        model = checkpoint.model
        return PretrainedWeights(
            spec=model.spec,
            state_dict=model.backbone.state_dict(),
            origin=f"file:{checkpoint.path}",
            files=checkpoint.path,
            preprocessing=checkpoint.preprocessing,
            head_state=model.head.state_dict(),
            metadata={"labels": checkpoint.labels, "config": checkpoint.config},
        )


class ScratchSource(WeightSource):
    name = "scratch"
    description = "random initialisation of a backbone: scratch:BACKBONE"

    def load(self, reference: str) -> PretrainedWeights:
        from zoo_core.plugins import get_backbone

        spec = get_backbone(reference)
        return PretrainedWeights(spec=spec, state_dict=spec.build().state_dict(), origin=f"scratch:{spec.name}")


class RegistrySource(WeightSource):
    name = "zoo"
    description = "a registry version: zoo:NAMESPACE/NAME[@VERSION|@ALIAS] (ZOO_REGISTRY)"

    def load(self, reference: str) -> PretrainedWeights:
        from zoo_core.client import open_registry

        registry = open_registry()
        info = registry.resolve(reference)
        weights = FileSource().load(str(registry.pull(f"{info.model_id}@{info.number}")))
        weights.origin = f"zoo:{info.model_id}@{info.number}"
        return weights


@hookimpl
def register_sources(register):
    register(FileSource())
    register(RegistrySource())
    register(ScratchSource())



