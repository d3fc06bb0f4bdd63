"""MSMT17 (V1 or V2): images listed in list_{train,val,query,gallery}.txt as `relative/path.jpg pid`."""
from __future__ import annotations

import os
from pathlib import Path

from reidkit.data.base import DATASETS, ImageDataset, Sample, find_dataset_dir, read_text_file
from reidkit.errors import DatasetError

LISTS = ("list_train.txt", "list_query.txt", "list_gallery.txt")
# V1 keeps images in train/ and test/, V2 in mask_train_v2/ and mask_test_v2/.
IMAGE_DIRS = {"train": ("train", "mask_train_v2"), "test": ("test", "mask_test_v2")}
EXAMPLE_LINE = "0000/0000_000_01_0303morning_0015_0.jpg 0"
LAYOUT = f"""  <root>/MSMT17_V1/  (or MSMT17_V2, msmt17/MSMT17_V1, or <root> itself)
      train/ test/  (V2: mask_train_v2/ mask_test_v2/)
      {' '.join(LISTS)} [list_val.txt]
  each list line: <path under train/ or test/> <pid>, e.g. {EXAMPLE_LINE}"""


def read_list(list_path: Path, image_dir: Path) -> list[Sample]:
    """Samples of one list file; the camera is the third field of the file name (1-based)."""
    samples = []
    for number, line in enumerate(read_text_file(list_path, "list file").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            relative, pid = fields[0], int(fields[1])
            camid = int(Path(relative).name.split("_")[2]) - 1
        except (IndexError, ValueError):
            raise DatasetError(f"{list_path}:{number}: cannot parse {line.strip()!r}; expected "
                               f"'<image path> <pid>' like {EXAMPLE_LINE!r}") from None
        samples.append((str(image_dir / relative), pid, camid))
    if samples and not Path(samples[0][0]).is_file():
        raise DatasetError(f"{list_path} lists {samples[0][0]}, which does not exist; expected its images "
                           f"under {image_dir}")
    return samples


def image_dir(folder: Path, subset: str) -> Path:
    for name in IMAGE_DIRS[subset]:
        if (folder / name).is_dir():
            return folder / name
    raise DatasetError(f"MSMT17: {folder} has no {' or '.join(IMAGE_DIRS[subset])} image folder. "
                       f"Expected layout:\n{LAYOUT}")


@DATASETS.register("msmt17")
class MSMT17(ImageDataset):
    """`include_val` adds list_val.txt to training (torchreid's combineall for MSMT17); off by default, as published."""

    def __init__(self, root: str | os.PathLike, *, include_val: bool = False, **options: object) -> None:
        candidates = ("MSMT17_V1", "MSMT17_V2", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2", "")
        folder = find_dataset_dir(root, candidates, LISTS, "MSMT17", LAYOUT)
        train_dir, test_dir = image_dir(folder, "train"), image_dir(folder, "test")
        train = read_list(folder / "list_train.txt", train_dir)
        if include_val:
            train += read_list(folder / "list_val.txt", train_dir)
        super().__init__(train, read_list(folder / "list_query.txt", test_dir),
                         read_list(folder / "list_gallery.txt", test_dir), name="MSMT17", root=folder, **options)
