"""The one-line error format (pipeline/errors.py)."""

from pipeline.errors import MAX_PART_CHARS, InputError, one_line


def test_a_long_quoted_path_is_cut_in_the_middle_keeping_the_reason():
    path = "/tmp/" + "x" * 2000
    error = InputError(f"cannot use {path}: the name is too long", where="output_dir",
                       hint="choose another folder with --output-dir")
    what = error.line().split(": ", 2)[2].split(" (choose")[0]
    assert len(what) == MAX_PART_CHARS
    assert what.startswith("cannot use /tmp/xxx") and "..." in what
    assert what.endswith("xxx: the name is too long")


def test_control_characters_become_spaces_and_short_text_is_kept():
    assert one_line("a\nb\x1b[31mc\r\n") == "a b [31mc"
    assert one_line("x" * 9, limit=9) == "x" * 9
    assert one_line("abcdefghij", limit=9) == "abc...hij"
