"""Where the tests find what they run: Bazel runfiles under `bazel test`, or paths named by the
environment when the same tests run elsewhere (e.g. from a bundle on a GPU host)."""
import os


def runfile(path, env=None):
    """`path` inside the runfiles (e.g. "shardcast/client/cli/shardcast"), or $env if set."""
    if env and os.environ.get(env):
        return os.environ[env]
    base = os.environ.get("TEST_SRCDIR", "")
    for cand in (os.path.join(base, path), os.path.join(base, "shardcast", path)):
        if os.path.exists(cand):
            return os.path.realpath(cand)
    raise FileNotFoundError("%s (not in the runfiles%s)" % (path, ", and $%s is not set" % env if env else ""))


def fixtures_dir():
    """../shared/fixtures (the @shared_fixtures repository), or $SHARDCAST_FIXTURES."""
    if os.environ.get("SHARDCAST_FIXTURES"):
        return os.environ["SHARDCAST_FIXTURES"]
    return os.path.dirname(runfile("shared_fixtures/README.md"))
