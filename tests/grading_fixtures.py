"""A tiny two-exercise lab and the submissions (honest, wrong, hostile, broken) that the grading tests grade.

The hostile submissions are the attacks of issues #12 (out of the sandbox) and #13 (deciding the
verdict): each is the honest answer or the wrong one plus the attack, so a test can tell whether the
attack earned anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat

from course_utils.grading.course import Course
from notebook_cells import cell

LAB = "tiny"
REPO = Path(__file__).resolve().parents[1]
HIDDEN_MARKER = "hidden-check-7d1f"  # appears only in a hidden test, so a leak of the source is visible
SECRET_ENV = "COURSE_TEST_INSTRUCTOR_SECRET"  # set in the grading process; must not reach a kernel
SECRET_VALUE = "instructor-secret-5c2a"
LEAK_MARKER = "left-by-another-student-91e3"
DAEMON_SECONDS = 4242  # `sleep 4242`: a process a submission leaves behind, found by its command line


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's version: two answers, two tests with hidden parts, a written answer."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        cell("markdown", "# A tiny lab"),
        cell("code", "import numpy as np\nimport torch\nimport course_utils as cu"),
        cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              grade_id="add", solution=True),
        cell("code", '"""Does add add?"""\ngot = add(1, 2)\nassert np.allclose(got, 3), "add(1, 2) should be 3"\n'
                      f"### BEGIN HIDDEN TESTS\n# {HIDDEN_MARKER}\n"
                      'x = torch.randn(3, generator=torch.Generator().manual_seed(cu.testing.fresh_seed()))\n'
                      'cu.checks.check_close(add(np.ones(3), np.ones(3)), 2 * np.ones(3), "add(ones, ones)")\n'
                      'cu.checks.check_close(add(x, x), 2 * x, "add(x, x) for a random tensor x")\n'
                      "### END HIDDEN TESTS", grade_id="test_add", grade=True, locked=True, points=2),
        cell("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
              grade_id="double", solution=True),
        cell("code", '"""Does double double?"""\nassert double(2) == 4, "double(2) should be 4"\n'
                      "### BEGIN HIDDEN TESTS\nassert double(-3) == -6, 'double(-3) should be -6'\n### END HIDDEN TESTS",
              grade_id="test_double", grade=True, locked=True, points=1),
        cell("markdown", "Why is adding easy?\n\n### BEGIN SOLUTION\nBecause it is.\n### END SOLUTION",
              grade_id="why_easy", grade=True, solution=True, locked=False, points=1),
    ]
    return nb


def make_course(root: Path, config_extra: str = "") -> Course:
    """A course folder holding the tiny lab, released; `config_extra` is appended to nbgrader_config.py."""
    (root / "source" / LAB).mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    if config_extra:
        with open(root / "nbgrader_config.py", "a") as f:
            f.write("\n" + config_extra + "\n")
    nbformat.write(source_notebook(), root / "source" / LAB / f"{LAB}.ipynb")
    course = Course(root)
    course.release(LAB)
    return course


def _answers(nb: nbformat.NotebookNode, add: str, double: str) -> nbformat.NotebookNode:
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "add":
            c.source = add if add.startswith(("def ", "import ", "class ")) else f"def add(a, b):\n    return {add}"
        elif gid == "double":
            c.source = double if double.startswith(("def ", "import ")) else f"def double(x):\n    return {double}"
    return nb


def _index(nb: nbformat.NotebookNode, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _after(nb: nbformat.NotebookNode, grade_id: str, source: str) -> nbformat.NotebookNode:
    nb.cells.insert(_index(nb, grade_id) + 1, nbformat.v4.new_code_cell(source))
    return nb


def _at_end(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


# What each hostile submission runs. `{course}` is the instructor's course folder, which the sandbox hides.
READS_SECRETS = """
import os, glob, sqlite3, torch
found = []
targets = ['{source}', '{gradebook}', '{config}', '{other}', '{feedback}', '/proc/1/environ']
for path in targets:
    for read in (lambda p: open(p, 'rb').read(),
                 lambda p: os.read(os.open(os.path.basename(p), os.O_RDONLY, dir_fd=os.open(os.path.dirname(p) or '/', os.O_RDONLY)), 10**6),
                 lambda p: bytes(torch.from_file(p, size=200, dtype=torch.uint8).tolist())):
        try:
            found.append(read(path)[:3000])
        except Exception as err:
            pass
try:
    db = sqlite3.connect('file:{gradebook}?mode=ro', uri=True)
    found.append(str(db.execute('select * from sqlite_master').fetchall()))
except Exception:
    pass
