"""The service's index and its bytes entries: `Client.index()` and `Client.read_bytes(keys)`
(client/c_api.h: shardcast_index, shardcast_read_bytes). Kept apart from _client.py; Client
inherits these methods."""
import base64
import ctypes
import json

_declared = set()


def _declare(lib):
    """Sets the argument types of the two C functions once per library handle."""
    if id(lib) in _declared:
        return
    out = ctypes.POINTER(ctypes.c_void_p)
    lib.shardcast_index.argtypes = [ctypes.c_void_p, out, out]
    lib.shardcast_read_bytes.argtypes = [ctypes.c_void_p, ctypes.c_char_p, out, out]
    _declared.add(id(lib))


class IndexMethods:
    """Client methods over rank 0's index (needs `self._lib`, `self._handle`)."""

    def index(self):
        """What the service holds (its --prefix's selection), in .metadata order, without reading it:
        {"prefix": str, "tensors": [{"key", "dtype" (PyTorch name), "shape" (global)}],
         "bytes": [{"key", "nbytes" (as stored), "compressed"}]}."""
        from ._client import _check, _take_string
        _declare(self._lib)
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.shardcast_index(self._handle, ctypes.byref(out), ctypes.byref(err)), err)
        return json.loads(_take_string(self._lib, out))

    def read_bytes(self, keys):
        """Bytes entries (DCP's non-tensor values) by key -> {key: bytes}, each payload as stored
        (usually a torch.save archive: `torch.load(io.BytesIO(data))`). Raises ShardcastError
        (NOT_FOUND listing every key the service does not serve) before returning anything."""
        from ._client import _check, _take_string
        _declare(self._lib)
        keys = [keys] if isinstance(keys, str) else list(keys)
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        request = json.dumps(keys).encode()
        _check(self._lib, self._lib.shardcast_read_bytes(self._handle, request, ctypes.byref(out),
                                                          ctypes.byref(err)), err)
        return {v["key"]: base64.b64decode(v["base64"]) for v in json.loads(_take_string(self._lib, out))}
