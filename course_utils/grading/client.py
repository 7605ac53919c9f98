"""Talk to one sandboxed grading kernel over Jupyter's messaging protocol: run cells, and the referee's requests.

The kernel listens on Unix sockets inside its sandbox (`ipc` transport); this side connects through the
kernel process's view of its own file system (`/proc/<pid>/root/...`). Everything the kernel sends is
untrusted, and the grading process's memory stays bounded whatever it sends:

- ZMQ holds at most `QUEUED_MESSAGES` complete messages per socket in this process (past that it stops reading,
  and the backlog waits in the kernel's own memory, under its cgroup's limit);
- a message part larger than `MAX_FRAME_BYTES` makes ZMQ close the connection (`ZMQ_MAXMSGSIZE`): the kernel
  is lost, with that reason;
- a message whose content is larger than `MAX_CONTENT_BYTES`, or whose buffers add up to more than
  `wire.MAX_BYTES`, is dropped unread (never parsed): an output becomes the note "output dropped", an answer
  to the referee fails that request.

Malformed messages are dropped, and a kernel that stops answering is interrupted, then given up on. Only the
outputs of cells and the referee's plain-data answers come back.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from dataclasses import dataclass, field
from typing import Callable

import nbformat
import zmq
from jupyter_client.session import DELIM, Session

from ..kernel import wire

MAX_FRAME_BYTES = 128 * 2**20  # one part of a message; ZMQ drops the connection past it
MAX_CONTENT_BYTES = 8 * 2**20  # the JSON content of one message; a larger one is dropped unread
MAX_HEADER_BYTES = 64 * 2**10  # each of a message's header, parent header and metadata
QUEUED_MESSAGES = 2  # complete messages ZMQ may hold per socket in this process (ZMQ_RCVHWM)
SEND_TIMEOUT_MS = 5000  # a request to a kernel whose connection is gone fails instead of blocking (ZMQ_SNDTIMEO)
OUTPUT_LIMIT_BYTES = 1_000_000  # output one cell may leave in the graded notebook (a few plots)
INTERRUPT_GRACE_S = 5.0  # how long an interrupted cell may take to stop
QUIET_AFTER_REPLY_S = 2.0  # after the kernel's reply, how long without its published messages means idle
CUT_OFF_GRACE_S = 2.0  # after a connection drops, how long to wait for the kernel's exit to be reported
CHANNELS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}


class KernelLost(RuntimeError):
    """The kernel died, or ignored an interrupt past its time limit; nothing more can run in it."""


class CellTimeout(RuntimeError):
    """A cell or request ran past its time limit and was interrupted; the kernel still answers."""


def connection_info(ip: str, key: str) -> dict:
    """The connection file of a kernel whose sockets are named `<ip>-<n>`."""
    return {"transport": "ipc", "ip": ip, "key": key, "signature_scheme": "hmac-sha256", "kernel_name": "",
            **{f"{name}_port": port for name, port in CHANNELS.items()}}


@dataclass
class Outputs:
    """The outputs a cell left, as nbformat output dicts, capped at OUTPUT_LIMIT_BYTES."""

    items: list = field(default_factory=list)
    size: int = 0
    truncated: bool = False
    clear_pending: bool = False
    displays: dict = field(default_factory=dict)  # display_id -> indices in items
    dropped_count: int = 0  # messages dropped unread, and the largest of them, noted once at `dropped_at`
    dropped_largest: int = 0
    dropped_at: int | None = None

    def add(self, msg_type: str, content: dict) -> None:
        if msg_type == "clear_output":
            if content.get("wait"):
                self.clear_pending = True
            else:
                self._clear()
            return
        if msg_type == "update_display_data":
            ident = (content.get("transient") or {}).get("display_id")
            for index in self.displays.get(ident, []):
                self.items[index] = nbformat.v4.new_output("display_data", data=content.get("data", {}),
                                                           metadata=content.get("metadata", {}))
            return
        if self.clear_pending:
            self._clear()
        size = len(json.dumps(content))
        if self.size + size > OUTPUT_LIMIT_BYTES:
            if not self.truncated:
                self.truncated = True
                self.items.append(nbformat.v4.new_output("stream", name="stderr", text=(
                    f"[output truncated: the grader keeps the first {OUTPUT_LIMIT_BYTES:,} characters of a cell]\n")))
            return
        self.size += size
        if msg_type == "stream":
            name = content.get("name") if content.get("name") in ("stdout", "stderr") else "stdout"
            text = str(content.get("text", ""))
            if self.items and self.items[-1].get("output_type") == "stream" and self.items[-1].get("name") == name:
                self.items[-1]["text"] += text
            else:
                self.items.append(nbformat.v4.new_output("stream", name=name, text=text))
        elif msg_type in ("display_data", "execute_result"):
            kind = "display_data" if msg_type == "display_data" else "execute_result"
            extra = {"execution_count": content.get("execution_count")} if kind == "execute_result" else {}
            self.items.append(nbformat.v4.new_output(kind, data=content.get("data", {}),
                                                     metadata=content.get("metadata", {}), **extra))
            ident = (content.get("transient") or {}).get("display_id")
            if ident is not None:
                self.displays.setdefault(ident, []).append(len(self.items) - 1)
        elif msg_type == "error":
            self.items.append(nbformat.v4.new_output(
                "error", ename=str(content.get("ename", "")), evalue=str(content.get("evalue", "")),
                traceback=[str(line) for line in content.get("traceback", [])][:200]))

    def _clear(self) -> None:
        self.items, self.displays, self.clear_pending, self.dropped_at = [], {}, False, None

    def dropped(self, size: int) -> None:
        """Note in the cell's outputs (once, with a count) that a message of `size` bytes was dropped unread."""
        self.dropped_count += 1
        self.dropped_largest = max(self.dropped_largest, size)
        note = nbformat.v4.new_output("stream", name="stderr", text=(
            f"[output dropped: {self.dropped_count} message(s) of up to {self.dropped_largest / 2**20:.0f} MiB, "
            f"larger than the {MAX_CONTENT_BYTES // 2**20} MiB the grader reads]\n"))
        if self.dropped_at is None or self.dropped_at >= len(self.items):
            self.dropped_at = len(self.items)
            self.items.append(note)
        else:
            self.items[self.dropped_at] = note

    def error(self) -> tuple[str, str] | None:
        for out in self.items:
            if out.get("output_type") == "error":
                return out["ename"], out["evalue"]
        return None


