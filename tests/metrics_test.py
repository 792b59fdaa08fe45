"""shardcastd --metrics-listen (issue 12), end to end on the CPU: rank 0 serves every rank's
metrics at /metrics in the Prometheus text format. Scraped during and after the load and after a
fetch: every line parses (a small parser of the format's rules below), bytes read grow to the
total, clients served and bytes sent by stream increase after a fetch, an error counter after a
refused request, latency histograms count the manifests; other paths are 404, other methods 405;
a bad address is a usage error (exit 2)."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from service_test import GENERATOR, SHARDCASTD, Service, fetch_json  # noqa: E402

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))
VALUE = re.compile(r"^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$")


def parse_labels(text):
    if not text:
        return ()
    pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', text[1:-1])
    unescape = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
    return tuple((k, re.sub(r'\\[\\"n]', lambda m: unescape[m.group(0)], v)) for k, v in pairs)


def parse_exposition(text):
    """Checks `text` against the text format 0.0.4 and returns {(name, labels): value}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, samples, family_of = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert re.fullmatch(NAME, parts[2]), line
            if parts[1] == "TYPE":
                assert parts[2] not in types, "TYPE given twice: " + line
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[parts[2]] = parts[3]
                family_of = parts[2]
            continue
        assert line and not line.startswith("#"), "unexpected line: %r" % line
        m = SAMPLE.match(line)
        assert m, "sample line does not parse: %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(2)), m.group(3)
        assert VALUE.match(value), "bad value in %r" % line
        base = re.sub(r"_(bucket|sum|count)$", "", name) if types.get(family_of) == "histogram" else name
        assert base == family_of, "sample %s outside its family (%s)" % (name, family_of)
        if types[family_of] == "counter":
            assert float(value) >= 0, line
        key = (name, labels)
        assert key not in samples, "duplicate series: " + line
        samples[key] = float(value)
    check_histograms(types, samples)
    return samples


def check_histograms(types, samples):
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), value in samples.items():
            if name == family + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float(le), value))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), "buckets not cumulative: %s %s" % (family, rest)
            assert buckets[-1][0] == float("inf"), "no +Inf bucket: %s %s" % (family, rest)
            assert samples[(family + "_count", rest)] == counts[-1], (family, rest)
            assert (family + "_sum", rest) in samples, (family, rest)


