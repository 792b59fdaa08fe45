"""ctypes binding over libshardcast_client.so (client/c_api.h)."""
import copy
import ctypes
import json
import os
import threading
import warnings

from ._index import IndexMethods

# The client library sets GRPC_DNS_RESOLVER=native (unless set) when it connects (see Connect in
# client/client.cc). Setting it here, at import, makes that later setenv a no-op: changing the
# environment while other threads (PyTorch's, NCCL's, CUDA's) call getenv can crash the process.
os.environ.setdefault("GRPC_DNS_RESOLVER", "native")

# gRPC/absl status codes, as the C ABI returns them.
_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
          6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
          10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
          15: "DATA_LOSS", 16: "UNAUTHENTICATED"}

# dtype name -> (numpy dtype name or None, item size)
_DTYPES = {"float64": ("float64", 8), "float32": ("float32", 4), "float16": ("float16", 2),
           "bfloat16": ("bfloat16", 2), "int8": ("int8", 1), "int16": ("int16", 2), "int32": ("int32", 4),
           "int64": ("int64", 8), "uint8": ("uint8", 1), "uint16": ("uint16", 2), "uint32": ("uint32", 4),
           "uint64": ("uint64", 8), "bool": ("bool", 1), "float8_e4m3fn": ("float8_e4m3fn", 1),
           "float8_e5m2": ("float8_e5m2", 1), "complex64": ("complex64", 8), "complex128": ("complex128", 16)}



def _printable(text, limit=500):
    """`text` with non-printable characters escaped (as repr does) and cut to `limit` characters."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")

class LayoutWarning(UserWarning):
    """The plan inferred or assumed a rule the caller may need to settle (a GLU fc1)."""


class ShardcastError(RuntimeError):
    """An error from shardcastd or the client library: `code` is the gRPC status name."""

    def __init__(self, code, message):
        self.code = _CODES.get(code, str(code))
        self.message = message
        super().__init__("%s: %s" % (self.code, message))


class RawBytesWarning(UserWarning):
    """fetch() returned a shard as raw uint8 bytes: its dtype (bfloat16, float8) has no NumPy type
    without the ml_dtypes package. `warnings.simplefilter("error", shardcast.RawBytesWarning)`
    turns it into an error."""


def _find_library():
    env = os.environ.get("SHARDCAST_CLIENT_SO")
    if env:
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", "libshardcast_client.so")
    if os.path.exists(here):
        return here
    raise ImportError("libshardcast_client.so not found: install the wheel (tools/build_wheel.sh, tools/install_python.sh), "
                      "or set SHARDCAST_CLIENT_SO to the library's path")


_lib = None


def _library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(_find_library())
        c_char_pp = ctypes.POINTER(ctypes.c_char_p)
        lib.shardcast_connect.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_double,
                                          ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_connect_tls.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_char_p,
                                              ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                              ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_close.argtypes = [ctypes.c_void_p]
        lib.shardcast_free.argtypes = [ctypes.c_void_p]
        lib.shardcast_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.shardcast_set_nccl_library.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.shardcast_set_ipc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.shardcast_status.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_manifest.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_receive.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, c_char_pp,
                                          ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint64), ctypes.c_int,
                                          ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_warm_up.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_manifest_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_manifest_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                                 ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_manifest_free.argtypes = [ctypes.c_void_p]
        lib.shardcast_manifest_digest.argtypes = [ctypes.c_void_p]
        lib.shardcast_manifest_digest.restype = ctypes.c_char_p
        lib.shardcast_manifest_unchanged.argtypes = [ctypes.c_void_p]
        lib.shardcast_manifest_json.argtypes = [ctypes.c_void_p]
        lib.shardcast_manifest_json.restype = ctypes.c_void_p
        lib.shardcast_receive_manifest.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, c_char_pp,
                                                   ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint64),
                                                   ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                                   ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_warm_up_manifest.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                   ctypes.POINTER(ctypes.c_void_p)]
        lib.shardcast_nccl_version.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_void_p)]
        _lib = lib
    return _lib


def _take_string(lib, ptr):
    if not ptr.value:
        return ""
    s = ctypes.cast(ptr, ctypes.c_char_p).value.decode("utf-8", "replace")
    lib.shardcast_free(ptr)
    return s


def _check(lib, rc, err):
    if rc != 0:
        raise ShardcastError(rc, _take_string(lib, err))


def _request(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu=None):
    renames = []
    if rename:
        items = rename.items() if isinstance(rename, dict) else rename
        for old, new in items:
            renames.append("%s=%s" % (old, new))
    return json.dumps({"tp_size": int(tp_size), "tp_rank": int(tp_rank), "layout": layout or "",
                       "rules": list(rules or ()), "prefix": prefix or "", "renames": renames,
                       "unstack": bool(unstack), "dtype": dtype or "",
                       "glu": None if glu is None else bool(glu)}).encode()


def _box_request(boxes, dtype):
    """The request JSON of a box request (client/manifest_json.h), and the boxes as a list."""
    items = []
    for b in boxes:
        items.append({"name": str(b["name"]), "key": str(b["key"]), "offsets": [int(x) for x in b["offsets"]],
                      "sizes": [int(x) for x in b["sizes"]], "dtype": b.get("dtype") or ""})
    return json.dumps({"dtype": dtype or "", "boxes": items}).encode()


# A box request's limits (common/shard_request.h, README "Request limits"): boxes, and its size
# counted as names + keys + dtypes + 20 bytes a dim + 16 a box.
MAX_BOXES = 16384
MAX_BOX_REQUEST_BYTES = 3 << 20


def box_batches(boxes):
    """`boxes` cut into consecutive lists that each fit one box request's limits (count and size)."""
    batches, batch, size = [], [], 0
    for b in boxes:
        n = (len(str(b["name"]).encode()) + len(str(b["key"]).encode()) + len(b.get("dtype") or "") +
             20 * len(b["sizes"]) + 16)
        if batch and (len(batch) == MAX_BOXES or size + n > MAX_BOX_REQUEST_BYTES - 64):
            batches.append(batch)
            batch, size = [], 0
        batch.append(b)
        size += n
    if batch:
        batches.append(batch)
    return batches


