"""The long fuzz run of the formula parser (issue 7: hostile formulas).

Feeds :func:`symloss.parse_formula` ``--count`` generated strings — garbage
bytes and unicode, token soup, mutated valid formulas, deep nesting, giant
numbers and exponents, lookalike and compatibility unicode, and known
``sympify``/``eval`` exploits with their variants — and checks for each one:

- only :class:`~symloss.formula.FormulaError` comes out (or an expression in
  ``y`` and ``h`` only);
- it finishes within ``--seconds`` (a hard ``SIGALRM`` limit catches a hang);
- nothing runs: a Python audit hook (PEP 578), installed in this process,
  records every event while parsing; ``exec``, any ``compile`` other than the
  parser's own ``ast.parse`` of the text, ``os.system``/``os.exec*``/
  ``os.posix_spawn``/``subprocess.Popen``, writing ``open``, and imports of
  modules not yet loaded are violations.

The generator is a seeded ``numpy.random.Generator``: the same ``--seed``
fuzzes the same strings. CI runs a reduced form
(``tests/test_reliability_formulas.py`` calls it with ``--count 3000``).

Run: ``python benchmarks/fuzz_formulas.py --count 100000 [--seed 0] [--json]``.
Prints the inputs fuzzed, how many parsed and how many were refused (by error
class), the slowest input and its time, and every violation (exit 1 if any).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symloss.formula import (
    ALLOWED_FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    FormulaError,
    parse_formula,
)
from symloss.symbols import h as sp_h
from symloss.symbols import y as sp_y

#: Default hard bound on one parse (seconds); CI uses the same.
DEFAULT_SECONDS = 2.0

#: Known exploits of ``sympify``/``parse_expr``/``eval`` on user text (sympy
#: issues #10805, #12524, #17013 and the usual Python sandbox escapes).
EXPLOITS = [
    "__import__('os').system('touch PWNED')",
    "__import__('subprocess').Popen(['touch', 'PWNED'])",
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__.__base__.__subclasses__()[59]()._module.__builtins__['__import__']('os')",
    "h.__class__.__mro__[-1].__subclasses__()",
    "h.__class__.__init__.__globals__['__builtins__']['exec']('1')",
    "log.__globals__['__builtins__']",
    "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings']",
    "(lambda: __import__('os').system('touch PWNED'))()",
    "(lambda f: f(f))(lambda f: f(f))",
    "exec('import os; os.system(\"touch PWNED\")')",
    "eval('1+1')",
    "compile('1', 'PWNED', 'exec')",
    "open('PWNED', 'w').write('x')",
    "globals()",
    "locals()['__builtins__']",
    "vars()",
    "getattr(h, '__class__')",
    "setattr(h, 'name', 'x')",
    "breakpoint()",
    "input()",
    "help()",
    "Symbol('x', **{'commutative': False})",
    "Function('exec')('1')",
    "Lambda(h, h)",
    "S('__import__(\"os\")')",
    "sympify('__import__(\"os\")')",
    "parse_expr('__import__(\"os\")')",
    "N('__import__(\"os\")')",
    "lambdify(h, 'os.system')",
    "Integer('1' * 10**7)",
    "factorial(10**10)",
    "10**10**10**10",
    "2**2**2**2**2**2",
    "h**h**h**h**h",
    "E**(10**100)",
    "exp(exp(exp(exp(9))))**2",
    "Max(exp(exp(99)), exp(exp(99)) + 1)",
    "nsimplify(h)",
    "f'{__import__(\"os\").system(\"touch PWNED\")}'",
    "b'\\x00'",
    "h if __import__('os') else y",
    "[h][0]",
    "{h: 1}[h]",
    "h; import os",
    "import os",
    "h\n__import__('os')",
    "h := __import__('os')",
    "log(h, base=__import__('os'))",
    "log(*__import__('os'))",
    "log(**{'x': 1})",
    "__builtins__",
    "__name__",
    "__debug__",
    "...",
    "h.__dict__",
    "h.subs",
    "h.evalf(10**9)",
    "type(h)",
    "object.__subclasses__()",
    "memoryview(b'x')",
    "bytearray(10**10)",
    "'a' * 10**10",
    "[0] * 10**10",
    "range(10**10)",
]

#: Prefixes and suffixes an exploit is embedded between.
WRAPS = [("", ""), (" ", " "), ("h + ", ""), ("log(", ")"), ("(", ")"), ("-", ""),
         ("max(h, ", ")"), ("y*(", ")*h"), ("\t", "\n"), ("h**(", ")"), ("sqrt(", ")")]

#: Lookalikes and compatibility forms of formula characters.
UNICODE = ["һ", "у", "ｈ", "ｙ", "ℎ", "𝒉", "ｌｏｇ", "\u0430", "\u200b", "\u200d", "\u202e",
           "\ufeff", "\u00a0", "\u2212", "\u00d7", "\u00f7", "\u2044", "²", "½", "\u0301",
           "ﬁ", "ᵉ", "\U0001f600", "\x00", "\x7f", "\r", "\x0c", "\ud800", "ｅｘｅｃ",
           "ｅｖａｌ", "＿＿ｉｍｐｏｒｔ＿＿", "\u2028", "№", "∞", "π"]

TOKENS = ["y", "h", "(", ")", "+", "-", "*", "/", "**", "^", ",", ".", "e", "1", "0", "2.5",
          "1e-3", "1e308", "9" * 30, " ", "_", "__", "'", '"', "[", "]", "{", "}", ":", "=",
          "lambda", "import", "os", "#", "\\", "@", "%", "~", "<", ">", "!", "&", "|", "j",
          *ALLOWED_FUNCTIONS, "exec", "eval", "__class__", "__import__"]

FUNCTIONS = [name for name in ALLOWED_FUNCTIONS if name not in ("Max", "Min", "max", "min")]


def random_formula(rng: np.random.Generator, depth: int) -> str:
    """A random formula of the documented grammar (valid or nearly so)."""
    if depth <= 0 or rng.random() < 0.25:
        choice = rng.integers(6)
        if choice == 0:
            return str(int(rng.integers(-20, 20)))
        if choice == 1:
            return f"{rng.normal() * 10.0 ** rng.integers(-20, 20):g}"
        return ["y", "h", "h", "y"][choice - 2]
    kind = rng.integers(5)
    if kind == 0:
        name = FUNCTIONS[rng.integers(len(FUNCTIONS))]
        return f"{name}({random_formula(rng, depth - 1)})"
    if kind == 1:
        name = ["max", "min", "Max", "Min"][rng.integers(4)]
        args = [random_formula(rng, depth - 1) for _ in range(rng.integers(1, 4))]
        return f"{name}({', '.join(args)})"
    if kind == 2:
        exponent = [str(int(rng.integers(-20, 20))), f"{rng.normal() * 8:.3g}", "h", "y",
                    random_formula(rng, depth - 1)][rng.integers(5)]
        operator = ["**", "^"][rng.integers(2)]
        return f"({random_formula(rng, depth - 1)}){operator}({exponent})"
    if kind == 3:
        return f"-({random_formula(rng, depth - 1)})"
    operator = ["+", "-", "*", "/"][rng.integers(4)]
    return f"({random_formula(rng, depth - 1)} {operator} {random_formula(rng, depth - 1)})"


def _mutate(rng: np.random.Generator, text: str, edits: int) -> str:
    characters = list(text)
    for _ in range(edits):
        position = int(rng.integers(len(characters) + 1))
        action = rng.integers(3)
        if action == 0 and characters:
            del characters[min(position, len(characters) - 1)]
        elif action == 1:
            characters.insert(position, TOKENS[rng.integers(len(TOKENS))])
        elif characters:
            characters[min(position, len(characters) - 1)] = UNICODE[rng.integers(len(UNICODE))]
    return "".join(characters)


def garbage(rng: np.random.Generator) -> str:
    length = int(rng.integers(0, 200))
    mode = rng.integers(3)
    if mode == 0:  # printable ASCII
        return "".join(chr(c) for c in rng.integers(32, 127, length))
    if mode == 1:  # any code point, surrogates included
        return "".join(chr(c) for c in rng.integers(0, 0x110000, length))
    return bytes(rng.integers(0, 256, length, dtype=np.uint8)).decode("latin-1")


def token_soup(rng: np.random.Generator) -> str:
    return "".join(TOKENS[i] for i in rng.integers(0, len(TOKENS), rng.integers(1, 40)))


def mutated(rng: np.random.Generator) -> str:
    return _mutate(rng, random_formula(rng, int(rng.integers(1, 6))), int(rng.integers(0, 4)))


def deep(rng: np.random.Generator) -> str:
    levels = int(rng.integers(MAX_DEPTH - 5, 3 * MAX_DEPTH if rng.random() < 0.7 else 1200))
    style = rng.integers(7)
    if style == 0:
        return "(" * levels + "h" + ")" * levels
    if style == 1:
        return "-" * levels + "h"
    if style == 2:
        name = FUNCTIONS[rng.integers(len(FUNCTIONS))]
        return f"{name}(" * levels + "h" + ")" * levels
    if style == 3:
        return "**".join(["h"] * levels)
    if style == 4:
        return " + ".join(["h"] * levels)
    if style == 5:
        return "max(h, " * levels + "y" + ")" * levels
    return "(" * levels + "h" + ")" * max(0, levels - int(rng.integers(0, 3)))  # unbalanced


def giant(rng: np.random.Generator) -> str:
    digits = int(rng.integers(10, 5000))
    style = rng.integers(9)
    if style == 0:
        return "9" * digits
    if style == 1:
        return f"1e{int(rng.integers(-10000, 10000))} * h"
    if style == 2:
        return f"h**{'9' * int(rng.integers(1, 60))}"
    if style == 3:
        tower = int(rng.integers(2, 12))
        base = str(int(rng.integers(2, 100)))
        return "**".join([base] * tower)
    if style == 4:
        levels = int(rng.integers(1, 12))
        return "exp(" * levels + str(int(rng.integers(1, 1000))) + ")" * levels + "**2"
    if style == 5:
        return f"({int(rng.integers(2, 10**9))}**{int(rng.integers(1, 17))})**" \
               f"{int(rng.integers(1, 17))}"
    if style == 6:
        return " * ".join([f"1e{int(rng.integers(1, 13))}"] * int(rng.integers(2, 120)))
    if style == 7:
        return f"sqrt({'*'.join(['999999999999'] * int(rng.integers(2, 60)))} + 1)"
    return f"{rng.normal():.6g}e{int(rng.integers(-400, 400))} ** {rng.normal() * 20:.3g}"


def unicode_variant(rng: np.random.Generator) -> str:
    text = random_formula(rng, int(rng.integers(1, 4)))
    if rng.random() < 0.5:  # fullwidth / mathematical forms that NFKC maps back
        text = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() and rng.random() < 0.5 else c
                       for c in text)
    return _mutate(rng, text, int(rng.integers(1, 3)))


def exploit(rng: np.random.Generator) -> str:
    text = EXPLOITS[rng.integers(len(EXPLOITS))]
    variant = rng.integers(5)
    if variant == 1:  # whitespace, comments, continuation lines
        text = text.replace("(", ["( ", "(\n", "(\\\n", "(  # x\n"][rng.integers(4)])
    elif variant == 2:  # compatibility forms of the identifiers
        text = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() and rng.random() < 0.3 else c
                       for c in text)
    elif variant == 3:
        text = _mutate(rng, text, int(rng.integers(1, 3)))
    prefix, suffix = WRAPS[rng.integers(len(WRAPS))]
    return prefix + text + suffix


GENERATORS = {"garbage": garbage, "token_soup": token_soup, "mutated": mutated, "deep": deep,
              "giant": giant, "unicode": unicode_variant, "exploit": exploit}


def generate(rng: np.random.Generator) -> tuple[str, str]:
    """One fuzz input and the name of the generator that made it."""
    names = list(GENERATORS)
    name = names[rng.integers(len(names))]
    return name, GENERATORS[name](rng)


# --- the audit hook ---------------------------------------------------------------------------

FORBIDDEN = ("exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
             "subprocess.Popen", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod",
             "socket.connect", "builtins.input", "ctypes.dlopen", "shutil.rmtree", "pty.spawn",
             "code.__new__", "function.__new__", "object.__setattr__", "object.__delattr__",
             "sys._getframe", "builtins.breakpoint", "webbrowser.open")

_events: list[tuple[str, tuple]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _events is not None:
        _events.append((event, args))


def _writes(args: tuple) -> bool:
    _path, mode, flags = [*args, None, None, None][:3]
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def violations(text: str, events: list[tuple[str, tuple]]) -> list[str]:
    """The audit events that mean something other than parsing happened."""
    source = text.strip().encode("utf-8", "surrogatepass")
    bad = []
    for event, args in events:
        if event == "compile":
            if not (len(args) == 2 and args[1] == "<unknown>" and args[0] == source):
                bad.append(f"compile {args[1]!r}")
        elif event == "open":
            if _writes(args):
                bad.append(f"open for writing {args[0]!r}")
        elif event == "import":
            if args[0] not in sys.modules:
                bad.append(f"import {args[0]}")
        elif event in FORBIDDEN or event.startswith(("os.exec", "os.spawn", "subprocess.")):
            bad.append(event)
    return bad


def refusal_class(message: str) -> str:
    """A FormulaError message with its quoted pieces and numbers taken out."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "…", message)
    message = re.sub(r"\d[\d.e+-]*", "N", message)
    return " ".join(message.split(";")[0].split(":")[0].split()[:7])


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def fuzz(count: int, seed: int = 0, seconds: float = DEFAULT_SECONDS) -> dict:
    """Fuzz ``count`` inputs; a summary dict (``violations`` empty when all is well)."""
    global _events
    sys.addaudithook(_audit)  # permanent, but records only while `_events` is a list
    _events = probe = []
    exec("1")  # a check on the oracle: the hook must see code that runs
    _events = None
    if not violations("h", probe):
        raise RuntimeError("the audit hook did not report an exec: the fuzz run proves nothing")
    rng = np.random.default_rng(seed)
    outcomes: collections.Counter[str] = collections.Counter()
    by_generator: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    found: list[dict] = []
    slowest = (0.0, "")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    started = time.perf_counter()
    try:
        for _ in range(count):
            generator, text = generate(rng)
            by_generator[generator] += 1
            problem = None
            events: list[tuple[str, tuple]] = []
            _events = events
            signal.setitimer(signal.ITIMER_REAL, 4 * seconds)
            began = time.perf_counter()
            try:
                expression = parse_formula(text)
            except FormulaError as error:
                outcome = "refused"
                errors[refusal_class(str(error))] += 1
            except _Hang:
                outcome, problem = "hang", f"no answer within {4 * seconds:g} s"
            except BaseException as error:  # anything else is a finding
                outcome, problem = "escaped", f"{type(error).__name__}: {error}"[:200]
            else:
                outcome = "parsed"
                if not expression.free_symbols <= {sp_y, sp_h}:
                    problem = f"free symbols {expression.free_symbols}"
            finally:
                elapsed = time.perf_counter() - began
                signal.setitimer(signal.ITIMER_REAL, 0)
                _events = None
            outcomes[outcome] += 1
            if elapsed > slowest[0]:
                slowest = (elapsed, text)
            if elapsed > seconds and problem is None:
                problem = f"took {elapsed:.2f} s (bound {seconds:g} s)"
            bad = violations(text, events)
            if bad:
                problem = "; ".join(bad[:3]) + (f"; {problem}" if problem else "")
            if problem:
                found.append({"generator": generator, "input": text[:200], "problem": problem})
    finally:
        signal.signal(signal.SIGALRM, previous)
    return {
        "inputs": count, "seed": seed, "seconds_bound": seconds,
        "outcomes": dict(outcomes), "generators": dict(by_generator),
        "refusals": dict(errors.most_common(15)),
        "max_seconds": round(slowest[0], 4), "slowest_input": slowest[1][:120],
        "total_seconds": round(time.perf_counter() - started, 1),
        "violations": found,
    }


