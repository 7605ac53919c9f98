"""nbgrader configuration for Batch Norm Labs; `course` reads this file as well."""

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "batch-norm-labs"
# Files beside a lab notebook that stay with the instructor: the typical mistakes used by
# `course demo` and the pipeline tests never reach students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mistakes.py"]

# Labs train small networks: allow each cell up to five minutes instead of nbgrader's 30 s.
c.ExecutePreprocessor.timeout = 300
# Keep grading logs readable: the kernel's start-up notices (e.g. about TCP transport) are not errors.
c.ExecutePreprocessor.extra_arguments = ["--IPKernelApp.log_level=ERROR"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