class _Manifest:
    """A manifest as the C ABI keeps it: a handle (parsed and checked once, when obtained) and its
    JSON document, parsed (`shards`, `notes`). Receives and warm-ups take the handle."""

    unchanged = False  # the server confirmed the client's copy (only a new lease came)

    def __init__(self, lib, handle, doc):
        self._lib, self.handle = lib, handle
        self.shards = doc["shards"]
        self.notes = doc.get("notes") or []

    def close(self):
        if getattr(self, "handle", None):
            self._lib.shardcast_manifest_free(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _numpy_dtype(name):
    import numpy as np
    np_name, _ = _DTYPES[name]
    if np_name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        try:
            import ml_dtypes
            return np.dtype(getattr(ml_dtypes, np_name))
        except ImportError:
            return None  # no NumPy type: raw bytes
    return np.dtype(np_name)


class Client(IndexMethods):  # index(), read_bytes(): _index.py
    """A connection to shardcastd (rank 0).

    address: "host:port" (default: $SHARDCAST_ADDR); token_file: the job's token file (default:
    $SHARDCAST_TOKEN_FILE); timeout: seconds for every call and NCCL wait; verify: check every
    shard's CRC32C on arrival; nccl_library: the libnccl.so.2 for GPU receives (default:
    $SHARDCAST_NCCL_LIBRARY, or PyTorch's own when torch is imported); ipc: let a loader rank on
    this process's own GPU hand shards over by CUDA IPC (NCCL cannot connect two ranks on one GPU);
    tls_ca: the service's CA or self-signed certificate when it serves TLS (default:
    $SHARDCAST_TLS_CA); tls_server_name: the name its certificate carries, if not the host dialled.
    """

    def __init__(self, address=None, token_file=None, timeout=60.0, verify=True, nccl_library=None, ipc=True,
                 tls_ca=None, tls_server_name=None):
        self._lib = _library()
        address = address or os.environ.get("SHARDCAST_ADDR")
        if not address:
            raise ShardcastError(3, "no address: pass address='host:port' or set SHARDCAST_ADDR")
        token_file = token_file or os.environ.get("SHARDCAST_TOKEN_FILE")
        token = b""
        if token_file:
            with open(token_file) as f:
                token = f.read().strip().encode()
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.shardcast_connect_tls(
            address.encode(), token, float(timeout), tls_ca.encode() if tls_ca else None,
            tls_server_name.encode() if tls_server_name else None, ctypes.byref(handle), ctypes.byref(err)), err)
        self._handle = handle
        self.address = address
        self._warm_ups = []
        self._warned = set()
        self._documents = {}  # request JSON -> (digest, parsed manifest): see _manifest_for
        self._documents_lock = threading.Lock()
        self._lib.shardcast_set_verify(self._handle, 1 if verify else 0)
        self._lib.shardcast_set_ipc(self._handle, 1 if ipc else 0)
        nccl_library = nccl_library or os.environ.get("SHARDCAST_NCCL_LIBRARY") \
            or torch_nccl_library(import_torch=False)
        if nccl_library:
            self._lib.shardcast_set_nccl_library(self._handle, nccl_library.encode())

    def close(self):
        if getattr(self, "_warm_ups", None):
            self._finish_warm_ups()
        if getattr(self, "_handle", None):
            self._lib.shardcast_close(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def status(self):
        """The service status: the fields of `shardcast status --json`."""
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.shardcast_status(self._handle, ctypes.byref(out), ctypes.byref(err)), err)
        return json.loads(_take_string(self._lib, out))

    def _manifest_raw(self, tp_size, tp_rank, layout=None, rules=(), prefix=None, rename=None, unstack=False, dtype=None,
                      glu=None):
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        req = _request(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu)
        _check(self._lib, self._lib.shardcast_manifest(self._handle, req, ctypes.byref(out), ctypes.byref(err)), err)
        text = _take_string(self._lib, out)
        self._warn_notes(json.loads(text).get("notes") or [])
        return text

    def _manifest(self, tp_size, tp_rank, layout=None, rules=(), prefix=None, rename=None, unstack=False, dtype=None,
                  glu=None):
        return self._manifest_for(_request(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu))

    def _manifest_for(self, req):
        """The manifest of a request's JSON (bytes), as a _Manifest; its notes are warned once.
        Asking again for a request whose manifest is unchanged (equal digests: the library then
        only gets a new lease) reuses the document parsed the first time."""
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.shardcast_manifest_get(self._handle, req, ctypes.byref(handle), None,
                                                           ctypes.byref(err)), err)
        digest = self._lib.shardcast_manifest_digest(handle) or b""
        with self._documents_lock:
            known = self._documents.get(req)
        if digest and known is not None and known[0] == digest:
            doc = known[1]
        else:
            text = _take_string(self._lib, ctypes.c_void_p(self._lib.shardcast_manifest_json(handle)))
            doc = json.loads(text)
            if digest and len(text) <= (4 << 20):  # at most 16 documents of what one reply can carry
                with self._documents_lock:
                    self._documents.pop(req, None)
                    self._documents[req] = (digest, doc)
                    while len(self._documents) > 16:  # the oldest first
                        self._documents.pop(next(iter(self._documents)))
        manifest = _Manifest(self._lib, handle, doc)
        manifest.unchanged = bool(self._lib.shardcast_manifest_unchanged(handle))
        self._warn_notes(manifest.notes)
        return manifest

    def _warn_notes(self, notes):
        """Warns once per client and set of notes (a GLU fc1 rule inferred, or assumed not gated)."""
        key = tuple(notes)
        if not notes or key in self._warned:
            return
        if len(self._warned) < 64:  # bounded: a server could send endless distinct notes
            self._warned.add(key)
        # The notes come from the server: control characters are shown escaped, never sent to the
        # terminal as they are.
        shown = "\n  ".join(_printable(n) for n in notes[:20]) + ("\n  ... and %d more" % (len(notes) - 20) if len(notes) > 20 else "")
        warnings.warn("shardcast: the layout's rule for %d tensor(s) was inferred or assumed (GLU fc1); settle it "
                      "with glu=True/False (the CLI's --glu yes|no) or rules=[...]:\n  %s" % (len(notes), shown),
                      LayoutWarning, stacklevel=3)

    def _parse_manifest(self, text):
        handle, err = ctypes.c_void_p(), ctypes.c_void_p()
        _check(self._lib, self._lib.shardcast_manifest_parse(text.encode(), ctypes.byref(handle), ctypes.byref(err)), err)
        return _Manifest(self._lib, handle, json.loads(text))

    def manifest(self, tp_size, tp_rank, layout=None, rules=(), prefix=None, rename=None, unstack=False, dtype=None,
                 glu=None):
        """The shards of one TP rank: a list of dicts (name, key, dtype, shape, nbytes, crc32c, owner_rank, rule).

        `layout` (here and in fetch / load_into / warm_up): a preset name ("megatron", "replicate")
        or a local layout file, read by this process and sent as text (the service opens no path
        a request names); None for the service's own --layout. Requests over the limits of the
        README's "Request limits" raise ShardcastError INVALID_ARGUMENT before anything is sent.
        `glu` (here and in fetch / load_into / warm_up): True or False says whether the MLPs are
        gated (SwiGLU/GeGLU: fc1 cut as sections:0:2, else split:0), below any `rules`; None lets
        the megatron preset infer it from the stored chunk grid. What was inferred or assumed is
        warned once (LayoutWarning)."""
        return json.loads(self._manifest_raw(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype,
                                             glu))["shards"]

    def warm_up(self, tp_size, tp_rank, device=0, layout=None, rules=(), prefix=None, rename=None, unstack=False,
                dtype=None, background=False, glu=None):
        """Prepares a later load_into of this request into GPU `device` (an index, "cuda:N" or a
        torch.device): the sidecar cuts the shards, and the NCCL communicators with loader ranks on
        other GPUs are formed (about 0.5 s, once per client). With background=True it runs on a
        thread (the GIL is released) while you build the model, and returns that thread; load_into
        waits for it. Errors surface again in load_into."""
        manifest = self._manifest(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu)
        index = _device_index(device)

        def run():
            err = ctypes.c_void_p()
            _check(self._lib, self._lib.shardcast_warm_up_manifest(self._handle, manifest.handle, index,
                                                                   ctypes.byref(err)), err)

        if not background:
            run()
            return None
        t = _Background(run)
        self._warm_ups.append(t)
        return t

    def _finish_warm_ups(self):
        for t in self._warm_ups:
            t.join()
        self._warm_ups = []

    def _receive(self, manifest, items, device):
        """Receives `items` ((name, pointer, size) each) of `manifest`: a _Manifest, or a manifest's
        JSON text (parsed and checked by the C ABI first)."""
        self._finish_warm_ups()
        if isinstance(manifest, str):
            manifest = self._parse_manifest(manifest)
        n = len(items)
        names = (ctypes.c_char_p * n)(*[name.encode() for name, _, _ in items])
        ptrs = (ctypes.c_void_p * n)(*[ptr for _, ptr, _ in items])
        sizes = (ctypes.c_uint64 * n)(*[size for _, _, size in items])
        report, err = ctypes.c_void_p(), ctypes.c_void_p()
        rc = self._lib.shardcast_receive_manifest(self._handle, manifest.handle, n, names, ptrs, sizes, device,
                                                  ctypes.byref(report), ctypes.byref(err))
        _check(self._lib, rc, err)
        return json.loads(_take_string(self._lib, report))

    def load_into(self, tensors, tp_size, tp_rank, layout=None, rules=(), prefix=None, rename=None, unstack=False,
                  dtype=None, strict=True, glu=None):
        """Receives shards into existing buffers. `tensors` maps names to PyTorch tensors (CUDA ones
        receive over NCCL, or CUDA IPC from a loader rank on their own GPU; CPU ones over the
        stream) or NumPy arrays (the shard's dtype, e.g. ml_dtypes.bfloat16, or a flat uint8 array
        of its byte size). Shapes, dtypes and byte sizes are checked before any byte moves; with
        `strict`, names missing from either side are an error listing them all.
        Returns the report: bytes, seconds, shards, crc_checked, transport(s)."""
        manifest = self._manifest(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu)
        shards = {s["name"]: s for s in manifest.shards}
        missing = sorted(set(tensors) - set(shards))
        unexpected = sorted(set(shards) - set(tensors))
        problems = []
        if missing:
            problems.append("%d expected names are not in the checkpoint: %s" % (len(missing), ", ".join(missing[:20])))
        if strict and unexpected:
            problems.append("%d checkpoint names are not expected: %s" % (len(unexpected), ", ".join(unexpected[:20])))
        host, device = [], {}
        for name, t in tensors.items():
            s = shards.get(name)
            if s is None:
                continue
            shape = tuple(t.shape)
            raw_bytes = type(t).__module__.startswith("numpy") and t.dtype.itemsize == 1 and t.ndim == 1 \
                and s["dtype"] not in ("int8", "uint8", "bool", "float8_e4m3fn", "float8_e5m2")
            if not raw_bytes and shape != tuple(s["shape"]):
                problems.append("%s: shape %s, the shard is %s" % (name, list(shape), s["shape"]))
                continue
            dtype = _dtype_name(t)
            if not raw_bytes and dtype != s["dtype"]:
                problems.append("%s: dtype %s, the shard is %s (ask for dtype='fp32' etc. to cast)" % (
                    name, dtype, s["dtype"]))
                continue
            ptr, nbytes, dev = _buffer(t)
            if nbytes != s["nbytes"]:
                problems.append("%s: %d bytes, the shard has %d (dtype %s)" % (name, nbytes, s["nbytes"], s["dtype"]))
                continue
            (host if dev < 0 else device.setdefault(dev, [])).append((name, ptr, nbytes))
        if problems:
            raise ShardcastError(3, "refusing to load (nothing was transferred):\n  " + "\n  ".join(problems))
        report = self._receive_groups(manifest, host, device, lambda: self._manifest(
            tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu))
        report["skipped"] = unexpected
        return report

    def _receive_groups(self, manifest, host, device, ask_again):
        """Receives host items, then each GPU's items ((name, pointer, size) each); the report
        summed over the receives. A manifest's lease covers one receive (its transfers end the pin
        on each rank): every further receive asks again (`ask_again`), which re-pins the cached
        request (no re-cut)."""
        reports = []
        groups = ([(host, -1)] if host else []) + [(items, dev) for dev, items in device.items()]
        for i, (items, dev) in enumerate(groups):
            if i > 0:
                manifest = ask_again()
            reports.append(self._receive(manifest, items, dev))
        return {"bytes": sum(r["bytes"] for r in reports), "shards": sum(r["shards"] for r in reports),
                "crc_checked": sum(r["crc_checked"] for r in reports), "seconds": sum(r["seconds"] for r in reports),
                "transports": [r["transport"] for r in reports]}

    def box_manifest(self, boxes, dtype=None):
        """The shards of a box request: a list of dicts (name, key, dtype, shape = the box's sizes,
        nbytes, crc32c, owner_rank, rule "box"). See load_boxes for `boxes`."""
        boxes = list(boxes)
        return copy.deepcopy(self._manifest_for(_box_request(boxes, dtype)).shards)  # the client keeps its own

    def load_boxes(self, boxes, dtype=None, strict=True):
        """Receives boxes of checkpoint tensors into existing buffers: what a framework's own
        sharding metadata asks for (shardcast.megatron, shardcast.torch build these).

        `boxes`: dicts {"name": unique destination name, "key": checkpoint key, "offsets": [...],
        "sizes": [...] (global, in the stored tensor's coordinates and rank), "tensor": a contiguous
        PyTorch tensor or NumPy array with prod(sizes) elements of the shard's dtype (its shape may
        differ, e.g. without a stacked layer axis's leading 1), optional "dtype": "bf16" | "fp16" |
        "fp32" (a cast for this box; `dtype` casts every floating-point box without one)}. Any box
        of any tensor, from whatever chunk grid it was saved with; boxes may share keys or overlap.
        The service refuses bad boxes (outside the tensor, key not served, bad cast) listing them
        all; destination sizes and dtypes are checked here, all before any byte moves. With
        strict=False, boxes whose destination does not match are skipped (listed in the report's
        "skipped") instead. Limits: README "Request limits" (16384 boxes a request).
        Returns the report: bytes, seconds, shards, crc_checked, transports, skipped."""
        boxes = list(boxes)
        manifest = self._manifest_for(_box_request(boxes, dtype))
        shards = {s["name"]: s for s in manifest.shards}
        problems, skipped, host, device = [], [], [], {}
        for b in boxes:
            s, t = shards.get(str(b["name"])), b["tensor"]
            problem = _box_destination_problem(b, s, t)
            if problem:
                problems.append(problem)
                skipped.append(str(b["name"]))
                continue
            ptr, nbytes, dev = _buffer(t)
            (host if dev < 0 else device.setdefault(dev, [])).append((s["name"], ptr, nbytes))
        if problems and strict:
            raise ShardcastError(3, "refusing to load (nothing was transferred): %d of %d boxes do not fit their "
                                    "destinations:\n  %s" % (len(problems), len(boxes), "\n  ".join(problems[:50])))
        report = {"bytes": 0, "shards": 0, "crc_checked": 0, "seconds": 0.0, "transports": []}
        if host or device:
            report = self._receive_groups(manifest, host, device,
                                          lambda: self._manifest_for(_box_request(boxes, dtype)))
        report["skipped"] = skipped
        report["problems"] = problems
        return report

    def fetch(self, tp_size, tp_rank, layout=None, rules=(), prefix=None, rename=None, unstack=False, dtype=None,
              glu=None):
        """Receives one TP rank's shards into new NumPy arrays (host memory): {name: array}.
        bfloat16/float8 come as ml_dtypes arrays when ml_dtypes is installed, else as raw uint8 with a
        RawBytesWarning naming them (`pip install ml_dtypes` gives typed arrays)."""
        import numpy as np
        manifest = self._manifest(tp_size, tp_rank, layout, rules, prefix, rename, unstack, dtype, glu)
        shards = manifest.shards
        raw = {s["name"]: np.empty(s["nbytes"], dtype=np.uint8) for s in shards}
        if shards:
            self._receive(manifest, [(n, a.ctypes.data, a.nbytes) for n, a in raw.items()], -1)
        out, untyped = {}, []
        for s in shards:
            dt = _numpy_dtype(s["dtype"])
            a = raw[s["name"]]
            out[s["name"]] = a.view(dt).reshape(s["shape"]) if dt is not None else a
            if dt is None:
                untyped.append(s)
        if untyped:
            _warn_raw_bytes(untyped)
        return out


