"""Exceptions for bad user input. The CLI prints these as one clear message, without a traceback."""


class ReidkitError(Exception):
    """Base class: the message alone must tell the user what is wrong and what was expected."""


class DatasetError(ReidkitError, ValueError):
    """A dataset folder, file or image is missing, misnamed or malformed."""


class ConfigError(ReidkitError, ValueError):
    """A config key is unknown or a value has the wrong type."""


class CheckpointError(ReidkitError, ValueError):
    """A checkpoint cannot be read or does not fit the model."""


class GalleryError(ReidkitError, ValueError):
    """A gallery database is missing, is not a gallery, holds another model's features, or a query does not fit."""


class RegistryError(ReidkitError, KeyError):
    """A name (model, dataset, loss, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ExportError(ReidkitError, RuntimeError):
    """An exported model cannot be written, or disagrees with the PyTorch model it came from."""
