"""The client library and the CLI run where no CUDA is installed: neither may have a CUDA or NCCL
library in its DT_NEEDED (CUDA's runtime is linked statically and opens the driver on first use;
NCCL is dlopened), and libshardcast_client.so exports no CUDA runtime symbol (they are kept
local, so that another libcudart in the process, e.g. PyTorch's, never binds to ours). The ELF
files are parsed here, with no readelf needed."""
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import junit_unittest  # noqa: E402
from testenv import runfile  # noqa: E402

SHT_DYNAMIC, SHT_DYNSYM, DT_NEEDED = 6, 11, 1
CUDA_LIBRARIES = ("libcudart", "libcuda.", "libnccl", "libcublas", "libnvrtc")


class Elf:
    """The few parts of a 64-bit little-endian ELF file this test reads."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2 or self.data[5] != 1:
            raise ValueError("%s is not a 64-bit little-endian ELF file" % path)
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", self.data, 0x3A)
        self.sections = [struct.unpack_from("<IIQQQQIIQQ", self.data, shoff + i * shentsize) for i in range(shnum)]

    def _section(self, kind):
        return [s for s in self.sections if s[1] == kind]

    def _string(self, strtab_index, offset):
        base = self.sections[strtab_index][4]
        end = self.data.index(b"\0", base + offset)
        return self.data[base + offset:end].decode()

    def needed(self):
        out = []
        for (_, _, _, _, off, size, link, _, _, entsize) in self._section(SHT_DYNAMIC):
            for pos in range(off, off + size, entsize):
                tag, val = struct.unpack_from("<qQ", self.data, pos)
                if tag == DT_NEEDED:
                    out.append(self._string(link, val))
        return out

    def defined_dynamic_symbols(self):
        out = []
        for (_, _, _, _, off, size, link, _, _, entsize) in self._section(SHT_DYNSYM):
            for pos in range(off, off + size, entsize):
                name, _, _, shndx = struct.unpack_from("<IBBH", self.data, pos)
                if shndx != 0 and name != 0:
                    out.append(self._string(link, name))
        return out


class NoCudaLinkTest(unittest.TestCase):
    def check_needed(self, path):
        needed = Elf(path).needed()
        self.assertIn("libc.so.6", needed, "the parser found no DT_NEEDED at all in %s" % path)
        cuda = [n for n in needed if n.startswith(CUDA_LIBRARIES)]
        self.assertEqual(cuda, [], "%s needs %s: it would not load where CUDA is not installed" % (path, cuda))

    def test_client_library_needs_no_cuda(self):
        self.check_needed(runfile("client/libshardcast_client.so"))

    def test_cli_needs_no_cuda(self):
        self.check_needed(runfile("client/cli/shardcast"))

    def test_client_library_exports_no_cuda_runtime(self):
        symbols = Elf(runfile("client/libshardcast_client.so")).defined_dynamic_symbols()
        self.assertTrue(any(s.startswith("shardcast_") for s in symbols), "the C ABI is not exported")
        cuda = [s for s in symbols if s.startswith(("cuda", "__cuda"))]
        self.assertEqual(cuda, [], "CUDA runtime symbols exported: %s" % cuda[:10])


if __name__ == "__main__":
    junit_unittest.main()
