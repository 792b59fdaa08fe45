#!/usr/bin/env python3
"""Counts test cases (not targets) in the JUnit XML that `bazel test` leaves under bazel-testlogs/
and prints the closing line `N passed, N failed`. Exit status: non-zero if anything failed.

A target whose XML holds no test case (it crashed before GoogleTest wrote its report, or it timed
out) counts as one failed case. Only reports newer than --since (a Unix time) are read, so stale
results of targets that did not run this time are ignored."""
import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--testlogs", default="bazel-testlogs")
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--build-failed", action="store_true", help="bazel itself failed (build error)")
    args = ap.parse_args()
    passed = failed = skipped = 0
    failed_names = []
    root = os.path.realpath(args.testlogs)
    for path in sorted(glob.glob(os.path.join(root, "**", "test.xml"), recursive=True)):
        if os.path.getmtime(path) < args.since:
            continue
        target = os.path.relpath(os.path.dirname(path), root)
        try:
            cases = ET.parse(path).getroot().iter("testcase")
            cases = list(cases)
        except ET.ParseError:
            cases = []
        if not cases:
            failed += 1
            failed_names.append(target + " (no test cases reported)")
            continue
        for c in cases:
            if c.find("failure") is not None or c.find("error") is not None:
                failed += 1
                failed_names.append("%s: %s" % (target, c.get("name")))
            elif c.find("skipped") is not None or c.get("result") == "suppressed" or c.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
    if args.build_failed and failed == 0:
        failed += 1
        failed_names.append("bazel build/test command failed (see the log above)")
    for n in failed_names:
        print("FAILED: " + n)
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