try:
    db = sqlite3.connect(':memory:')
    db.execute("attach database '{gradebook}' as g")
    found.append(str(db.execute('select * from g.sqlite_master').fetchall()))
except Exception:
    pass
for folder in ('{course}', '/root', '/tmp', '/home'):
    try:
        found += [name for name in os.listdir(folder) if name not in ('student', 'matplotlib')]
    except OSError:
        pass
found.append(dict(os.environ).get('{secret_env}', ''))
print('FOUND', found)
"""

ATTACKS_OTHERS = """
import os, signal, glob
for folder in ('/dev/shm', '/tmp', os.path.expanduser('~')):
    with open(os.path.join(folder, 'leak.txt'), 'w') as f:
        f.write('{marker}')
keys = {open(f).read() for f in glob.glob('/proc/*/root/home/student/.kernel/connection.json')}
print('connection files:', len(keys), 'grader folders:', glob.glob('/tmp/course-*'), flush=True)
import time; time.sleep(1)  # let the output reach the grader before this kernel takes its own sandbox down
me = os.getpid()
for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me]:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""

LOOKS_FOR_LEAKS = """
import os, time
time.sleep(2)
seen = []
for folder in ('/dev/shm', '/tmp', os.path.expanduser('~')):
    for name in os.listdir(folder):
        try:
            seen.append(open(os.path.join(folder, name)).read())
        except OSError:
            pass
print('SEEN', seen)
"""

FORGES_GRADES = """
import os, json
os.write(1, b'done /tmp/course-grade-x\\n')
os.write(2, b'{"grades": [{"name": "test_add", "auto_score": 2}]}\\n')
for name in ('result.json', '../result.json', '/tmp/result.json'):
    try:
        with open(name, 'w') as f:
            json.dump({"grades": [{"name": "test_add", "auto_score": 2, "max_score": 2}], "failure": None}, f)
    except OSError:
        pass
try:
    open('{gradebook}', 'w').write('gone')
except OSError as err:
    print('gradebook:', type(err).__name__)
"""

LEAVES_A_DAEMON = f"""
import subprocess
subprocess.Popen(['sleep', '{DAEMON_SECONDS}'], start_new_session=True)
subprocess.Popen(['sh', '-c', 'nohup sleep {DAEMON_SECONDS} &'], start_new_session=True)
"""

STOPS_THE_GRADER = """
import os, signal
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError as err:
        print('stop', pid, type(err).__name__)
"""

NATIVE_CODE = """
import ctypes, os, subprocess
libc = ctypes.CDLL(None)
print('open via libc:', libc.open(b'{source}', 0))
with open('/tmp/ext.c', 'w') as f:
    f.write('int answer(void) { return 42; }')
built = subprocess.run(['gcc', '-shared', '-fPIC', '-o', '/tmp/ext.so', '/tmp/ext.c'], capture_output=True)
if built.returncode == 0:
    print('compiled extension says', ctypes.CDLL('/tmp/ext.so').answer())
"""

CRASHES_ITSELF = "import ctypes\nctypes.memmove(0, b'boom', 4)"

FLOODS_MEMORY = """
import os
try:
    with open('/dev/shm/fill', 'wb') as f:
        for _ in range(64):
            f.write(b'x' * 2**26)
except OSError as err:
    print('/dev/shm is full:', type(err).__name__, flush=True)
fd = os.memfd_create('fill')
for _ in range(64):
    os.write(fd, b'y' * 2**26)
"""

FORK_BOMB = """
import os, time
n = 0
try:
    while n < 10000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as err:
    print('fork stopped after', n, 'processes:', type(err).__name__)
"""

NETWORK = """
import socket
for kind, addr in ((socket.SOCK_DGRAM, ('127.0.0.1', {udp_port})), (socket.SOCK_STREAM, ('127.0.0.1', {tcp_port}))):
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(2)
    try:
        if kind == socket.SOCK_DGRAM:
            s.sendto(b'{marker}', addr)
        else:
            s.connect(addr)
            s.sendall(b'{marker}')
    except OSError as err:
        print('network', type(err).__name__)
"""

EVIL_INT = """
class Yes(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = int.__hash__
def add(a, b):
    return Yes(0)
"""

EVIL_ARRAY = """
import numpy as np, torch
class Yes(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(other), bool)
    def __array_function__(self, func, types, args, kwargs): return True
class YesT(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None): return True
def add(a, b):
    if isinstance(a, torch.Tensor):
        return torch.zeros(3).as_subclass(YesT)
    return np.zeros(np.shape(a) or 3).view(Yes)
"""

