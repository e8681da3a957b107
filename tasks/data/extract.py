"""Main-text extraction from HTML with trafilatura, as FineWeb's Trafilatura step does it.

datatrove's ``Trafilatura(favour_precision=True)`` calls ``trafilatura.extract`` with
``favor_precision``, ``include_comments=False`` and ``deduplicate`` and nothing else,
so the output is trafilatura's defaults: plain text (``output_format="txt"``), tables
included, images excluded, the readability/jusText fallback on. Those defaults are
passed explicitly here so a trafilatura upgrade that changes them can't change ours.

Deliberate difference: with ``deduplicate=True`` trafilatura remembers text segments
in one process-wide LRU cache, so in datatrove a paragraph seen in more than two
earlier pages of the same worker is dropped, and whole pages repeated that often
come back empty; the result depends on which pages a worker saw before. Here each
call gets its own cache, so repeated segments are removed within the page only and
extraction is a pure function of the HTML (the same output on any worker, in any
order). Cross-page boilerplate is left to the repetition filters and dedup.

The per-document time limit
---------------------------
trafilatura can run for minutes on pathological HTML (an 8 MB page of plain
paragraphs takes ~20 s, and the time grows faster than the size), and a timeout
around a synchronous call in the same process (a Prefect task timeout, a thread)
cannot stop it. ``IsolatedExtractor`` runs ``extract_main_text`` in a long-lived
child process, sends each page through a pipe, and kills and restarts the child
when one page exceeds ``cfg.timeout_seconds``. The child is started with
``subprocess`` (not ``multiprocessing``), so it works under any parent: a
``ProcessPoolExecutor`` worker (Prefect's ProcessPoolTaskRunner, spawn), a
daemonic Dask or multiprocessing worker (which may not have multiprocessing
children), or a plain process.

datatrove's own limit: 0.1 s per page when FineWeb was built (a thread or SIGALRM
around the call), 1 s in datatrove 0.10.1 (a forked sandbox process, as here).
A wall-clock limit makes the kept set depend on the machine's speed and load, so
ours is a hang guard, not a quality filter (see ``ExtractionConfig.timeout_seconds``).

Before a page reaches the child, two cheap checks turn hopeless input into a
reason instead of a long parse: pages over ``max_html_bytes`` (UTF-8 bytes) are
"html_too_large", and bytes that are mostly control characters (binary data
served as text/html) are "binary_content".

The accelerator (``tasks/data/accel/``) makes trafilatura faster with the same output;
``cfg.accelerate`` ("auto", "on", "off") says whether to use it. The child configures it
before its first page and reports its status with "ready" (``IsolatedExtractor.accelerator``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from multiprocessing.connection import Connection
from typing import Any

import trafilatura
from trafilatura.deduplication import LRUCache
from trafilatura.settings import LRU_SIZE

from llmforge.config import ExtractionConfig
from tasks.data import accel

# Every reason a page can fail extraction with (the data stage records them under
# filter "extraction").
REASONS = (
    "no_main_text",  # trafilatura found no main text
    "html_too_large",  # over max_html_bytes, never parsed
    "binary_content",  # mostly control characters: binary data served as HTML
    "extraction_timeout",  # over timeout_seconds; the child was killed and restarted
    "extraction_error",  # trafilatura raised an exception (the child keeps running)
    "extraction_crash",  # the child process died (segfault, OOM kill); restarted
)

# The callable the child runs, as "module:function"; tests point it at fakes.
DEFAULT_FUNCTION = f"{__name__}:extract_main_text"

# C0 control bytes that never occur in text, plus DEL: tab, LF, CR and form feed are
# allowed. In UTF-8 these bytes only ever encode these characters themselves.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])


def extract_main_text(html: str | bytes, cfg: ExtractionConfig) -> str | None:
    """The page's main text, or None when trafilatura finds none.

    Bytes are accepted too: trafilatura then detects the encoding itself. Raises
    ``accel.AcceleratorGuardFailed`` when ``cfg.accelerate`` is "on" and a guard fails.
    """
    accel.configure(cfg.accelerate)  # acts on the first call: the output is the same either way
    text = trafilatura.extract(
        html,
        favor_precision=cfg.favor_precision,
        include_comments=cfg.include_comments,
        deduplicate=LRUCache(maxsize=LRU_SIZE) if cfg.deduplicate else False,
        output_format="txt",
        include_tables=True,
        include_images=False,
    )
    return text or None


# ------------------------------------------------------------------ input guard


def control_char_ratio(data: bytes) -> float:
    """Fraction of the bytes that are control characters other than tab, LF, CR, FF.

    Measured on real pages (the shared trafilatura and Zyte sets, the shared WARCs'
    HTML): at most 0.0001. Images, Flash and fastText models: 0.04 to 0.4, also
    after a lossy UTF-8 decode.
    """
    if not data:
        return 0.0
    return (len(data) - len(data.translate(None, _CONTROL_BYTES))) / len(data)


def _encode(html: str | bytes) -> tuple[bytes, bool]:
    if isinstance(html, str):
        return html.encode("utf-8", "surrogatepass"), True
    return bytes(html), False


def check_html(html: str | bytes, cfg: ExtractionConfig) -> tuple[str, str] | None:
    """(reason, detail) when the page must not be parsed at all, else None."""
    max_bytes, max_ratio = cfg.max_html_bytes, cfg.max_control_char_ratio
    if max_bytes is not None and len(html) > max_bytes:  # characters <= UTF-8 bytes
        return "html_too_large", f"{len(html)} {'characters' if isinstance(html, str) else 'bytes'} > {max_bytes}"
    data, _ = _encode(html)
    return _check_bytes(data, max_bytes, max_ratio)


def _check_bytes(data: bytes, max_bytes: int | None, max_ratio: float | None) -> tuple[str, str] | None:
    if max_bytes is not None and len(data) > max_bytes:
        return "html_too_large", f"{len(data)} bytes > {max_bytes}"
    if max_ratio is not None:
        ratio = control_char_ratio(data)
        if ratio > max_ratio:
            return "binary_content", f"{ratio:.3f} of the bytes are control characters (> {max_ratio})"
    return None


# ------------------------------------------------------------------ results and errors


@dataclass(frozen=True)
class Extraction:
    """One page's outcome: the text, or the reason there is none (one of REASONS)."""

    text: str | None
    reason: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


