// The C ABI over the C++ client (client.h): JSON in, JSON out, status codes and malloc'ed messages.
// Manifests are handles holding the parsed, checked Manifest; every pointer a caller passes is
// checked before it is used.
#include "client/c_api.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/manifest_json.h"
#include "transport/nccl_lib.h"

struct shardcast_client {
  std::unique_ptr<shardcast::Client> client;
};

struct shardcast_manifest_handle {
  shardcast::Manifest manifest;
};

namespace {

char* Dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.data(), s.size() + 1);
  return p;
}

int Fail(const absl::Status& s, char** error) {
  if (error) *error = Dup(std::string(s.message()));
  const int code = static_cast<int>(s.code());
  return code == 0 ? 2 : code;
}

// OK unless one of the pointers a call needs is NULL.
absl::Status Require(bool present, const char* what) {
  return present ? absl::OkStatus() : absl::InvalidArgumentError(absl::StrCat(what, " must not be NULL"));
}

absl::StatusOr<shardcast::Manifest> GetManifest(shardcast_client* client, const char* request_json) {
  if (absl::Status s = Require(client != nullptr, "client"); !s.ok()) return s;
  absl::StatusOr<shardcast::ShardRequestSpec> spec = shardcast::ShardRequestFromJson(request_json ? request_json : "{}");
  if (!spec.ok()) return spec.status();
  return client->client->GetManifest(*spec);
}

absl::StatusOr<shardcast::FetchReport> Receive(shardcast_client* client, const shardcast::Manifest& m, size_t n,
                                               const char* const* names, void* const* buffers, const uint64_t* sizes,
                                               int device) {
  if (absl::Status s = Require(client != nullptr, "client"); !s.ok()) return s;
  if (n > 0 && (names == nullptr || buffers == nullptr || sizes == nullptr)) {
    return absl::InvalidArgumentError("names, buffers and sizes must not be NULL");
  }
  std::vector<shardcast::Destination> dst;
  for (size_t i = 0; i < n; ++i) {
    dst.push_back(shardcast::Destination{names[i] ? names[i] : "", buffers[i], sizes[i], "", std::nullopt});
  }
  return device < 0 ? client->client->ReceiveHost(m, dst) : client->client->ReceiveDevice(m, dst, device);
}

int ReportReceive(const absl::StatusOr<shardcast::FetchReport>& r, char** report_json, char** error) {
  if (!r.ok()) return Fail(r.status(), error);
  if (report_json) *report_json = Dup(r->ToJson().Dump());
  return 0;
}

int WarmUp(shardcast_client* client, const shardcast::Manifest& m, int device, char** error) {
  if (absl::Status s = Require(client != nullptr, "client"); !s.ok()) return Fail(s, error);
  absl::Status s = client->client->WarmUp(m, device);
  return s.ok() ? 0 : Fail(s, error);
}

}  // namespace

