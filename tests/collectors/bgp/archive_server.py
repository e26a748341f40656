"""A local RIS / RouteViews archive for tests: real MRT files under the archives' layouts, with
Apache-style directory listings, Range support and faults on demand (truncated body, HTTP
errors, a stall mid-body, a listing that lies about the size). Runs its own event loop in a
thread, on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import pathlib
import threading

from aiohttp import web


@dataclasses.dataclass
class Fault:
    """What goes wrong with one file (each ``*_times`` counts the GETs it applies to)."""

    status: int = 0  # answer this HTTP status…
    status_times: int = 0  # …this many times (0: never)
    truncate_times: int = 0  # send half the body, then close
    stall_times: int = 0  # send a part, then stall (up to stall_seconds)
    stall_seconds: float = 60.0
    listed_size: int | None = None  # the listing's (lying) size
    ignore_range: bool = False


def human(size: int) -> str:
    """Apache's human-readable size column."""
    if size >= 1 << 20:
        value = size / (1 << 20)
        return f"{value:.1f}M" if value < 10 else f"{value:.0f}M"
    if size >= 1024:
        value = size / 1024
        return f"{value:.1f}K" if value < 10 else f"{value:.0f}K"
    return str(size)


class ArchiveServer:
    """Serve ``files`` (URL path → local file); ``exact_sizes`` lists bytes, else ``14M``."""

    def __init__(self, files: dict[str, pathlib.Path], *, exact_sizes: bool = False) -> None:
        self.files = dict(files)
        self.exact_sizes = exact_sizes
        self.faults: dict[str, Fault] = {}
        self.forbid_listings = False  # directories answer 403 (files are still served)
        self.gets: collections.Counter[str] = collections.Counter()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release = threading.Event()

    def add(self, path: str, file: pathlib.Path) -> None:
        """Publish one more file."""
        self.files[path] = file

    def release(self) -> None:
        """End every stall now."""
        self._release.set()

    # --- serving ------------------------------------------------------------------------

    def _listing(self, directory: str) -> str | None:
        names: dict[str, int | None] = {}
        for path, file in self.files.items():
            if not path.startswith(directory):
                continue
            rest = path[len(directory) :]
            head, sep, _tail = rest.partition("/")
            if sep:
                names[head + "/"] = None
            else:
                fault = self.faults.get(path)
                size = file.stat().st_size
                if fault is not None and fault.listed_size is not None:
                    size = fault.listed_size
                names[head] = size
        if not names and directory not in ("", "/"):
            return None
        rows = []
        for name, size in sorted(names.items()):
            shown = "-" if size is None else (str(size) if self.exact_sizes else human(size))
            rows.append(
                f'<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td>'
                f'<td><a href="{name}">{name}</a></td>'
                f'<td align="right">2026-12-01 08:00  </td><td align="right">{shown:>5}</td>'
                "<td>&nbsp;</td></tr>"
            )
        return (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html><head><title>'
            f"Index of /{directory}</title></head><body><h1>Index of /{directory}</h1><table>"
            '<tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a>'
            '</th><th><a href="?C=S;O=A">Size</a></th></tr>'
            '<tr><td><a href="../">Parent Directory</a></td><td>&nbsp;</td><td>-</td></tr>'
            + "".join(rows)
            + "</table><address>Apache Server</address></body></html>\n"
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        self.gets[path] += 1
        if path == "" or path.endswith("/"):
            if self.forbid_listings:
                raise web.HTTPForbidden()
            text = self._listing(path)
            if text is None:
                raise web.HTTPNotFound()
            return web.Response(text=text, content_type="text/html")
        file = self.files.get(path)
        if file is None:
            raise web.HTTPNotFound()
        fault = self.faults.get(path) or Fault()
        if request.method == "HEAD":
            return web.Response(headers={"Content-Length": str(file.stat().st_size)})
        if fault.status_times > 0:
            fault.status_times -= 1
            return web.Response(status=fault.status, text="fault\n")
        data = file.read_bytes()
        start = 0
        status = 200
        header = request.headers.get("Range", "")
        if header.startswith("bytes=") and not fault.ignore_range:
            start = int(header[6:].split("-")[0])
            if start >= len(data):
                return web.Response(status=416)
            status = 206
        body = data[start:]
        response = web.StreamResponse(status=status)
        response.content_length = len(body)
        response.content_type = "application/octet-stream"
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await response.prepare(request)
        if fault.truncate_times > 0:
            fault.truncate_times -= 1
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if fault.stall_times > 0:
            fault.stall_times -= 1
            await response.write(body[: max(1, len(body) // 3)])
            for _ in range(int(fault.stall_seconds * 10)):
                if self._release.is_set():
                    break
                await asyncio.sleep(0.1)
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        await response.write_eof()
        return response

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        """Start serving; return the base URL (no trailing slash)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("archive server did not start")
        return self.url

    def stop(self) -> None:
        """Stop serving."""
        self._release.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


MRT = "mrt"


def ris_archive(data: pathlib.Path) -> dict[str, pathlib.Path]:
    """RIS layout over the real files of shared/data/mrt (names as the archive had them)."""
    mrt = data / MRT
    return {
        "rrc05/2002.07/bview.20020722.2337.gz": mrt / "bgpdump/bview.20020722.2337.gz",
        "rrc05/2010.07/updates.20100722.2015.gz": mrt / "bgpdump/updates.20100722.2015.gz",
        "rrc00/2007.10/updates.20071015.1505.gz": mrt / "bgpdump/updates.20071015.1505.gz",
        "rrc00/2018.09/bview.20180919.0800.gz": mrt / "bgpdump/bview.64k_stream_overflow.gz",
    }


def routeviews_archive(data: pathlib.Path) -> dict[str, pathlib.Path]:
    """RouteViews layout (route-views2 at bgpdata/ directly) over the real files."""
    mrt = data / MRT
    return {
        "bgpdata/2014.05/RIBS/rib.20140523.0600.bz2": mrt / "pyasn/rib.20140523.0600_firstMB.bz2",
        "route-views.jinx/bgpdata/2015.04/UPDATES/updates.20150401.0000.bz2": (
            mrt / "libbgpstream/routeviews.route-views.jinx.updates.1427846400.bz2"
        ),
    }
