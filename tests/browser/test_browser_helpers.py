"""The browser suite's own helpers, checked without a browser: cleanup, ports, reading outputs and answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import lab_notebooks as ln
import lab_server as ls

# A stand-in for jupyter lab: it ignores SIGTERM and starts a "kernel" in a session of its own,
# as jupyter_client does, then prints that kernel's PID.
STUBBORN_SERVER = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    print(kernel.pid, flush=True)
    time.sleep(60)
""")


def test_stop_ends_a_server_that_ignores_sigterm_and_its_kernels_in_other_sessions():
    server = subprocess.Popen([sys.executable, "-c", STUBBORN_SERVER], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    kernel = int(server.stdout.readline())
    assert ls.start_time(kernel) is not None and (kernel, ls.start_time(kernel)) in ls.descendants(server.pid)
    killed = ls.stop(server, grace=1)
    time.sleep(0.2)
    assert server.returncode is not None
    assert kernel in killed and ls.start_time(kernel) is None


def test_free_port_is_on_loopback_and_free():
    port = ls.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # raises if something holds it


def test_last_error_reads_the_final_exception_of_a_chained_traceback():
    shown = textwrap.dedent("""\
        ---------------------------------------------------------------------------
        NotImplementedError                       Traceback (most recent call last)
        NotImplementedError:

        During handling of the above exception, another exception occurred:

        AssertionError                            Traceback (most recent call last)
        Cell In[6], line 5
        ----> 5 assert got == want, explain(got)
        AssertionError: you predicted 75 but the layer gives 76:
        the final + 1 is missing.""")
    assert ln.last_error(shown) == ("AssertionError", "you predicted 75 but the layer gives 76:\nthe final + 1 is missing.")
    assert ln.last_error("Both examples match nn.Conv2d.") is None


def test_answers_drop_solution_markers_but_keep_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"
    assert ln.without_solution_markers(source) == "def f(x):\n    return x + 1"


def test_every_released_lab_has_an_exercise_whose_typical_mistake_fails_its_visible_test():
    for lab in ln.release_labs():
        exercise = ln.first_exercise_with_mistake(lab)
        assert exercise.answer != exercise.wrong_answer and "NotImplementedError" not in exercise.answer
