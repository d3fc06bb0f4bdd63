"""Galleries of image crops: search your own cameras' crops for a person.

    from reidkit.gallery import Gallery, Item
    g = Gallery("gallery/")    # SQLite + FAISS in a folder (default); "http://host:19530" or "x.db": Milvus
    g.add(vectors, items); hits = g.search(vector, topk=20, camera=3)

`reidkit index` / `reidkit search` (gallery/cli.py) fill and query one from a folder of images with a trained
model (reidkit.deploy.Embedder). Backends register under a URI scheme in `reidkit.gallery.base.BACKENDS`;
attributes are imported on first use (FAISS and pymilvus load only with their backend).
"""
from reidkit.utils.lazy import lazy_attributes

_LAZY = {
    "BACKENDS": "reidkit.gallery.base",
    "Gallery": "reidkit.gallery.base",
    "Hit": "reidkit.gallery.base",
    "Item": "reidkit.gallery.base",
    "SearchFilter": "reidkit.gallery.base",
    "make_filter": "reidkit.gallery.base",
    "uri_scheme": "reidkit.gallery.base",
    "PATTERNS": "reidkit.gallery.metadata",
    "NamePattern": "reidkit.gallery.metadata",
    "CsvMetadata": "reidkit.gallery.metadata",
    "metadata_source": "reidkit.gallery.metadata",
    "index_images": "reidkit.gallery.indexing",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