def _warm_up() -> None:
    """Parse every construct and error path once, so sympy's lazy imports happen now."""
    for text in ["log(h) + exp(y) - sqrt(h)*tanh(y)/Abs(h) + Max(h, y) + Min(h, 1)",
                 "sigmoid(h)**2 ^ 1 + ln(h) + abs(y) + max(h, 2) + min(y, h) + 0.5e-3",
                 "-(+h)", "h.x", "f(h)", "1/0", "sqrt(-1)", "h**h", "(", "h**99", "True",
                 "(-8)**(1/3)", "exp(exp(exp(exp(9))))**2", "Max(1, 2.5)", "Abs(-h)**0.5",
                 "max(exp(3), exp(2)+1)", "1e300*1e300", "h" * (MAX_LENGTH + 1)]:
        with contextlib.suppress(Exception):  # findings are reported by the run itself
            parse_formula(text)
    for seed in range(3):  # and a few fuzz inputs of each kind
        rng = np.random.default_rng(10_000 + seed)
        for generator in GENERATORS.values():
            with contextlib.suppress(Exception):
                parse_formula(generator(rng))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                        help="bound on one parse (a hang is cut at 4x this)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _warm_up()
    summary = fuzz(args.count, args.seed, args.seconds)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=True))
    else:
        print(f"inputs fuzzed: {summary['inputs']} (seed {summary['seed']}) in "
              f"{summary['total_seconds']} s")
        print(f"by generator: {summary['generators']}")
        print(f"outcomes: {summary['outcomes']}")
        print(f"top refusals: {summary['refusals']}")
        print(f"max per-input time: {summary['max_seconds']} s "
              f"(bound {summary['seconds_bound']} s) on {summary['slowest_input'][:60]!r}")
        print(f"violations: {len(summary['violations'])}")
        for finding in summary["violations"][:20]:
            print(f"  [{finding['generator']}] {finding['input'][:80]!r}: {finding['problem']}")
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
