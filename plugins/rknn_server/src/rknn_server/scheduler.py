"""The agent's NPU scheduler: one device, many jobs. Jobs are step generators (a segmented model's
segments, or one step); the scheduler runs one step at a time, round robin over the queued jobs, so
segments of several models from several clients interleave. Every step can be written to a Chrome
trace (``chrome://tracing`` / Perfetto JSON)."""

from __future__ import annotations

import collections
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

MAX_TRACE_EVENTS = 20000


class Job:
    """Steps of one request: ``steps`` yields (label, microseconds on the device clock) per step and
    returns the result. ``cancel()`` drops it before its next step (its client went away)."""

    def __init__(self, client: str, steps: Iterator[tuple[str, float]], number: int):
        self.client, self.steps, self.number = client, steps, number
        self.future: Future = Future()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Trace:
    """Complete events (``ph: X``) on the device clock, rewritten to ``path`` after every job."""

    def __init__(self, path: str | None, device: str):
        self.path, self.device = path, device
        self.events: collections.deque = collections.deque(maxlen=MAX_TRACE_EVENTS)
        self.threads: dict[str, int] = {}

    def add(self, client: str, label: str, start_us: float, dur_us: float, job: int) -> None:
        if self.path is None:
            return
        tid = self.threads.setdefault(client, len(self.threads) + 1)
        self.events.append({"name": label, "cat": "npu", "ph": "X", "pid": 1, "tid": tid,
                            "ts": round(start_us, 3), "dur": round(dur_us, 3), "args": {"client": client, "job": job}})

    def write(self) -> None:
        if self.path is None:
            return
        meta = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": f"NPU of {self.device}"}}]
        meta += [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": client}}
                 for client, tid in self.threads.items()]
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump({"traceEvents": meta + list(self.events), "displayTimeUnit": "ms"}, f)
        os.replace(temporary, self.path)


class Scheduler:
    """Runs jobs' steps on one thread. ``pace`` > 0 makes an emulated device take ``pace`` x its modelled
    time per step in wall time (0: as fast as the host computes)."""

    def __init__(self, trace: Trace, pace: float = 0.0):
        self.trace, self.pace = trace, pace
        self.queue: collections.deque[Job] = collections.deque()
        self.ready = threading.Condition()
        self.clock_us = 0.0
        self.started = time.perf_counter()
        self.ids = itertools.count(1)
        self.thread = threading.Thread(target=self._loop, name="npu-scheduler", daemon=True)
        self.thread.start()

    def submit(self, client: str, steps: Iterator[tuple[str, float]]) -> Job:
        job = Job(client, steps, next(self.ids))
        with self.ready:
            self.queue.append(job)
            self.ready.notify()
        return job

    def _next(self) -> Job:
        with self.ready:
            while True:
                while self.queue and self.queue[0].cancelled:
                    self.queue.popleft().future.cancel()
                if self.queue:
                    return self.queue.popleft()
                self.ready.wait()

    def _loop(self) -> None:  # a daemon thread: it ends with the agent process
        while True:
            job = self._next()
            start = max(self.clock_us, (time.perf_counter() - self.started) * 1e6)
            try:
                label, dur_us = next(job.steps)
            except StopIteration as done:
                job.future.set_result(done.value)
                self.trace.write()
                continue
            except Exception as exc:  # the job failed: its client gets the error, the device goes on
                job.future.set_exception(exc)
                continue
            if self.pace > 0:
                time.sleep(dur_us * self.pace / 1e6)
            self.clock_us = start + dur_us
            self.trace.add(job.client, label, start, dur_us, job.number)
            with self.ready:
                self.queue.append(job)  # to the back: the other queued jobs run a step first
