"""What instructors run: the `course` command, and grading that holds against hostile submissions.

Students never import this package; notebooks use the helpers one level up (`import course_utils as cu`).

- `cli`: the `course` command (release, validate, grade, demo).
- `course`: a course folder driven through nbgrader (release, submit, scores, typical mistakes).
- `classroom`: grading a whole class into nbgrader's gradebook, feedback pages and summaries.
- `validation`: proving each lab grades as intended.
- `pool`: the workers a grading run uses, and the processes it owns.
- `jobs`: grading one submission; `sandbox` and `cgroups` contain it, `course_utils.kernel` (the zygote, the
  agent, the wire format) runs inside it; `client` and `referee` decide its tests from plain data; `feedback`
  shows it.
"""