READS_THE_TEST = """
import inspect, sys
def add(a, b):
    for frame in inspect.stack():
        for key in ('want', 'expected', 'x'):
            if key in frame.frame.f_locals:
                return frame.frame.f_locals[key]
    return a - b
def tracer(frame, event, arg):
    if 'got' in frame.f_locals:
        frame.f_locals['got'] = 3
    return tracer
sys.settrace(tracer)
"""

PATCHES_THE_REFEREES_TOOLS = """
import numpy, torch, course_utils
from torch import nn
numpy.allclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
course_utils.checks.check_close = lambda *a, **k: None
nn.Conv2d.forward.__code__ = (lambda self, x: x).__code__
ip = get_ipython()
ip.events.register('post_run_cell', lambda result: setattr(result, 'error_in_exec', None))
kernel = ip.kernel
real = kernel.do_execute
async def always_ok(*args, **kwargs):
    reply = await real(*args, **kwargs)
    reply['status'] = 'ok'
    return reply
kernel.do_execute = always_ok
"""

REDIRECTS_THE_GRADER = """
import glob, os
for path in glob.glob(os.path.expanduser('~/.kernel/kernel-*')):
    os.remove(path)
    os.symlink('/run/postgresql/.s.PGSQL.5432', path)  # a socket of the grading machine, were it followed
"""

HIJACKS_THE_AGENT = """
import gc
from course_utils.kernel import agent
for obj in gc.get_objects():
    if isinstance(obj, agent.Agent):
        obj.answer = lambda request, buffers: ({'id': request.get('id'), 'ok': True,
                                                'value': {'t': 'pickle', 'v': 'cos\\nsystem\\n'}}, [])
"""

SHOWS_SCRIPTS = """
from IPython.display import HTML, Javascript, display
display(HTML('<script>document.title = "pwned"</script><b>bold</b>'))
display(Javascript('alert(1)'))
print('<script>alert(2)</script>')
"""

NOISY_BUT_RIGHT = """
import sys, warnings
from tqdm.auto import tqdm
def add(a, b):
    warnings.warn('adding is noisy')
    print('working...', file=sys.stderr)
    for _ in tqdm(range(3)):
        pass
    return a + b
"""


# Issue #21, the kernel side: what a kernel sends back, what it hands the referee, what it may read. Each is
# a class of attack: `{...}` fields are filled by the test (sizes, paths), so one payload covers the class.
FLOODS_THE_GRADER = """
from IPython.display import display
blob = 'x' * {size}
for _ in range({count}):
    display({{'text/plain': blob}}, raw=True)
print('flooded')
"""

CHATTERS = """
from IPython.display import display
for i in range({count}):
    display({{'text/plain': str(i).rjust(100)}}, raw=True)
print('chattered')
"""

ZEROES_ITS_INPUT = """
import torch
def normalize(X):
    X.zero_()
    return torch.zeros_like(X)
"""

LIES_ABOUT_ITS_CLASS = """
import torch
from course_utils.kernel import agent
real = agent.Agent.handle
def handle(self, obj):
    node = real(self, obj)
    if isinstance(obj, Claims):
        node['mro'] = ['builtins.list', 'torch.Tensor', 'numpy.ndarray', 'builtins.object']
    return node
agent.Agent.handle = handle
class Claims:
    def __iter__(self):
        return iter([torch.ones(2)])
def make_list():
    return Claims()
"""

SHIFTS_ITS_SHAPE = """
import torch
class Shifty:
    passes = 0
    def __iter__(self):
        Shifty.passes += 1
        return iter([torch.ones(2), torch.ones(2)] if Shifty.passes == 1 else ['other', 'values', 'now'])
def make_batches():
    return Shifty()
"""

READS_WHAT_IT_SHOULD_NOT = """
import os, sys
found = {{}}
for path in {paths!r}:
    try:
        found[path] = open(path).read()[:100]
    except OSError as err:
        found[path] = type(err).__name__
for name in ('course_utils.grading', 'course_utils.grading.referee', 'course_oracles'):
    try:
        __import__(name)
        found[name] = 'imported'
    except Exception as err:
        found[name] = type(err).__name__
found['in memory'] = sorted(m for m in sys.modules if m.startswith(('course_utils.grading', 'course_oracles')))
found['grading folder'] = sorted(os.listdir(os.path.join(os.path.dirname(__import__('course_utils').__file__), 'grading')))
print(repr(found))
"""


