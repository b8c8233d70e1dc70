"""The formula parser: what it accepts, and that user text never runs (symloss.formula).

Oracle for accepted formulas: the sympy expression built directly from the same
random tree (tests/strategies.py). Oracle for "nothing runs": Python's audit
hooks (PEP 578) — every ``exec``, ``os.system``, ``subprocess.Popen``, import,
writing ``open`` and every ``compile`` other than the parser's own ``ast.parse``
of the user's text is recorded while parsing, and must not occur.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager, suppress

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symloss.formula import (
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    FormulaError,
    parse_formula,
)
from symloss.symbols import h, y
from tests.strategies import formula_pairs

#: A guard, not a benchmark: the slowest a single parse may take.
PARSE_SECONDS = 2.0

#: Audit events that mean user text ran or touched the system.
FORBIDDEN_EVENTS = frozenset({
    "exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.remove",
    "os.rename", "os.mkdir", "os.rmdir", "subprocess.Popen", "socket.connect", "import",
    "builtins.input", "ctypes.dlopen", "shutil.rmtree", "pty.spawn", "code.__new__",
    "function.__new__", "object.__setattr__", "object.__delattr__",
})

_recording: list[list[tuple[str, tuple]]] = []


def _audit(event: str, args: tuple) -> None:
    if _recording:
        _recording[-1].append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only inside `_audited`.


def _writes(args: tuple) -> bool:
    _path, mode, flags = [*args, None, None, None][:3]
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


@contextmanager
def _audited(text: str):
    """Record audit events while parsing ``text``; fail on any that is not the AST parse.

    ``ast.parse`` raises ``compile(source, filename)`` with the stripped text as
    UTF-8 bytes and the filename ``'<unknown>'`` (checked: the event carries no
    flags). That single event, for exactly this text, is allowed; any other
    compile — of other source, or under a file name — is not. A compiled code
    object could only run through an ``exec`` event, which is forbidden too.
    """
    events: list[tuple[str, tuple]] = []
    _recording.append(events)
    try:
        yield events
    finally:
        _recording.pop()
    parsed_source = text.strip().encode("utf-8", "surrogatepass")
    bad = []
    for event, args in events:
        if event == "compile":
            if not (len(args) == 2 and args[1] == "<unknown>" and args[0] == parsed_source):
                bad.append((event, args))
        elif event == "open":
            if _writes(args):
                bad.append((event, args))
        elif event in FORBIDDEN_EVENTS or event.startswith(("os.", "subprocess.")):
            bad.append((event, args))
    assert not bad, f"parsing {text[:60]!r} raised audit events {bad[:3]}"


def _warm_up() -> None:
    """Exercise every accepted construct and error path once, so lazy imports happen now."""
    for text in ["log(h) + exp(y) - sqrt(h)*tanh(y)/Abs(h) + Max(h, y) + Min(h, 1)",
                 "sigmoid(h)**2 ^ 1 + ln(h) + abs(y) + max(h, 2) + min(y, h) + 0.5e-3",
                 "-(+h)", "h.x", "f(h)", "1/0", "sqrt(-1)", "h**h", "(", "h**99", "True"]:
        with suppress(FormulaError):
            parse_formula(text)


_warm_up()


# --- accepted formulas -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("-log(h) + y/h", -sp.log(h) + y / h),            # Baikal (GLO eq. 1, docs/conventions.md §1)
    ("(h - y)^2", (h - y) ** 2),                        # ^ is power, not xor
    ("(h - y)**2", (h - y) ** 2),
    ("-y*ln(h)", -y * sp.log(h)),                       # ln alias
    ("abs(h - y) + max(h, y) + min(h, y)", sp.Abs(h - y) + sp.Max(h, y) + sp.Min(h, y)),
    ("sigmoid(h)", 1 / (1 + sp.exp(-h))),
    ("tanh(h) * 2.5", sp.Float(2.5) * sp.tanh(h)),
    ("h**(1/2)", sp.sqrt(h)),
    ("  h  ", h),
    ("((((h))))", h),                                   # parentheses are not nodes
    ("1e-3 * h", sp.Float(1e-3) * h),
])
def test_parse_accepts_the_documented_grammar(text, expected):
    assert parse_formula(text) == expected


def test_parse_family_parameters():
    a = sp.Symbol("a", real=True)
    assert parse_formula("a*log(h)", {"a": a}) == a * sp.log(h)
    with pytest.raises(FormulaError, match="unknown name 'a'"):
        parse_formula("a*log(h)")


@settings(deadline=None, max_examples=150, derandomize=True)
@given(formula_pairs())
def test_parse_matches_the_sympy_tree_it_was_printed_from(pair):
    assert parse_formula(pair.text) == pair.expr


# --- rejected formulas: nothing runs -----------------------------------------------------------

EXPLOITS = [
    "__import__('os').system('touch PWNED')",
    "().__class__.__bases__[0].__subclasses__()",
    "h.__class__.__mro__[-1].__subclasses__()",
    "lambda: 0",
    "(lambda: __import__('os').system('touch PWNED'))()",
    "h**10**10",
    "9**9**9",
    "exec('1')",
    "eval('1')",
    "compile('1', 'f', 'eval')",
    "open('PWNED', 'w')",
    "getattr(h, 'real')",
    "[x for x in (1,)]",
    "{'a': 1}",
    "{1, 2}",
    "h.real",
    "y[0]",
    "h if y else 1",
    "f'{h}'",
    "f'{__import__(\"os\").system(\"touch PWNED\")}'",
    "'h'",
    "b'h'",
    "h" * (MAX_LENGTH + 1),
    "h + " * 600 + "h",
    "(" * 1000 + "h" + ")" * 1000,                   # 1000 levels: longer than MAX_LENGTH
    "(" * 300 + "h" + ")" * 300,                     # within the length: too many parentheses
    "-" * 500 + "h",
    "log(" * 100 + "h" + ")" * 100,
    "log(h, base=2)",
    "log(**{'base': 2})",
    "log(*[h])",
    "h := 1",
    "yield h",
    "await h",
    "h, y",
    "h < y",
    "h and y",
    "not h",
    "~h",
    "h @ y",
    "h // y",
    "h % y",
    "h << 1",
    "1" * 60,
    "1e999",
    "10**400",
    "(10**16)**16",
    "True",
    "None",
    "...",
    "1j",
    "import os",
    "h; __import__('os')",
    "h\n__import__('os')",
    "sqrt(-1)",
    "1/0",
    "log(0)",
    "һ",                                             # CYRILLIC SMALL LETTER SHHA, not h
    "у * log(h)",                                    # CYRILLIC SMALL LETTER U, not y
    "\u0430bs(h)",                                   # CYRILLIC a in "abs"
    "h\u200b",                                       # zero-width space
    "h\x00",
    "",
    "   ",
]


@pytest.mark.parametrize("text", EXPLOITS, ids=[repr(e[:30]) for e in EXPLOITS])
def test_exploits_are_rejected_and_nothing_runs(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    with _audited(text), pytest.raises(FormulaError):
        parse_formula(text)
    assert time.perf_counter() - started < PARSE_SECONDS
    assert list(tmp_path.iterdir()) == []


def test_the_audit_hook_does_see_code_that_runs():
    """A check on the oracle: exec and a stray compile are reported."""
    with pytest.raises(AssertionError, match="exec"), _audited("h"):
        exec("1")  # the probe itself; no user text involved
    with pytest.raises(AssertionError, match="compile"), _audited("h"):
        compile("1", "other.py", "eval")


@pytest.mark.parametrize("text", ["ｈ", "ℎ", "ｌｏｇ(ｈ)"])
def test_unicode_compatibility_forms_mean_exactly_their_ascii_form(text):
    """Python identifiers are NFKC-normalized (PEP 3131), so fullwidth ``ｈ`` *is* ``h``.

    Either rejecting them or reading them as their ASCII form is safe; what
    must not happen is a lookalike that means something else.
    """
    import unicodedata

    ascii_text = unicodedata.normalize("NFKC", text)
    try:
        parsed = parse_formula(text)
    except FormulaError:
        return
    assert parsed == parse_formula(ascii_text)


@pytest.mark.parametrize(("text", "message"), [
    ("h" + "+h" * MAX_NODES, "nodes|nested|longer"),
    ("-" * (MAX_DEPTH + 2) + "h", "nested deeper"),
    ("h**h", "exponent .* must be a number"),
    ("h**17", r"\|exponent\| <= 16"),
    ("log()", "log takes 1 argument, got 0"),
    ("max(h)", "at least 2 arguments"),
    ("hinge(h)", "function 'hinge' is not allowed"),
    ("z * h", "unknown name 'z'"),
    ("1e13 * h", "exceeds"),
])
def test_error_messages_name_the_bad_piece(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text)


def test_non_string_is_a_formula_error():
    with pytest.raises(FormulaError, match="must be a string, got int"):
        parse_formula(3)  # type: ignore[arg-type]


def test_formula_error_is_a_value_error():
    assert issubclass(FormulaError, ValueError)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.text(max_size=300) | st.text(alphabet="yh()+-*/^.,0123456789elogxpsqrt _", max_size=120))
def test_random_text_gives_an_expression_or_a_formula_error_quickly(text):
    started = time.perf_counter()
    try:
        result = parse_formula(text)
    except FormulaError:
        pass
    else:
        assert isinstance(result, sp.Expr)
        assert result.free_symbols <= {y, h}
    assert time.perf_counter() - started < PARSE_SECONDS


@settings(deadline=None, max_examples=60, derandomize=True)
@given(st.sampled_from(EXPLOITS[:20]), st.sampled_from(["", " ", "h + ", "log(", "("]))
def test_exploits_embedded_in_formulas_still_run_nothing(exploit, prefix):
    text = prefix + exploit + (")" if prefix.endswith("(") else "")
    with _audited(text), pytest.raises(FormulaError):
        parse_formula(text)


@pytest.mark.parametrize("text", ["h**1e-400", "1e-400*h", "h + 1e-400", "log(h)*1E-999"])
def test_a_constant_written_nonzero_that_a_float_reads_as_zero_is_refused(text):
    """Issue 20: ``h**1e-400`` was the constant loss ``h**0.0`` while ``1e-400*h`` was refused
    as having no gradient; a literal that underflows to 0 is now one answer everywhere."""
    with pytest.raises(FormulaError, match=r"constant '1e-400' is too small for a float|"
                                           r"constant '1E-999'"):
        parse_formula(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("h**0.0", sp.Integer(1)), ("y*h**(1 - 1.0)", y), ("0e5*h + h", h), ("1e-300*h", None)])
def test_a_zero_exponent_is_the_constant_one_whether_written_0_or_0_0(text, expected):
    """``h**0.0`` is ``h**0`` (1): a loss without ``h`` is then refused by the catalog as
    ``1e-400*h`` is; a tiny constant a float can hold stays what it is."""
    parsed = parse_formula(text)
    assert parsed == expected if expected is not None else parsed.has(h)


def test_zero_exponent_and_underflow_get_the_same_verdict_from_the_catalog():
    from symloss.catalog import loss

    for text in ("h**0.0", "0*h", "h**0"):
        with pytest.raises(ValueError, match="does not depend on h"):
            loss(text)
