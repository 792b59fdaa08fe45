"""Runs a unittest module and, under `bazel test`, writes JUnit XML to $XML_OUTPUT_FILE so that
each Python test case is counted as one test case (as GoogleTest's are)."""
import os
import sys
import time
import unittest
from xml.sax.saxutils import quoteattr, escape


class _Result(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cases = []  # (name, seconds, kind, text)
        self._t0 = 0.0

    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def _add(self, test, kind, text=""):
        self.cases.append((test.id(), time.time() - self._t0, kind, text))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._add(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._add(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._add(test, "skipped", reason)


def main(module_name="__main__"):
    """Runs every test of the module, or only the names given on the command line
    (e.g. `ReshardCli.test_tp3_shards_of_the_tensors_that_divide`)."""
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    module = sys.modules[module_name]
    if names:
        suite = unittest.defaultTestLoader.loadTestsFromNames(names, module)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result)
    result = runner.run(suite)
    out = os.environ.get("XML_OUTPUT_FILE")
    if out:
        fails = sum(1 for c in result.cases if c[2] == "failure")
        errs = sum(1 for c in result.cases if c[2] == "error")
        with open(out, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write('<testsuites><testsuite name=%s tests="%d" failures="%d" errors="%d">\n'
                    % (quoteattr(module_name), len(result.cases), fails, errs))
            for name, secs, kind, text in result.cases:
                f.write('<testcase name=%s time="%.3f">' % (quoteattr(name), secs))
                if kind in ("failure", "error"):
                    f.write('<%s message="failed">%s</%s>' % (kind, escape(text), kind))
                elif kind == "skipped":
                    f.write('<skipped message=%s/>' % quoteattr(text))
                f.write('</testcase>\n')
            f.write('</testsuite></testsuites>\n')
    sys.exit(0 if result.wasSuccessful() else 1)
