"""ASTA: Attribute-driven Spatio-Temporal Attention (arXiv 2006.07597; docs/specs/video-aitl-asta.md section 1).

Per frame F = backbone(frame) [C, h, w]. One attribute stream per attribute group (ID-irrelevant,
ID-relevant), each on X = F.detach():
    L = ReLU(BN(Conv1x1 C->C (X)));  s = Conv3x3 C->1 (L) as [B, h*w, T];
    A = sigmoid(Conv1d(h*w -> h*w, k 3, p 1)(s)) as [B, T, 1, h, w]   (spatial positions act as channels);
    attribute logits = Linear(C -> d)(ReLU(mean_T GAP(A * X))).
Re-ID stream: a0 = sigmoid(Conv3x3 C->1 (F)), F' = a0 * F, g = mean_T GAP([F', A_1 * F', A_2 * F'])
((1 + G) * C values, 6144 for ResNet-50 and two groups), BNNeck, classifier.

Train output streams: "global" (id logits, g) and "attr_<group>" (that group's attribute logits, g);
eval output: the BN-ed g. Module names follow the reference implementation, so its checkpoints load by name.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models.base import MODELS
from reidkit.models.outputs import ModelOutput, Stream
from reidkit.models.video import VideoReidModel, check_frame_size, feature_map_size, init_video_params

# MARS: 25 ID-irrelevant and 41 ID-relevant one-hot values (DukeMTMC-VideoReID: 25 and 33).
MARS_ATTRIBUTE_DIMS = {"irrelevant": 25, "relevant": 41}


def check_attribute_dims(attribute_dims: Mapping[str, int]) -> dict[str, int]:
    if (not isinstance(attribute_dims, Mapping) or not attribute_dims
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in attribute_dims.values())):
        raise ConfigError(f"attribute_dims must map attribute groups to their one-hot sizes, e.g. "
                          f"{MARS_ATTRIBUTE_DIMS} (the dataset's attribute_schema.group_dims), got {attribute_dims!r}")
    return {str(k): int(v) for k, v in attribute_dims.items()}


class AttributeStream(nn.Module):
    """One attribute group's spatio-temporal attention and attribute classifier (the reference's
    MultiAttributeRecogModuleBCE)."""

    def __init__(self, channels: int, map_size: tuple[int, int], num_outputs: int) -> None:
        super().__init__()
        self.map_size = map_size
        positions = map_size[0] * map_size[1]
        self.conv = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        self.attention_s_conv = nn.Conv2d(channels, 1, 3, padding=1)
        self.attention_t_conv = nn.Conv1d(positions, positions, 3, padding=1)
        self.classifier = nn.Linear(channels, num_outputs)

    def attention(self, x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """[B*T, C, h, w] (detached backbone maps) -> attention [B, T, 1, h, w] in (0, 1)."""
        if tuple(x.shape[2:]) != self.map_size:
            raise ValueError(f"asta was built for {self.map_size[0]}x{self.map_size[1]} feature maps but got "
                             f"{x.shape[2]}x{x.shape[3]}: set the model option frame_size to the input size")
        s = self.attention_s_conv(torch.relu(self.bn(self.conv(x))))
        s = self.attention_t_conv(s.view(b, t, -1).transpose(1, 2))  # along time, positions as channels
        return torch.sigmoid(s.transpose(1, 2)).view(b, t, 1, *self.map_size)

    def logits(self, x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Attribute logits [B, d] from the maps and this stream's attention."""
        b, t = attention.shape[:2]
        pooled = (attention * x.view(b, t, *x.shape[1:])).mean((3, 4)).mean(1)
        return self.classifier(torch.relu(pooled))


