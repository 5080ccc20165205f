"""The app's ``POST /infer/{model}``: MONAI Label's request shape, with every bad request a 4xx JSON answer.

MONAI Label 0.8.5 answers an unknown image id, an unreadable file or an unknown model with a bare HTTP 500, and
writes any upload to disk whatever its size. This route is put in front of MONAI Label's own (same path, same query
keys ``image``, ``output``, same form fields ``file``, ``params``) when the app starts, and still answers through
the app (:meth:`MONAILabelApp.infer`, the infer task, :class:`BundlePredictor`):

=====  =====================================================================================================
 404    unknown model, unknown image id
 413    an upload over the app's ``max_upload_mb``, an image over the bundle's ``max_pixels``
 422    no image given, an image the bundle cannot read (not an image, a 3D volume, ...), a bad ``output`` or
        ``params``
=====  =====================================================================================================

Every error is ``{"detail": "<one line: what was wrong, what to do>"}``; the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from medbundle.data.errors import DataError
from medbundle.serving.label_app.lib.datastores import UnknownImage, resolve_image

__all__ = ["install_infer_route", "OUTPUTS"]

logger = logging.getLogger("medbundle.serving.label")

#: the ``output`` values: the JSON answer, the Grad-CAM overlay PNG, or both (multipart, as MONAI Label sends).
OUTPUTS = ("json", "image", "all")

_UPLOAD_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz")


class _Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is longer than ``limit`` bytes."""
    too_big = f"upload larger than {limit / 2**20:g} MB (max_upload_mb). Send a smaller image, or start the " \
              f"server with --conf max_upload_mb <MB>."
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _Refused(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Refused(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> tuple[Any, dict[str, Any]]:
    """The uploaded ``file`` (or None) and the ``params`` JSON of a form body."""
    if not body or not request.headers.get("content-type", "").startswith(("multipart/", "application/x-www-form")):
        return None, {}

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as e:  # starlette's MultiPartException and parser errors
        raise _Refused(422, f"form: not a readable form ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                            f". Send the image as the multipart form field 'file'.") from None
    upload = form.get("file")
    try:
        params = json.loads(form.get("params") or "{}")
    except json.JSONDecodeError as e:
        raise _Refused(422, f"params: not JSON ({e.msg}). Send params as a JSON object, e.g. "
                            "'{\"explain\": \"gradcam\"}'.") from None
    if not isinstance(params, dict):
        raise _Refused(422, "params: not a JSON object. Send e.g. '{\"explain\": \"gradcam\"}'.")
    return (upload if hasattr(upload, "read") else None), params


async def _save_upload(upload) -> str:
    name = Path(upload.filename or "upload").name.lower()
    suffix = next((s for s in sorted(_UPLOAD_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")
    fd, path = tempfile.mkstemp(prefix="medbundle-upload-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(await upload.read())
    return path


def _status_of(error: DataError) -> int:
    return 413 if "max_pixels" in str(error) else 422


def _shown(message: str, path: str | None, name: str) -> str:
    """``message`` (its first line) with the server's path of the image (and of files under it) replaced by the
    name the client used: the image id or the uploaded file's name."""
    first = message.splitlines()[0] if message else message
    if not path:
        return first
    return re.sub(re.escape(str(path)) + r"[^\s:'\")]*", name, first)


def install_infer_route(app, fastapi_app: FastAPI, max_upload_bytes: int, infer_threads: int = 2) -> None:
    """Put the guarded ``POST /infer/{model}`` of ``app`` (a :class:`MONAILabelApp`) in front of MONAI Label's.

    Args:
        app: the MONAI Label app.
        fastapi_app: MONAI Label's FastAPI application.
        max_upload_bytes: the largest request body accepted (413 above it).
        infer_threads: images decoded and classified at once; further requests wait (without a thread), so the
            server's memory is bounded by this many images in flight, not by the number of clients.
    """
    limiters: list[anyio.CapacityLimiter] = []  # made on the first request, inside the server's event loop

    async def infer(request: Request, model: str) -> Response:
        upload_path = image = None
        shown = "the image"
        try:
            output = request.query_params.get("output") or "json"
            if output not in OUTPUTS:
                raise _Refused(422, f"output={output!r}: not one of {', '.join(OUTPUTS)}.")
            tasks = app._infers
            if model not in tasks:
                raise _Refused(404, f"model {model!r}: unknown. Models served here: {', '.join(sorted(tasks)) or 'none'}"
                                    f" (GET /info/).")
            upload, params = await _form(request, await _body(request, max_upload_bytes))
            image_id = request.query_params.get("image", "")
            if upload is not None:
                image = upload_path = await _save_upload(upload)
                shown = Path(upload.filename or "upload").name
            elif image_id:
                shown = f"image {image_id}"
                image = await run_in_threadpool(resolve_image, app.datastore(), image_id)
            else:
                raise _Refused(422, "no image: pass ?image=<id> (GET /datastore/?output=all lists them) or upload "
                                    "a file as the form field 'file'.")
            explain = params.get("explain")
            if explain is not None and explain not in app.explain_methods:
                raise _Refused(422, f"explain={explain!r}: not one of {', '.join(app.explain_methods)}.")
            req = {"model": model, "image": image, "output": "image" if output != "json" else "json",
                   "explain": explain, "save_label": False}
            if not limiters:
                limiters.append(anyio.CapacityLimiter(max(1, int(infer_threads))))
            result = await anyio.to_thread.run_sync(app.infer, req, limiter=limiters[0])
        except _Refused as e:
            return _error(e.status, e.detail)
        except UnknownImage as e:
            return _error(404, str(e))
        except DataError as e:
            return _error(_status_of(e), _shown(str(e), image, shown))
        except Exception as e:  # the server keeps serving; the full traceback goes to the log
            logger.exception("infer %s failed", model)
            return _error(500, f"{type(e).__name__}: {_shown(str(e), image, shown) or 'see the server log'}")
        finally:
            if upload_path:
                Path(upload_path).unlink(missing_ok=True)
        answer, png = result["params"], result.get("file")
        cleanup = BackgroundTask(Path(png).unlink, missing_ok=True) if png else None
        if output == "json":
            if png:
                Path(png).unlink(missing_ok=True)
            return JSONResponse(answer)
        if output == "image":
            return FileResponse(png, media_type="image/png", filename=f"{model}_overlay.png", background=cleanup)
        from requests_toolbelt import MultipartEncoder

        with open(png, "rb") as f:
            encoder = MultipartEncoder(fields={"params": (None, json.dumps(answer), "application/json"),
                                               "image": (f"{model}_overlay.png", f.read(), "image/png")})
        Path(png).unlink(missing_ok=True)
        return Response(content=encoder.to_string(), media_type=encoder.content_type)

    route = APIRoute("/infer/{model}", infer, methods=["POST"], summary="Classify an image (medbundle)")
    fastapi_app.router.routes.insert(0, route)
