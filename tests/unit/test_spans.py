"""Ring (a): protecting literal spans from the translator and putting them back."""

import random

import pytest

from engine.text.spans import SENTINEL_RE, Protected, protect, protect_many, restore, strip_sentinels

# Texts that must survive protect -> restore byte for byte.
ROUND_TRIP_TEXTS = [
    "",
    " ",
    "\n\n",
    "Plain English sentence with no spans at all.",
    "```python\ndef f(x):\n    return {'a': '%s' % x, 'b': f'{x}'}\n```\nExplain the code above.",
    "~~~\n`inner` and $math$ and http://x.y\n~~~",
    "```js\nconsole.log(`template ${x}`)\n```",
    "Unclosed fence:\n```bash\necho $HOME\nrm -rf /tmp/x",
    "```\n```",
    "  ```\n  indented fence\n  ```\ntrailing",
    "Use `len(x)` and ``a `nested` b`` and ```tripled``` inline.",
    "A stray ` backtick and another`\non the next line.",
    "Read https://en.wikipedia.org/wiki/Python_(programming_language).",
    "(see https://example.com/a?b=c&d=e#frag), then go on!",
    "Links: [text](http://x.y/z) and [t2](https://a.b/c_(d)).",
    "Trailing punctuation: http://a.b/c. http://a.b/c, http://a.b/c; http://a.b/c: http://a.b/c! http://a.b/c?",
    "<https://example.com> and \"https://example.com/q\" and 'www.example.org'",
    "ftp://files.example.com/pub/file.tar.gz and WWW.EXAMPLE.COM",
    "Mail john.doe+tag@example.co.uk or admin@localhost.dev.",
    "Math $x^2 + 1$, $$\\int_0^1 f(x)\\,dx$$, \\(a+b\\), \\[ \\sum_i i \\].",
    "\\begin{equation}\nE = mc^2\n\\end{equation}\nand \\begin{align*} a &= b \\end{align*}",
    "It costs $5 and $10, or $20,000-$30,000, or just $5.",
    "Escaped \\$5 and \\$x\\$ dollars.",
    "50% of people, 50 % of them, 100%!",
    "printf('%s %d %5.2f %-10s %(name)s %%d', x)",
    "Format {name} {0} {} {0:.2f} {obj.attr} {{ jinja }} {{x}}",
    'JSON {"a": 1, "b": [1, 2]} and a set {1, 2, 3}',
    "Unicode: Grüße, 日本語のテキスト, emoji 🎉, RTL العربية, combining é.",
    "访问https://x.y/path。然后继续",
    "Em dash after URL: http://x.y—and curly “https://a.b/c”…",
    "**https://bold.example.com** and _www.x.y_",
    "Source already has [[1]] and [[ 2 ]] and [[03]] and [[١]].",
    "x = [[1]]",
    "[[1]]",
    "[[[[1]]]] and [[`code`]] and [`code`] and [[1`x`]]",
    "```python\nx = [[1]]\nprint(x)\n```",
    "`only code`",
    "https://only.a.url/",
    "$only math$",
    "Nested {{ '{' }} braces { and } % lonely",
    "Tab\tseparated\tvalues\r\nand CRLF\r\n",
    "\\begin{equation} unclosed environment",
    "$$ unclosed display math",
    "www. alone and http:// alone and http://. too",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(text):
    protected = protect(text)
    assert restore(protected.text, protected.spans) == (text, None)
    assert len(protected.spans) == len(protected.kinds)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_sentinels_numbered_in_order_and_unique(text):
    protected = protect(text)
    numbers = [int(n) for n in SENTINEL_RE.findall(protected.text)]
    assert numbers == list(range(1, len(protected.spans) + 1))


def test_round_trip_random_mix():
    # Shuffled fragments of the nasty texts: whatever the regexes do, the text must come back.
    rng = random.Random(1234)
    alphabet = list("`$[]{}()%\\~ \n.:/@*_-0123456789abc")
    alphabet += ["http://", "www.", "```", "[[1]]", "é", "\\begin{align}", "\\end{align}", "\\["]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        protected = protect(text)
        assert restore(protected.text, protected.spans) == (text, None), text


@pytest.mark.parametrize(
    "text, span, kind",
    [
        ("See:\n```py\nx = 1\n```\nok", "```py\nx = 1\n```", "code_block"),
        ("See:\n~~~~\n~~~ still code\n~~~~~\nok", "~~~~\n~~~ still code\n~~~~~", "code_block"),
        ("Use `len(x)` now", "`len(x)`", "inline_code"),
        ("Use ``a`b`` now", "``a`b``", "inline_code"),
        ("Then $x^2 + 1$ holds", "$x^2 + 1$", "math"),
        ("Then \\(x\\) holds", "\\(x\\)", "math"),
        (
            "Go to https://en.wikipedia.org/wiki/Python_(programming_language).",
            "https://en.wikipedia.org/wiki/Python_(programming_language)",
            "url",
        ),
        ("[text](http://x.y/z)", "http://x.y/z", "url"),
        ("Visit www.example.com!", "www.example.com", "url"),
        ("Write to a.b@c.org.", "a.b@c.org", "email"),
        ("Hello {{ name }}!", "{{ name }}", "placeholder"),
        ("Hello {name}!", "{name}", "placeholder"),
        ("Item {0}", "{0}", "placeholder"),
        ("Item {}", "{}", "placeholder"),
        ("Value %s here", "%s", "placeholder"),
        ("Value %5.2f here", "%5.2f", "placeholder"),
        ("Value %(name)s here", "%(name)s", "placeholder"),
        ("It says [[1]] here", "[[1]]", "sentinel_like"),
        ("It says [[ 3 ]] here", "[[ 3 ]]", "sentinel_like"),
    ],
)
def test_kind_detected(text, span, kind):
    protected = protect(text)
    assert (span, kind) in zip(protected.spans, protected.kinds)


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "From $20,000 to $30,000.",
        "Between $5-$10 a day.",
        "Only $5",
        "50% of people",
        "50 % of people",
        "a 100%discount",
        "%% is a literal percent",
        "A set {1, 2, 3} and a dict {'a': 1}",
        "Email me @ home",
        "Citation [2] and link text [here]",
    ],
)
def test_not_protected(text):
    protected = protect(text)
    assert protected == Protected(text, (), ())


