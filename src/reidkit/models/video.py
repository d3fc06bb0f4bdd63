"""Video re-ID models: a per-frame backbone, a temporal aggregation, a BNNeck head (docs/specs/video-aitl-asta.md
section 1).

Input clips [B, T, 3, H, W] (a [B, 3, H, W] batch is a clip of one frame). Train mode returns a ModelOutput
with the "global" stream (id logits, pre-BN clip feature); eval mode returns the BN-ed clip feature [B, D].

- `video_tp`: temporal pooling: per-frame global average pool, mean over time (D = C).
- `video_ta`: temporal attention (Video-Person-ReID): Conv2d(C -> 256, kernel = the feature-map size) + ReLU,
  Conv1d(256 -> 1, k 3, p 1) + ReLU, softmax over time, weighted sum of the pooled frames (D = C).
- `video_rnn`: LSTM(C -> hidden) over the pooled frames, mean of its outputs over time (D = hidden).
- `asta` (models/asta.py): attribute-driven spatio-temporal attention.

Models whose layers depend on the feature-map size (video_ta, asta) take `frame_size` (input height, width);
the map size is measured once with a dry run of the backbone. Every video model takes `stem_relu` (true: the
standard ResNet stem; false: no ReLU after the stem BN, as the AITL reference's ResNet).
"""
from __future__ import annotations

import os
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidkit.errors import ConfigError
from reidkit.models.backbones import build_backbone
from reidkit.models.base import MODELS, ReidModel
from reidkit.models.heads import check_dim
from reidkit.models.outputs import ModelOutput, Stream


def init_video_params(modules: Sequence[nn.Module]) -> None:
    """The AITL reference's initialisation of new layers: convolutions (2-D and 1-D) Kaiming-normal fan_in with
    zero bias, BatchNorm weight 1 / bias 0, Linear N(0, 0.001) with zero bias. LSTMs keep PyTorch's default."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def check_frame_size(frame_size: Sequence[int]) -> tuple[int, int]:
    if (not isinstance(frame_size, (list, tuple)) or len(frame_size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 for v in frame_size)):
        raise ConfigError(f"frame_size must be [height, width] in pixels (each >= 16), got {frame_size!r}; "
                          "set it to the data's height and width")
    return int(frame_size[0]), int(frame_size[1])


@torch.no_grad()
def feature_map_size(backbone: nn.Module, frame_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the backbone's output for frames of `frame_size`, from one dry run (batch statistics untouched)."""
    was_training = backbone.training
    backbone.eval()
    try:
        out = backbone(torch.zeros(1, 3, *frame_size))
    finally:
        backbone.train(was_training)
    return int(out.shape[2]), int(out.shape[3])


def split_clip(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """[B, T, 3, H, W] (or [B, 3, H, W], T = 1) -> frames [B*T, 3, H, W], B, T."""
    if x.dim() == 4:
        return x, x.shape[0], 1
    if x.dim() != 5:
        raise ValueError(f"video models take clips [B, T, 3, H, W] (or frames [B, 3, H, W]), got shape {tuple(x.shape)}")
    b, t = x.shape[:2]
    return x.flatten(0, 1), b, t


class VideoReidModel(ReidModel):
    """Shared parts: per-frame backbone maps, the BNNeck head and the train/eval outputs."""

    classifier_names: ClassVar[tuple[str, ...]] = ("classifier",)
    sample_kind: ClassVar[str] = "tracklet"

    def _init_backbone(self, num_classes: int, backbone: str, pretrained: str | os.PathLike | bool | None,
                       last_stride: int, stem_relu: bool = True) -> int:
        self.num_classes = check_dim(num_classes, "num_classes")
        self.backbone = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained, stem_relu=stem_relu)
        return self.backbone.out_channels

    def _init_head(self, dim: int) -> None:
        # BNNeck: a shift-free BN and a bias-free classifier (reid-strong-baseline).
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, self.num_classes, bias=False)
        self.feature_dim = dim

    def frame_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Backbone maps of every frame [B*T, C, h, w], B, T."""
        frames, b, t = split_clip(x)
        return self.backbone(frames), b, t

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """The clip's backbone map averaged over time [B, C, h, w] (for activation maps)."""
        maps, b, t = self.frame_maps(x)
        return maps.view(b, t, *maps.shape[1:]).mean(1)

    def _outputs(self, feature: torch.Tensor, extra: dict[str, Stream] | None = None) -> torch.Tensor | ModelOutput:
        neck = self.neck(feature)
        if not self.training:
            return neck
        return ModelOutput({"global": Stream(self.classifier(neck), feature), **(extra or {})})


