"""Counting the checks and printing one line for each."""

from __future__ import annotations


class Report:
    """Counts checks and prints one line per check."""

    def __init__(self, quiet: bool = False) -> None:
        self.passed = 0
        self.failed = 0
        self.quiet = quiet
        # (name, why) of each failed check, in order.
        self.failures: list[tuple[str, str]] = []

    def ok(self, name: str) -> None:
        self.passed += 1
        if not self.quiet:
            print(f"ok   {name}", flush=True)

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        self.failures.append((name, why))
        if not self.quiet:
            print(f"FAIL {name}: {why}", flush=True)

    def check(self, name: str, why: str | None) -> bool:
        """`why` is None when the check passed."""
        if why is None:
            self.ok(name)
            return True
        self.fail(name, why)
        return False