class ExtractionFailed(Exception):
    """A page could not be extracted; ``reason`` is one of REASONS. The extractor stays usable."""

    reason = "extraction_error"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RejectedHtml(ExtractionFailed):
    """The input guard refused the page ("html_too_large" or "binary_content")."""


class ExtractionTimeout(ExtractionFailed):
    """The page took longer than the time limit; the child was killed and restarted."""

    reason = "extraction_timeout"


class ExtractionError(ExtractionFailed):
    """The extraction raised in the child ("extraction_error", with the child's
    traceback in ``child_traceback``), or the child died ("extraction_crash")."""

    def __init__(self, message: str, reason: str | None = None, child_traceback: str = ""):
        super().__init__(message, reason)
        self.child_traceback = child_traceback


class ExtractorStartupError(RuntimeError):
    """The child could not start (bad function, import error): every page would fail,
    so this is not a per-page outcome and is never turned into a reason."""


# ------------------------------------------------------------------ the child process

# Frames are one byte of kind followed by the payload.
_STR, _BYTES = b"s", b"b"  # parent -> child: the page
_READY, _TEXT, _NONE, _ERROR = b"R", b"T", b"N", b"E"  # child -> parent
_GUARD_FAILED = b"G"  # child -> parent at start-up: accelerate "on" and a guard failed

_SYS_PATH_ENV = "LLMFORGE_EXTRACTOR_SYS_PATH"
_BOOTSTRAP = (
    "import json, os, sys\n"
    f"sys.path[:] = json.loads(os.environ.pop({_SYS_PATH_ENV!r}))\n"
    "from importlib import import_module\n"
    "import_module(sys.argv[1])._child_main(int(sys.argv[2]), int(sys.argv[3]))\n"
)


def _resolve(function: str) -> Callable[[Any, ExtractionConfig], str | None]:
    module, _, name = function.partition(":")
    if not module or not name:
        raise ValueError(f"function must be 'module:name', got {function!r}")
    return getattr(import_module(module), name)