class TemporalAverage(nn.Module):
    """Per-frame global average pool, mean over time."""

    def forward(self, maps: torch.Tensor, b: int, t: int) -> torch.Tensor:
        return maps.mean((2, 3)).view(b, t, -1).mean(1)


class TemporalAttention(nn.Module):
    """Video-Person-ReID's temporal attention: one softmax weight per frame from its whole feature map."""

    def __init__(self, channels: int, map_size: tuple[int, int], middle: int = 256) -> None:
        super().__init__()
        self.map_size = map_size
        self.attention_conv = nn.Conv2d(channels, middle, map_size)
        self.attention_tconv = nn.Conv1d(middle, 1, 3, padding=1)

    def weights(self, maps: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """[B, T] frame weights (each row sums to 1)."""
        if tuple(maps.shape[2:]) != self.map_size:
            raise ValueError(f"video_ta was built for {self.map_size[0]}x{self.map_size[1]} feature maps but got "
                             f"{maps.shape[2]}x{maps.shape[3]}: set the model option frame_size to the input size")
        a = F.relu(self.attention_conv(maps)).view(b, t, -1).transpose(1, 2)
        return F.softmax(F.relu(self.attention_tconv(a)).view(b, t), dim=1)

    def forward(self, maps: torch.Tensor, b: int, t: int) -> torch.Tensor:
        pooled = maps.mean((2, 3)).view(b, t, -1)
        return (pooled * self.weights(maps, b, t).unsqueeze(-1)).sum(1)


class TemporalLSTM(nn.Module):
    """LSTM over the pooled frames; the mean of its outputs over time."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=1, batch_first=True)

    def forward(self, maps: torch.Tensor, b: int, t: int) -> torch.Tensor:
        output, _ = self.lstm(maps.mean((2, 3)).view(b, t, -1))
        return output.mean(1)


class VideoBaseline(VideoReidModel):
    """Backbone per frame -> `self.temporal` -> BNNeck. Subclasses build `self.temporal`."""

    loss_spec: ClassVar[dict[str, tuple[str, ...]]] = {"global": ("triplet", "ce")}

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        maps, b, t = self.frame_maps(x)
        return self._outputs(self.temporal(maps, b, t))


@MODELS.register("video_tp")
class VideoTP(VideoBaseline):
    """Temporal pooling. Eval: the BN-ed C-d clip feature (2048 for ResNet-50)."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: str | os.PathLike | bool | None = None,
                 *, last_stride: int = 1, stem_relu: bool = True) -> None:
        super().__init__()
        channels = self._init_backbone(num_classes, backbone, pretrained, last_stride, stem_relu)
        self.temporal = TemporalAverage()
        self._init_head(channels)
        init_video_params([self.neck, self.classifier])


@MODELS.register("video_ta")
class VideoTA(VideoBaseline):
    """Temporal attention. Options: frame_size (input height, width: sizes the attention conv), middle (256)."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: str | os.PathLike | bool | None = None,
                 *, last_stride: int = 1, frame_size: Sequence[int] = (256, 128), middle: int = 256,
                 stem_relu: bool = True) -> None:
        super().__init__()
        channels = self._init_backbone(num_classes, backbone, pretrained, last_stride, stem_relu)
        map_size = feature_map_size(self.backbone, check_frame_size(frame_size))
        self.temporal = TemporalAttention(channels, map_size, check_dim(middle, "middle"))
        self._init_head(channels)
        init_video_params([self.temporal, self.neck, self.classifier])


@MODELS.register("video_rnn")
class VideoRNN(VideoBaseline):
    """LSTM aggregation. Option: hidden (512): the clip feature's size."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", pretrained: str | os.PathLike | bool | None = None,
                 *, last_stride: int = 1, hidden: int = 512, stem_relu: bool = True) -> None:
        super().__init__()
        channels = self._init_backbone(num_classes, backbone, pretrained, last_stride, stem_relu)
        self.temporal = TemporalLSTM(channels, check_dim(hidden, "hidden"))
        self._init_head(hidden)
        init_video_params([self.neck, self.classifier])
