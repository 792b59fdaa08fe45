#include "transport/nccl_lib.h"

#include <dlfcn.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace shardcast {

std::string NcclLib::VersionString(int code) {
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  if (code >= 10000) return absl::StrCat(code / 10000, ".", (code % 10000) / 100, ".", code % 100);
  return absl::StrCat(code / 1000, ".", (code % 1000) / 100, ".", code % 100);
}

absl::StatusOr<std::shared_ptr<const NcclLib>> NcclLib::Load(const std::string& path_in) {
  std::string path = path_in;
  if (path.empty()) {
    const char* env = std::getenv("SHARDCAST_NCCL_LIBRARY");
    path = env && *env ? env : "libnccl.so.2";
  }
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* err = ::dlerror();
    return absl::NotFoundError(absl::StrCat("cannot load NCCL from '", path, "': ", err ? err : "unknown error",
                                            " (set --nccl-lib or SHARDCAST_NCCL_LIBRARY to the libnccl.so.2 your "
                                            "training processes use)"));
  }
  auto lib = std::make_shared<NcclLib>();
  lib->path = path;
  auto sym = [&](const char* name) -> void* { return ::dlsym(h, name); };
#define SC_NCCL_SYM(field, name)                                                          \
  lib->field = reinterpret_cast<decltype(lib->field)>(sym(name));                         \
  if (lib->field == nullptr) return absl::NotFoundError(absl::StrCat(path, " lacks ", name));
  SC_NCCL_SYM(GetVersion, "ncclGetVersion");
  SC_NCCL_SYM(GetUniqueId, "ncclGetUniqueId");
  SC_NCCL_SYM(CommInitRankConfig, "ncclCommInitRankConfig");
  SC_NCCL_SYM(CommGetAsyncError, "ncclCommGetAsyncError");
  SC_NCCL_SYM(CommAbort, "ncclCommAbort");
  SC_NCCL_SYM(CommDestroy, "ncclCommDestroy");
  SC_NCCL_SYM(Send, "ncclSend");
  SC_NCCL_SYM(Recv, "ncclRecv");
  SC_NCCL_SYM(GroupStart, "ncclGroupStart");
  SC_NCCL_SYM(GroupEnd, "ncclGroupEnd");
  SC_NCCL_SYM(GetErrorString, "ncclGetErrorString");
#undef SC_NCCL_SYM
  if (lib->GetVersion(&lib->version) != ncclSuccess) return absl::InternalError("ncclGetVersion failed");
  return std::shared_ptr<const NcclLib>(lib);
}

absl::Status NcclVersionMismatch(int server_version, const std::string& server_path, int client_version) {
  return absl::FailedPreconditionError(absl::StrCat(
      "NCCL version mismatch: shardcastd uses NCCL ", NcclLib::VersionString(server_version), " (", server_path,
      "), this client uses NCCL ", NcclLib::VersionString(client_version),
      ". Different NCCL builds in one communicator hang in ncclCommInitRank, so the session is refused. "
      "Start shardcastd with --nccl-lib (or SHARDCAST_NCCL_LIBRARY) naming the client's libnccl.so.2, e.g. "
      "the one inside PyTorch: python3 -c \"import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', "
      "'libnccl.so.2'))\""));
}

}  // namespace shardcast
