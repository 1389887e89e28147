"""The HTTP API (FastAPI): a thin mapping of HTTP onto a ``JobService``; OpenAPI at ``/docs``.

    POST   /jobs                 multipart: content (file), style (file, repeatable),
                                 mask (file, repeatable: regions), settings (JSON object,
                                 optional)  -> 202 {id, state, position}
    GET    /jobs/{id}            the job's state and progress
    GET    /jobs/{id}/events     Server-Sent Events: progress (JSON), frame (URL), end (JSON)
    GET    /jobs/{id}/frame      the latest preview frame (PNG)
    GET    /jobs/{id}/result     the result PNG with its run record (409 until done)
    GET    /jobs/{id}/animation  the run's evolution as a looping GIF (409 until it ended)
    DELETE /jobs/{id}            cancel
    GET    /health               {workers, queued, running}

Every error is JSON ``{"error": "..."}`` with a 4xx status for anything the client can fix.
With ``STRANSFER_API_TOKEN`` set every call needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.regions import MAX_REGIONS
from .jobs import (
    Busy,
    Conflict,
    InvalidSettings,
    JobError,
    JobRequest,
    JobService,
    JobView,
    NoSuchJob,
    TooLarge,
)
from .limits import Limits, parse_settings

#: Seconds between two looks at a job while streaming its events.
EVENT_POLL_SECONDS = 0.2
#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0


def _error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    body = {"error": message} if field is None else {"error": message, "field": field}
    return JSONResponse(body, status_code=status, headers=headers)


def _file(data: bytes, media_type: str, name: str) -> Response:
    """A job's file, shown inline and saved as ``name`` (made from an id the service checked)."""
    return Response(
        data, media_type=media_type, headers={"Content-Disposition": f'inline; filename="{name}"'}
    )