extern "C" {

int shardcast_connect(const char* address, const char* token, double timeout_seconds, shardcast_client** out,
                      char** error) {
  return shardcast_connect_tls(address, token, timeout_seconds, nullptr, nullptr, out, error);
}

int shardcast_connect_tls(const char* address, const char* token, double timeout_seconds, const char* tls_ca_file,
                          const char* tls_server_name, shardcast_client** out, char** error) {
  if (absl::Status s = Require(out != nullptr, "out"); !s.ok()) return Fail(s, error);
  shardcast::ClientOptions o;
  o.address = address ? address : "";
  o.token = token ? token : "";
  o.tls_ca_file = tls_ca_file ? tls_ca_file : "";
  o.tls_server_name = tls_server_name ? tls_server_name : "";
  if (timeout_seconds > 0) o.deadline = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  absl::StatusOr<std::unique_ptr<shardcast::Client>> c = shardcast::Client::Connect(o);
  if (!c.ok()) return Fail(c.status(), error);
  *out = new shardcast_client{std::move(*c)};
  return 0;
}

void shardcast_close(shardcast_client* client) { delete client; }

void shardcast_free(void* p) { std::free(p); }

void shardcast_set_verify(shardcast_client* client, int verify) {
  if (client) client->client->mutable_options().verify_crc32c = verify != 0;
}

void shardcast_set_nccl_library(shardcast_client* client, const char* path) {
  if (client) client->client->mutable_options().nccl_library = path ? path : "";
}

void shardcast_set_ipc(shardcast_client* client, int allow) {
  if (client) client->client->mutable_options().allow_ipc = allow != 0;
}

int shardcast_status(shardcast_client* client, char** status_json, char** error) {
  if (absl::Status s = Require(client != nullptr && status_json != nullptr, "client and status_json"); !s.ok()) {
    return Fail(s, error);
  }
  absl::StatusOr<shardcast::Json> st = client->client->Status();
  if (!st.ok()) return Fail(st.status(), error);
  *status_json = Dup(st->Dump());
  return 0;
}

int shardcast_manifest(shardcast_client* client, const char* request_json, char** manifest_json, char** error) {
  if (absl::Status s = Require(manifest_json != nullptr, "manifest_json"); !s.ok()) return Fail(s, error);
  absl::StatusOr<shardcast::Manifest> m = GetManifest(client, request_json);
  if (!m.ok()) return Fail(m.status(), error);
  *manifest_json = Dup(shardcast::ManifestToJson(*m).Dump());
  return 0;
}

int shardcast_manifest_get(shardcast_client* client, const char* request_json, shardcast_manifest_handle** manifest,
                           char** manifest_json, char** error) {
  if (absl::Status s = Require(manifest != nullptr, "manifest"); !s.ok()) return Fail(s, error);
  absl::StatusOr<shardcast::Manifest> m = GetManifest(client, request_json);
  if (!m.ok()) return Fail(m.status(), error);
  if (manifest_json) *manifest_json = Dup(shardcast::ManifestToJson(*m).Dump());
  *manifest = new shardcast_manifest_handle{*std::move(m)};
  return 0;
}

int shardcast_manifest_parse(const char* manifest_json, shardcast_manifest_handle** manifest, char** error) {
  if (absl::Status s = Require(manifest != nullptr, "manifest"); !s.ok()) return Fail(s, error);
  absl::StatusOr<shardcast::Manifest> m = shardcast::ManifestFromJson(manifest_json ? manifest_json : "");
  if (!m.ok()) return Fail(m.status(), error);
  *manifest = new shardcast_manifest_handle{*std::move(m)};
  return 0;
}

void shardcast_manifest_free(shardcast_manifest_handle* manifest) { delete manifest; }

const char* shardcast_manifest_digest(const shardcast_manifest_handle* manifest) {
  return manifest == nullptr ? "" : manifest->manifest.digest.c_str();
}

int shardcast_manifest_unchanged(const shardcast_manifest_handle* manifest) {
  return manifest != nullptr && manifest->manifest.unchanged ? 1 : 0;
}

char* shardcast_manifest_json(const shardcast_manifest_handle* manifest) {
  return manifest == nullptr ? nullptr : Dup(shardcast::ManifestToJson(manifest->manifest).Dump());
}

int shardcast_receive_manifest(shardcast_client* client, const shardcast_manifest_handle* manifest, size_t n,
                               const char* const* names, void* const* buffers, const uint64_t* sizes, int device,
                               char** report_json, char** error) {
  if (absl::Status s = Require(manifest != nullptr, "manifest"); !s.ok()) return Fail(s, error);
  return ReportReceive(Receive(client, manifest->manifest, n, names, buffers, sizes, device), report_json, error);
}

int shardcast_receive(shardcast_client* client, const char* manifest_json, size_t n, const char* const* names,
                      void* const* buffers, const uint64_t* sizes, int device, char** report_json, char** error) {
  absl::StatusOr<shardcast::Manifest> m = shardcast::ManifestFromJson(manifest_json ? manifest_json : "");
  if (!m.ok()) return Fail(m.status(), error);
  return ReportReceive(Receive(client, *m, n, names, buffers, sizes, device), report_json, error);
}

int shardcast_warm_up_manifest(shardcast_client* client, const shardcast_manifest_handle* manifest, int device,
                               char** error) {
  if (absl::Status s = Require(manifest != nullptr, "manifest"); !s.ok()) return Fail(s, error);
  return WarmUp(client, manifest->manifest, device, error);
}

int shardcast_warm_up(shardcast_client* client, const char* manifest_json, int device, char** error) {
  absl::StatusOr<shardcast::Manifest> m = shardcast::ManifestFromJson(manifest_json ? manifest_json : "");
  if (!m.ok()) return Fail(m.status(), error);
  return WarmUp(client, *m, device, error);
}

// ---- The index and bytes entries ----

int shardcast_index(shardcast_client* client, char** index_json, char** error) {
  if (absl::Status s = Require(client != nullptr && index_json != nullptr, "client and index_json"); !s.ok()) {
    return Fail(s, error);
  }
  absl::StatusOr<shardcast::ServiceIndex> index = client->client->GetIndex();
  if (!index.ok()) return Fail(index.status(), error);
  *index_json = Dup(index->ToJson().Dump());
  return 0;
}

int shardcast_read_bytes(shardcast_client* client, const char* keys_json, char** values_json, char** error) {
  if (absl::Status s = Require(client != nullptr && keys_json != nullptr && values_json != nullptr,
                               "client, keys_json and values_json");
      !s.ok()) {
    return Fail(s, error);
  }
  absl::StatusOr<shardcast::Json> parsed = shardcast::Json::Parse(keys_json);
  if (!parsed.ok()) return Fail(parsed.status(), error);
  if (!parsed->is_array()) return Fail(absl::InvalidArgumentError("keys_json must be an array of strings"), error);
  std::vector<std::string> keys;
  for (const shardcast::Json& k : parsed->items()) {
    if (!k.is_string()) return Fail(absl::InvalidArgumentError("keys_json must be an array of strings"), error);
    keys.push_back(k.as_string());
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> values = client->client->ReadBytes(keys);
  if (!values.ok()) return Fail(values.status(), error);
  shardcast::Json out = shardcast::Json::Array();
  for (const auto& [key, data] : *values) {
    shardcast::Json v = shardcast::Json::Object();
    v.Set("key", key);
    v.Set("base64", absl::Base64Escape(data));
    out.Append(std::move(v));
  }
  *values_json = Dup(out.Dump());
  return 0;
}

int shardcast_nccl_version(shardcast_client* client, int* version, char** error) {
  if (absl::Status s = Require(client != nullptr && version != nullptr, "client and version"); !s.ok()) {
    return Fail(s, error);
  }
  absl::StatusOr<std::shared_ptr<const shardcast::NcclLib>> lib =
      shardcast::NcclLib::Load(client->client->options().nccl_library);
  if (!lib.ok()) {
    *version = 0;
    return Fail(lib.status(), error);
  }
  *version = (*lib)->version;
  return 0;
}

}  // extern "C"
