"""Runs a unittest module and, under `bazel test`, writes JUnit XML to $XML_OUTPUT_FILE so that
each Python test case is counted as one test case (as GoogleTest's are).

Under the sanitizer configs (--config=asan / --config=tsan, tools/sanitizers/env.sh), importing
this module first re-executes the test's python with the sanitizer runtime preloaded, so that
libshardcast_client.so (instrumented) can be loaded with ctypes; the processes the test starts do
not inherit the preload. Leak checking is off in that python process only (CPython itself is not
instrumented and keeps memory until exit); shardcastd and the CLI keep it."""
import os
import sys
import time
import unittest
from xml.sax.saxutils import quoteattr, escape


def _preload_sanitizer_runtime():
    runtime = os.environ.get("SHARDCAST_SANITIZER_PRELOAD")
    if not runtime:
        return
    if os.environ.get("_SHARDCAST_PRELOADED") == runtime:  # the re-executed process
        for name, saved in (("LD_PRELOAD", "_SHARDCAST_SAVED_LD_PRELOAD"),
                            ("ASAN_OPTIONS", "_SHARDCAST_SAVED_ASAN_OPTIONS")):
            value = os.environ.pop(saved, None)
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        return
    env = dict(os.environ, _SHARDCAST_PRELOADED=runtime, LD_PRELOAD=runtime,
               _SHARDCAST_SAVED_LD_PRELOAD=os.environ.get("LD_PRELOAD", ""),
               _SHARDCAST_SAVED_ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", ""))
    if "ASAN_OPTIONS" in os.environ:
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":detect_leaks=0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


_preload_sanitizer_runtime()


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
