"""Build macros shared by shardcast packages (offline: system protoc, nvcc genrules)."""

def sc_cc_grpc_proto(name, srcs, deps = [], visibility = None):
    """Generates C++ protobuf + gRPC code with the system protoc and grpc_cpp_plugin."""
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + e for e in [".pb.h", ".pb.cc", ".grpc.pb.h", ".grpc.pb.cc"]]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs,
        tools = ["@system//:protoc", "@system//:grpc_cpp_plugin"],
        cmd = "$(location @system//:protoc) --proto_path=. --cpp_out=$(GENDIR) --grpc_out=$(GENDIR) " +
              "--plugin=protoc-gen-grpc=$(location @system//:grpc_cpp_plugin) " +
              " ".join(["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system//:grpc++", "@system//:protobuf"],
        visibility = visibility,
    )

NVCC_ARCH_FLAGS = "-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90"

def sc_cuda_library(name, srcs, hdrs = [], textual_hdrs = [], deps = [], visibility = None):
    """Compiles .cu files with nvcc into objects wrapped by a cc_library (tag "cuda")."""
    objs = []
    for src in srcs:
        obj = src + ".o"
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".", "_") + "_nvcc",
            srcs = [src] + hdrs + textual_hdrs,
            outs = [obj],
            tags = ["cuda"],
            cmd = "/usr/local/cuda/bin/nvcc -std=c++17 -O3 -Xcompiler -fPIC -I. -I$(GENDIR) " +
                  NVCC_ARCH_FLAGS + " -c $(location %s) -o $@" % src,
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        tags = ["cuda"],
        visibility = visibility,
    )