def _warn_raw_bytes(shards):
    """Says that `shards` (manifest entries) come back as raw uint8 bytes, and how to get typed arrays."""
    names = ", ".join("%s (%s)" % (s["name"], s["dtype"]) for s in shards[:5]) + (", ..." if len(shards) > 5 else "")
    dtypes = "/".join(sorted({s["dtype"] for s in shards}))
    warnings.warn("%d shard(s) returned as raw uint8 bytes, not typed arrays: %s. NumPy has no %s type without "
                  "the ml_dtypes package: pip install ml_dtypes" % (len(shards), names, dtypes),
                  RawBytesWarning, stacklevel=3)


def _box_destination_problem(box, shard, tensor):
    """Why `tensor` cannot receive the box's `shard` (a manifest entry), or None."""
    name = str(box["name"])
    if shard is None:
        return "%s: not in the service's manifest" % name
    if type(tensor).__module__.startswith("numpy") and tensor.dtype.itemsize == 1 and tensor.ndim == 1 \
            and tensor.nbytes == shard["nbytes"]:
        return None  # raw bytes of the exact size (bfloat16 without ml_dtypes), as load_into takes
    numel = 1
    for d in shard["shape"]:
        numel *= int(d)
    have = int(tensor.numel()) if type(tensor).__module__.startswith("torch") else int(tensor.size)
    if have != numel:
        return "%s (key %s): %d elements, the box %s has %d" % (name, shard["key"], have, shard["shape"], numel)
    if _dtype_name(tensor) != shard["dtype"]:
        return "%s (key %s): dtype %s, the box is %s (give the box a \"dtype\" to cast)" % (
            name, shard["key"], _dtype_name(tensor), shard["dtype"])
    return None