@MODELS.register("asta")
class ASTA(VideoReidModel):
    """Options: attribute_dims (group -> one-hot size, from the dataset's attribute schema), frame_size (input
    height, width: the attention's spatial positions), last_stride (1), stem_relu (true: the standard ResNet
    stem; false: the reference's ResNet, without the ReLU after the stem BN)."""

    loss_spec: ClassVar[dict[str, tuple[str, ...]]] = {"global": ("triplet", "ce")}
    # L_BH on 1 - cos (docs/specs/video-aitl-asta.md section 2)
    loss_defaults: ClassVar[dict[str, object]] = {"metric": "cosine"}
    classifier_names: ClassVar[tuple[str, ...]] = ("classifier", "attributes.irrelevant.classifier",
                                                    "attributes.relevant.classifier")
    reference_prefixes: ClassVar[tuple[tuple[str, str], ...]] = (
        *((f"base.{name}.", f"backbone.{name}.") for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")),
        ("multi_attr_recoger1.", "attributes.irrelevant."),
        ("multi_attr_recoger2.", "attributes.relevant."),
        ("bottleneck.", "neck."),
    )

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: str | os.PathLike | bool | None = None,
                 *, attribute_dims: Mapping[str, int] = MARS_ATTRIBUTE_DIMS, frame_size: Sequence[int] = (256, 128),
                 last_stride: int = 1, stem_relu: bool = True) -> None:
        super().__init__()
        dims = check_attribute_dims(attribute_dims)
        channels = self._init_backbone(num_classes, backbone, pretrained, last_stride, stem_relu)
        map_size = feature_map_size(self.backbone, check_frame_size(frame_size))
        self.attribute_groups = tuple(dims)
        self.attention_conv = nn.Conv2d(channels, 1, 3, padding=1)
        self.attributes = nn.ModuleDict({g: AttributeStream(channels, map_size, d) for g, d in dims.items()})
        self._init_head(channels * (1 + len(dims)))
        init_video_params([self.attention_conv, self.attributes, self.neck, self.classifier])

    def _streams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], int, int]:
        """Backbone maps [B*T, C, h, w], re-ID attention a0 [B, T, 1, h, w], attribute attentions, B, T."""
        maps, b, t = self.frame_maps(x)
        # The attribute streams see detached maps: attribute labels do not train the backbone directly.
        detached = maps.detach()
        attentions = {g: stream.attention(detached, b, t) for g, stream in self.attributes.items()}
        a0 = torch.sigmoid(self.attention_conv(maps)).view(b, t, 1, *maps.shape[2:])
        return maps, a0, attentions, b, t

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        maps, a0, attentions, b, t = self._streams(x)
        reid = a0 * maps.view(b, t, *maps.shape[1:])
        parts = [reid] + [attentions[g] * reid for g in self.attribute_groups]
        g = torch.cat(parts, 2).mean((3, 4)).mean(1)
        if not self.training:
            return self._outputs(g)
        logits = {name: self.attributes[name].logits(maps.detach(), attentions[name]) for name in self.attribute_groups}
        return self._outputs(g, {f"attr_{name}": Stream(logits[name], g) for name in self.attribute_groups})

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every attention [B, T, 1, h, w]: "reid" (a0) and one per attribute group (for inspection)."""
        _, a0, attentions, _, _ = self._streams(x)
        return {"reid": a0, **attentions}

    def predict_attributes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attribute logits per group [B, d], in train or eval mode (the reference computes them only in
        training; evaluation of the attribute heads needs them too)."""
        maps, _, attentions, _, _ = self._streams(x)
        return {g: self.attributes[g].logits(maps.detach(), attentions[g]) for g in self.attribute_groups}


@torch.no_grad()
def predict_tracklet_attributes(model: ASTA, loader: Iterable[Mapping[str, Any]], *,
                                device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Attribute logits per tracklet {group: [N, d]} from a chunk loader (reidkit.data.video
    build_video_test_loader): every chunk's logits, averaged over each tracklet's chunks."""
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {g: [] for g in model.attribute_groups}
    try:
        for batch in loader:
            for group, logits in model.predict_attributes(batch["img"].to(device)).items():
                chunks[group].append(logits.float().cpu())
    finally:
        model.train(was_training)
    pool = loader.dataset.pool  # type: ignore[attr-defined]
    return {group: pool(torch.cat(values)) for group, values in chunks.items()}
