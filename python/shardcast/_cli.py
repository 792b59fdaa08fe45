"""The `shardcast` console script of the wheel: runs the CLI binary shipped in shardcast/_bin/
(the same program as bazel-bin/client/cli/shardcast) with the arguments given."""
import os
import sys

_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "shardcast")


def main():
    """Replaces this process with the shardcast CLI; exit status 2 when the wheel lacks it."""
    if not os.access(_BIN, os.X_OK):
        sys.stderr.write("shardcast: the CLI binary is not in this installation (%s); install the wheel built "
                         "by tools/build_wheel.sh, or use bazel-bin/client/cli/shardcast\n" % _BIN)
        return 2
    os.execv(_BIN, [_BIN] + sys.argv[1:])
    return 2  # not reached


if __name__ == "__main__":
    sys.exit(main())
