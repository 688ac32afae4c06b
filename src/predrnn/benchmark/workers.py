"""The benchmark's workers: one process per implementation, JSON lines on pipes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import traceback

from predrnn.benchmark.config import BenchmarkConfig, Implementation, parse_implementation
from predrnn.benchmark.runners import make_runner

PROTOCOL_PREFIX = "@@predrnn-benchmark@@ "


class InProcessWorker:
    """Runs an implementation in this process (its backend must be this process's backend)."""

    def __init__(self, impl: Implementation, config: BenchmarkConfig, seed: int, reference_path=None):
        self.impl = impl
        self.runner = make_runner(config, impl, seed, reference_path)

    def call(self, command: str) -> dict:
        return getattr(self.runner, command)()

    def close(self):
        self.runner = None


class SubprocessWorker:
    """Runs an implementation in ``python -m predrnn.benchmark --worker`` (JSON lines on pipes)."""

    def __init__(self, impl: Implementation, config: BenchmarkConfig, seed: int, reference_path=None, env=None):
        self.impl = impl
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env["KERAS_BACKEND"] = impl.backend
        child_env.update(impl.environment())
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"predrnn-bench-{impl.backend}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "predrnn.benchmark", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=child_env,
            text=True,
            bufsize=1,
        )
        self._send(
            {
                "cmd": "init",
                "impl": impl.spec,
                "config": config_to_json(config),
                "seed": seed,
                "reference_path": None if reference_path is None else str(reference_path),
            }
        )

    def _send(self, message: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"The {self.impl.spec} worker exited unexpectedly.\n{self._log_tail()}")
            if line.startswith(PROTOCOL_PREFIX):
                reply = json.loads(line[len(PROTOCOL_PREFIX) :])
                if "error" in reply:
                    raise RuntimeError(f"The {self.impl.spec} worker failed:\n{reply['error']}")
                return reply

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            self.log.flush()
            with open(self.log.name) as handle:
                return handle.read()[-chars:]
        except OSError:
            return ""

    def call(self, command: str) -> dict:
        return self._send({"cmd": command})

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def config_to_json(config: BenchmarkConfig) -> dict:
    out = dataclasses.asdict(config)
    out["filters"] = list(config.filters)
    return out


def worker_main() -> int:
    """The worker loop: one JSON command per stdin line, one prefixed JSON reply per command."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to the log, not into the protocol
    runner = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["cmd"] == "init":
                config = BenchmarkConfig(**message["config"])
                impl = parse_implementation(message["impl"])
                runner = make_runner(config, impl, message["seed"], message.get("reference_path"))
                reply = {"ok": True}
            else:
                reply = getattr(runner, message["cmd"])()
        except Exception:  # noqa: BLE001 - reported to the parent with the traceback
            reply = {"error": traceback.format_exc()}
        protocol.write(PROTOCOL_PREFIX + json.dumps(reply) + "\n")
    return 0
