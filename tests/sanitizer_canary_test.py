"""The sanitizer configs really work (CI phases asan and tsan, tools/test.sh): under
--config=asan / --config=tsan the build is instrumented, each deliberate defect of
tools/sanitizers/canary fails its process with the sanitizer's report, the suppression files that
tools/sanitizers/env.sh names exist, and this python runs with the runtime preloaded (so the ctypes
tests can load libshardcast_client.so) without handing the preload to the processes it starts. In
the normal phase the build is plain. And `shardcastd` ranks stopped with SIGTERM exit through
main cleanly: under ASan that is where LeakSanitizer looks (Open MPI's own allocations are
suppressed, tools/sanitizers/lsan.supp), under TSan the shutdown path is checked. Reports of this
test go to a temporary folder, never to CI's."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402  (first: re-executes this python with the runtime preloaded)
from testenv import fixtures_dir, runfile  # noqa: E402
import service_test  # noqa: E402  (reuses its Service launcher)

CANARY = runfile("shardcast/tools/sanitizers/canary")
KIND = os.environ.get("SHARDCAST_SANITIZER", "")  # set by .bazelrc's asan / tsan configs
OPTION_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")

# mode -> text the report must hold, per config.
FINDINGS = {
    "asan": {"heap-overflow": "heap-buffer-overflow", "signed-overflow": "signed integer overflow",
             "leak": "detected memory leaks"},
    "tsan": {"race": "data race"},
}


def reporting_to(report_dir):
    """The environment with the options env.sh set, but with the reports sent to report_dir."""
    env = dict(os.environ)
    for var in OPTION_VARS:
        opts = re.sub(r"(^|:)log_path=[^:]*", "", env.get(var, ""))
        env[var] = opts + ":log_path=" + os.path.join(report_dir, var.split("_")[0].lower())
    return env


def reports(report_dir):
    return "".join(open(f, errors="replace").read() for f in sorted(glob.glob(os.path.join(report_dir, "*"))))


def run_canary(mode, report_dir):
    p = subprocess.run([CANARY, mode], env=reporting_to(report_dir), capture_output=True, text=True, timeout=60)
    return p, reports(report_dir) + p.stderr


class SanitizerCanary(unittest.TestCase):
    def test_build_matches_the_config(self):
        out = subprocess.run([CANARY, "config"], capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(out, KIND or "none")

    def test_a_clean_run_reports_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            p, report = run_canary("ok", d)
            self.assertEqual(p.returncode, 0, report)
            self.assertEqual(report, "")

    def test_each_defect_fails_its_process_with_a_report(self):
        self.assertIn(KIND, ("", "asan", "tsan"))
        for mode, text in FINDINGS.get(KIND, {}).items():
            with self.subTest(mode=mode), tempfile.TemporaryDirectory() as d:
                p, report = run_canary(mode, d)
                self.assertNotEqual(p.returncode, 0, "%s: the process did not fail" % mode)
                self.assertIn(text, report)

    def test_suppression_files_exist(self):
        for var in OPTION_VARS:
            for path in re.findall(r"(?:^|:)suppressions=([^:]+)", os.environ.get(var, "")):
                self.assertTrue(os.path.isfile(path), "%s names %s" % (var, path))
        if KIND:
            var = "LSAN_OPTIONS" if KIND == "asan" else "TSAN_OPTIONS"
            self.assertIn("suppressions=", os.environ.get(var, ""))

    def test_runtime_preloaded_here_and_not_inherited(self):
        with open("/proc/self/maps") as f:
            maps = f.read()
        for kind in ("asan", "tsan"):
            self.assertEqual("lib%s.so" % kind in maps, kind == KIND, "lib%s.so mapped in the test's python" % kind)
        self.assertNotIn(os.environ.get("SHARDCAST_SANITIZER_PRELOAD") or "-", os.environ.get("LD_PRELOAD", ""))


class ShardcastdExit(unittest.TestCase):
    def start_fetch_stop(self, tls):
        with tempfile.TemporaryDirectory() as d:
            extra, cli = (), ()
            if tls:
                cert, key = service_test.make_certificate(d, "service")
                extra, cli = ("--tls-cert", cert, "--tls-key", key), ("--tls-ca", cert)
            saved = dict(os.environ)
            os.environ.update(reporting_to(os.path.join(d, "reports")))  # inherited by mpirun and the ranks
            try:
                svc = service_test.Service(os.path.join(fixtures_dir(), "dcp-torch2.11", "vit_tp2"), extra=extra)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            try:
                res = service_test.fetch_json(svc, 2, 1, *cli)
                self.assertEqual(res["report"]["crc_checked"], len(res["tensors"]))
                with open(svc.ready) as f:
                    pids = {json.load(f)["pid"]} | {r["pid"] for r in json.loads(svc.cli("status", "--json", *cli).stdout)["ranks"]}
                self.assertEqual(len(pids), 2)
                for pid in pids:  # the ranks themselves, so that each leaves through main()
                    os.kill(pid, signal.SIGTERM)
                rc = svc.proc.wait(timeout=60)
            finally:
                svc.stop()
            with open(svc.log.name) as f:
                log = f.read()
            self.assertEqual(rc, 0, log)
            self.assertEqual(reports(os.path.join(d, "reports")), "")

    def test_ranks_stopped_with_sigterm_exit_cleanly_without_reports(self):
        self.start_fetch_stop(tls=False)

    def test_tls_ranks_stopped_with_sigterm_exit_cleanly_without_reports(self):
        self.start_fetch_stop(tls=True)

if __name__ == "__main__":
    junit_unittest.main()
