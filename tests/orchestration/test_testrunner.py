from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from orchestration.processes import clean_environment
from orchestration.testrunner import (
    CaseResult,
    CoverageReport,
    FileCoverage,
    Outcome,
    ReportError,
    ReportStatus,
    TestCounts,
    TestReport,
    failure_context,
    parse_cobertura,
    parse_junit,
    run_tests,
)

PYTEST = "python -m pytest -p no:cacheprovider -p no:django -p no:asyncio"
JUNIT = ".codemaestro/junit.xml"
COVERAGE = ".codemaestro/coverage.xml"

SAMPLE_TESTS = """\
import pytest


def test_adds():
    assert 1 + 1 == 2


def test_subtracts():
    assert 3 - 1 == 1, "subtraction is broken"


@pytest.fixture
def database():
    raise RuntimeError("database is down")


def test_queries(database):
    pass


@pytest.mark.skip(reason="not ready")
def test_later():
    pass


class TestGroup:
    def test_inside(self):
        assert True
"""

PASSING_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" tests="2">
    <testcase classname="tests.test_app" name="test_one" time="0.5"/>
    <testcase classname="tests.test_app" name="test_two" time="0.25"/>
  </testsuite>
</testsuites>
"""

FAILING_JUNIT = """<testsuite name="jest" tests="2">
  <testcase classname="cart" name="adds an item" file="src/cart.test.js" time="0.1"/>
  <testcase classname="cart" name="removes an item" file="src/cart.test.js" time="0.2">
    <failure message="expected 0, got 1" type="AssertionError">at cart.test.js:12</failure>
  </testcase>
</testsuite>
"""

COBERTURA = """<?xml version="1.0" ?>
<coverage version="7.6" lines-valid="6" lines-covered="4" line-rate="0.6667"
          branches-covered="1" branches-valid="2" branch-rate="0.5">
  <sources><source>/repo</source></sources>
  <packages>
    <package name="app" line-rate="0.6667">
      <classes>
        <class name="models.py" filename="app/models.py" line-rate="1">
          <lines><line number="1" hits="1"/><line number="2" hits="3"/></lines>
        </class>
        <class name="views.py" filename="app/views.py" line-rate="0.5">
          <lines><line number="1" hits="1"/><line number="2" hits="0"/></lines>
        </class>
        <class name="views.py$Inner" filename="app/views.py" line-rate="0.5">
          <lines>
            <line number="2" hits="0"/><line number="5" hits="2"/><line number="6" hits="0"/>
          </lines>
        </class>
      </classes>
    </package>
  </packages>
</coverage>
"""

# Copies prepared reports to where the runner asked for them, then exits with a code.
WRITE_REPORTS = """
import os, shutil, sys
junit, coverage, code = sys.argv[1:]
if junit:
    shutil.copy(junit, os.environ["CODEMAESTRO_JUNIT_XML"])
if coverage:
    shutil.copy(coverage, os.environ["CODEMAESTRO_COVERAGE_XML"])
