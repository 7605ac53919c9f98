"""What grading produces, in one shape: a test's outcome, a failure whose kind knows whose fault it is, a
submission's result. Every module of the grading package reads and writes these; none parses a string.

The referee decides each test (`TestOutcome`); a job gathers them into a `SubmissionOutcome` with the notes
of its run and, when the submission could not be graded, a `Failure`; the classroom stores that outcome,
renders the feedback page from it and exports it. A failure's kind says whether the grading machine is to
blame (graded again by the next run) or the submission (its status, with the reason, is final).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field


class Blame(enum.Enum):
    """Whose doing a failure is."""

    SUBMISSION = "submission"  # final: the student is told why and what to do
    MACHINE = "machine"  # the grading machine's: never the student's, graded again by the next run


class FailureKind(enum.Enum):
    """Why a submission has no grade. The value is the short reason people read."""

    MISSING = "missing"  # no notebook under the expected name (the detail says what was found instead)
    NOT_A_NOTEBOOK = "not a notebook"  # not JSON, not UTF-8, not nbformat, too large
    WRONG_LAB = "wrong lab"  # a notebook of another lab
    UNSAFE_FILE = "unsafe file"  # a symbolic link, device or other special file in the submission
    MALFORMED_FILE = "malformed file"  # a file beside the notebook that grading reads (timestamp.txt) is unreadable
    SANDBOX = "sandbox failed"
    KERNEL_START = "kernel did not start"
    WORKER_LOST = "grading worker lost"
    GRADER_ERROR = "grader error"  # any unexpected exception in the grading machinery

    @property
    def blame(self) -> Blame:
        submission = (FailureKind.MISSING, FailureKind.NOT_A_NOTEBOOK, FailureKind.WRONG_LAB, FailureKind.UNSAFE_FILE,
                      FailureKind.MALFORMED_FILE)
        return Blame.SUBMISSION if self in submission else Blame.MACHINE


@dataclass(frozen=True)
class Failure:
    """Why a submission could not be graded at all."""

    kind: FailureKind
    detail: str = ""

    @property
    def machine(self) -> bool:
        return self.kind.blame is Blame.MACHINE

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


class NoteKind(enum.Enum):
    """What happened while a submission ran that its grade alone does not say."""

    CELL_TIMEOUT = "cell time limit"
    TIME_LIMIT = "time limit"
    MEMORY_LIMIT = "memory limit"
    KERNEL_DIED = "kernel died"
    OUTPUT_TRUNCATED = "output truncated"
    STOPPED = "stopped after a failed test"  # mutation testing needs only whether some test fails


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


@dataclass(frozen=True)
class TestOutcome:
    """One graded cell of one submission: an autograded test decided by the referee, or a written answer whose
    score a person gives (`autograded` False, `score` None until then)."""

    grade_id: str
    max_points: float
    score: float | None
    autograded: bool = True
    checks: str = ""  # the test's docstring: what it checks (never its code)
    message: str = ""  # why it failed, for the student
    ran: bool = True  # False when the kernel was lost or time ran out before it
    comment: str = ""  # a written answer's comment from the person who graded it

    @property
    def passed(self) -> bool:
        return self.score is not None and self.score >= self.max_points


@dataclass(frozen=True)
class Late:
    """How late a submission came, what the late policy took, and the score left."""

    seconds: float
    penalty: float
    score: float  # the autograded (and hand-graded, once given) score after the penalty


class Status(enum.Enum):
    """How a submission ended."""

    GRADED = "graded"
    MISSING = "missing"
    NOT_A_NOTEBOOK = "not a notebook"
    WRONG_LAB = "wrong lab"
    UNSAFE_FILE = "unsafe file"
    MALFORMED_FILE = "malformed file"
    MACHINE_FAILURE = "not graded (grading machine)"  # graded again by the next run


_STATUS = {FailureKind.MISSING: Status.MISSING, FailureKind.NOT_A_NOTEBOOK: Status.NOT_A_NOTEBOOK,
           FailureKind.WRONG_LAB: Status.WRONG_LAB, FailureKind.UNSAFE_FILE: Status.UNSAFE_FILE, FailureKind.MALFORMED_FILE: Status.MALFORMED_FILE}


@dataclass
class SubmissionOutcome:
    """Everything grading one student's notebook for one lab produced, as stored and reported."""

    lab: str
    student: str
    tests: list[TestOutcome] = field(default_factory=list)
    failure: Failure | None = None
    notes: list[Note] = field(default_factory=list)
    runtime_s: float = 0.0
    worker: str = ""
    isolated: bool = True  # graded in a sandbox (False only under --no-isolation)
    reused: bool = False  # unchanged since an earlier run, so not graded again

    @property
    def status(self) -> Status:
        if self.failure is None:
            return Status.GRADED
        return Status.MACHINE_FAILURE if self.failure.machine else _STATUS[self.failure.kind]

    @property
    def auto_score(self) -> float:
        return sum(t.score or 0.0 for t in self.tests if t.autograded)

    @property
    def max_auto_score(self) -> float:
        return sum(t.max_points for t in self.tests if t.autograded)

    def lost(self) -> set[str]:
        """The autograded tests that did not earn all of their points."""
        return {t.grade_id for t in self.tests if t.autograded and not t.passed}

    def to_json(self) -> dict:
        data = asdict(self)
        data["failure"] = None if self.failure is None else {"kind": self.failure.kind.name,
                                                             "detail": self.failure.detail}
        data["notes"] = [{"kind": n.kind.name, "detail": n.detail} for n in self.notes]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionOutcome":
        failure = data.get("failure")
        return cls(lab=data["lab"], student=data["student"], tests=[TestOutcome(**t) for t in data.get("tests", [])],
                   failure=None if failure is None else Failure(FailureKind[failure["kind"]], failure["detail"]),
                   notes=[Note(NoteKind[n["kind"]], n["detail"]) for n in data.get("notes", [])],
                   runtime_s=data.get("runtime_s", 0.0), worker=data.get("worker", ""),
                   isolated=data.get("isolated", True), reused=data.get("reused", False))


class GradingInterrupted(Exception):
    """A grading run stopped by Ctrl-C or a hang-up: every finished submission is recorded, the rest are not."""

    def __init__(self, lab: str, graded: int, left: int):
        super().__init__(f"{lab}: {graded} graded, {left} left")
        self.lab, self.graded, self.left = lab, graded, left
