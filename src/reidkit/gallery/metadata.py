"""Item metadata for `reidkit index`: from a CSV file (`--meta`), from a file-name pattern (`--pattern`), or none.

Pattern syntax: `{name}` matches an integer (optionally negative), `{name:s}` any text without "/", `*` any
text; everything else is literal (case-insensitive). A pattern without "/" matches the file name, one with "/"
the path relative to the indexed folder. Field names pid, camid / cam / camera, track, timestamp / time fill
those item fields; every other field becomes a tag. Built-in patterns (PATTERNS):

    market1501    {pid}_c{camid}s{seq}_{frame}_{idx}.jpg        0002_c1s1_000451_03.jpg
    dukemtmcreid  {pid}_c{camid}_f{frame}.jpg                   0001_c2_f0046182.jpg
    msmt17        {pid}_{idx}_{camid}_{day}{period:s}_{frame}_{n}.jpg   0000_000_01_0303morning_0015_0.jpg
    veri          {pid}_c{camid}_{frame}_{idx}.jpg              0001_c001_00016450_0.jpg

Cameras are kept as written (Market's c1 is camera 1), so `reidkit search --camera 1` reads like the names.

CSV: a header row with a `path` column (relative to the indexed folder, or absolute) and any of camera, timestamp,
track, pid; the other columns become tags. UTF-8 with or without a byte-order mark. Times: seconds since 1970 or
ISO 8601 (`2024-05-01T10:00:00`, `2024-05-01 10:00:00+02:00`); a time without a zone is read as UTC.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from reidkit.errors import DatasetError
from reidkit.registry import Registry

PATTERNS: Registry[str] = Registry("file-name pattern")
for _name, _pattern in {
    "market1501": "{pid}_c{camid}s{seq}_{frame}_{idx}.jpg",
    "dukemtmcreid": "{pid}_c{camid}_f{frame}.jpg",
    "msmt17": "{pid}_{idx}_{camid}_{day}{period:s}_{frame}_{n}.jpg",
    "veri": "{pid}_c{camid}_{frame}_{idx}.jpg",
}.items():
    PATTERNS.register(_name)(_pattern)

# Field names that fill an Item field (the rest become tags).
FIELD_ROLES = {"pid": "pid", "camid": "camera", "cam": "camera", "camera": "camera", "track": "track",
               "trackid": "track", "timestamp": "timestamp", "time": "timestamp"}
PATH_COLUMNS = ("path", "file", "filename", "image")
_FIELD_KINDS = {"": r"-?\d+", "s": r"[^/]+?"}
TIME_EXAMPLE = "seconds since 1970 or an ISO date like 2024-05-01T10:00:00"


class MetadataError(DatasetError):
    """A metadata CSV or a file-name pattern is malformed."""


@dataclass
class Metadata:
    """What one image contributes besides its vector."""
    camera: int | None = None
    timestamp: float | None = None
    track: int | None = None
    pid: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)


class MetadataSource(Protocol):
    def lookup(self, relative_path: str) -> Metadata | None:
        """The metadata of an image (path relative to the indexed folder, "/"-separated); None: nothing known."""


class NoMetadata:
    def lookup(self, relative_path: str) -> Metadata | None:
        return None


# ------------------------------------------------------------------------------------------------------ times
def datetime_seconds(value: datetime) -> float:
    """Seconds since 1970; a naive datetime is UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def parse_time(text: str, where: str) -> float:
    """Seconds since 1970 from a number or an ISO 8601 date; `where` names the source in the error."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime_seconds(datetime.fromisoformat(value))
    except ValueError:
        raise MetadataError(f"{where}: cannot read {text!r} as a time; expected {TIME_EXAMPLE}") from None


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _metadata(fields: dict[str, Any], where: str) -> Metadata:
    """Item fields and tags of a parsed name or CSV row (values still text or int)."""
    meta = Metadata()
    for name, value in fields.items():
        role = FIELD_ROLES.get(name.lower())
        if value is None or value == "":
            continue
        if role is None:
            meta.tags[name] = value
        elif role == "timestamp":
            setattr(meta, role, float(value) if isinstance(value, int) else parse_time(value, f"{where}, {name}"))
        else:
            try:
                setattr(meta, role, int(value))
            except ValueError:
                raise MetadataError(f"{where}: {name}={value!r}; expected an integer") from None
    return meta


# ---------------------------------------------------------------------------------------------------- pattern
class NamePattern:
    """A file-name pattern (or a built-in name from PATTERNS) compiled to a regular expression."""

    def __init__(self, pattern: str) -> None:
        self.text = PATTERNS.get(pattern) if pattern in PATTERNS else pattern
        self.fields: list[str] = []
        self.text_fields: set[str] = set()
        parts = []
        for token in re.split(r"(\{[^{}]*\})", self.text):
            if token.startswith("{") and token.endswith("}"):
                parts.append(self._field(token[1:-1]))
            elif "{" in token or "}" in token:
                raise MetadataError(f"--pattern {self.text!r}: unbalanced brace in {token!r}")
            else:
                parts.append(".*?".join(re.escape(piece) for piece in token.split("*")))
        if not self.fields:
            raise MetadataError(f"--pattern {pattern!r} has no {{field}}; expected e.g. "
                                f"'{PATTERNS.get('market1501')}' or one of {', '.join(PATTERNS.names())}")
        self.regex = re.compile("".join(parts), re.IGNORECASE)
        self.whole_path = "/" in self.text

    def _field(self, spec: str) -> str:
        name, _, kind = spec.partition(":")
        if not name.isidentifier() or kind not in _FIELD_KINDS:
            raise MetadataError(f"--pattern {self.text!r}: bad field {{{spec}}}; expected {{name}} (an integer) or "
                                "{name:s} (text), name made of letters, digits and _")
        if name in self.fields:
            raise MetadataError(f"--pattern {self.text!r}: field {{{name}}} appears twice")
        self.fields.append(name)
        if kind == "s":
            self.text_fields.add(name)
        return f"(?P<{name}>{_FIELD_KINDS[kind]})"

    def parse(self, relative_path: str) -> dict[str, Any] | None:
        """The fields of a matching path (integers as int), None when it does not match."""
        subject = relative_path if self.whole_path else relative_path.rsplit("/", 1)[-1]
        found = self.regex.fullmatch(subject)
        if found is None:
            return None
        return {k: (v if k in self.text_fields else int(v)) for k, v in found.groupdict().items()}

    def lookup(self, relative_path: str) -> Metadata | None:
        fields = self.parse(relative_path)
        return None if fields is None else _metadata(fields, relative_path)


# -------------------------------------------------------------------------------------------------------- CSV
class CsvMetadata:
    """Rows of a metadata CSV keyed by image path relative to the indexed folder."""

    def __init__(self, path: str | os.PathLike, images_root: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: dict[str, Metadata] = {}
        root = os.path.abspath(images_root)
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as handle:
                self._read(csv.DictReader(handle), root)
        except OSError as exc:
            raise MetadataError(f"cannot read --meta {self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise MetadataError(f"--meta {self.path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise MetadataError(f"--meta {self.path}: not a CSV file: {exc}") from None

    def _read(self, reader: csv.DictReader, root: str) -> None:
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        path_column = next((name for name in header if name.lower() in PATH_COLUMNS), None)
        if path_column is None:
            raise MetadataError(f"--meta {self.path}: no path column (header: {', '.join(header) or 'empty'}); "
                                "expected a 'path' column of image paths relative to --images, and optionally "
                                "camera, timestamp, track, pid and tag columns")
        first_line: dict[str, int] = {}
        for row in reader:
            where = f"{self.path}:{reader.line_num}"
            raw = (row.get(path_column) or "").strip()
            if not raw:
                raise MetadataError(f"{where}: empty {path_column!r}; expected an image path")
            key = relative_key(raw, root)
            if key in first_line:
                raise MetadataError(f"{where}: {raw!r} is listed twice (first on line {first_line[key]})")
            first_line[key] = reader.line_num
            extra = {name: (value or "").strip() for name, value in row.items() if name and name != path_column}
            self.rows[key] = _metadata(extra, where)

    def lookup(self, relative_path: str) -> Metadata | None:
        return self.rows.get(relative_path)


def relative_key(path: str, root: str) -> str:
    """A path relative to `root`, "/"-separated (absolute paths are made relative)."""
    full = path if os.path.isabs(path) else os.path.join(root, path)
    return Path(os.path.relpath(os.path.normpath(full), root)).as_posix()


def metadata_source(meta_csv: str | os.PathLike | None, pattern: str | None,
                    images_root: str | os.PathLike) -> MetadataSource:
    if meta_csv is not None and pattern is not None:
        raise MetadataError("--meta and --pattern both given; expected one source of metadata")
    if meta_csv is not None:
        return CsvMetadata(meta_csv, images_root)
    return NamePattern(pattern) if pattern is not None else NoMetadata()
