"""nbgrader configuration for Batch Norm Labs; `course` reads this file as well."""

from nbgrader.converters import GenerateAssignment

from course_utils.grading.release import InstructorOnly

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "batch-norm-labs"
# Files beside a lab notebook that stay with the instructor: the typical mistakes (`course demo`, `course
# validate`) and the mutants marked equivalent (`course mutants`) never reach students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mistakes.py",
                            "equivalent_mutants.json"]
# `course validate` fails a lab whose tests kill less than this share of the non-equivalent mutants.
c.Mutants.threshold = 0.9
# Instructor-only cells (tag `instructor`) and the run's widget state stay out of the student version.
c.GenerateAssignment.preprocessors = [InstructorOnly, *GenerateAssignment.class_traits()["preprocessors"].default()]

# Labs train small networks: allow each cell up to five minutes instead of nbgrader's 30 s.
c.ExecutePreprocessor.timeout = 300
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# Pages nbgrader renders from submissions (formgrader, nbgrader generate_feedback) run no script from them.
c.HTMLExporter.sanitize_html = True
