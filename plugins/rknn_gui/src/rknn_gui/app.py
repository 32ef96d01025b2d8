"""The web application: the page, its static files and the JSON API the page calls. Every route
answers a bad request with a JSON ``{"error": "E ..."}`` and a 4xx status; nothing ends the server."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rknn_gui import script
from rknn_gui.errors import GuiError
from rknn_gui.security import Guard
from rknn_gui.session import Session
from rknn_gui.workspace import Workspace

STATIC = Path(__file__).parent / "static"
MAX_WAIT = 30.0  # seconds a job request may wait for the job to end
log = logging.getLogger("rknn_gui")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message if message.startswith("E ") else f"E {message}"}, status_code=status)


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise GuiError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise GuiError("the request body must be a JSON object")
    return body


def _job_id(request: Request) -> int:
    try:
        return int(request.path_params["job"])
    except ValueError:
        raise GuiError(f"'{request.path_params['job']}' is not a job number") from None


class Routes:
    """The handlers, bound to one session (``reset`` replaces it)."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.session = Session(workspace)

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def state(self, request: Request) -> Response:
        s = self.session
        running = s.jobs.running()
        return JSONResponse({"workspace": str(self.workspace.root), "forms": s.forms(), "loaders": s.loaders(),
                             "history": [{"method": c.method, "kwargs": c.kwargs} for c in s.history],
                             "builds": [{"id": b.id, "label": b.label(), "perf": b.perf is not None,
                                         "accuracy": b.accuracy is not None} for b in s.builds],
                             "float_layers": s.float_layers, "running": running.id if running else None})

    async def files(self, request: Request) -> Response:
        return JSONResponse({"files": await run_in_threadpool(self.workspace.files)})

    async def upload(self, request: Request) -> Response:
        name = request.query_params.get("path", "")
        data = await request.body()
        return JSONResponse({"path": await run_in_threadpool(self.workspace.write, name, data)})

    async def call(self, request: Request) -> Response:
        body = await _json_body(request)
        job = self.session.start(request.path_params["method"], body.get("values", {}))
        return JSONResponse({"job": job.id})

    async def keep_float(self, request: Request) -> Response:
        body = await _json_body(request)
        job = self.session.start_keep_float(body.get("layers"), body.get("dataset"))
        return JSONResponse({"job": job.id})

    async def job(self, request: Request) -> Response:
        job = self.session.jobs.get(_job_id(request))
        try:
            wait = min(float(request.query_params.get("wait", 0)), MAX_WAIT)
            since = int(request.query_params.get("since", 0))
        except ValueError:
            raise GuiError("'wait' must be seconds and 'since' a line number") from None
        if wait > 0:
            await run_in_threadpool(job.finished.wait, wait)
        return JSONResponse(job.snapshot(max(since, 0)))

    async def events(self, request: Request) -> Response:
        """Server-sent events: the job's new log lines as they come, then its end."""
        job = self.session.jobs.get(_job_id(request))

        async def stream():
            sent = 0
            while True:
                snap = job.snapshot(sent)
                sent = snap["line_count"]
                done = job.finished.is_set() and snap["state"] != "running"
                yield f"data: {json.dumps(snap)}\n\n"
                if done or await request.is_disconnected():
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    async def cancel(self, request: Request) -> Response:
        job = self.session.jobs.get(_job_id(request))
        return JSONResponse({"cancelled": job.cancel()})

    async def graph(self, request: Request) -> Response:
        return JSONResponse({"graph": await run_in_threadpool(self.session.graph)})

    async def script(self, request: Request) -> Response:
        return PlainTextResponse(script.render(self.session.history))

    async def compare(self, request: Request) -> Response:
        try:
            first, second = int(request.query_params.get("a", "")), int(request.query_params.get("b", ""))
        except ValueError:
            raise GuiError("compare needs two build numbers: ?a=1&b=2") from None
        return JSONResponse(self.session.compare(first, second))

    async def reset(self, request: Request) -> Response:
        old = self.session
        await run_in_threadpool(old.release)
        self.session = Session(self.workspace)
        return JSONResponse({"reset": True})


async def _gui_error(request: Request, exc: Exception) -> Response:
    return _error(str(exc), 409 if "still running" in str(exc) else 400)


async def _fault(request: Request, exc: Exception) -> Response:
    log.exception("request %s failed", request.url.path)
    return _error(f"{type(exc).__name__}: {exc}", 500)


def create_app(workspace: Workspace, token: str, host: str = "127.0.0.1") -> Guard:
    """The application for ``workspace``, answering only requests with ``token`` for ``host``."""
    r = Routes(workspace)
    routes = [
        Route("/", r.index), Route("/api/state", r.state), Route("/api/files", r.files),
        Route("/api/files", r.upload, methods=["POST"]), Route("/api/call/{method}", r.call, methods=["POST"]),
        Route("/api/keep_float", r.keep_float, methods=["POST"]), Route("/api/jobs/{job}", r.job),
        Route("/api/jobs/{job}/events", r.events), Route("/api/jobs/{job}/cancel", r.cancel, methods=["POST"]),
        Route("/api/graph", r.graph), Route("/api/script", r.script), Route("/api/compare", r.compare),
        Route("/api/reset", r.reset, methods=["POST"]), Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, exception_handlers={GuiError: _gui_error, Exception: _fault})
    app.state.routes = r
    return Guard(app, token, host)
