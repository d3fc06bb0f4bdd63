import pytest
from PIL import Image

from reidkit.visualize import make_ranked_grid
from reidkit.visualize.grid import BLACK, GREEN, RED, WHITE

BLUE = (0, 0, 255)
YELLOW = (250, 250, 0)


def solid(color, size=(32, 64)):
    return Image.new("RGB", size, color)


def test_grid_size_and_border_colours_for_a_known_case():
    gallery = [solid(BLUE), solid(BLUE), solid(BLUE)]
    overlays = [solid(YELLOW)] * 4
    grid = make_ranked_grid(solid(BLUE), gallery, [True, False, True], [overlays], cell_size=(64, 32))
    # 4 columns of 32 px, 10 px gaps, 90 px extra after the query; 2 rows of 64 px with a 10 px gap.
    assert grid.size == (4 * 32 + 3 * 10 + 90, 2 * 64 + 10)
    lefts = [0, 32 + 100, 32 + 100 + 42, 32 + 100 + 84]
    colours = [BLACK, GREEN, RED, GREEN]
    for top, content in [(0, BLUE), (74, YELLOW)]:
        for left, colour in zip(lefts, colours):
            assert grid.getpixel((left, top)) == colour  # outer corner
            assert grid.getpixel((left + 4, top + 30)) == colour  # 5 px border: offsets 0..4
            assert grid.getpixel((left + 31, top + 63)) == colour
            assert grid.getpixel((left + 16, top + 59)) == colour
            assert grid.getpixel((left + 5, top + 5)) == content  # picture starts at offset 5
            assert grid.getpixel((left + 26, top + 58)) == content
    for gap_x in (32, 32 + 99, 32 + 100 + 32, 32 + 100 + 41):
        assert grid.getpixel((gap_x, 30)) == WHITE
    assert grid.getpixel((10, 64)) == WHITE and grid.getpixel((10, 73)) == WHITE  # row gap


def test_grid_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 gallery images but 1 correct_flags"):
        make_ranked_grid(solid(BLUE), [solid(BLUE)] * 2, [True], cell_size=(64, 32))
    with pytest.raises(ValueError, match="extra row 1 has 2 images; expected 3"):
        make_ranked_grid(solid(BLUE), [solid(BLUE)] * 2, [True, False], [[solid(BLUE)] * 2], cell_size=(64, 32))
    with pytest.raises(ValueError, match="cell_size must exceed 10 px"):
        make_ranked_grid(solid(BLUE), [], [], cell_size=(64, 10))