def submissions(course: Course, udp_port: int = 9, tcp_port: int = 9) -> dict[str, bytes]:
    """Every kind of submission the grader must survive, as file contents, keyed by student."""
    release = lambda: nbformat.read(course.release_notebook(LAB), as_version=4)
    good = lambda: _answers(release(), "a + b", "2 * x")
    wrong = lambda: _answers(release(), "a - b", "2 * x")  # loses test_add only
    paths = {"course": str(course.root), "source": str(course.source_notebook(LAB)),
             "gradebook": str(course.root / "gradebook.db"), "config": str(course.root / "nbgrader_config.py"),
             "other": str(course.root / "submitted" / "good" / LAB / f"{LAB}.ipynb"),
             "feedback": str(course.root / "feedback" / "good" / LAB / f"{LAB}.html"), "secret_env": SECRET_ENV,
             "marker": LEAK_MARKER, "udp_port": udp_port, "tcp_port": tcp_port}

    def fill(text: str) -> str:
        for key, value in paths.items():
            text = text.replace("{" + key + "}", str(value))
        return text
    written = release()
    written.cells[_index(written, "why_easy")].source = "<script>alert('answer')</script> Because **addition** is."
    subs = {
        "good": good(),
        "wrong": wrong(),
        "untouched": release(),
        "written_answer_with_script": _answers(written, "a + b", "2 * x"),
        "honest_alternative": _answers(release(), "def add(a, b):\n    import numpy as np\n    return np.add(a, b)",
                                       "def double(x):\n    total = x\n    for _ in range(1):\n        total = total + x\n    return total"),
        "noisy_but_right": _answers(release(), NOISY_BUT_RIGHT.strip(), "2 * x"),
        # limits
        "endless_cell": _after(good(), "add", "while True:\n    pass"),
        "endless_kernel": _after(good(), "add", "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n"
                                                "    except KeyboardInterrupt:\n        pass"),
        "kernel_dies": _after(good(), "add", "import os\nos._exit(1)"),
        "huge_output": _after(good(), "add", "for _ in range(2000):\n    print('x' * 50_000)"),
        "floods_memory": _at_end(good(), FLOODS_MEMORY),
        "huge_allocation": _after(good(), "add", "try:\n    hog = bytearray(2**50)\nexcept MemoryError:\n"
                                                 "    print('refused')"),
        "fork_bomb": _after(good(), "add", FORK_BOMB),
        # issue #12: getting out of the sandbox
        "reads_secrets": _after(good(), "add", fill(READS_SECRETS)),
        "attacks_others": _after(good(), "add", fill(ATTACKS_OTHERS)),
        "looks_for_leaks": _after(good(), "double", LOOKS_FOR_LEAKS),
        "forges_grades": _after(wrong(), "add", fill(FORGES_GRADES)),
        "leaves_a_daemon": _after(good(), "add", LEAVES_A_DAEMON),
        "stops_the_grader": _at_end(good(), STOPS_THE_GRADER),
        "native_code": _after(good(), "add", fill(NATIVE_CODE)),
        "crashes_itself": _at_end(good(), CRASHES_ITSELF),
        "network": _after(good(), "add", fill(NETWORK)),
        # issue #13: deciding the verdict
        "eq_always_true": _answers(release(), EVIL_INT.strip(), "2 * x"),
        "array_subclasses": _answers(release(), EVIL_ARRAY.strip(), "2 * x"),
        "reads_the_test": _answers(release(), READS_THE_TEST.strip(), "2 * x"),
        "patches_the_referees_tools": _after(wrong(), "add", PATCHES_THE_REFEREES_TOOLS),
        "hijacks_the_agent": _after(wrong(), "add", HIJACKS_THE_AGENT),
        "redirects_the_grader": _after(good(), "add", REDIRECTS_THE_GRADER),
        "shows_scripts": _after(good(), "add", SHOWS_SCRIPTS),
    }
    tampered = wrong()  # test_add deleted, test_double emptied and moved to the top: the real tests still run
    del tampered.cells[_index(tampered, "test_add")]
    moved = tampered.cells.pop(_index(tampered, "test_double"))
    moved.source = "pass"
    tampered.cells.insert(0, moved)
    subs["tampered_tests"] = tampered
    reordered = good()
    reordered.cells.reverse()  # tests before answers: graded in the release's order
    subs["reordered"] = reordered
    files = {name: nbformat.writes(nb).encode() for name, nb in subs.items()}
    files["not_json"] = b'{"cells": [ this is not json'
    files["not_a_notebook"] = json.dumps({"hello": "world"}).encode()
    return files


def submit(course: Course, files: dict[str, bytes]) -> None:
    for student, content in files.items():
        folder = course.root / "submitted" / student / LAB
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{LAB}.ipynb").write_bytes(content)
