"""What a model returns in train mode: one `Stream` per branch, keyed by stream name."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass(frozen=True)
class Stream:
    """One branch's training output. `features` are the pre-BN (pre-neck) features the metric losses use."""

    logits: Tensor
    features: Tensor


@dataclass(frozen=True)
class ModelOutput:
    """Train-mode output. Streams keep the reference implementation's order (global, drop, reg)."""

    streams: dict[str, Stream] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Stream:
        try:
            return self.streams[name]
        except KeyError:
            raise KeyError(f"no stream {name!r} in this output; streams: {list(self.streams)}") from None

    def as_tuple(self) -> tuple[Tensor, ...]:
        """(logits, features) of every stream in order: the reference implementation's train-mode tuple."""
        return tuple(t for s in self.streams.values() for t in (s.logits, s.features))
