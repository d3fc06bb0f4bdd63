"""The FastAPI application of `reidkit serve`: the JSON API under /api, the page at /, OpenAPI at /docs.

    app = create_app(GalleryService(gallery, embedder), ServeSettings(token="..."))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every error is answered as {"error": "<one line>"} with a 4xx status (500 "internal error" for a bug, whose
traceback goes to the server log only). See reidkit/serve/security.py for what protects the images.
"""
from __future__ import annotations

import json
import math
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Path, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from reidkit import __version__
from reidkit.errors import ReidkitError
from reidkit.gallery.metadata import parse_time
from reidkit.serve.errors import ApiError
from reidkit.serve.images import decode_upload
from reidkit.serve.security import BodyLimit, RequestGuard, SecurityHeaders, ServeSettings, write_refusal
from reidkit.serve.service import MAX_ID, MAX_TOPK, GalleryService, NewItems, SearchQuery

# The page's own files: nothing else is served from the package folder (no listing, no other path).
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
SEARCH_FIELDS = {"image", "item_id", "topk", "camera", "exclude_camera", "exclude_same_camera", "query_camera",
                 "since", "until"}
ADD_FIELDS = {"image", "camera", "timestamp", "track", "pid", "tags"}
ItemId = Annotated[int, Path(ge=0, le=MAX_ID, description="an item id from a search or an add")]


def _static(name: str) -> bytes:
    return resources.files("reidkit.serve").joinpath("static", name).read_bytes()


def _middleware(settings: ServeSettings) -> list[Middleware]:
    """Outermost first: headers on every answer, Host / Origin checks, body limit, CORS if asked."""
    stack = [Middleware(SecurityHeaders),
             Middleware(RequestGuard, hosts=settings.host_names(), allowed_origins=settings.cors_origins),
             Middleware(BodyLimit, limit=settings.max_upload_bytes)]
    if settings.cors_origins:
        stack.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization"]))
    return stack


def create_app(service: GalleryService, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    app = FastAPI(title="reidkit serve", version=__version__, docs_url=None, redoc_url=None,
                  description="Search a gallery of person crops by an image or by an indexed item.",
                  middleware=_middleware(settings))
    app.state.service, app.state.settings = service, settings
    _add_error_handlers(app)
    _add_page_routes(app)
    _add_read_routes(app, service)
    _add_write_routes(app, service, settings)
    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')} (got {str(error.get('input'))[:40]!r})"
                     if "input" in error else f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(ReidkitError)
    async def reidkit_error(request: Request, exc: ReidkitError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "bad request"
        if exc.status_code == 404:
            message = f"nothing at {request.url.path}"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal error (the server log has the details)")


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise ApiError(f"nothing at /static/{name}", 404)
        return Response(_static(name), media_type=STATIC_FILES[name])

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="reidkit serve API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_assets(name: str) -> Response:
        return _swagger_asset(name)


def _swagger_asset(name: str) -> Response:
    """Swagger UI from the swagger-ui-bundle package (served here: no CDN is reached at run time)."""
    kinds = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
    if name not in kinds:
        raise ApiError(f"nothing at /docs/assets/{name}", 404)
    import swagger_ui_bundle

    return FileResponse(f"{swagger_ui_bundle.swagger_ui_path}/{name}", media_type=kinds[name])


def _check_fields(form: Any, known: set[str]) -> None:
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise ApiError(f"unknown field {unknown[0]!r}; expected fields: {', '.join(sorted(known))}", 422)


def _time(text: str | None, name: str) -> float | None:
    if text in (None, ""):
        return None
    seconds = parse_time(text, name)
    if not math.isfinite(seconds):
        raise ApiError(f"{name}={text!r}: expected a finite time (seconds since 1970 or an ISO date)")
    return seconds


def _add_read_routes(app: FastAPI, service: GalleryService) -> None:
    @app.get("/api/health", summary="model and gallery size")
    async def health() -> dict[str, Any]:
        return await run_in_threadpool(service.health)

    @app.post("/api/search", summary="ranked matches of an uploaded crop or of an indexed item")
    async def search(request: Request, image: Annotated[UploadFile | None, File(description="a crop")] = None,
                     item_id: Annotated[int | None, Form(ge=0, le=MAX_ID)] = None,
                     topk: Annotated[int, Form(ge=1, le=MAX_TOPK)] = 20,
                     camera: Annotated[list[int] | None, Form(description="only these cameras")] = None,
                     exclude_camera: Annotated[list[int] | None, Form()] = None,
                     exclude_same_camera: Annotated[bool, Form()] = False,
                     query_camera: Annotated[int | None, Form(description="the upload's camera")] = None,
                     since: Annotated[str | None, Form(description="seconds since 1970 or ISO date (UTC)")] = None,
                     until: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        _check_fields(await request.form(), SEARCH_FIELDS)
        upload = None
        if image is not None:
            upload = decode_upload(await image.read(), max_pixels=app.state.settings.max_pixels,
                                   name=f"the upload {image.filename!r}")
        query = SearchQuery(upload, item_id, topk, camera, exclude_camera or [], exclude_same_camera,
                            query_camera, _time(since, "since"), _time(until, "until"))
        return await run_in_threadpool(service.search, query)

    @app.get("/api/items/{item_id}", summary="one item's metadata")
    async def item(item_id: ItemId) -> dict[str, Any]:
        return await run_in_threadpool(service.item, item_id)

    @app.get("/api/items/{item_id}/image", summary="one item's image file (as indexed)",
             response_class=FileResponse)
    async def item_image(item_id: ItemId) -> FileResponse:
        path, kind = await run_in_threadpool(service.image_file, item_id)
        return FileResponse(path, media_type=kind)


def _add_write_routes(app: FastAPI, service: GalleryService, settings: ServeSettings) -> None:
    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        """Runs before the request's fields are checked: a refused write learns nothing about them."""
        refusal = write_refusal(settings, authorization)
        if refusal is not None:
            headers = {"WWW-Authenticate": "Bearer"} if refusal[0] == 401 else None
            raise HTTPException(refusal[0], refusal[1], headers=headers)

    writes = [Depends(authorize)]

    @app.post("/api/items", summary="add crops (one or more 'image' parts) with their metadata",
              dependencies=writes)
    async def add_items(request: Request, image: Annotated[list[UploadFile], File(description="crops")],
                        camera: Annotated[int | None, Form()] = None,
                        timestamp: Annotated[str | None, Form(description="seconds or ISO date (UTC)")] = None,
                        track: Annotated[int | None, Form()] = None, pid: Annotated[int | None, Form()] = None,
                        tags: Annotated[str | None, Form(description="a JSON object")] = None) -> dict[str, Any]:
        _check_fields(await request.form(), ADD_FIELDS)
        uploads = [decode_upload(await part.read(), max_pixels=settings.max_pixels,
                                 name=f"crop {i} ({part.filename!r})") for i, part in enumerate(image)]
        meta = NewItems(camera, _time(timestamp, "timestamp"), track, pid, _tags(tags))
        return {"added": await run_in_threadpool(service.add, uploads, meta)}

    @app.delete("/api/items/{item_id}", summary="delete an item", dependencies=writes)
    async def delete_item(item_id: ItemId) -> dict[str, Any]:
        return await run_in_threadpool(service.delete, item_id)


def _tags(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        tags = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(f"tags={text[:60]!r} is not JSON ({exc.msg}); expected an object like {{\"note\": \"x\"}}")
    if not isinstance(tags, dict):
        raise ApiError(f"tags={text[:60]!r}: expected a JSON object like {{\"note\": \"x\"}}")
    return tags
