"""Uploaded bytes -> an RGB crop, decoding only image formats, refusing decompression bombs and slivers.

    image = decode_upload(data, max_pixels=25_000_000)    # Upload (format, size, RGB array) or UploadError
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from reidkit.serve.errors import ApiError

# The formats a crop may come in (Pillow format -> the suffix its file is stored under). Image.open tries
# these decoders alone, so no other file type (PDF, PSD, EPS through Ghostscript, ...) reaches a decoder.
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "WEBP": ".webp"}
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".bmp": "image/bmp",
               ".webp": "image/webp"}
MIN_SIDE = 8  # pixels: below this a crop holds no person to match


class UploadError(ApiError):
    """An upload that is not a usable image; `status` is the HTTP status it is answered with."""


@dataclass
class Upload:
    format: str  # a key of IMAGE_FORMATS
    width: int
    height: int
    pixels: np.ndarray  # H x W x 3 uint8 RGB
    data: bytes  # the file as uploaded

    @property
    def suffix(self) -> str:
        return IMAGE_FORMATS[self.format]


def decode_upload(data: bytes, *, max_pixels: int, name: str = "the upload") -> Upload:
    """The image in `data`; UploadError (415: not an allowed image type, 413: too many pixels, 400: damaged or
    too small) with a message naming `name` otherwise."""
    if not data:
        raise UploadError(f"{name} is empty; expected a JPEG, PNG, BMP or WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel limit below decides
            image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        raise UploadError(f"{name} is not an image this server reads; expected JPEG, PNG, BMP or WebP", 415) from None
    except Image.DecompressionBombError as exc:
        raise UploadError(f"{name} declares too many pixels ({exc}); the limit is {max_pixels:,}", 413) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UploadError(f"{name} could not be read as an image ({exc})") from None
    with image:
        width, height = image.size  # from the header: nothing decoded yet
        if width * height > max_pixels:
            raise UploadError(f"{name} is {width}x{height} = {width * height:,} pixels; the limit is "
                              f"{max_pixels:,} (a person crop is far smaller)", 413)
        if min(width, height) < MIN_SIDE:
            raise UploadError(f"{name} is {width}x{height} pixels; expected at least {MIN_SIDE}x{MIN_SIDE} "
                              "(a person crop)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as exc:
            raise UploadError(f"{name} could not be decoded: {exc} (a damaged or truncated file?)") from None
        return Upload(image.format, width, height, pixels, data)


def media_type(path: str | Path) -> str | None:
    """The Content-Type of an image file by its suffix; None for anything that is not an image."""
    return MEDIA_TYPES.get(Path(path).suffix.lower())