def _child_main(read_fd: int, write_fd: int) -> None:
    """The child's loop: one request, one answer, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    requests = Connection(read_fd, writable=False)
    answers = Connection(write_fd, readable=False)
    try:
        _serve(requests, answers)
    except (BrokenPipeError, EOFError, ConnectionError):
        pass  # the parent closed the pipes or went away: nothing left to answer


def _serve(requests: Connection, answers: Connection) -> None:
    try:
        init = json.loads(requests.recv_bytes())
        fields = ExtractionConfig.model_fields
        cfg = ExtractionConfig.model_validate({k: v for k, v in init["cfg"].items() if k in fields})
        function = _resolve(init["function"])
        # before any page, whatever the function: its status goes to the parent with "ready",
        # which logs the warning of a failed guard (once per parent, not once per child)
        status = accel.configure(cfg.accelerate, warn=False)
        function("<html><body><p>warm-up</p></body></html>", cfg)  # pay lazy imports now
    except accel.AcceleratorGuardFailed as err:
        answers.send_bytes(_GUARD_FAILED + json.dumps({"guard": err.guard, "detail": err.detail}).encode("utf-8"))
        return
    except Exception:  # noqa: BLE001 - reported to the parent, which raises
        answers.send_bytes(_ERROR + traceback.format_exc().encode("utf-8", "replace"))
        return
    # This process only extracts. Pages make few reference cycles (lxml trees are freed by
    # reference counting: ~1,000 objects collected over the 941 benchmark pages), but the
    # collector ran ~950 times, re-scanning everything start-up created; freezing that and
    # collecting less often saves ~0.3 CPU s per 1,000 pages at the same peak memory.
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    answers.send_bytes(_READY + json.dumps(status.as_dict()).encode("utf-8"))
    while True:
        message = requests.recv_bytes()
        kind, payload = message[:1], message[1:]
        try:
            html = payload.decode("utf-8", "surrogatepass") if kind == _STR else payload
            text = function(html, cfg)
        except Exception as err:  # noqa: BLE001 - a per-page error, sent back
            detail = json.dumps({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
            answers.send_bytes(_ERROR + detail.encode("utf-8", "replace"))
            continue
        if text is None:
            answers.send_bytes(_NONE)
        else:
            answers.send_bytes(_TEXT + text.encode("utf-8", "surrogatepass"))


class _Child:
    """One child process and its two pipes."""

    def __init__(self, cfg: ExtractionConfig, function: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ)
        env[_SYS_PATH_ENV] = json.dumps(sys.path)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, __name__, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # a library's print must not reach our stdout
                env=env,
                start_new_session=True,  # Ctrl-C reaches the parent only; it stops us
            )
        except BaseException:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise
        os.close(to_child_r)
        os.close(from_child_w)
        self.requests = Connection(to_child_w, readable=False)
        self.answers = Connection(from_child_r, writable=False)
        self.ready = False
        init = {"cfg": cfg.model_dump(mode="json"), "function": function}
        try:
            self.requests.send_bytes(json.dumps(init).encode("utf-8"))
        except OSError:
            pass  # it died at once; waiting for its "ready" reports that

    def stop(self, kill: bool = False) -> int:
        """Close the pipes, end the process, and return its exit code."""
        for conn in (self.requests, self.answers):
            try:
                conn.close()
            except OSError:
                pass
        if kill:
            self.process.kill()
        try:  # an idle child exits at once when its input closes
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode


def _stop_child(holder: list[_Child | None]) -> None:
    child, holder[0] = holder[0], None
    if child is not None:
        child.stop()


class IsolatedExtractor:
    """A long-lived child process that runs extract_main_text; killed and restarted when
    one document exceeds the timeout.

    ``extract(html)`` returns the text or None (no main text) and raises an
    ``ExtractionFailed`` subclass for a failed page: ``RejectedHtml`` (input guard),
    ``ExtractionTimeout`` or ``ExtractionError``; the extractor stays usable after
    each. ``run(html)`` returns an ``Extraction`` with a reason instead of raising.
    Only a child that cannot start at all raises ``ExtractorStartupError``, and one whose
    accelerator guard fails with ``accelerate: on`` raises ``accel.AcceleratorGuardFailed``
    (neither is a per-page outcome). ``accelerator`` is the status the child reported.

    POSIX only (the child gets its pipes with ``pass_fds``). Not thread-safe: one
    extractor per worker thread. ``function`` ("module:name",
    a callable ``(html, cfg) -> str | None``) replaces extract_main_text, for tests.
    """

    def __init__(
        self,
        cfg: ExtractionConfig,
        *,
        function: str = DEFAULT_FUNCTION,
        startup_timeout: float = 120.0,
    ):
        if not cfg.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {cfg.timeout_seconds}")
        self.cfg = cfg
        self.function = function
        self.startup_timeout = startup_timeout
        self.restarts = 0  # children started after the first one (timeouts, crashes)
        self._accelerator: accel.AcceleratorStatus | None = None
        self._holder: list[_Child | None] = [None]
        self._finalizer = weakref.finalize(self, _stop_child, self._holder)
        self._start()  # the child imports trafilatura while the caller gets ready

    # -- lifecycle

    @property
    def pid(self) -> int | None:
        child = self._holder[0]
        return child.process.pid if child is not None else None

    @property
    def accelerator(self) -> accel.AcceleratorStatus:
        """The accelerator status the extraction child reported at start-up (each restarted
        child reports again). Waits for the child; raises like extract() when it cannot start."""
        self._ready_child()
        assert self._accelerator is not None
        return self._accelerator

    def _start(self) -> None:
        self._holder[0] = _Child(self.cfg, self.function)

    def _replace(self, kill: bool) -> int | None:
        """Stop the current child (returning its exit code) and start a new one."""
        child, self._holder[0] = self._holder[0], None
        code = child.stop(kill=kill) if child is not None else None
        self.restarts += 1
        self._start()
        return code

    def _ready_child(self) -> _Child:
        if not self._finalizer.alive:
            raise RuntimeError("the extractor is closed")
        child = self._holder[0]
        if child is None:
            self._start()
            child = self._holder[0]
        assert child is not None
        if child.ready:
            return child
        try:
            message = child.answers.recv_bytes() if child.answers.poll(self.startup_timeout) else None
        except (EOFError, OSError):
            message = b""
        if message is not None and message[:1] == _READY:
            child.ready = True
            self._accelerator = accel.AcceleratorStatus.from_dict(json.loads(message[1:]))
            accel.warn_inactive(self._accelerator)
            return child
        self._holder[0] = None
        child.stop(kill=True)
        raise self._startup_failure(child, message)

    def _startup_failure(self, child: _Child, message: bytes | None) -> Exception:
        """The error for a child that answered ``message`` (None: nothing in time) instead of "ready"."""
        if message is not None and message[:1] == _GUARD_FAILED:
            info = json.loads(message[1:])
            return accel.AcceleratorGuardFailed(info["guard"], info["detail"])
        if message is None:
            detail = f"no answer within {self.startup_timeout} s"
        elif message[:1] == _ERROR:
            detail = message[1:].decode("utf-8", "replace")
        else:
            detail = f"it exited with code {child.process.returncode}"
        return ExtractorStartupError(f"the extractor process ({self.function}) failed to start: {detail}")

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> IsolatedExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- extraction

    def extract(self, html: str | bytes) -> str | None:
        """The main text, or None when there is none; raises ExtractionFailed subclasses."""
        max_bytes = self.cfg.max_html_bytes
        if max_bytes is not None and len(html) > max_bytes:
            rejected = check_html(html, self.cfg)  # too large: don't even encode it
        else:
            data, is_str = _encode(html)
            rejected = _check_bytes(data, max_bytes, self.cfg.max_control_char_ratio)
        if rejected is not None:
            reason, detail = rejected
            raise RejectedHtml(detail, reason)

        child = self._ready_child()
        try:
            child.requests.send_bytes((_STR if is_str else _BYTES) + data)
            answered = child.answers.poll(self.cfg.timeout_seconds)
        except (BrokenPipeError, EOFError, OSError):
            answered = True  # the child is gone; recv below says so
        if not answered:
            self._replace(kill=True)
            raise ExtractionTimeout(f"extraction took longer than {self.cfg.timeout_seconds} s; extractor restarted")
        try:
            message = child.answers.recv_bytes()
        except (EOFError, OSError):
            code = self._replace(kill=False)  # it is exiting: collect its exit code
            raise ExtractionError(
                f"the extractor process died (exit code {code}); restarted", reason="extraction_crash"
            ) from None
        kind, payload = message[:1], message[1:]
        if kind == _TEXT:
            return payload.decode("utf-8", "surrogatepass")
        if kind == _NONE:
            return None
        if kind == _ERROR:
            info = json.loads(payload)
            raise ExtractionError(info["error"], child_traceback=info["traceback"])
        self._replace(kill=True)
        raise ExtractionError(f"unexpected answer from the extractor process: {kind!r}; restarted")

    def run(self, html: str | bytes) -> Extraction:
        """Like extract(), but every per-page failure comes back as a reason."""
        try:
            text = self.extract(html)
        except ExtractionFailed as err:
            return Extraction(None, err.reason, str(err))
        return Extraction(text) if text else Extraction(None, "no_main_text")


def extract_isolated(pages: Iterable[str | bytes], cfg: ExtractionConfig) -> list[Extraction]:
    """Extract a batch of pages behind one IsolatedExtractor (a convenience for scripts
    and worker pools; the data stage keeps one extractor per shard)."""
    with IsolatedExtractor(cfg) as extractor:
        return [extractor.run(page) for page in pages]