def torch_nccl_library(import_torch=True):
    """The libnccl.so.2 PyTorch uses (the build `shardcastd --nccl-lib` must be given), or None when
    PyTorch is not installed (or, with import_torch=False, not imported) or its NCCL cannot be found.
    Looks, in order, at the NCCL library mapped into this process once torch is imported (the one
    PyTorch really uses: NGC containers link it from the system's library folder), the `nvidia.nccl`
    package (PyPI's torch wheels), and torch's own lib/ folder."""
    import sys
    if "torch" not in sys.modules:
        if not import_torch:
            return None
        try:
            import torch  # noqa: F401  (loads libtorch_cuda and, with it, the NCCL it links)
        except ImportError:
            return None
    torch = sys.modules["torch"]
    try:
        if torch.cuda.is_available():
            torch.cuda.nccl.version()  # makes a lazily loaded NCCL appear in the maps
    except Exception:  # noqa: BLE001  (a torch without CUDA or NCCL: nothing mapped)
        pass
    return _mapped_nccl() or _package_nccl() or _torch_folder_nccl(torch)


def _mapped_nccl():
    """The path of a libnccl.so* mapped into this process (/proc/self/maps), or None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if os.path.basename(path).startswith("libnccl.so") and os.path.exists(path):
                    return path
    except OSError:
        pass
    return None


def _package_nccl():
    """libnccl.so.2 of the `nvidia-nccl-cu*` package, or None."""
    try:
        import nvidia.nccl
    except ImportError:
        return None
    for base in list(getattr(nvidia.nccl, "__path__", [])):
        cand = os.path.join(base, "lib", "libnccl.so.2")
        if os.path.exists(cand):
            return cand
    return None


def _torch_folder_nccl(torch):
    """A libnccl.so* inside torch's own lib/ folder (builds that bundle it), or None."""
    lib = os.path.join(os.path.dirname(os.path.abspath(getattr(torch, "__file__", "") or ".")), "lib")
    try:
        names = sorted(n for n in os.listdir(lib) if n.startswith("libnccl.so"))
    except OSError:
        return None
    return os.path.join(lib, names[0]) if names else None


