"""Lean simulated frame workers (and hung ones) on many loopback ports in one process.

    python -m bench.fake_worker --ports 20001,20002 --models m0,m1
    python -m bench.fake_worker --ports 20011 --hung

A raw asyncio HTTP/1.1 server, not a framework, so that the workers cost little CPU and the
controller stays the thing measured. `/worker_generate_stream` streams `max_new_tokens` frames
(`{"text": cumulative, "error_code": 0}` + NUL) `bench_gap_ms` apart; both come from the request
body, so one fleet serves every scenario. A hung worker accepts TCP and never answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

FRAME_SEPARATOR = b"\0"
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
    b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
)
MAX_HEAD_BYTES = 64 * 1024


def _json_response(status: int, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    reason = b"OK" if status == 200 else b"Error"
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        % (status, reason, len(body))
    ) + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class FrameWorker:
    """One simulated worker: status and a stream of frames at a fixed gap."""

    def __init__(self, model_names: list[str], speed: float) -> None:
        self.model_names = model_names
        self.speed = speed
        self.streams_now = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD_BYTES:
                    return
                request_line, _, header_text = head.decode("latin-1").partition("\r\n")
                path = request_line.split(" ")[1] if " " in request_line else ""
                length = 0
                for line in header_text.split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if path == "/worker_get_status":
                    writer.write(_json_response(200, {
                        "model_names": self.model_names, "speed": self.speed,
                        "queue_length": self.streams_now,
                    }))
                    await writer.drain()
                elif path == "/worker_generate_stream":
                    await self._stream(body, writer)
                    return  # streams end with connection: close
                else:
                    writer.write(_json_response(404, {"detail": f"no route {path}"}))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()

    async def _stream(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        params = json.loads(body)
        frames = int(params.get("max_new_tokens", 10))
        gap_s = float(params.get("bench_gap_ms", 0)) / 1000
        self.streams_now += 1
        try:
            writer.write(_STREAM_HEAD)
            text = ""
            for i in range(frames):
                if i:
                    await asyncio.sleep(gap_s)
                text += "tok "
                frame = b'{"text": "%s", "error_code": 0}\0' % text.encode()
                writer.write(_chunk(frame))
                # Waiting for the peer only when the buffer fills keeps a frame one write.
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            self.streams_now -= 1


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer: the connection stays open until the peer gives up."""
    try:
        await reader.read()  # returns only when the peer closes
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(ports: list[int], models: list[str], speed: float, hung: bool) -> None:
    servers = []
    for i, port in enumerate(ports):
        handler = _hang if hung else FrameWorker([models[i % len(models)]], speed).handle
        servers.append(await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated ports, one worker each")
    parser.add_argument("--models", default="bench", help="models, assigned round-robin to ports")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--hung", action="store_true", help="accept and never answer")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        uvloop = None
    ports = [int(p) for p in args.ports.split(",")]
    coro = serve(ports, args.models.split(","), args.speed, args.hung)
    if uvloop is not None:
        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