sys.exit(int(code))
"""


@pytest.fixture
def worktree(tmp_path) -> Path:
    path = tmp_path / "worktree"
    (path / "tests").mkdir(parents=True)
    (path / "pytest.ini").write_text("[pytest]\n")
    return path


@pytest.fixture
def env() -> dict[str, str]:
    return clean_environment({})


def python(code: str, *args: str) -> str:
    return shlex.join(["python", "-c", code, *args])


def writing_reports(tmp_path: Path, junit: str | None, coverage: str | None = None, code=0) -> str:
    """A test command that writes the given report texts and exits with `code`."""
    paths = []
    for name, text in (("junit-src.xml", junit), ("coverage-src.xml", coverage)):
        if text is not None:
            (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name) if text is not None else "")
    return python(WRITE_REPORTS, *paths, str(code))


def test_records_every_case_of_a_real_pytest_run(worktree, env):
    # given
    (worktree / "tests" / "test_sample.py").write_text(SAMPLE_TESTS)
    has_coverage = importlib.util.find_spec("pytest_cov") is not None
    cov_args = f" --cov=. --cov-report=xml:{COVERAGE}" if has_coverage else ""

    # when
    report = run_tests(
        command=f"{PYTEST} --junitxml={JUNIT}{cov_args}", worktree=worktree, timeout=60, env=env
    )

    # then
    assert report.status == ReportStatus.FAILED
    assert report.problem == ""
    assert report.exit_code == 1
    assert report.summary == TestCounts(total=5, passed=2, failed=1, errors=1, skipped=1)
    assert [(c.classname, c.name, c.file, c.outcome, c.message) for c in report.cases] == [
        ("tests.test_sample", "test_adds", "tests/test_sample.py", Outcome.PASSED, ""),
        (
            "tests.test_sample",
            "test_subtracts",
            "tests/test_sample.py",
            Outcome.FAILED,
            "AssertionError: subtraction is broken\nassert (3 - 1) == 1",
        ),
        (
            "tests.test_sample",
            "test_queries",
            "tests/test_sample.py",
            Outcome.ERROR,
            'failed on setup with "RuntimeError: database is down"',
        ),
        ("tests.test_sample", "test_later", "tests/test_sample.py", Outcome.SKIPPED, "not ready"),
        ("tests.test_sample.TestGroup", "test_inside", "tests/test_sample.py", Outcome.PASSED, ""),
    ]
    assert report.cases[1].details.endswith(
        "E       AssertionError: subtraction is broken\n"
        "E       assert (3 - 1) == 1\n\n"
        "tests/test_sample.py:9: AssertionError"
    )
    assert all(case.duration >= 0 for case in report.cases)
    assert "1 failed, 2 passed, 1 skipped, 1 error" in report.output
    assert (report.coverage is not None) is has_coverage


def test_a_run_where_every_test_passes_is_passed(worktree, env):
    # given
    (worktree / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")

    # when
    report = run_tests(
        command=f"{PYTEST} --junitxml={JUNIT}", worktree=worktree, timeout=60, env=env
    )

    # then
    assert report.status == ReportStatus.PASSED
    assert report.summary == TestCounts(total=1, passed=1)
    assert report.exit_code == 0
    assert report.problem == ""
    assert report.warnings == []


def test_a_report_with_zero_tests_is_an_error(worktree, env):
    # when
    report = run_tests(
        command=f"{PYTEST} --junitxml={JUNIT}", worktree=worktree, timeout=60, env=env
    )

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == (
        "the JUnit report lists no test cases: 0 tests collected (the test command exited 5)"
    )
    assert report.cases == []


def test_a_command_that_writes_no_report_is_an_error(worktree, env):
    # when
    report = run_tests(command=python("print('ran')"), worktree=worktree, timeout=10, env=env)

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == (
        "the JUnit report .codemaestro/junit.xml was not written (the test command exited 0)"
    )
    assert report.output == "ran\n"
    assert report.exit_code == 0
    assert report.cases == []


def test_a_stale_report_from_an_earlier_run_is_not_used(worktree, env):
    # given
    (worktree / ".codemaestro").mkdir()
    (worktree / JUNIT).write_text(PASSING_JUNIT)

    # when
    report = run_tests(command=python("pass"), worktree=worktree, timeout=10, env=env)

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == (
        "the JUnit report .codemaestro/junit.xml was not written (the test command exited 0)"
    )
    assert (worktree / JUNIT).exists() is False


def test_a_truncated_report_is_an_error_with_the_parser_message(tmp_path, worktree, env):
    # given
    command = writing_reports(tmp_path, '<testsuite name="x"><testcase name="a"', code=1)

    # when
    report = run_tests(command=command, worktree=worktree, timeout=10, env=env)

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == (
        "the JUnit report .codemaestro/junit.xml is not valid XML: "
        "unclosed token: line 1, column 20 (the test command exited 1)"
    )
    assert report.cases == []


def test_a_report_that_is_not_junit_is_an_error(tmp_path, worktree, env):
    # given
    command = writing_reports(tmp_path, "<html><body>oops</body></html>")

    # when
    report = run_tests(command=command, worktree=worktree, timeout=10, env=env)

    # then
    assert report.problem == (
        "the JUnit report .codemaestro/junit.xml is not JUnit XML: its root element is <html> "
        "(the test command exited 0)"
    )


def test_a_timeout_is_an_error(worktree, env):
    # when
    report = run_tests(
        command=python("import time; print('started', flush=True); time.sleep(30)"),
        worktree=worktree,
        timeout=1,
        env=env,
    )

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == "the test command timed out after 1 s"
    assert report.timed_out is True
    assert report.exit_code is None
    assert report.output == "started\n"


def test_a_missing_test_tool_is_an_error(worktree, env):
    # when
    report = run_tests(command="no-such-test-tool --all", worktree=worktree, timeout=10, env=env)

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == "command not found: no-such-test-tool"


def test_a_command_that_deletes_the_worktree_is_an_error(worktree, env):
    # when
    report = run_tests(
        command=python("import os, shutil; shutil.rmtree(os.getcwd())"),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == "the worktree disappeared while the test command ran"


def test_a_failing_case_fails_the_run_even_when_the_command_exits_zero(tmp_path, worktree, env):
    # when
    report = run_tests(
        command=writing_reports(tmp_path, FAILING_JUNIT, code=0),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.status == ReportStatus.FAILED
    assert report.problem == ""
    assert report.summary == TestCounts(total=2, passed=1, failed=1)


def test_a_nonzero_exit_with_every_case_passing_is_an_error(tmp_path, worktree, env):
    # when
    report = run_tests(
        command=writing_reports(tmp_path, PASSING_JUNIT, code=3),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == "the test command exited 3 although every test passed"
    assert report.summary == TestCounts(total=2, passed=2)


def test_attaches_the_coverage_report_the_command_wrote(tmp_path, worktree, env):
    # when
    report = run_tests(
        command=writing_reports(tmp_path, PASSING_JUNIT, COBERTURA),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.status == ReportStatus.PASSED
    assert report.coverage == parse_cobertura(tmp_path / "coverage-src.xml")
    assert report.warnings == []


def test_a_missing_coverage_report_is_not_an_error(tmp_path, worktree, env):
    # when
    report = run_tests(
        command=writing_reports(tmp_path, PASSING_JUNIT), worktree=worktree, timeout=10, env=env
    )

    # then
    assert report.status == ReportStatus.PASSED
    assert report.coverage is None
    assert report.warnings == []


def test_a_malformed_coverage_report_is_only_a_warning(tmp_path, worktree, env):
    # when
    report = run_tests(
        command=writing_reports(tmp_path, PASSING_JUNIT, "<coverage line-rate="),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.status == ReportStatus.PASSED
    assert report.coverage is None
    assert report.warnings == [
        "the coverage report .codemaestro/coverage.xml is not valid XML: "
        "unclosed token: line 1, column 0"
    ]


def test_a_report_linking_outside_the_worktree_is_not_read(tmp_path, worktree, env):
    # given: the command replaces its report with a link to a file elsewhere
    (tmp_path / "elsewhere.xml").write_text(PASSING_JUNIT)
    link = "import os; os.symlink(os.environ['TARGET'], os.environ['CODEMAESTRO_JUNIT_XML'])"
    env = {**env, "TARGET": str(tmp_path / "elsewhere.xml")}

    # when
    report = run_tests(command=python(link), worktree=worktree, timeout=10, env=env)

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == (
        "the JUnit report .codemaestro/junit.xml links outside the worktree "
        "(the test command exited 0)"
    )
    assert report.cases == []


def test_a_report_path_outside_the_worktree_is_refused(worktree, env):
    # when
    report = run_tests(
        command=python("pass"), worktree=worktree, timeout=10, env=env, junit_path="../junit.xml"
    )

    # then
    assert report.status == ReportStatus.ERROR
    assert report.problem == "the report path ../junit.xml is outside the worktree"


def test_the_command_learns_the_report_paths_from_its_environment(worktree, env):
    # when
    report = run_tests(
        command=python(
            "import os; print(os.environ['CODEMAESTRO_JUNIT_XML']); "
            "print(os.environ['CODEMAESTRO_COVERAGE_XML'])"
        ),
        worktree=worktree,
        timeout=10,
        env=env,
    )

    # then
    assert report.output == f"{worktree / JUNIT}\n{worktree / COVERAGE}\n"


def test_parses_a_single_testsuite_with_file_attributes(tmp_path):
    # given
    path = tmp_path / "junit.xml"
    path.write_text(FAILING_JUNIT)

    # when
    cases = parse_junit(path)

    # then
    assert cases == [
        CaseResult(
            name="adds an item",
            classname="cart",
            file="src/cart.test.js",
            outcome=Outcome.PASSED,
            duration=0.1,
            message="",
            details="",
        ),
        CaseResult(
            name="removes an item",
            classname="cart",
            file="src/cart.test.js",
            outcome=Outcome.FAILED,
            duration=0.2,
            message="expected 0, got 1",
            details="at cart.test.js:12",
        ),
    ]


def test_parses_nested_suites_errors_and_captured_output(tmp_path):
    # given
    path = tmp_path / "junit.xml"
    path.write_text(
        """<testsuites>
          <testsuite name="outer">
            <testsuite name="inner">
              <testcase classname="pkg.test_mod.TestThing" name="test_a" time="oops">
                <error message="boom" type="RuntimeError">Traceback: boom</error>
                <system-out>printed before the crash</system-out>
              </testcase>
            </testsuite>
          </testsuite>
          <testsuite name="second">
            <testcase classname="pkg.test_other" name="test_b" time="1.5">
              <skipped type="pytest.skip"/>
            </testcase>
          </testsuite>
        </testsuites>"""
    )

    # when
    cases = parse_junit(path)

    # then
    assert cases == [
        CaseResult(
            name="test_a",
            classname="pkg.test_mod.TestThing",
            file="pkg/test_mod.py",
            outcome=Outcome.ERROR,
            duration=0.0,
            message="boom",
            details="Traceback: boom\n\n--- captured stdout ---\nprinted before the crash",
        ),
        CaseResult(
            name="test_b",
            classname="pkg.test_other",
            file="pkg/test_other.py",
            outcome=Outcome.SKIPPED,
            duration=1.5,
            message="pytest.skip",
            details="",
        ),
    ]


def test_a_case_that_failed_and_errored_counts_as_failed(tmp_path):
    # given: pytest reports a teardown error on an already failed test this way
    path = tmp_path / "junit.xml"
    path.write_text(
        """<testsuite><testcase classname="t" name="test_x">
          <error message="teardown broke">teardown trace</error>
          <failure message="assert 1 == 2">call trace</failure>
        </testcase></testsuite>"""
    )

    # when
    [case] = parse_junit(path)

    # then
    assert case.outcome == Outcome.FAILED
    assert case.message == "assert 1 == 2"
    assert case.details == "call trace\n\nteardown trace"


def test_finds_the_file_of_a_case_in_the_project(tmp_path):
    # given: a module whose name is capitalised, which the classname alone can't tell
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "Checks.py").write_text("")
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite><testcase classname="suite.Checks.TestX" name="t"/></testsuite>')

    # when
    [case] = parse_junit(path, root=tmp_path)

    # then
    assert case.file == "suite/Checks.py"


def test_parsing_an_empty_report_raises_a_report_error(tmp_path):
    # given
    path = tmp_path / "junit.xml"
    path.write_text("")

    # when
    with pytest.raises(ReportError) as error:
        parse_junit(path)

    # then
    assert str(error.value) == "is empty"


def test_parses_cobertura_totals_and_merges_classes_per_file(tmp_path):
    # given
    path = tmp_path / "coverage.xml"
    path.write_text(COBERTURA)

    # when
    coverage = parse_cobertura(path)

    # then
    assert coverage == CoverageReport(
        line_rate=0.6667,
        lines_covered=4,
        lines_valid=6,
        branch_rate=0.5,
        files=[
            FileCoverage(path="app/models.py", line_rate=1.0, lines_covered=2, lines_valid=2),
            FileCoverage(path="app/views.py", line_rate=0.5, lines_covered=2, lines_valid=4),
        ],
    )


def test_cobertura_without_totals_or_branches_sums_the_files(tmp_path):
    # given
    path = tmp_path / "coverage.xml"
    path.write_text(
        """<coverage branches-valid="0" branch-rate="0"><packages><package><classes>
          <class filename="a.py"><lines><line number="1" hits="0"/><line number="2" hits="1"/>
          <line number="3" hits="1"/></lines></class>
          <class filename="b.py" line-rate="0.25"/>
        </classes></package></packages></coverage>"""
    )

    # when
    coverage = parse_cobertura(path)

    # then
    assert coverage == CoverageReport(
        line_rate=2 / 3,
        lines_covered=2,
        lines_valid=3,
        branch_rate=None,
        files=[
            FileCoverage(path="a.py", line_rate=2 / 3, lines_covered=2, lines_valid=3),
            FileCoverage(path="b.py", line_rate=0.25, lines_covered=0, lines_valid=0),
        ],
    )


def make_report(cases: list[CaseResult], output: str = "", **fields) -> TestReport:
    values = {
        "status": ReportStatus.FAILED,
        "summary": TestCounts.of(cases),
        "cases": cases,
        "coverage": None,
        "output": output,
        "exit_code": 1,
        "timed_out": False,
        "duration": 1.0,
    }
    return TestReport(**(values | fields))


def make_case(name: str, outcome: Outcome, message: str = "", details: str = "") -> CaseResult:
    return CaseResult(
        name=name,
        classname="tests.test_app",
        file="tests/test_app.py",
        outcome=outcome,
        duration=0.1,
        message=message,
        details=details,
    )


def test_failure_context_lists_failing_tests_then_the_output_tail():
    # given
    report = make_report(
        [
            make_case("test_ok", Outcome.PASSED),
            make_case(
                "test_sum", Outcome.FAILED, "assert 3 == 4", "def test_sum():\nE  assert 3 == 4"
            ),
            make_case("test_db", Outcome.ERROR, "database is down"),
            make_case("test_later", Outcome.SKIPPED, "not ready"),
        ],
        output="collected 4 items\n1 failed, 1 passed, 1 skipped, 1 error\n",
    )

    # when
    context = failure_context(report)

    # then
    assert context == (
        "Tests failed: 1 failed, 1 errored, 1 passed, 1 skipped of 4.\n\n"
        "Failing tests:\n"
        "[failed] tests.test_app.test_sum (tests/test_app.py)\n"
        "assert 3 == 4\n"
        "def test_sum():\n"
        "E  assert 3 == 4\n"
        "[error] tests.test_app.test_db (tests/test_app.py)\n"
        "database is down\n\n"
        "Output (end):\n"
        "collected 4 items\n"
        "1 failed, 1 passed, 1 skipped, 1 error"
    )


def test_failure_context_of_an_unusable_run_states_the_problem():
    # given
    report = make_report(
        [],
        output="ImportError: No module named 'app'",
        status=ReportStatus.ERROR,
        problem=(
            "the JUnit report .codemaestro/junit.xml was not written (the test command exited 4)"
        ),
    )

    # when
    context = failure_context(report)

    # then
    assert context == (
        "The test run is unusable: the JUnit report .codemaestro/junit.xml was not written "
        "(the test command exited 4). (0 failed, 0 errored, 0 passed, 0 skipped of 0)\n\n"
        "Output (end):\n"
        "ImportError: No module named 'app'"
    )


def test_failure_context_stays_within_the_limit_and_keeps_the_output_end():
    # given: many failing tests with long tracebacks and a megabyte of output
    cases = [
        make_case(f"test_{n}", Outcome.FAILED, f"failure {n}", "trace line\n" * 1_000)
        for n in range(100)
    ]
    report = make_report(cases, output="noise\n" * 170_000 + "LAST LINE")

    # when
    context = failure_context(report, limit_chars=4_000)

    # then
    assert len(context) <= 4_000
    assert context.index("[failed] tests.test_app.test_0 ") < context.index("Output (end):")
    assert "more failing tests not shown: tests.test_app.test_" in context
    assert context.endswith("noise\nLAST LINE")
