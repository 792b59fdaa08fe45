// The C ABI over the C++ client (client.h): JSON in, JSON out, status codes and malloc'ed messages.
#include "client/c_api.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

#include "client/client.h"
#include "transport/nccl_lib.h"

struct shardcast_client {
  std::unique_ptr<shardcast::Client> client;
};

namespace {

char* Dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(p, s.data(), s.size() + 1);
  return p;
}

int Fail(const absl::Status& s, char** error) {
  if (error) *error = Dup(std::string(s.message()));
  const int code = static_cast<int>(s.code());
  return code == 0 ? 2 : code;
}

absl::StatusOr<shardcast::Manifest> ManifestFromJson(const char* text) {
  absl::StatusOr<shardcast::Json> j = shardcast::Json::Parse(text ? text : "");
  if (!j.ok()) return j.status();
  shardcast::Manifest m;
  const shardcast::Json* id = j->Find("request_id");
  const shardcast::Json* shards = j->Find("shards");
  const shardcast::Json* endpoints = j->Find("endpoints");
  if (!id || !shards || !endpoints || !id->is_string() || !shards->is_array() || !endpoints->is_array()) {
    return absl::InvalidArgumentError("not a manifest (request_id, shards, endpoints)");
  }
  m.request_id = id->as_string();
  auto field = [](const shardcast::Json& s, const char* k, bool number) -> const shardcast::Json* {
    const shardcast::Json* v = s.Find(k);
    if (v == nullptr || (number ? !v->is_number() : !v->is_string())) return nullptr;
    return v;
  };
  for (const shardcast::Json& s : shards->items()) {
    const shardcast::Json *name = field(s, "name", false), *key = field(s, "key", false),
                          *dtype = field(s, "dtype", false), *rule = field(s, "rule", false),
                          *nbytes = field(s, "nbytes", true), *crc = field(s, "crc32c", true),
                          *owner = field(s, "owner_rank", true), *shape = s.Find("shape");
    if (!name || !key || !dtype || !rule || !nbytes || !crc || !owner || !shape || !shape->is_array()) {
      return absl::InvalidArgumentError("not a manifest: a shard lacks name, key, dtype, rule, shape, nbytes, crc32c "
                                        "or owner_rank");
    }
    shardcast::ShardEntry e;
    e.name = name->as_string();
    e.key = key->as_string();
    e.dtype = dtype->as_string();
    e.rule = rule->as_string();
    for (const shardcast::Json& d : shape->items()) e.shape.push_back(d.as_int());
    if (nbytes->as_int() < 0 || owner->as_int() < 0 || owner->as_int() > std::numeric_limits<int>::max()) {
      return absl::InvalidArgumentError(absl::StrCat("not a manifest: shard '", e.name, "' has a negative size or a bad owner"));
    }
    e.nbytes = static_cast<uint64_t>(nbytes->as_int());
    e.crc32c = static_cast<uint32_t>(crc->as_int());
    e.owner_rank = static_cast<int>(owner->as_int());
    m.shards.push_back(std::move(e));
  }
  for (const shardcast::Json& e : endpoints->items()) m.endpoints.push_back(e.is_string() ? e.as_string() : "");
  if (const shardcast::Json* lease = j->Find("lease_id"); lease != nullptr && lease->is_string()) m.lease_id = lease->as_string();
  // The same checks as on a manifest straight from the server (owners, dtypes, sizes).
  absl::Status valid = shardcast::ValidateManifest(m);
  if (!valid.ok()) return absl::InvalidArgumentError(valid.message());
  return m;
}

}  // namespace