def _dtype_name(t):
    """PyTorch's name of a tensor's or array's dtype ("bfloat16", "float32", ...)."""
    if type(t).__module__.startswith("torch"):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


class _Background(threading.Thread):
    """A warm-up on a thread; wait() re-raises its error."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self._fn, self.error = fn, None
        self.start()

    def run(self):
        try:
            self._fn()
        except Exception as e:  # noqa: BLE001
            self.error = e

    def wait(self):
        self.join()
        if self.error is not None:
            raise self.error


def _device_index(device):
    if isinstance(device, int):
        return device
    if type(device).__module__.startswith("torch"):  # torch.device
        return device.index or 0
    text = str(device)
    return int(text.split(":", 1)[1]) if ":" in text else 0


def _buffer(t):
    """(pointer, nbytes, device) of a PyTorch tensor or NumPy array; device -1 for host memory."""
    mod = type(t).__module__
    if mod.startswith("torch"):
        if not t.is_contiguous():
            raise ShardcastError(3, "tensors must be contiguous")
        dev = t.device.index if t.is_cuda else -1
        if t.is_cuda and dev is None:
            dev = 0
        return t.data_ptr(), t.numel() * t.element_size(), dev
    import numpy as np
    a = t
    if not isinstance(a, np.ndarray) or not a.flags["C_CONTIGUOUS"] or not a.flags["WRITEABLE"]:
        raise ShardcastError(3, "NumPy destinations must be writeable C-contiguous arrays")
    return a.ctypes.data, a.nbytes, -1


def load_module(module, address=None, tp_size=1, tp_rank=0, **kwargs):
    """Fills an nn.Module's parameters in place (named_parameters()), for the common case. Extra
    keyword arguments go to Client.load_into (layout, rules, prefix, rename, unstack, strict, ...);
    `token_file`, `timeout`, `nccl_library`, `verify`, `ipc`, `tls_ca` and `tls_server_name` to the Client."""
    client_kw = {k: kwargs.pop(k) for k in ("token_file", "timeout", "nccl_library", "verify", "ipc", "tls_ca",
                                            "tls_server_name") if k in kwargs}
    tensors = {name: p.data for name, p in module.named_parameters()}
    with Client(address, **client_kw) as c:
        return c.load_into(tensors, tp_size, tp_rank, **kwargs)
