"""``python -m symloss.proofs [--json | --markdown] [NAME ...]``: run the proofs, print a table.

Exit status 0 when every proof completed with its declared ``EXPECTED`` verdict,
1 otherwise (a failed step, or an unexpected verdict).
"""

from __future__ import annotations

import argparse
import sys

from symloss.proofs._runner import proof_modules, run, to_json, to_markdown, to_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symloss.proofs", description=__doc__)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    form.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("names", nargs="*", help="proof modules to run (default: all)")
    arguments = parser.parse_args(argv)
    available = proof_modules()
    unknown = [name for name in arguments.names if name not in available]
    if unknown:
        parser.error(f"unknown proof module(s) {', '.join(unknown)}; "
                     f"available: {', '.join(available)}")
    outcomes = [run(name) for name in (arguments.names or available)]
    if arguments.json:
        print(to_json(outcomes))
    elif arguments.markdown:
        print(to_markdown(outcomes))
    else:
        print(to_text(outcomes))
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
