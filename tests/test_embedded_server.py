"""The embedded llama.cpp server: real process, real OpenAI client, stopped by PID on exit and on error."""

from __future__ import annotations

import socket

import openai
import pytest

from synthbench.assets import embedded_gguf_path
from synthbench.errors import EndpointError
from synthbench.generation.server import embedded_server

pytestmark = pytest.mark.slow


def port_open(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_serves_chat_completions_and_stops_on_exit() -> None:
    with embedded_server(embedded_gguf_path(), alias="smollm2-test", n_ctx=512) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="sk-local")
        assert [m.id for m in client.models.list().data] == ["smollm2-test"]
        reply = client.chat.completions.create(
            model="smollm2-test",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            seed=1,
            temperature=0,
        )
        assert reply.usage.completion_tokens > 0 and reply.choices[0].message.content
    assert not port_open(base_url)


def test_stops_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), embedded_server(embedded_gguf_path(), alias="m", n_ctx=512) as base_url:
        assert port_open(base_url)
        raise RuntimeError("stage failed")
    assert not port_open(base_url)


def test_bad_model_file_is_a_one_line_endpoint_error(tmp_path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    with pytest.raises(EndpointError, match="exited with code"), embedded_server(bogus, alias="m"):
        pass


_CHILD = """
import sys, time, psutil
from synthbench.assets import embedded_gguf_path
from synthbench.generation.server import embedded_server
with embedded_server(embedded_gguf_path(), alias="m", n_ctx=512) as base_url:
    print(base_url, psutil.Process().children()[0].pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_server_dies_with_its_parent_however_the_parent_dies(how: str) -> None:
    import signal
    import subprocess
    import sys

    import psutil

    parent = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        base_url, server_pid = parent.stdout.readline().split()
        server = psutil.Process(int(server_pid))
        # kill -9 runs no finally: the kernel's parent-death signal and the watchdog pipe must end the server
        parent.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
        parent.wait(30)
        gone, _alive = psutil.wait_procs([server], timeout=20)
        assert gone, "the llama.cpp server outlived its parent"
        assert not port_open(base_url)
    finally:
        parent.kill()