extern "C" {

int shardcast_connect(const char* address, const char* token, double timeout_seconds, shardcast_client** out,
                      char** error) {
  return shardcast_connect_tls(address, token, timeout_seconds, nullptr, nullptr, out, error);
}

int shardcast_connect_tls(const char* address, const char* token, double timeout_seconds, const char* tls_ca_file,
                          const char* tls_server_name, shardcast_client** out, char** error) {
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
  client->client->mutable_options().verify_crc32c = verify != 0;
}

void shardcast_set_nccl_library(shardcast_client* client, const char* path) {
  client->client->mutable_options().nccl_library = path ? path : "";
}

void shardcast_set_ipc(shardcast_client* client, int allow) { client->client->mutable_options().allow_ipc = allow != 0; }

int shardcast_status(shardcast_client* client, char** status_json, char** error) {
  absl::StatusOr<shardcast::Json> st = client->client->Status();
  if (!st.ok()) return Fail(st.status(), error);
  *status_json = Dup(st->Dump());
  return 0;
}

int shardcast_manifest(shardcast_client* client, const char* request_json, char** manifest_json, char** error) {
  absl::StatusOr<shardcast::Json> r = shardcast::Json::Parse(request_json ? request_json : "{}");
  if (!r.ok()) return Fail(r.status(), error);
  shardcast::ShardRequestSpec spec;
  auto str = [&](const char* k) { const shardcast::Json* v = r->Find(k); return v && v->is_string() ? v->as_string() : std::string(); };
  auto list = [&](const char* k) {
    std::vector<std::string> out;
    if (const shardcast::Json* v = r->Find(k); v && v->is_array()) {
      for (const shardcast::Json& x : v->items()) out.push_back(x.as_string());
    }
    return out;
  };
  // int64 as given: ValidateShardRequest (in GetManifest) checks the range; no narrowing here.
  for (const char* k : {"tp_size", "tp_rank"}) {
    if (const shardcast::Json* v = r->Find(k); v && (v->type() != shardcast::Json::Type::kInt)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(k, ": expected an integer")), error);
    }
  }
  if (const shardcast::Json* v = r->Find("tp_size")) spec.tp_size = v->as_int();
  if (const shardcast::Json* v = r->Find("tp_rank")) spec.tp_rank = v->as_int();
  if (const shardcast::Json* v = r->Find("unstack")) spec.unstack = v->type() == shardcast::Json::Type::kBool && v->as_bool();
  spec.layout = str("layout");  // a preset, or a local layout file (its text is sent)
  spec.layout_text = str("layout_text");
  spec.prefix = str("prefix");
  spec.dtype = str("dtype");
  spec.rules = list("rules");
  spec.renames = list("renames");
  absl::StatusOr<shardcast::Manifest> m = client->client->GetManifest(spec);
  if (!m.ok()) return Fail(m.status(), error);
  *manifest_json = Dup(shardcast::ManifestToJson(*m).Dump());
  return 0;
}

int shardcast_receive(shardcast_client* client, const char* manifest_json, size_t n, const char* const* names,
                      void* const* buffers, const uint64_t* sizes, int device, char** report_json, char** error) {
  absl::StatusOr<shardcast::Manifest> m = ManifestFromJson(manifest_json);
  if (!m.ok()) return Fail(m.status(), error);
  if (n > 0 && (names == nullptr || buffers == nullptr || sizes == nullptr)) {
    return Fail(absl::InvalidArgumentError("names, buffers and sizes must not be NULL"), error);
  }
  std::vector<shardcast::Destination> dst;
  for (size_t i = 0; i < n; ++i) dst.push_back(shardcast::Destination{names[i] ? names[i] : "", buffers[i], sizes[i], "", std::nullopt});
  absl::StatusOr<shardcast::FetchReport> r =
      device < 0 ? client->client->ReceiveHost(*m, dst) : client->client->ReceiveDevice(*m, dst, device);
  if (!r.ok()) return Fail(r.status(), error);
  if (report_json) *report_json = Dup(r->ToJson().Dump());
  return 0;
}

int shardcast_warm_up(shardcast_client* client, const char* manifest_json, int device, char** error) {
  absl::StatusOr<shardcast::Manifest> m = ManifestFromJson(manifest_json);
  if (!m.ok()) return Fail(m.status(), error);
  absl::Status s = client->client->WarmUp(*m, device);
  if (!s.ok()) return Fail(s, error);
  return 0;
}

int shardcast_nccl_version(shardcast_client* client, int* version, char** error) {
  absl::StatusOr<std::shared_ptr<const shardcast::NcclLib>> lib = shardcast::NcclLib::Load(client->client->options().nccl_library);
  if (!lib.ok()) {
    *version = 0;
    return Fail(lib.status(), error);
  }
  *version = (*lib)->version;
  return 0;
}

}  // extern "C"
