"""The review app (Starlette): the review page, the run state as JSON, verdicts saved to
``approvals.json``, and the run folder's files (``FileResponse``: HTTP range requests, so
clips seek). It reads the run folder on every request, so it follows a render in progress
without taking any lock of the run; it runs no command and writes only ``approvals.json``.

Routes: ``GET /`` the page; ``GET /api/state[?since=STAMP]`` the state (``{"unchanged":
true}`` when the run folder has not changed since ``STAMP``); ``POST /api/verdict`` (JSON
``{shot, kind, verdict, note, version}``: 200 with the new state, 409 when ``version`` is
stale, 400 for an unknown shot, kind or verdict); ``GET /run/<path>`` a file of the run
folder (``../``, absolute paths and symlinks out of the folder are refused: 404)."""

from __future__ import annotations

import hmac
from pathlib import Path, PurePosixPath

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from driver.errors import ConfigError, StaleApprovals
from driver.outputs import review_state
from driver.outputs.approvals import APPROVALS_NAME, KINDS, VERDICTS, Approvals, write_verdict
from driver.outputs.dailies import render_page
from driver.outputs.manifest import MANIFEST_NAME, Manifest
from driver.story.storyboard import Storyboard

COOKIE = "ap_review_token"
MAX_NOTE = 4000


def open_run(run_dir: Path) -> Manifest:
    """The run folder's manifest, or a clear refusal (a dry-run folder says so)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder")
    manifest = Manifest.load(run_dir)
    if manifest is not None:
        return manifest
    if (run_dir / "dry-run" / "plan.json").is_file() or (run_dir / "plan.json").is_file():
        raise ConfigError(f"{run_dir} holds only a dry run (plan and workflows, nothing rendered): run the "
                          "storyboard without --dry-run, then review that folder")
    raise ConfigError(f"{run_dir} is not a run folder (no {MANIFEST_NAME}); pass the folder `driver run` wrote "
                      "(--out DIR, or <output_root>/<PRJ>_EP<NNN>)")


def safe_file(root: Path, rel: str) -> Path | None:
    """``rel`` as a file inside ``root`` (symlinks resolved), or None."""
    if not rel or rel.startswith(("/", "\\")) or "\\" in rel or "\x00" in rel or ".." in PurePosixPath(rel).parts:
        return None
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


class Review:
    """The run folder seen by the app (re-read when it changes)."""

    def __init__(self, run_dir: Path, reviewer: str | None = None):
        self.root = Path(run_dir).resolve()
        self.manifest = open_run(self.root)
        self.reviewer = reviewer
        self._sb_key: str | None = None
        self._sb: Storyboard | None = None
        self._cache: tuple[str, dict] | None = None

    def stamp(self) -> str:
        def mt(name: str) -> int:
            try:
                return (self.root / name).stat().st_mtime_ns
            except OSError:
                return 0
        return f"{mt(MANIFEST_NAME)}-{mt(APPROVALS_NAME)}"

    def state(self) -> dict:
        stamp = self.stamp()
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        self.manifest = Manifest.load(self.root) or self.manifest
        sb_key = (self.manifest.data.get("storyboard") or {}).get("sha256")
        if sb_key != self._sb_key:
            self._sb_key, self._sb = sb_key, review_state.storyboard_of(self.manifest)
        error = None
        try:
            approvals = Approvals.load(self.root)
        except ConfigError as exc:  # shown, never overwritten
            error = f"{exc}" + "".join(f"\n  {p}" for p in exc.problems)
            approvals = Approvals(self.root / APPROVALS_NAME, {"version": -1, "shots": {}})
        state = review_state.build(self.manifest, approvals, self._sb)
        state.update(stamp=stamp, error=error)
        self._cache = (stamp, state)
        return state

    @property
    def fps(self) -> float | None:
        return self._sb.delivery.fps if self._sb else None


def _bad(message: str, status: int = 400, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def build_app(run_dir: Path, *, token: str | None = None, reviewer: str | None = None) -> Starlette:
    review = Review(run_dir, reviewer)

    async def index(request: Request) -> Response:
        state = review.state()
        return HTMLResponse(render_page(state, live=True, base="run/", fps=review.fps),
                            headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        doc = review.state()
        if request.query_params.get("since") == doc["stamp"]:
            return JSONResponse({"unchanged": True})
        return JSONResponse(doc, headers={"Cache-Control": "no-store"})

    async def verdict(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _bad("send the verdict as JSON (Content-Type: application/json)", 415)
        try:
            body = await request.json()
        except ValueError:
            return _bad("the request body is not valid JSON")
        if not isinstance(body, dict):
            return _bad("the request body must be a JSON object")
        sid, kind, value = body.get("shot"), body.get("kind"), body.get("verdict")
        note, version = body.get("note") or "", body.get("version")
        current = review.state()
        if not isinstance(sid, str) or sid not in {s["id"] for s in current["shots"]}:
            return _bad(f"unknown shot {sid!r}: this run has {', '.join(s['id'] for s in current['shots'])}")
        if kind not in KINDS or value not in VERDICTS:
            return _bad(f"unknown verdict {kind!r}={value!r}: kinds are {', '.join(KINDS)}; verdicts "
                        f"{', '.join(VERDICTS)}")
        if not isinstance(note, str) or len(note) > MAX_NOTE or not isinstance(version, int):
            return _bad(f"note must be text of at most {MAX_NOTE} characters and version an integer")
        try:
            write_verdict(review.root, sid, kind, value, expected=version, note=note, by=review.reviewer)
        except StaleApprovals as exc:
            return _bad(f"not saved: {exc}", 409, state=review.state())
        except ConfigError as exc:
            return _bad(f"not saved: {exc}", 409, state=review.state())
        return JSONResponse({"state": review.state()})

    async def run_file(request: Request) -> Response:
        path = safe_file(review.root, request.path_params["path"])
        if path is None:
            return PlainTextResponse("not a file of this run folder", status_code=404)
        return FileResponse(path)

    routes = [Route("/", index), Route("/api/state", state), Route("/api/verdict", verdict, methods=["POST"]),
              Route("/run/{path:path}", run_file)]
    middleware = [Middleware(TokenGate, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


class TokenGate(BaseHTTPMiddleware):
    """With a token: ``?token=`` once sets an HttpOnly cookie (and redirects to the URL
    without it); then every request carries the cookie or ``Authorization: Bearer``."""

    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next) -> Response:
        if self._ok(request.query_params.get("token")):
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return response
        auth = request.headers.get("authorization", "")
        if self._ok(request.cookies.get(COOKIE)) or (auth.startswith("Bearer ") and self._ok(auth[7:])):
            return await call_next(request)
        return PlainTextResponse("this review app needs its token: open the URL it printed", status_code=401)


__all__ = ["build_app", "open_run", "safe_file"]