class KernelClient:
    """The referee's connection to one kernel: `execute` a cell, `request` the agent, `interrupt`, `close`."""

    def __init__(self, ip: str, key: str, pid: int, ended: Callable[[], str | None], timeout_s: float):
        """`ip`: the kernel's socket path prefix as this process sees it; `ended()`: why it has exited, or None.
        Waits up to `timeout_s` for the kernel to make its sockets."""
        self.pid, self.ended = pid, ended
        deadline = time.monotonic() + timeout_s
        while not all(os.path.exists(f"{ip}-{CHANNELS[c]}") for c in ("shell", "iopub")):
            self._check_alive()
            if time.monotonic() > deadline:
                raise KernelLost(f"the grading kernel made no sockets within {timeout_s:.0f} s")
            time.sleep(0.02)
        self.session = Session(key=key.encode(), signature_scheme="hmac-sha256", username="referee")
        self.context = zmq.Context()
        self.context.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)
        self.context.setsockopt(zmq.LINGER, 0)
        self.context.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        # Connect once, to the sockets the kernel made before any student code ran: a reconnection would look
        # the path up again, and the student's code could by then have turned it into a link elsewhere.
        self.context.setsockopt(zmq.RECONNECT_IVL, -1)
        self.ip = ip
        self.poller = zmq.Poller()
        self.monitors: dict[zmq.Socket, str] = {}  # a monitor per channel: it reports a dropped connection
        self.shell = self._socket(zmq.DEALER, "shell")
        self.iopub = self._socket(zmq.SUB, "iopub")
        self.comm_id = ""
        self.requests = 0

    def _socket(self, kind: int, channel: str) -> zmq.Socket:
        path = f"{self.ip}-{CHANNELS[channel]}"
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise KernelLost(f"the kernel's {channel} channel is not a socket")
        sock = self.context.socket(kind)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.monitors[monitor] = channel
        self.poller.register(monitor, zmq.POLLIN)
        sock.connect(f"ipc://{path}")
        self.poller.register(sock, zmq.POLLIN)
        return sock

    def _reconnect(self, channel: str) -> None:
        """A fresh connection to `channel`: a connection refused (the socket's file exists a moment before it
        listens) is never retried. Only while the kernel starts, before any student code has run."""
        old = getattr(self, channel)
        self.poller.unregister(old)
        for monitor in [m for m, name in self.monitors.items() if name == channel]:
            self.poller.unregister(monitor)
            del self.monitors[monitor]
            old.disable_monitor()
            monitor.close(linger=0)
        old.close(linger=0)
        setattr(self, channel, self._socket(old.type, channel))

    # -- receiving

    def _receive(self, timeout_s: float):
        """The next (channel, message) within `timeout_s`, or None; malformed messages are dropped."""
        events = dict(self.poller.poll(max(0, int(timeout_s * 1000))))
        for monitor, name in self.monitors.items():
            if monitor in events:
                self._cut_off(name)
        for sock, name in ((self.iopub, "iopub"), (self.shell, "shell")):
            if sock in events:
                try:
                    msg = self._read(sock)
                except Exception:  # a bad signature, bad JSON, a truncated frame: not a message
                    continue
                if msg is not None and isinstance(msg.get("content"), dict):
                    return name, msg
        return None

    def _read(self, sock: zmq.Socket) -> dict | None:
        """One message from `sock`, sizes checked before anything is parsed. A message too large to read comes
        back as its header and parent header, with empty content and `dropped` (its size in bytes)."""
        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        delimiter = next((i for i, f in enumerate(frames) if len(f) == len(DELIM) and f.bytes == DELIM), None)
        if delimiter is None:
            return None
        parts = frames[delimiter + 1:]
        if len(parts) < 5 or any(len(part) > MAX_HEADER_BYTES for part in parts[1:4]):
            return None
        content, buffers = len(parts[4]), sum(len(part) for part in parts[5:])
        if content <= MAX_CONTENT_BYTES and buffers <= wire.MAX_BYTES:
            return self.session.deserialize(parts, content=True, copy=False)
        header, parent = (self.session.unpack(part.bytes) for part in parts[1:3])
        if not isinstance(header, dict) or not isinstance(parent, dict):
            return None
        return {"header": header, "parent_header": parent, "content": {}, "dropped": content + buffers}

    def _cut_off(self, channel: str) -> None:
        """The connection on `channel` is gone: the kernel died (said so once it is reaped), or ZMQ dropped it."""
        deadline = time.monotonic() + CUT_OFF_GRACE_S
        while time.monotonic() < deadline:
            self._check_alive()
            time.sleep(0.05)
        raise KernelLost(f"the kernel's {channel} connection was cut: it sent a message larger than the grader "
                         f"reads ({MAX_FRAME_BYTES // 2**20} MiB), or its code closed the connection")

    def _check_alive(self) -> None:
        reason = self.ended()
        if reason:
            raise KernelLost(reason)

    def _send(self, kind: str, content: dict, buffers: list[bytes] | None = None) -> dict:
        """Send one request on the shell channel; a kernel that can no longer take it (its connection is gone, and
        it is never connected again) is lost, never waited for."""
        try:
            return self.session.send(self.shell, kind, content, buffers=buffers)
        except zmq.Again:
            self._check_alive()
            raise KernelLost("the grading kernel's connection to the grader is gone") from None

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the kernel answers on its shell and its published messages arrive here."""
        deadline, round_s = time.monotonic() + timeout_s, 1.0
        while time.monotonic() < deadline:
            self._check_alive()
            msg_id = self._send("kernel_info_request", {})["header"]["msg_id"]
            replied = published = False
            until = min(deadline, time.monotonic() + round_s)
            round_s = min(2 * round_s, 8.0)  # a kernel slowed by a busy machine gets longer to answer
            while time.monotonic() < until and not (replied and published):
                got = self._receive(until - time.monotonic())
                if got and got[1].get("parent_header", {}).get("msg_id") == msg_id:
                    replied |= got[0] == "shell"
                    published |= got[0] == "iopub"
            if replied and published:
                return
            for channel, heard in (("shell", replied), ("iopub", published)):
                if not heard:
                    self._reconnect(channel)
        raise KernelLost(f"the grading kernel did not answer within {timeout_s:.0f} s of starting")

    def _wait(self, msg_id: str, deadline: float, outputs: Outputs, on_comm=None) -> None:
        """Collect the outputs of request `msg_id` until the kernel is idle again; raise CellTimeout past `deadline`
        (after interrupting), KernelLost if it dies or ignores the interrupt. The kernel's reply on the shell channel,
        followed by quiet on iopub, counts as idle too: a kernel that publishes faster than this side reads has its
        published messages dropped by ZMQ, and the idle status may be one of them."""
        interrupted_at = replied_at = None
        heard = time.monotonic()  # when the last published message of this request arrived
        while True:
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                self.interrupt()
                interrupted_at = now
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE_S:
                raise KernelLost("a cell ran past its time limit and did not stop when interrupted")
            if replied_at is not None and now > max(replied_at, heard) + QUIET_AFTER_REPLY_S:
                if interrupted_at is not None:
                    raise CellTimeout("interrupted")
                return
            got = self._receive(0.2)
            if got is None:
                self._check_alive()
                continue
            channel, msg = got
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if channel == "shell":
                replied_at = replied_at or time.monotonic()
                continue
            heard = time.monotonic()
            kind, content = msg["header"].get("msg_type"), msg["content"]
            if "dropped" in msg:
                if kind == "comm_msg" and on_comm is not None:
                    on_comm(None, [])
                elif kind != "status":
                    outputs.dropped(msg["dropped"])
                continue
            if kind == "status" and content.get("execution_state") == "idle":
                if interrupted_at is not None:
                    raise CellTimeout("interrupted")
                return
            if kind == "comm_msg" and on_comm is not None and content.get("comm_id") == self.comm_id:
                on_comm(content.get("data"), msg.get("buffers") or [])
            elif kind in ("stream", "display_data", "execute_result", "error", "clear_output", "update_display_data"):
                outputs.add(kind, content)

    # -- what the grader asks for

    def execute(self, code: str, deadline: float, outputs: Outputs) -> None:
        """Run one cell, collecting its outputs in `outputs` (kept when it raises CellTimeout or KernelLost)."""
        msg = self._send("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False,
            "stop_on_error": False})
        self._wait(msg["header"]["msg_id"], deadline, outputs)

    def request(self, data: dict, buffers: list[bytes], deadline: float, outputs: Outputs) -> tuple[dict, list[bytes]]:
        """One request to the agent: its answer (data, buffers); what the student's code prints goes to `outputs`."""
        if not self.comm_id:
            self.comm_id = os.urandom(16).hex()
            opened = self._send("comm_open", {
                "comm_id": self.comm_id, "target_name": "course.referee", "data": {}})
            self._wait(opened["header"]["msg_id"], deadline, Outputs())
        self.requests += 1
        data = {**data, "id": self.requests}
        answers: list = []

        def on_comm(reply, reply_buffers) -> None:
            if reply is None:
                too_large.append(True)
            elif isinstance(reply, dict) and reply.get("id") == self.requests and not answers:
                answers.append((reply, [bytes(b) for b in reply_buffers]))

        too_large: list = []

        msg = self._send("comm_msg", {"comm_id": self.comm_id, "data": data}, buffers)
        self._wait(msg["header"]["msg_id"], deadline, outputs, on_comm)
        if not answers and too_large:
            raise wire.WireError(f"an answer larger than the grader reads ({wire.MAX_BYTES // 2**20} MiB)")
        if not answers:
            raise KernelLost("the grading kernel stopped answering the grader (its connection to the grader was "
                             "changed by code in the notebook)")
        return answers[0]

    def interrupt(self) -> None:
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.context.destroy(linger=0)
