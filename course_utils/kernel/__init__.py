"""The grading kernel itself, as it starts inside the sandbox: ipykernel with the referee's agent attached."""

from __future__ import annotations

from . import agent


def start(connection_file: str) -> None:
    """Run an IPython kernel on `connection_file` that answers the referee on the comm target `course.referee`."""
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(["-f", connection_file, "--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"])
    agent.register(app.kernel)
    app.start()
