"""Ranked-list grid layout (docs/specs/top-db-net.md section 9, values of the reference reidtools.py).

Columns: query, then the ranked gallery images. Every cell is `cell_size` (height, width) including a 5 px
border: black for the query, green for a correct match, red for a wrong one, grey where it is not known
(a gallery of unlabelled crops). Columns are 10 px apart, with 90 px
more after the query (so rank-1 starts width + 100 px from the left, as in the reference). Rows (images,
overlays, masks, ...) are 10 px apart; every row of a column carries the column's border so rows stay aligned.
"""
from __future__ import annotations

from typing import Sequence

from PIL import Image

from reidkit.visualize.activation import check_size

GRID_SPACING = 10
QUERY_EXTRA_SPACING = 90
BORDER_WIDTH = 5
BLACK = (0, 0, 0)
GREEN = (0, 255, 0)
RED = (255, 0, 0)
GREY = (160, 160, 160)
WHITE = (255, 255, 255)
DEFAULT_CELL_SIZE = (256, 128)


def inner_size(cell_size: Sequence[int] = DEFAULT_CELL_SIZE) -> tuple[int, int]:
    """(height, width) of the picture inside a cell's border: the size to draw maps at."""
    height, width = check_size(cell_size, "cell_size")
    if min(height, width) <= 2 * BORDER_WIDTH:
        raise ValueError(f"cell_size must exceed {2 * BORDER_WIDTH} px on both sides (5 px borders), got {cell_size}")
    return height - 2 * BORDER_WIDTH, width - 2 * BORDER_WIDTH


def bordered_cell(image: Image.Image, color: tuple[int, int, int], cell_size: Sequence[int]) -> Image.Image:
    """Resize `image` to the inner size and frame it with a BORDER_WIDTH border of `color`."""
    inner_h, inner_w = inner_size(cell_size)
    picture = image.convert("RGB")
    if picture.size != (inner_w, inner_h):
        picture = picture.resize((inner_w, inner_h), Image.Resampling.BILINEAR)
    cell = Image.new("RGB", (inner_w + 2 * BORDER_WIDTH, inner_h + 2 * BORDER_WIDTH), color)
    cell.paste(picture, (BORDER_WIDTH, BORDER_WIDTH))
    return cell


def column_offsets(num_gallery: int, cell_width: int) -> list[int]:
    """Left x of each column: query at 0, rank r at r * (width + 10) + 90."""
    return [0] + [r * (cell_width + GRID_SPACING) + QUERY_EXTRA_SPACING for r in range(1, num_gallery + 1)]


def grid_size(num_gallery: int, num_rows: int, cell_size: Sequence[int] = DEFAULT_CELL_SIZE) -> tuple[int, int]:
    """(width, height) in pixels of a grid with `num_gallery` ranked images and `num_rows` rows."""
    height, width = check_size(cell_size, "cell_size")
    grid_w = column_offsets(num_gallery, width)[-1] + width
    return grid_w, num_rows * height + (num_rows - 1) * GRID_SPACING


def make_ranked_grid(
    query_img: Image.Image,
    gallery_imgs: Sequence[Image.Image],
    correct_flags: Sequence[bool | None],
    extra_rows: Sequence[Sequence[Image.Image]] = (),
    cell_size: Sequence[int] = DEFAULT_CELL_SIZE,
) -> Image.Image:
    """One grid: row 0 the query and its ranked gallery images, then each of `extra_rows` (query first, same
    length as row 0), e.g. activation overlays or masks."""
    if len(gallery_imgs) != len(correct_flags):
        raise ValueError(
            f"got {len(gallery_imgs)} gallery images but {len(correct_flags)} correct_flags; "
            "expected one flag per image"
        )
    rows = [[query_img, *gallery_imgs], *[list(row) for row in extra_rows]]
    for index, row in enumerate(rows[1:], start=1):
        if len(row) != len(rows[0]):
            raise ValueError(f"extra row {index} has {len(row)} images; expected {len(rows[0])} (query + gallery)")
    height, width = check_size(cell_size, "cell_size")
    colors = [BLACK] + [GREY if flag is None else GREEN if flag else RED for flag in correct_flags]
    grid = Image.new("RGB", grid_size(len(gallery_imgs), len(rows), cell_size), WHITE)
    for row_index, row in enumerate(rows):
        top = row_index * (height + GRID_SPACING)
        for left, image, color in zip(column_offsets(len(gallery_imgs), width), row, colors):
            grid.paste(bordered_cell(image, color, cell_size), (left, top))
    return grid