def value(samples, name, **labels):
    """The sum over the series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= set(l))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExpositionParser(unittest.TestCase):
    """The parser above is the check: it must refuse what Prometheus refuses."""

    def test_accepts_the_format_and_unescapes_labels(self):
        got = parse_exposition('# HELP m_total Help \\n.\n# TYPE m_total counter\nm_total{a="x\\"y\\\\"} 3\n'
                               '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n')
        self.assertEqual(got[("m_total", (("a", 'x"y\\'),))], 3)
        self.assertEqual(got[("h_count", ())], 2)

    def test_refuses_what_a_scraper_refuses(self):
        for bad in ("m 1",                                         # no final newline
                    "m 1\n",                                       # no TYPE
                    "# TYPE m gauge\nm{a=\"x} 1\n",              # unterminated label value
                    "# TYPE m gauge\nm one\n",                    # not a number
                    "# TYPE m gauge\nm 1\nm 2\n",                 # duplicate series
                    "# TYPE m counter\nm -1\n",                   # negative counter
                    "# TYPE m gauge\nn 1\n",                      # outside its family
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n"):  # no +Inf
            with self.assertRaises((AssertionError, KeyError), msg=bad):
                parse_exposition(bad)


class MetricsService(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.ckpt = os.path.join(cls.tmp, "ckpt")
        subprocess.run([sys.executable, GENERATOR, cls.ckpt, "--preset", "tiny", "--hidden", "1024", "--ffn", "4096",
                        "--layers", "4", "--heads", "8"], check=True, capture_output=True)

    def scrape(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            return parse_exposition(r.read().decode("utf-8"))

    def scrape_when(self, url, ready):
        """Rank 0 renders its last poll of the ranks (one poll interval old at most): scrapes until
        `ready(samples)` holds, then returns that scrape."""
        end = time.time() + 10
        while True:
            s = self.scrape(url)
            if ready(s) or time.time() > end:
                return s
            time.sleep(0.05)

    def scrape_during_load(self, url):
        """Scrapes until the service is ready; every scrape's bytes never go back."""
        scrapes, end = [], time.time() + 60
        while time.time() < end:
            try:
                scrapes.append(self.scrape(url))
            except urllib.error.URLError:  # rank 0 not listening yet
                time.sleep(0.02)
                continue
            if value(scrapes[-1], "shardcast_service_state", state="ready") == 1:
                return scrapes
            time.sleep(0.02)
        self.fail("not ready within 60 s")

    def test_counters_move_during_load_and_after_fetches_and_refusals(self):
        port = free_port()
        url = "http://127.0.0.1:%d/metrics" % port
        svc = Service(self.ckpt, layout="megatron", wait_ready=False, extra=("--metrics-listen", "127.0.0.1:%d" % port))
        try:
            scrapes = self.scrape_during_load(url)
            last = {}
            for s in scrapes:
                for rank in (0, 1):
                    done = value(s, "shardcast_load_done_bytes", rank=str(rank))
                    read = value(s, "shardcast_read_bytes_total", rank=str(rank))
                    self.assertLessEqual(done, value(s, "shardcast_load_total_bytes", rank=str(rank)))
                    self.assertGreaterEqual(done, last.get(("done", rank), 0))
                    self.assertGreaterEqual(read, last.get(("read", rank), 0))
                    last[("done", rank)], last[("read", rank)] = done, read
            ready = scrapes[-1]
            self.assertEqual(value(ready, "shardcast_ranks"), 2)
            for rank in ("0", "1"):
                total = value(ready, "shardcast_load_total_bytes", rank=rank)
                self.assertGreater(total, 0)
                self.assertEqual(value(ready, "shardcast_load_done_bytes", rank=rank), total)
                self.assertGreaterEqual(value(ready, "shardcast_read_bytes_total", rank=rank), total)
                self.assertEqual(value(ready, "shardcast_rank_state", rank=rank, state="ready"), 1)
                self.assertGreater(value(ready, "shardcast_memory_held_bytes", rank=rank), 0)
                self.assertGreater(value(ready, "shardcast_memory_budget_bytes", rank=rank), 0)
            self.assertEqual(value(ready, "shardcast_clients_served_total"), 0)
            self.assertEqual(value(ready, "shardcast_sent_bytes_total"), 0)

            res = fetch_json(svc, 2, 0)
            shard_bytes = sum(t["bytes"] for t in res["tensors"])
            after = self.scrape_when(url, lambda s: value(s, "shardcast_sent_bytes_total") >= shard_bytes)
            self.assertEqual(value(after, "shardcast_sent_bytes_total", transport="stream"), shard_bytes)
            self.assertEqual(value(after, "shardcast_sent_bytes_total", transport="nccl"), 0)
            self.assertGreaterEqual(value(after, "shardcast_clients_served_total"), 1)
            self.assertEqual(value(after, "shardcast_clients_active"), 0)
            self.assertEqual(value(after, "shardcast_requests_prepared_total"), 2)  # one request on each rank
            self.assertEqual(value(after, "shardcast_requests_cached"), 2)
            self.assertEqual(value(after, "shardcast_manifests_served_total"), 1)
            self.assertEqual(value(after, "shardcast_rpc_latency_seconds_count", rank="0", method="GetManifest"), 1)
            # Rank 1 was asked over gRPC; rank 0 prepared through its own loader (no call).
            self.assertEqual(value(after, "shardcast_rpc_latency_seconds_count", rank="1", method="Prepare"), 1)
            self.assertEqual(value(after, "shardcast_rpc_latency_seconds_count", rank="0", method="Prepare"), 0)
            self.assertGreaterEqual(value(after, "shardcast_rpc_latency_seconds_count", method="Fetch"), 1)
            self.assertEqual(value(after, "shardcast_rpc_errors_total"), 0)

            fetch_json(svc, 2, 0)  # the same request again: served from the cache
            again = self.scrape_when(url, lambda s: value(s, "shardcast_sent_bytes_total") >= 2 * shard_bytes)
            self.assertEqual(value(again, "shardcast_sent_bytes_total", transport="stream"), 2 * shard_bytes)
            self.assertEqual(value(again, "shardcast_requests_prepared_total"), 2)
            self.assertEqual(value(again, "shardcast_rpc_latency_seconds_count", rank="0", method="GetManifest"), 2)

            p = svc.cli("fetch", "--tp", "3", "--rank", "0", "--digest", check=False)  # refused by the server
            self.assertEqual(p.returncode, 1)
            self.assertIn("does not divide by TP 3", p.stderr)
            refused = self.scrape_when(url, lambda s: value(s, "shardcast_rpc_errors_total") >= 1)
            self.assertEqual(value(refused, "shardcast_rpc_errors_total", rank="0", method="GetManifest",
                                   code="INVALID_ARGUMENT"), 1,
                             {k: v for k, v in refused.items() if k[0].startswith("shardcast_rpc_errors")})
            self.assertEqual(value(refused, "shardcast_rpc_latency_seconds_count", rank="0", method="GetManifest"), 3)
        finally:
            svc.stop()

    def test_other_paths_and_methods_are_refused(self):
        port = free_port()
        svc = Service(self.ckpt, layout="megatron", extra=("--metrics-listen", "127.0.0.1:%d" % port))
        try:
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10)
            self.assertEqual(e.exception.code, 404)
            post = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, data=b"x", method="POST")
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(post, timeout=10)
            self.assertEqual(e.exception.code, 405)
            self.assertIn("metrics on http://127.0.0.1:%d/metrics" % port, open(svc.log.name).read())
        finally:
            svc.stop()

    def test_a_bad_address_is_a_usage_error(self):
        p = subprocess.run([SHARDCASTD, "--checkpoint", self.ckpt, "--device", "cpu", "--metrics-listen", "9100"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--metrics-listen '9100' is not HOST:PORT", p.stderr)


if __name__ == "__main__":
    junit_unittest.main()