def _finite(value: float) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def view_json(view: JobView) -> dict[str, Any]:
    """A job view as strict JSON (non-finite numbers become null)."""
    return {
        "id": view.id,
        "state": view.state,
        "step": view.step,
        "steps": view.steps,
        "losses": {k: _finite(v) for k, v in view.losses.items()},
        "message": view.message,
        "position": view.position,
        "phase": view.phase,
        "seconds_per_step": _finite(view.seconds_per_step),
        "eta": _finite(view.eta),
        "elapsed": _finite(view.elapsed),
        "frame": view.frame,
        "first_step": view.first_step,
    }


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        where = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        name = where[0] if where else "request"
        if item.get("type") == "missing":
            hint = {
                "content": "send the content image as a file in the form field 'content'",
                "style": "send at least one style image as a file in the form field 'style'",
            }.get(name, f"send the field {name!r}")
            parts.append(f"{name} is missing; {hint} (multipart/form-data)")
        else:
            parts.append(f"{name}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


class _Guard:
    """ASGI middleware (outermost): the bearer token and the upload size limit.

    The size limit is checked from Content-Length before anything is read, and counted while
    the body streams in (for chunked uploads), so an oversized upload never fills memory.
    """

    def __init__(self, app: Any, token: str | None, max_bytes: int) -> None:
        self.app, self.token, self.max_bytes = app, token, max_bytes

    async def _send_error(self, send: Any, status: int, message: str, **headers: str) -> None:
        body = json.dumps({"error": message}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode(), self.token.encode()
            )
            if not ok:
                await self._send_error(
                    send,
                    401,
                    "missing or wrong token; send the header Authorization: Bearer <token> "
                    "with the server's STRANSFER_API_TOKEN",
                    WWW_Authenticate="Bearer",
                )
                return
        too_big = f"the upload is larger than {self.max_bytes / 2**20:.0f} MB; send smaller files"
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._send_error(send, 413, too_big)
            return
        seen, over, answered = 0, False, False

        async def receive_limited() -> Any:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def send_guarded(message: Any) -> None:
            nonlocal answered
            if over:  # whatever the app answers to the cut-off body, the client gets a 413
                if not answered:
                    answered = True
                    await self._send_error(send, 413, too_big)
                return
            await send(message)

        try:
            await self.app(scope, receive_limited, send_guarded)
        except Exception:
            if not over:
                raise
            if not answered:
                await self._send_error(send, 413, too_big)


def create_app(
    service: JobService, *, token: str | None = None, limits: Limits | None = None
) -> FastAPI:
    """The API over ``service``. ``token`` defaults to ``$STRANSFER_API_TOKEN`` (None: open)."""
    limits = limits or getattr(service, "limits", None) or Limits.from_env()
    token = token if token is not None else (os.environ.get("STRANSFER_API_TOKEN") or None)
    # FastAPIOffline is FastAPI with /docs (Swagger UI) served from the files in the
    # fastapi-offline package instead of a CDN, so the docs work on a machine offline. No
    # /redoc: its page still fetches a logo from its maker's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="Stransfer",
        summary="Neural style transfer jobs: submit, follow live, fetch the result.",
        version="1",
    )

    @app.exception_handler(JobError)
    async def job_error(request: Request, err: JobError) -> JSONResponse:
        headers = {"Retry-After": str(err.retry_after)} if isinstance(err, Busy) else None
        return _error(err.status, str(err), headers, getattr(err, "field", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "bad request"
        if err.status_code == 404 and message == "Not Found":
            message = f"no such endpoint {request.url.path}; see /docs"
        elif err.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        elif err.status_code == 400 and "parsing the body" in message:
            message = "the body is not valid multipart/form-data; send content and style files"
        elif err.status_code == 400 and message.startswith("Part exceeded maximum size"):
            # Starlette's cap on a form field that is not a file (the settings JSON).
            size = message.removeprefix("Part exceeded maximum size of").strip(" .")
            message = (
                f"a form field is over {size}; settings fit in a few hundred bytes, and "
                "images go in the file fields 'content' and 'style'"
            )
            return _error(413, message)
        return _error(err.status_code, message, getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(err).__name__}); the job store is unchanged")

    @app.post("/jobs", status_code=202, summary="Submit a job")
    async def submit(
        request: Request,
        content: Annotated[UploadFile, File(description="the content image")],
        settings: Annotated[
            str | None,
            Form(
                description='JSON object, e.g. {"steps": 20, "size": 256}; also "strength" '
                '(0..100), "style_weights" (one per style file), "engine" ("optimise" or '
                '"instant"), for instant jobs without style files, "builtin" (0..25), and with '
                'mask files "regions": what each mask gets, in order: "photo", a style file '
                'index (0-based) or one blend weight per style file, e.g. ["photo", 1]'
            ),
        ] = None,
        style: Annotated[
            list[UploadFile] | None,
            File(description="style image(s), repeatable; none with a built-in style"),
        ] = None,
        mask: Annotated[
            list[UploadFile] | None,
            File(
                description="region mask(s), repeatable (any image: white is the region, grey "
                'partly, resized to the content); settings "regions" says what each gets; '
                "the style_weights blend goes where no mask is"
            ),
        ] = None,
    ) -> JSONResponse:
        style = style or []
        masks = mask or []
        if len(style) > limits.max_styles:
            raise TooLarge(f"{len(style)} style images; at most {limits.max_styles} per job")
        data = parse_settings(settings)
        if not style and "builtin" not in data:
            raise InvalidSettings(
                "style is missing; send at least one style image as a file in the form field "
                "'style' (multipart/form-data), or for an instant job a built-in style: "
                'settings {"engine": "instant", "builtin": 7}'
            )
        weights = data.pop("style_weights", None)
        if weights is None:
            weights = [1.0] * len(style)
        if not isinstance(weights, list) or len(weights) != len(style):
            raise InvalidSettings(
                f"style_weights must be a list of {len(style)} number(s), one per style image",
                field="style_weights",
            )
        files = [content, *style]
        blobs = [await f.read(limits.max_file_bytes + 1) for f in files]
        mask_blobs = [await f.read(limits.max_file_bytes + 1) for f in masks[: MAX_REGIONS + 1]]
        job = JobRequest(
            content=blobs[0],
            styles=list(zip(blobs[1:], weights, strict=True)),
            settings=data,
            names=[os.path.basename(f.filename or "") or f"file {i}" for i, f in enumerate(files)],
            client=request.client.host if request.client else "",
            masks=mask_blobs,
        )
        view = await run_in_threadpool(service.submit, job)
        return JSONResponse(
            {"id": view.id, "state": view.state, "position": view.position},
            status_code=202,
            headers={"Location": f"/jobs/{view.id}"},
        )

    @app.get("/jobs/{job_id}", summary="A job's state and progress")
    async def get(job_id: str) -> JSONResponse:
        return JSONResponse(view_json(await run_in_threadpool(service.get, job_id)))

    @app.get("/jobs/{job_id}/frame", summary="The latest preview frame (PNG)")
    async def frame(job_id: str) -> Response:
        data = await run_in_threadpool(service.frame, job_id)
        if data is None:
            raise NoSuchJob(f"job {job_id} has no preview frame yet; wait for a frame event")
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/jobs/{job_id}/result", summary="The result PNG with its run record")
    async def result(job_id: str) -> Response:
        data = await run_in_threadpool(service.result, job_id)
        return _file(data, "image/png", f"stransfer-{job_id}.png")

    @app.get("/jobs/{job_id}/animation", summary="The run's evolution (looping GIF)")
    async def animation(job_id: str) -> Response:
        view = await run_in_threadpool(service.get, job_id)
        if not view.final:
            raise Conflict(f"job {job_id} is {view.state}; the animation is there once it ended")
        data = await run_in_threadpool(service.animation, job_id)
        if data is None:
            raise NoSuchJob(f"job {job_id} has no animation (instant and one-step runs have none)")
        return _file(data, "image/gif", f"stransfer-{job_id}.gif")

    @app.delete("/jobs/{job_id}", summary="Cancel a job")
    async def cancel(job_id: str) -> JSONResponse:
        return JSONResponse(view_json(await run_in_threadpool(service.cancel, job_id)))

    @app.get("/health", summary="Workers alive, jobs queued and running")
    async def health() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(service.health))

    @app.get("/jobs/{job_id}/events", summary="Server-Sent Events: progress, frame, end")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        first = await run_in_threadpool(service.get, job_id)  # 404 before the stream starts
        return StreamingResponse(
            _event_stream(service, first, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return Guarded(app, token, limits.max_request_bytes)


class Guarded:
    """The FastAPI app behind ``_Guard``; ``.app`` is the FastAPI object (for OpenAPI)."""

    def __init__(self, app: FastAPI, token: str | None, max_bytes: int) -> None:
        self.app = app
        self._asgi = _Guard(app, token, max_bytes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _event_stream(
    service: JobService, view: JobView, request: Request
) -> AsyncIterator[bytes]:
    """``progress`` whenever the job's view changes, ``frame`` when a new preview is there,
    ``end`` once it is final."""
    last_key: tuple | None = None
    last_frame = 0
    quiet = 0.0
    while True:
        key = (view.state, view.step, view.phase, view.message, view.position)
        if key != last_key:
            yield _sse("progress", json.dumps(view_json(view)))
            last_key, quiet = key, 0.0
        if view.frame != last_frame and view.frame > 0:
            yield _sse("frame", f"/jobs/{view.id}/frame?n={view.frame}")
            last_frame, quiet = view.frame, 0.0
        if view.final:
            yield _sse("end", json.dumps(view_json(view)))
            return
        if quiet >= KEEPALIVE_SECONDS:
            yield b": keep-alive\n\n"
            quiet = 0.0
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)
        quiet += EVENT_POLL_SECONDS
        view = await run_in_threadpool(service.get, view.id)
