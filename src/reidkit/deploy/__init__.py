"""Taking a trained model out of reidkit: export (ONNX / TorchScript with a parity check), the Embedder, and
the `reidkit export` / `reidkit verify` commands. See docs/deploy.md.

    from reidkit.deploy import Embedder, export_model
"""
from reidkit.utils.lazy import lazy_attributes

_SOURCES = {
    "Embedder": "reidkit.deploy.embedder",
    "export_model": "reidkit.deploy.export",
    "load_model": "reidkit.deploy.loading",
    "FeatureModel": "reidkit.deploy.loading",
    "fingerprint": "reidkit.deploy.metadata",
}
__getattr__ = lazy_attributes(__name__, _SOURCES)
__all__ = sorted(_SOURCES)
