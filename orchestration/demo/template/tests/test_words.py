from textkit import title_case, word_count


def test_word_count_counts_words_separated_by_any_whitespace():
    assert word_count("one two\tthree\nfour") == 4


def test_word_count_of_empty_text_is_zero():
    assert word_count("   ") == 0


def test_title_case_capitalises_each_word():
    assert title_case("hello wORLD") == "Hello World"


def test_title_case_collapses_whitespace():
    assert title_case("  many   spaces ") == "Many Spaces"
