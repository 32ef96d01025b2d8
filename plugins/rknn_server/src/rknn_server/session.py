"""One client connection on the agent: the handshake, then requests until the client leaves. Models
arrive as bytes in the request (the agent never opens a path a client names)."""

from __future__ import annotations

import logging
import os
import select
import socket
import tempfile
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import attrs

from rknn_core import fileformat, provenance, rknn_check
from rknn_core.errors import RknnError
from rknn_core.platforms import platform_families
from rknn_server import __version__, protocol
from rknn_server.runner import ModelRunner, timed
from rknn_server.scheduler import Job
from rknn_server.vendor import VendorModel

log = logging.getLogger("rknn.server")


@attrs.define
class Loaded:
    """A model of this session with its init_runtime options; ``pending`` is async mode's frame in flight."""

    runner: Any
    perf_debug: bool = False
    eval_mem: bool = False
    async_mode: bool = False
    pending: Job | None = None


def _one_step(label: str, compute: Any) -> Any:
    """A job of one step: ``compute()`` is its result."""
    result = compute()
    yield label, None
    return result


class Session:
    def __init__(self, agent: Any, sock: socket.socket, client: str):
        self.agent, self.sock, self.client = agent, sock, client
        self.models: dict[int, Loaded] = {}
        self.greeted = False

    def serve(self) -> None:
        """Answer requests until the client leaves or breaks the protocol (then it is told why)."""
        try:
            while True:
                message = protocol.receive(self.sock, self.agent.max_frame)
                if message.get("op") == "bye":
                    break
                protocol.send(self.sock, self.handle(message))
        except protocol.ConnectionClosed:
            pass
        except protocol.ProtocolError as exc:
            log.warning("client %s: %s; closing its connection", self.client, exc)
            self._try_send({"ok": False, "error": f"protocol error: {exc}", "fatal": True})
        except (TimeoutError, OSError) as exc:
            log.info("client %s went away: %s", self.client, exc)
        finally:
            for loaded in self.models.values():
                if hasattr(loaded.runner, "close"):
                    loaded.runner.close()
            self.sock.close()

    def _try_send(self, message: dict) -> None:
        try:
            protocol.send(self.sock, message)
        except OSError:
            pass

    def handle(self, message: dict) -> dict:
        op = message.get("op")
        handlers = {"hello": self.hello, "load": self.load, "run": self.run, "perf": self.perf,
                    "memory": self.memory, "version": self.version, "release": self.release}
        if op not in handlers:
            return {"ok": False, "error": f"unknown request {op!r}; this agent serves {', '.join(handlers)}"}
        if op != "hello" and not self.greeted:
            return {"ok": False, "error": "the first request must be the handshake (hello)"}
        try:
            return {"ok": True, **handlers[op](message)}
        except RknnError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a fault in the agent must not take other clients down
            log.exception("client %s: %s failed", self.client, op)
            return {"ok": False, "error": f"{op} failed on the agent: {type(exc).__name__}: {exc}"}

    def hello(self, message: dict) -> dict:
        if message.get("protocol") != protocol.PROTOCOL_VERSION:
            raise RknnError(f"the client speaks protocol version {message.get('protocol')!r}; this agent "
                            f"(rknn-server {__version__}) speaks version {protocol.PROTOCOL_VERSION}")
        self.greeted = True
        return self.agent.describe()

    def _loaded(self, message: dict) -> Loaded:
        handle = message.get("handle")
        if handle not in self.models:
            raise RknnError(f"no model {handle!r} is loaded in this session")
        return self.models[handle]

    def load(self, message: dict) -> dict:
        data = message.get("model")
        if not isinstance(data, bytes) or not data:
            raise RknnError("load needs the model file's bytes in 'model'")
        options = {k: bool(message.get(k, False)) for k in ("perf_debug", "eval_mem", "async_mode")}
        if message.get("kind") == "vendor":
            runner = VendorModel(self.agent.vendor_library(), data)
        else:
            runner = self._our_model(data, str(message.get("name") or "model"))
        handle = max(self.models, default=0) + 1
        self.models[handle] = Loaded(runner, **options)
        return {"handle": handle}

    def _our_model(self, data: bytes, name: str) -> ModelRunner:
        """Read the model from the request's bytes (through a private file the agent names itself)."""
        with tempfile.NamedTemporaryFile(dir=self.agent.workdir, suffix=".rknn", delete=False) as f:
            f.write(data)
        try:
            model = fileformat.load(f.name)  # memory-mapped: the data stay readable after the unlink
        except RknnError as exc:
            raise RknnError(str(exc).replace(f"'{f.name}'", "the sent model")) from None
        finally:
            os.unlink(f.name)
        registry = self.agent.registry
        provenance.check_installed(model, registry, name, "the device agent")
        rknn_check.check_model(model, registry)
        families = platform_families(registry)
        chip = self.agent.chip_name
        built = {families.get(p) for p in model.target_platform}
        if chip in families and families[chip] not in built:
            raise RknnError(f"the model was built for {', '.join(model.target_platform)}; this device is a {chip} "
                            f"(family {families[chip]})")
        return ModelRunner(model, registry, self.agent.chip, name, len(data))

    def _wait(self, job: Job) -> Any:
        """The job's result; a client that disconnects meanwhile cancels it (other clients go on)."""
        while True:
            try:
                return job.future.result(timeout=0.2)
            except FutureTimeout:
                readable, _, _ = select.select([self.sock], [], [], 0)
                if readable and not self.sock.recv(1, socket.MSG_PEEK):
                    job.cancel()
                    raise OSError("the client closed its connection while its job waited") from None

    def _submit(self, steps: Any) -> Job:
        return self.agent.scheduler.submit(self.client, steps)

    def run(self, message: dict) -> dict:
        loaded = self._loaded(message)
        feeds = message.get("feeds")
        if isinstance(loaded.runner, VendorModel):
            runner = loaded.runner
            if not isinstance(feeds, list):
                raise RknnError("a vendor model's run needs 'feeds' as a list of arrays")
            job = self._submit(_vendor_steps(runner, feeds))
        else:
            if not isinstance(feeds, dict):
                raise RknnError("run needs 'feeds': a mapping of input names to arrays")
            job = self._submit(timed(loaded.runner.steps(feeds)))
        if not loaded.async_mode:
            return {"outputs": self._wait(job)}
        previous, loaded.pending = loaded.pending, job  # the vendor's async mode: the previous frame's result
        return {"outputs": self._wait(previous if previous is not None else job)}

    def perf(self, message: dict) -> dict:
        loaded = self._loaded(message)
        runner = loaded.runner
        if isinstance(runner, VendorModel):
            return {"perf": {"total_time": runner.run_time_us()}}
        feeds = message.get("feeds")
        job = _one_step(f"{runner.name} eval_perf", lambda: runner.perf(feeds, loaded.perf_debug))
        return {"perf": self._wait(self._submit(timed(job)))}

    def memory(self, message: dict) -> dict:
        loaded = self._loaded(message)
        if not loaded.eval_mem:
            raise RknnError("eval_memory needs init_runtime(..., eval_mem=True)")
        if isinstance(loaded.runner, VendorModel):
            raise RknnError("eval_memory is not available for models run by the vendor runtime library")
        job = _one_step(f"{loaded.runner.name} eval_memory", loaded.runner.memory)
        return {"memory": self._wait(self._submit(timed(job)))}

    def version(self, message: dict) -> dict:
        if message.get("handle") is not None and isinstance(self._loaded(message).runner, VendorModel):
            api, drv = self._loaded(message).runner.sdk_version()
            return {"api_version": api, "drv_version": drv}
        return self.agent.versions()

    def release(self, message: dict) -> dict:
        loaded = self.models.pop(message.get("handle"), None)
        if loaded is not None and hasattr(loaded.runner, "close"):
            loaded.runner.close()
        return {}


def _vendor_steps(model: VendorModel, feeds: list) -> Any:
    outputs = model.run(feeds)
    yield "vendor model", float(model.run_time_us())
    return outputs
