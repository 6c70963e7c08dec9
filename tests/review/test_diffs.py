"""The diff pipeline on real git output: every edge case the viewer must show right."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import gitops
from review.diffs import fragments, highlight, render
from review.diffs.fragments import DiffRef
from review.diffs.parse import diff_text, file_entries, parse_diff, parse_file
from tests.gitops.gitrepo import init_repo, switch, write
from tests.review.conftest import commit_all, git


@pytest.fixture
def repo(tmp_path):
    return init_repo(tmp_path / "repo")


def _edge_case_repo(repo):
    """main with six files; a branch that touches each in a different way."""
    write(repo / "mod.py", "x = 1\ny = 2\n")
    write(repo / "old_name.txt", "stays the same\n")
    write(repo / "gone.txt", "deleted later\n")
    write(repo / "run.sh", "#!/bin/sh\necho hi\n")
    (repo / "blob.bin").write_bytes(b"\x00\x01\x02\x03")
    write(repo / "tail.txt", "a\nb")  # no newline at the end, on the old side
    base = commit_all(repo, "base")
    switch(repo, "topic", create=True)
    write(repo / "mod.py", "x = 1\ny = 3")  # and no newline at the end on the new side
    git(repo, "mv", "old_name.txt", "new_name.txt")
    (repo / "gone.txt").unlink()
    (repo / "run.sh").chmod(0o755)
    (repo / "blob.bin").write_bytes(b"\x00\x09")
    write(repo / "added.py", '"""A docstring\nover two lines."""\n')
    write(repo / "tail.txt", "a\nb\n")
    head = commit_all(repo, "every kind of change")
    switch(repo, "main")
    return base, head


def test_file_entries_name_every_kind_of_change(repo):
    # given
    base, head = _edge_case_repo(repo)
    # when
    entries = {e.path: e for e in file_entries(repo, base, head)}
    # then
    assert {path: e.status for path, e in entries.items()} == {
        "added.py": "added",
        "blob.bin": "modified",
        "gone.txt": "deleted",
        "mod.py": "modified",
        "new_name.txt": "renamed",
        "run.sh": "mode",
        "tail.txt": "modified",
    }
    assert entries["new_name.txt"].old_path == "old_name.txt"
    assert entries["blob.bin"].binary is True
    assert (entries["run.sh"].old_mode, entries["run.sh"].new_mode) == ("100644", "100755")
    assert (entries["added.py"].additions, entries["gone.txt"].deletions) == (2, 1)
    assert entries["added.py"].old_mode is None and entries["gone.txt"].new_mode is None


def test_parse_marks_missing_newlines_on_either_side(repo):
    # given
    base, head = _edge_case_repo(repo)
    # when
    files = {f.path: f for f in parse_diff(diff_text(repo, base, head))}
    # then: mod.py loses its final newline, tail.txt gains one
    mod_lines = [line for hunk in files["mod.py"].hunks for line in hunk.lines]
    assert [(ln.kind, ln.text, ln.no_newline) for ln in mod_lines] == [
        (" ", "x = 1", False),
        ("-", "y = 2", False),
        ("+", "y = 3", True),
    ]
    tail_lines = [line for hunk in files["tail.txt"].hunks for line in hunk.lines]
    assert [(ln.kind, ln.text, ln.no_newline) for ln in tail_lines] == [
        (" ", "a", False),
        ("-", "b", True),
        ("+", "b", False),
    ]


def test_parse_keeps_binary_rename_mode_and_deletion_apart(repo):
    base, head = _edge_case_repo(repo)
    files = {f.path: f for f in parse_diff(diff_text(repo, base, head))}
    assert files["blob.bin"].binary and not files["blob.bin"].hunks
    assert (files["new_name.txt"].status, files["new_name.txt"].old_path) == (
        "renamed",
        "old_name.txt",
    )
    assert files["new_name.txt"].hunks == []
    assert (files["run.sh"].status, files["run.sh"].new_mode) == ("mode", "100755")
    gone = files["gone.txt"]
    assert (gone.status, gone.deletions, gone.new_blob) == ("deleted", 1, None)
    added = files["added.py"]
    assert (added.status, added.old_blob, added.additions) == ("added", None, 2)


def test_fragments_explain_files_without_lines(repo):
    base, head = _edge_case_repo(repo)
    ref = DiffRef(repo, base, head)
    assert fragments.fragment(ref, "blob.bin", None, "split").note == "binary file"
    renamed = fragments.fragment(ref, "new_name.txt", "old_name.txt", "split")
    assert renamed.note == "renamed from old_name.txt; content unchanged"
    mode = fragments.fragment(ref, "run.sh", None, "unified")
    assert mode.note == "mode 100644 → 100755; content unchanged"
    assert mode.rows == [] and renamed.rows == []


def test_a_missing_newline_shows_a_marker(repo):
    base, head = _edge_case_repo(repo)
    rows = fragments.fragment(DiffRef(repo, base, head), "mod.py", None, "unified").rows
    marked = [html for html, _, _ in rows if "No newline at end of file" in html]
    assert len(marked) == 1 and '<span class="mi">3</span>' in marked[0]


def test_highlighting_a_whole_file_keeps_a_docstring_right_inside_a_hunk(repo):
    # given: a long docstring; the change is deep inside it, so the hunk starts mid-string
    doc = '"""Start of a docstring.\n' + "".join(f"line {n}\n" for n in range(20)) + '"""\n'
    write(repo / "doc.py", doc + "x = 1\n")
    base = commit_all(repo, "doc")
    write(repo / "doc.py", doc.replace("line 10\n", "line ten\n") + "x = 1\n")
    head = commit_all(repo, "edit inside the docstring")
    # when
    rows = fragments.fragment(DiffRef(repo, base, head), "doc.py", None, "unified").rows
    # then: the changed line and its context are coloured as a string (pygments' "sd")
    code_rows = [html for html, old, new in rows if old or new]
    assert code_rows and all('<span class="sd">' in html for html in code_rows)
    assert any("line ten" in html and "d-add" in html for html in code_rows)


def test_unified_and_split_views_pair_lines(repo):
    write(repo / "a.txt", "".join(f"{n}\n" for n in range(1, 21)))
    base = commit_all(repo, "a")
    write(repo / "a.txt", "".join(f"{n}\n" for n in range(1, 21)).replace("10\n", "ten\nTEN\n"))
    head = commit_all(repo, "b")
    ref = DiffRef(repo, base, head)
    unified = fragments.fragment(ref, "a.txt", None, "unified").rows
    split = fragments.fragment(ref, "a.txt", None, "split").rows
    assert [(o, n) for _, o, n in unified if o or n] == [
        (7, 7), (8, 8), (9, 9), (10, None), (None, 10), (None, 11), (11, 12), (12, 13), (13, 14),
    ]  # fmt: skip
    assert [(o, n) for _, o, n in split if o or n] == [
        (7, 7), (8, 8), (9, 9), (10, 10), (None, 11), (11, 12), (12, 13), (13, 14),
    ]  # fmt: skip
    # the gaps before and after the hunk can be expanded
    gaps = [html for html, o, n in split if "d-gap" in html]
    assert len(gaps) == 2
    assert 'data-o="1" data-n="1" data-c="6"' in gaps[0]
    assert 'data-o="14" data-n="15" data-c="7"' in gaps[1]
    context = fragments.context(ref, "a.txt", None, "split", old_start=14, new_start=15, count=7)
    assert [(o, n) for _, o, n in context] == [(14 + i, 15 + i) for i in range(7)]


def test_an_enormous_diff_parses_and_opens_in_chunks(repo):
    # given: one file of 60,000 added lines, and 200 small files
    write(repo / "huge.py", "".join(f"value_{n} = {n}  # row {n}\n" for n in range(60_000)))
    for n in range(200):
        write(repo / f"pkg/m{n:03}.py", f"def f{n}():\n    return {n}\n")
    base = git(repo, "rev-parse", "HEAD")
    head = commit_all(repo, "enormous")
    # when
    started = time.perf_counter()
    entries = file_entries(repo, base, head)
    first = fragments.fragment(DiffRef(repo, base, head), "huge.py", None, "unified", 0)
    elapsed = time.perf_counter() - started
    # then: stats for all files; only the first chunk of the huge file rendered
    assert len(entries) == 201
    assert sum(e.additions for e in entries) == 60_400
    assert len(first.rows) == render.CHUNK_ROWS and first.has_more
    assert first.total_rows == 60_001  # the hunk header and every line
    assert "not highlighted: too large to highlight" in first.note
    assert elapsed < 5  # generous for a busy CI box; the benchmark holds the real target
    last = fragments.fragment(DiffRef(repo, base, head), "huge.py", None, "unified", 40)
    assert not last.has_more and last.rows[-1][2] == 60_000


def test_crlf_and_unicode_lines_keep_their_numbers(repo):
    write(repo / "w.txt", "un\r\ndeux\r\n")
    write(repo / "u.py", "s = 'naïve'\n# \x0c form feed\nt = '日本'\n")
    base = commit_all(repo, "a")
    write(repo / "w.txt", "un\r\nDEUX\r\n")
    write(repo / "u.py", "s = 'naïve'\n# \x0c form feed\nt = '日本語'\n")
    head = commit_all(repo, "b")
    ref = DiffRef(repo, base, head)
    crlf = fragments.fragment(ref, "w.txt", None, "unified").rows
    assert [(o, n) for _, o, n in crlf if o or n] == [(1, 1), (2, None), (None, 2)]
    uni = fragments.fragment(ref, "u.py", None, "unified").rows
    assert [(o, n) for _, o, n in uni if o or n] == [(1, 1), (2, 2), (3, None), (None, 3)]
    assert "日本語" in uni[-1][0]


def test_a_pathological_file_falls_back_to_plain_text():
    minified = "var a=" + "1+" * 5_000 + "1;\n"
    result = highlight.highlight_file(minified, "bundle.js")
    assert (result.highlighted, result.reason) == (False, "lines too long to highlight")
    assert result.lines[0].startswith("var a=1+1+")


def test_the_lexer_time_budget_falls_back_to_plain_text():
    text = "".join(f"def f{n}(x):\n    return x * {n}\n" for n in range(2_000))
    result = highlight.highlight_file(text, "slow.py", budget=0.0)
    assert (result.highlighted, result.reason) == (False, "highlighting took too long")
    assert len(result.lines) == 4_001


def test_a_file_with_too_many_lines_is_not_lexed():
    text = "x = 1\n" * (highlight.MAX_LINES + 1)
    result = highlight.highlight_file(text, "long.py")
    assert (result.highlighted, result.reason) == (False, "too large to highlight")


def test_highlighting_escapes_markup_in_code():
    result = highlight.highlight_file('x = "<script>alert(1)</script>"\n', "x.py")
    assert "<script>" not in result.lines[0]
    assert "&lt;script&gt;" in result.lines[0]


def test_a_long_file_within_the_limits_is_highlighted_line_by_line(monkeypatch):
    # The throughput itself (>= 10k lines/s) is measured by `bin/bench diffs`.
    monkeypatch.setattr(highlight, "MAX_LINES", 100_000)
    text = "".join(
        f'def handler_{n}(request, code):\n    """Doc {n}."""\n    return {{"n": {n}}}\n'
        for n in range(4_000)
    )
    result = highlight.highlight_file(text, "views.py", budget=60)
    assert result.highlighted
    assert len(result.lines) == 12_001
    assert result.lines[3_000].startswith('<span class="k">def</span>')


def test_the_fast_parser_reads_every_edge_case_as_unidiff_does(repo):
    # given: every kind of change, a name git has to quote, CRLF lines, and the whole
    # change set's diff, from which the parser must pick each file's own section
    base, _ = _edge_case_repo(repo)
    switch(repo, "topic")
    write(repo / 'tab\tand "quote".txt', "odd name\n")
    write(repo / "crlf.txt", "one\r\ntwo\r\n")
    head = commit_all(repo, "more")
    text = diff_text(repo, base, head)
    slow = {f.path: f for f in parse_diff(text)}
    for entry in file_entries(repo, base, head):
        # when
        fast = parse_file(text, entry.path, entry.old_path)
        # then: the same; unidiff leaves a quoted name quoted, where the file list has it
        quoted = '"b/' + entry.path.replace("\t", "\\t").replace('"', '\\"') + '"'
        expected = slow.get(entry.path) or replace(
            slow[quoted], path=entry.path, old_path=entry.path
        )
        assert fast == expected, entry.path


def test_a_diff_past_the_size_limit_is_not_parsed(repo, monkeypatch):
    base, head = _edge_case_repo(repo)
    monkeypatch.setattr(fragments, "MAX_DIFF_CHARS", 100)
    fragment = fragments.fragment(DiffRef(repo, base, head), "added.py", None, "split")
    assert (fragment.rows, fragment.note) == ([], "diff too large to show (0 MB)")


def test_a_deleted_file_and_an_added_file_render_one_side(repo):
    write(repo / "old.py", "a = 1\n")
    base = commit_all(repo, "old")
    (repo / "old.py").unlink()
    write(repo / "new.py", "b = 2\n")
    head = commit_all(repo, "swap")
    ref = DiffRef(repo, base, head)
    gone = fragments.fragment(ref, "old.py", None, "split").rows
    added = fragments.fragment(ref, "new.py", None, "split").rows
    assert [(o, n) for _, o, n in gone if o or n] == [(1, None)]
    assert [(o, n) for _, o, n in added if o or n] == [(None, 1)]
    assert all("d-gap" not in html for html, _, _ in gone + added)
    assert gitops.head_commit(repo) == head
