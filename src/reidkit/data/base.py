"""ImageDataset: the train/query/gallery lists every dataset module produces, validated and summarised.

Adding a dataset of your own (the custom dataset covers folders and CSV files without any code)::

    from reidkit.data import DATASETS, ImageDataset

    @DATASETS.register("my_dataset")
    class MyDataset(ImageDataset):
        def __init__(self, root, **options):
            train, query, gallery = ...  # lists of (image_path, pid, camid); camids 0-based, raw pids
            super().__init__(train, query, gallery, name="my_dataset", root=root, **options)

    build_dataset("my_dataset", root="...")

`options` carries the base class's keywords (verify_images, skip_bad_images) through to it.
"""
from __future__ import annotations

import inspect
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from reidkit.errors import DatasetError
from reidkit.registry import Registry

Sample = tuple[str, int, int]  # (image path, pid, camid)

DATASETS: Registry[type["ImageDataset"]] = Registry("dataset")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# Pillow modes of 16-bit (and 32-bit integer) grey images: their values span 0..65535, not 0..255.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
# What Pillow raises for a file that is not a complete image of a known format (zlib and struct errors come out
# of damaged PNG and BMP data).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, decoding every pixel (a truncated file fails here, not inside a transform). 16-bit grey is scaled
    to 8 bits (65535 -> 255); Pillow's own conversion clips it, turning most of the picture white."""
    if image.mode in _WIDE_GREY_MODES:
        wide = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def read_image(path: str | os.PathLike) -> Image.Image:
    """The image as RGB, fully decoded; a missing, unreadable, truncated or oversized (decompression bomb) file
    raises DatasetError naming it."""
    try:
        with warnings.catch_warnings():
            # Above Image.MAX_IMAGE_PIXELS Pillow only warns (above twice that it refuses): no re-ID crop is that
            # large, so both are the file's error, reported in one line rather than a warning and a long decode.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return _to_rgb(image)
    except FileNotFoundError:
        raise DatasetError(f"image {path} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"image {path} is too large to decode safely ({exc}); expected an image crop") from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"image {path} cannot be read ({exc}); expected a complete JPEG/PNG/BMP file") from None


def read_text_file(path: str | os.PathLike, what: str = "file") -> str:
    """The text of a UTF-8 list, track or CSV file (a byte-order mark, as Excel writes, is dropped); a file that
    cannot be read or is not UTF-8 raises DatasetError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as "
                           "UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def find_dataset_dir(root: str | os.PathLike, candidates: Sequence[str], required: Sequence[str], dataset: str,
                     layout: str) -> Path:
    """The first root/<candidate> holding every `required` entry ("" is root itself).

    Otherwise a DatasetError naming the folders tried, what the closest one lacks, and the expected layout.
    """
    root = Path(root).expanduser()
    expected = f"Expected layout:\n{layout}"
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"{dataset}: root folder {root} {problem}. {expected}")
    tried = [root / name if name else root for name in candidates]
    for folder in tried:
        if all((folder / entry).exists() for entry in required):
            return folder
    for folder in tried:
        present = [entry for entry in required if (folder / entry).exists()]
        # The closest match: a dataset folder that exists, or root itself holding part of the layout.
        if (folder != root and folder.is_dir()) or present:
            missing = [entry for entry in required if entry not in present]
            raise DatasetError(f"{dataset}: {folder} lacks {', '.join(missing)}. {expected}")
    holds = sorted(p.name for p in root.iterdir())
    raise DatasetError(f"{dataset}: no dataset folder under {root} (looked in {', '.join(str(p) for p in tried)}; "
                       f"{root} holds {', '.join(holds[:10]) or 'nothing'}). {expected}")


def list_images(folder: Path) -> list[Path]:
    """Image files of `folder`, sorted by name (other files, e.g. Thumbs.db, are ignored)."""
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def relabel(samples: Iterable[Sample]) -> list[Sample]:
    """Pids mapped to 0..N-1 in sorted order of the original pids (the classifier's labels)."""
    samples = list(samples)
    label = {pid: i for i, pid in enumerate(sorted({pid for _, pid, _ in samples}))}
    return [(path, label[pid], camid) for path, pid, camid in samples]


def drop_unreadable(subsets: dict[str, list[Sample]], skip: bool) -> dict[str, list[Sample]]:
    """Decode every image once. A bad one raises DatasetError, or with `skip` is dropped and counted in one warning."""
    bad: list[str] = []
    kept: dict[str, list[Sample]] = {}
    for subset, samples in subsets.items():
        kept[subset] = []
        for sample in samples:
            try:
                read_image(sample[0])
            except DatasetError as exc:
                if not skip:
                    raise DatasetError(f"{subset} set: {exc}") from None
                bad.append(sample[0])
                continue
            kept[subset].append(sample)
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable images, e.g. {bad[0]}", stacklevel=3)
    return kept


class ImageDataset:
    """Train/query/gallery lists of (image_path, pid, camid).

    Subclasses parse their layout and call this constructor with raw pids; training pids are relabelled here to
    0..N-1, query and gallery keep theirs. `verify_images` decodes every image now (instead of when it is
    loaded); `skip_bad_images` does too and drops the unreadable ones, counted in one warning (a bad image met
    only while training could not be dropped from a batch already drawn).
    """

    # Options every dataset takes (build_dataset(name, root, **options)): see accepted_options.
    base_options = ("verify_images", "skip_bad_images")
    # Callables that receive what a subclass's **options leaves over (a data generator, a config dataclass):
    # their parameters with defaults are options of the dataset too.
    option_targets: tuple[Callable[..., Any], ...] = ()
    # How the evaluation treats this data (reidkit.metrics.rank.RANK_PROTOCOLS): "market" removes the query's
    # identity under its own camera; data without camera ids (has_cameras False) uses "self".
    eval_protocol: str = "market"
    has_cameras: bool = True
    # What one sample is ("image"; video data: "tracklet"): a model reads one kind (its class's sample_kind).
    sample_kind: str = "image"

    def __init__(self, train: Sequence[Sample], query: Sequence[Sample], gallery: Sequence[Sample], *, name: str,
                 root: str | os.PathLike, verify_images: bool = False, skip_bad_images: bool = False) -> None:
        self.name = name
        self.root = Path(root)
        subsets = {"train": list(train), "query": list(query), "gallery": list(gallery)}
        if verify_images or skip_bad_images:
            subsets = drop_unreadable(subsets, skip_bad_images)
        self._validate(subsets)
        self.train = relabel(subsets["train"])
        self.query = subsets["query"]
        self.gallery = subsets["gallery"]

    def _validate(self, subsets: dict[str, list[Sample]]) -> None:
        for subset, samples in subsets.items():
            if not samples:
                raise DatasetError(f"{self.name}: the {subset} set under {self.root} holds no images")
            negative = next((s for s in samples if s[2] < 0), None)
            if negative is not None:
                raise DatasetError(f"{self.name}: {negative[0]} has camera id {negative[2]}; expected >= 0")
        query_pids = {pid for _, pid, _ in subsets["query"]}
        gallery_pids = {pid for _, pid, _ in subsets["gallery"]}
        if not query_pids & gallery_pids:
            raise DatasetError(f"{self.name}: no query identity appears in the gallery under {self.root} "
                               f"({len(query_pids)} query ids, {len(gallery_pids)} gallery ids): "
                               "every query needs matches in the gallery")

    @classmethod
    def accepted_options(cls) -> dict[str, Any]:
        """The options this dataset accepts, with their defaults: `base_options` (every dataset takes them),
        the keyword-only parameters of each __init__ along the class chain as far as it passes **options on to
        the next, and the parameters of `option_targets` (the class declaring them hands its **options there)."""
        base = inspect.signature(ImageDataset.__init__).parameters
        accepted: dict[str, Any] = {name: base[name].default for name in ImageDataset.base_options}
        for klass in cls.__mro__:
            init = vars(klass).get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters
            if "train" in params:  # the base taking the parsed lists
                break
            accepted.update({p.name: p.default for p in params.values()
                             if p.kind is p.KEYWORD_ONLY and p.name not in accepted})
            if "option_targets" in vars(klass) or not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
        for target in cls.option_targets:
            accepted.update({p.name: p.default for p in inspect.signature(target).parameters.values()
                             if p.default is not p.empty and p.name not in accepted})
        return accepted

    @property
    def num_train_pids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({camid for _, _, camid in self.train})

    def summary(self) -> str:
        """A table of ids, images and cameras per subset (as torchreid prints it)."""
        rule = "  " + "-" * 42
        rows = [f"=> {self.name} loaded from {self.root}", rule,
                f"  {'subset':<8} | {'# ids':>6} | {'# images':>9} | {'# cameras':>9}", rule]
        for subset in ("train", "query", "gallery"):
            samples = getattr(self, subset)
            pids = len({pid for _, pid, _ in samples})
            cams = len({camid for _, _, camid in samples})
            rows.append(f"  {subset:<8} | {pids:>6} | {len(samples):>9} | {cams:>9}")
        rows.append(rule)
        return "\n".join(rows)

    def describe_training(self) -> str:
        return f"{len(self.train)} training images"

    def train_loader(self, data: Any, *, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> Any:
        """Training batches of data.sampler (`data`: the config's data section: sizes, recipe, workers, K)."""
        from reidkit.data.loaders import build_train_loader

        return build_train_loader(self.train, height=data.height, width=data.width, batch_size=batch_size,
                                  num_instances=data.num_instances, recipe=data.recipe, workers=data.workers,
                                  seed=seed, rank=rank, world_size=world_size, sampler=data.sampler,
                                  autoaugment_epochs=data.autoaugment_epochs)

    def test_loaders(self, data: Any, *, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
        """Query and gallery loaders, in order, with the test transform of data.recipe (`seed`, the training
        seed, orders video frames: images take none)."""
        from reidkit.data.loaders import build_test_loader

        common = {"height": data.height, "width": data.width, "batch_size": batch_size, "workers": data.workers,
                  "recipe": data.recipe}
        return build_test_loader(self.query, **common), build_test_loader(self.gallery, **common)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, train={len(self.train)}, query={len(self.query)}, "
                f"gallery={len(self.gallery)}, num_train_pids={self.num_train_pids})")


def dataset_options(name: str) -> dict[str, Any]:
    """The options dataset `name` accepts (build_dataset(name, root, **options)), with their defaults."""
    return DATASETS.get(name).accepted_options()


def build_dataset(name: str, root: str | os.PathLike, **options: object) -> ImageDataset:
    """The registered dataset `name` read from `root` (unknown names list the registered ones)."""
    return DATASETS.get(name)(root=root, **options)
