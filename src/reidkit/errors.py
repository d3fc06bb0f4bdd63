"""Exceptions for bad user input. The CLI prints these as one clear message, without a traceback."""


class ReidkitError(Exception):
    """Base class: the message alone must tell the user what is wrong and what was expected.

    Raised in a DataLoader worker (a bad image), it reaches the main process re-created by torch from one
    string: "Caught DatasetError in DataLoader worker process 0.\\nOriginal Traceback ...", the worker's whole
    traceback ending in "reidkit.errors.DatasetError: <message>". The original message is recovered from it, so
    the user still reads one line naming the file.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_worker_message(type(self), args[0]),)
        super().__init__(*args)


def _worker_message(cls: type, text: str) -> str:
    """`text`, or the message of the `cls` error inside torch's worker-exception text."""
    if not text.startswith(f"Caught {cls.__name__} ") or "\nOriginal Traceback" not in text:
        return text
    marker = f"\n{cls.__module__}.{cls.__qualname__}: "
    start = text.rfind(marker)
    return text[start + len(marker):].rstrip("\n") if start >= 0 else text


class DatasetError(ReidkitError, ValueError):
    """A dataset folder, file or image is missing, misnamed or malformed."""


class ConfigError(ReidkitError, ValueError):
    """A config key is unknown or a value has the wrong type."""


class CheckpointError(ReidkitError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""


class PostprocessInputError(ReidkitError, ValueError):
    """Inputs of the post-processing chain (features, labels, tracks, distances) that do not fit together."""
class GalleryError(ReidkitError, ValueError):
    """A gallery database is missing, is not a gallery, holds another model's features, or a query does not fit."""


class RegistryError(ReidkitError, KeyError):
    """A name (model, dataset, loss, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ExportError(ReidkitError, RuntimeError):
    """An exported model cannot be written, or disagrees with the PyTorch model it came from."""
