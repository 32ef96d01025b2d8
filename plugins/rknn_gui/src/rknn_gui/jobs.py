"""Steps run one at a time in a worker thread: their log lines are collected as they come (the
page follows them live), and a running step can be cancelled."""

from __future__ import annotations

import ctypes
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rknn_core.log import LOGGER_NAME
from rknn_gui.errors import GuiError

LETTERS = {logging.ERROR: "E", logging.WARNING: "W", logging.INFO: "I", logging.DEBUG: "D"}
MAX_LINES = 2000
_ids = itertools.count(1)


class Cancelled(BaseException):
    """Raised inside the worker thread by a cancel; a BaseException, so the facade's
    ``except Exception`` (which turns faults into ``E`` lines) lets it through."""


class _Lines(logging.Handler):
    """Collects the toolkit's log lines of one thread as ``E ...``/``W ...``/``I ...`` text."""

    def __init__(self, job: Job):
        super().__init__(logging.INFO)
        self.job = job

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.job.thread_id:
            letter = LETTERS.get(record.levelno, "E" if record.levelno > logging.ERROR else "D")
            self.job.add_line(f"{letter} {record.getMessage()}")


class Job:
    """One step: ``run()`` in a thread; ``state`` is running, done, failed or cancelled."""

    def __init__(self, title: str, run: Callable[[Job], Any]):
        self.id = next(_ids)
        self.title = title
        self._run = run
        self.state = "running"
        self.lines: list[str] = []
        self.result: Any = None
        self.error: str | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.finished = threading.Event()
        self.thread_id: int | None = None
        self._lock = threading.Lock()
        self._cancel_lock = threading.Lock()
        self._cancellable = False
        self._cancel_requested = False  # a cancel that came before the worker started
        self._step_over = False

    def add_line(self, line: str) -> None:
        with self._lock:
            if len(self.lines) < MAX_LINES:
                self.lines.append(line)

    def errors(self) -> list[str]:
        with self._lock:
            return [line for line in self.lines if line.startswith("E ")]

    def snapshot(self, since: int = 0) -> dict:
        """The job as JSON: state, the log lines from ``since`` on, and the result when finished."""
        with self._lock:
            lines = self.lines[since:]
        end = self.ended if self.ended is not None else time.monotonic()
        return {"id": self.id, "title": self.title, "state": self.state, "lines": lines, "line_count": since + len(lines),
                "seconds": round(end - self.started, 2), "error": self.error,
                "result": self.result if self.finished.is_set() else None}

    def main(self) -> None:
        self.thread_id = threading.get_ident()
        handler = _Lines(self)
        logger = logging.getLogger(LOGGER_NAME)
        logger.addHandler(handler)
        try:
            self._guarded_run()
            errors = self.errors()
            self.state, self.error = ("failed", errors[-1]) if errors else ("done", None)
        except Cancelled:
            self.state, self.error = "cancelled", "E cancelled by the user"
        except GuiError as exc:
            self.state, self.error = "failed", f"E {exc}"
            self.add_line(self.error)
        except Exception as exc:  # a fault must not end the server: the page shows it
            self.state, self.error = "failed", f"E {self.title} failed unexpectedly: {type(exc).__name__}: {exc}"
            self.add_line(self.error)
        finally:
            logger.removeHandler(handler)
            self.ended = time.monotonic()
            self.finished.set()

    def _guarded_run(self) -> None:
        with self._cancel_lock:
            if self._cancel_requested:
                raise Cancelled
            self._cancellable = True
        try:
            self.result = self._run(self)
        finally:
            with self._cancel_lock:
                self._cancellable, self._step_over = False, True
                _async_raise(self.thread_id, None)  # a cancel that came after the step ended is dropped

    def cancel(self) -> bool:
        """Raise :class:`Cancelled` in the worker; it takes effect at its next Python instruction
        (a numpy or compiled kernel call already running finishes first)."""
        with self._cancel_lock:
            if self._step_over or self.finished.is_set():
                return False
            if self._cancellable:
                _async_raise(self.thread_id, Cancelled)
            else:
                self._cancel_requested = True
            return True


def _async_raise(thread_id: int, exc_type: type | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type) if exc_type else ctypes.c_void_p(0))


class Jobs:
    """The jobs of one session; only one runs at a time (they share one RKNN object)."""

    def __init__(self):
        self.by_id: dict[int, Job] = {}
        self._lock = threading.Lock()

    def start(self, title: str, run: Callable[[Job], Any]) -> Job:
        with self._lock:
            busy = self.running()
            if busy is not None:
                raise GuiError(f"'{busy.title}' is still running; wait for it or cancel it first")
            job = Job(title, run)
            self.by_id[job.id] = job
            threading.Thread(target=job.main, name=f"rknn-gui-job-{job.id}", daemon=True).start()
            return job

    def running(self) -> Job | None:
        return next((j for j in self.by_id.values() if not j.finished.is_set()), None)

    def get(self, job_id: int) -> Job:
        job = self.by_id.get(job_id)
        if job is None:
            raise GuiError(f"there is no job {job_id}")
        return job
