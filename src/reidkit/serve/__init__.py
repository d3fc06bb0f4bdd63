"""`reidkit serve`: an HTTP search service and a web page over a gallery (FastAPI + uvicorn).

    from reidkit.serve import GalleryService, ServeSettings, create_app
    app = create_app(GalleryService(gallery, embedder), ServeSettings(token="..."))

app.py: routes and error answers; service.py: what they do (no HTTP); images.py: upload decoding;
security.py: settings, write policy and the ASGI middlewares; static/: the page (no build step, no CDN).
"""
from reidkit.utils.lazy import lazy_attributes

_LAZY = {
    "create_app": "reidkit.serve.app",
    "GalleryService": "reidkit.serve.service",
    "SearchQuery": "reidkit.serve.service",
    "ServeSettings": "reidkit.serve.security",
    "decode_upload": "reidkit.serve.images",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = sorted(_LAZY)
