#!/usr/bin/env python3
"""Counts test cases (not targets) in the JUnit XML that `bazel test` leaves in its testlogs tree
and prints the closing line `N passed, N failed`. Exit status: non-zero if anything failed.

CI (tools/test.sh) runs several phases, one per Bazel config (normal, asan, tsan), each with its
own testlogs tree (bazel-out/<config>/testlogs; the bazel-testlogs symlink only names the last
one): each is given with --phase, counted and printed on its own line, then the combined line
comes last. Without --phase, --testlogs is counted as one phase (the old interface).

A target whose XML holds no test case (it crashed before GoogleTest wrote its report, or it timed
out) counts as one failed case. Only reports newer than the phase's start (a Unix time) are read,
so stale results of targets that did not run this time are ignored. In the sanitizer phases every
report file the runtimes wrote (tools/sanitizers/env.sh: <dir>/<kind>.<exe>.<pid>) counts as one
failed case, whichever process wrote it (a shardcastd rank's report would otherwise be lost in a
temporary log), and its head is printed."""
import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET

REPORT_LINES = 60  # lines of each sanitizer report shown in the CI log


class Phase:
    def __init__(self, name, testlogs, since, bazel_rc=0, seconds=None, sanitizer_logs=None):
        self.name, self.testlogs, self.since = name, testlogs, float(since)
        self.bazel_rc, self.seconds, self.sanitizer_logs = int(bazel_rc), seconds, sanitizer_logs
        self.passed = self.failed = self.skipped = 0
        self.failed_names = []

    def fail(self, what):
        self.failed += 1
        self.failed_names.append("[%s] %s" % (self.name, what))

    def count_xml(self):
        root = os.path.realpath(self.testlogs)
        for path in sorted(glob.glob(os.path.join(root, "**", "test.xml"), recursive=True)):
            if os.path.getmtime(path) < self.since:
                continue
            target = os.path.relpath(os.path.dirname(path), root)
            try:
                cases = list(ET.parse(path).getroot().iter("testcase"))
            except ET.ParseError:
                cases = []
            if not cases:
                self.fail(target + " (no test cases reported)")
                continue
            for c in cases:
                if c.find("failure") is not None or c.find("error") is not None:
                    self.fail("%s: %s" % (target, c.get("name")))
                elif c.find("skipped") is not None or c.get("result") == "suppressed" or c.get("status") == "notrun":
                    self.skipped += 1
                else:
                    self.passed += 1

    def count_sanitizer_reports(self):
        if not self.sanitizer_logs or not os.path.isdir(self.sanitizer_logs):
            return
        for path in sorted(glob.glob(os.path.join(self.sanitizer_logs, "*"))):
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                continue
            self.fail("sanitizer report " + path)
            with open(path, errors="replace") as f:
                head = f.readlines()[:REPORT_LINES]
            print("---- %s (first %d lines) ----" % (path, len(head)))
            sys.stdout.write("".join(head))

    def check_bazel(self):
        # bazel test exits 3 when tests failed (counted from their XML), 4 when the pattern holds no
        # test of this phase, and 1/2 (or anything else) on build or usage errors.
        if self.bazel_rc not in (0, 3, 4) and self.failed == 0:
            self.fail("bazel exited %d (build or usage error; see the log above)" % self.bazel_rc)

    def line(self):
        s = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        if self.seconds is not None:
            s += " (%s s)" % self.seconds
        return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase", nargs=6, action="append", default=[],
                    metavar=("NAME", "TESTLOGS", "SINCE", "BAZEL_RC", "SECONDS", "SANITIZER_LOGS"),
                    help="one CI phase: its testlogs tree, start time, bazel's exit status, duration, and the "
                         "folder of sanitizer reports ('-' for none); repeat per phase")
    ap.add_argument("--testlogs", default="bazel-testlogs", help="without --phase: the one tree to count")
    ap.add_argument("--since", type=float, default=0.0, help="without --phase: its start time")
    ap.add_argument("--build-failed", action="store_true", help="without --phase: bazel itself failed")
    args = ap.parse_args()
    if args.phase:
        phases = [Phase(n, t, s, rc, secs, None if logs == "-" else logs) for n, t, s, rc, secs, logs in args.phase]
    else:
        phases = [Phase("tests", args.testlogs, args.since, 1 if args.build_failed else 0)]
    for p in phases:
        p.count_xml()
        p.count_sanitizer_reports()
        p.check_bazel()
    passed = sum(p.passed for p in phases)
    failed = sum(p.failed for p in phases)
    skipped = sum(p.skipped for p in phases)
    for p in phases:
        for n in p.failed_names:
            print("FAILED: " + n)
    if len(phases) > 1:
        for p in phases:
            print("phase %-6s %s" % (p.name + ":", p.line()))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