def test_unclosed_fence_runs_to_end():
    text = "Intro\n```python\nx = 1\n\nMore prose that is really code."
    protected = protect(text)
    assert protected.text == "Intro\n[[1]]"
    assert protected.kinds == ("code_block",)


def test_code_block_wins_over_later_kinds():
    text = "```\nhttp://x.y {name} %s $a$ `b` [[1]]\n```"
    protected = protect(text)
    assert protected.text == "[[1]]"
    assert protected.spans == (text,)


def test_only_a_span():
    assert protect("`x`") == Protected("[[1]]", ("`x`",), ("inline_code",))


def test_empty_text():
    assert protect("") == Protected("", (), ())
    assert restore("", ()) == ("", None)
    assert protect_many([]) == ([], (), ())


def test_source_sentinel_round_trips_byte_identically():
    text = "The list [[1]] then `code` then [[2]]."
    protected = protect(text)
    assert protected.text == "The list [[1]] then [[2]] then [[3]]."
    assert protected.spans == ("[[1]]", "`code`", "[[2]]")
    assert restore(protected.text, protected.spans) == (text, None)


def test_restore_is_single_pass():
    # A restored span that contains sentinel text must not be expanded again.
    spans = ("[[2]]", "`x`")
    assert restore("a [[1]] b [[2]]", spans) == ("a [[2]] b `x`", None)
    # Source text that looks like sentinels comes back verbatim, whichever span holds it.
    text = "```\n[[1]] [[2]]\n```\nand [[1]] `y` [[3]]"
    protected = protect(text)
    assert protected.text == "[[1]]\nand [[2]] [[3]] [[4]]"
    assert restore(protected.text, protected.spans) == (text, None)


def test_protect_many_shares_numbering():
    fields = ["Explain `f`.", "", "Call `f(1)` on http://x.y and {name}."]
    protected, spans, kinds = protect_many(fields)
    assert protected == ["Explain [[1]].", "", "Call [[2]] on [[3]] and [[4]]."]
    assert spans == ("`f`", "`f(1)`", "http://x.y", "{name}")
    assert kinds == ("inline_code", "inline_code", "url", "placeholder")
    for field, source in zip(protected, fields):
        expected = {int(n) for n in SENTINEL_RE.findall(field)}
        assert restore(field, spans, expected) == (source, None)


def test_protect_many_single_field_equals_protect():
    text = "See `x` and https://a.b/c."
    protected = protect(text)
    assert protect_many([text]) == ([protected.text], protected.spans, protected.kinds)


SPANS = ("`a`", "`b`", "`c`")


@pytest.mark.parametrize(
    "model_text, expected, reason",
    [
        ("x [[1]] y [[3]]", None, "span_missing:[[2]]"),
        ("x [[1]] y [[2]] [[2]] [[3]]", None, "span_duplicated:[[2]]"),
        ("x [[1]] [[2]] [[3]] [[9]]", None, "span_unknown:[[9]]"),
        ("x [[0]] [[1]] [[2]] [[3]]", None, "span_unknown:[[0]]"),
        ("[[1]] [[ 2]] [[3]]", None, "span_missing:[[2]]"),  # altered: a space added
        ("[[1]] [2] [[3]]", None, "span_missing:[[2]]"),  # altered: brackets dropped
        ("[[1]] [[02]] [[3]]", None, "span_unknown:[[02]]"),  # altered: zero-padded
        ("[[1]] [[２]] [[3]]", None, "span_missing:[[2]]"),  # altered: fullwidth digit
        ("[[1]] [[2]] [[3]] [[ 2 ]]", None, "span_unknown:[[ 2 ]]"),  # extra variant junk
        ("", None, "span_missing:[[1]]"),
        ("[[2]]", {2}, None),
        ("[[1]] [[2]]", {2}, "span_unknown:[[1]]"),  # 1 belongs to another field
        ("nothing", set(), None),
        ("[[1]]", set(), "span_unknown:[[1]]"),
        ("[[4]]", {4}, "span_unknown:[[4]]"),  # out of range even if expected
        ("", {4}, "span_missing:[[4]]"),
    ],
)
def test_restore_reasons(model_text, expected, reason):
    restored, got_reason = restore(model_text, SPANS, expected)
    assert got_reason == reason
    assert (restored is None) == (reason is not None)


def test_restore_success_with_reordering():
    # Translation may move spans around; only each one's presence matters.
    assert restore("[[3]] y [[1]] x [[2]]", SPANS) == ("`c` y `a` x `b`", None)


def test_restore_span_with_backslashes_is_literal():
    assert restore("see [[1]]", ("\\(x\\) \\1 \\g<0>",)) == ("see \\(x\\) \\1 \\g<0>", None)


@pytest.mark.parametrize(
    "text, stripped",
    [
        ("", ""),
        ("[[1]]", ""),
        ("Hallo [[1]],  wie geht's [[2]]?", "Hallo , wie geht's ?"),
        ("  Bonjour\n\n[[12]]\tmonde  ", "Bonjour monde"),
        ("Hola [[ 3 ]] mundo", "Hola mundo"),
    ],
)
def test_strip_sentinels(text, stripped):
    assert strip_sentinels(text) == stripped
