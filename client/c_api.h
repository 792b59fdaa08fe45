/* shardcast client C ABI: for languages other than C++ (the Python package uses it via ctypes).
 *
 * Every function returns 0 on success or a gRPC/absl status code (> 0) on failure, in which case
 * *error (if error is not NULL) receives a message to free with shardcast_free(). Strings passed
 * in are UTF-8 and NUL-terminated; JSON documents are those of `shardcast status --json` and of
 * the manifest (see client.h, ManifestToJson). A NULL client, manifest or output pointer is
 * refused with 3 (INVALID_ARGUMENT), never dereferenced.
 *
 * A manifest is kept as an opaque handle, parsed and checked once when it is obtained; receives
 * take the handle:
 *
 *   shardcast_client* c = NULL;
 *   char* err = NULL;
 *   if (shardcast_connect("node1:7070", NULL, 60.0, &c, &err)) { ... }
 *   shardcast_manifest_handle* m = NULL;
 *   char* manifest_json = NULL;   (its shards: names, shapes, sizes)
 *   shardcast_manifest_get(c, "{\"tp_size\": 2, \"tp_rank\": 0}", &m, &manifest_json, &err);
 *   ... allocate one buffer per shard ...
 *   shardcast_receive_manifest(c, m, n, names, buffers, sizes, -1, &report, &err);
 *   shardcast_free(manifest_json); shardcast_manifest_free(m); shardcast_close(c);
 *
 * shardcast_manifest / shardcast_receive / shardcast_warm_up are the same over the manifest's JSON
 * text (each call parses and checks it again).
 */
#ifndef SHARDCAST_CLIENT_C_API_H_
#define SHARDCAST_CLIENT_C_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shardcast_client shardcast_client;
typedef struct shardcast_manifest_handle shardcast_manifest_handle;

/* token: the token itself (NULL or "" for none). timeout_seconds: deadline of every call. */
int shardcast_connect(const char* address, const char* token, double timeout_seconds, shardcast_client** out,
                      char** error);
/* As shardcast_connect, over TLS: tls_ca_file is the service's CA or self-signed certificate
 * (NULL: $SHARDCAST_TLS_CA, else plaintext); tls_server_name the name its certificate carries
 * (NULL: the host dialled, or $SHARDCAST_TLS_SERVER_NAME). */
int shardcast_connect_tls(const char* address, const char* token, double timeout_seconds, const char* tls_ca_file,
                          const char* tls_server_name, shardcast_client** out, char** error);
void shardcast_close(shardcast_client* client);
void shardcast_free(void* p);

/* Whether received shards are checked against their CRC32C (default 1). */
void shardcast_set_verify(shardcast_client* client, int verify);
/* The libnccl.so.2 used for device receives (default: $SHARDCAST_NCCL_LIBRARY or libnccl.so.2). */
void shardcast_set_nccl_library(shardcast_client* client, const char* path);
/* Whether a loader rank on the client's own GPU may hand shards over by CUDA IPC (default 1; with
 * 0 such a receive fails, since NCCL cannot connect two ranks on one GPU). */
void shardcast_set_ipc(shardcast_client* client, int allow);

int shardcast_status(shardcast_client* client, char** status_json, char** error);

/* request_json: {"tp_size", "tp_rank", "layout", "layout_text", "rules": [], "prefix", "renames": [], "unstack",
 * "dtype"}. "layout" is a preset name or a local layout file, read here and sent as its text
 * ("layout_text"); requests over the limits of README "Request limits" fail with 3 (INVALID_ARGUMENT). */
int shardcast_manifest(shardcast_client* client, const char* request_json, char** manifest_json, char** error);

/* As shardcast_manifest, keeping the manifest as a handle (free with shardcast_manifest_free);
 * manifest_json (may be NULL) receives its JSON document as well. */
int shardcast_manifest_get(shardcast_client* client, const char* request_json, shardcast_manifest_handle** manifest,
                           char** manifest_json, char** error);
/* A handle from a manifest's JSON document (e.g. one passed between processes), checked as one
 * from the server is (owners, dtypes, sizes): 3 (INVALID_ARGUMENT) naming what is wrong. */
int shardcast_manifest_parse(const char* manifest_json, shardcast_manifest_handle** manifest, char** error);
void shardcast_manifest_free(shardcast_manifest_handle* manifest);
/* The manifest's digest (32 hex digits; "" from an older server), owned by the handle. Equal
 * digests, equal manifests but for the lease: a caller that kept the JSON of a manifest with
 * this digest need not ask for it again. */
const char* shardcast_manifest_digest(const shardcast_manifest_handle* manifest);
/* 1 when the server confirmed the client's copy of this manifest (only a new lease came), else 0. */
int shardcast_manifest_unchanged(const shardcast_manifest_handle* manifest);
/* The manifest's JSON document (free with shardcast_free). */
char* shardcast_manifest_json(const shardcast_manifest_handle* manifest);

/* As shardcast_receive / shardcast_warm_up, from a manifest handle. */
int shardcast_receive_manifest(shardcast_client* client, const shardcast_manifest_handle* manifest, size_t n,
                               const char* const* names, void* const* buffers, const uint64_t* sizes, int device,
                               char** report_json, char** error);
int shardcast_warm_up_manifest(shardcast_client* client, const shardcast_manifest_handle* manifest, int device,
                               char** error);

/* Receives n shards (by name, from a manifest returned by shardcast_manifest) into buffers of
 * sizes[i] bytes: host memory over the gRPC stream when device < 0, GPU memory of `device` over
 * NCCL otherwise (CUDA IPC from a loader rank on that same GPU). Sizes are checked before any byte moves. report_json (may be NULL): bytes,
 * seconds, shards, crc_checked, transport. */
int shardcast_receive(shardcast_client* client, const char* manifest_json, size_t n, const char* const* names,
                      void* const* buffers, const uint64_t* sizes, int device, char** report_json, char** error);

/* Forms ahead of time what a later shardcast_receive of this manifest into GPU `device` needs (the
 * NCCL communicator with every owning loader rank on another GPU), so that the receive only moves
 * bytes. Safe to call from another thread while the caller builds its model, but not at the same
 * time as a receive on the same client. */
int shardcast_warm_up(shardcast_client* client, const char* manifest_json, int device, char** error);

/* The service's index: what it holds (its --prefix's selection), in .metadata order, asked page by
 * page. index_json: {"prefix", "tensors": [{"key", "dtype", "shape"}], "bytes": [{"key", "nbytes",
 * "compressed"}]} (nbytes as stored; the payload's size unless compressed). */
int shardcast_index(shardcast_client* client, char** index_json, char** error);

/* Bytes entries (DCP's non-tensor values) by key. keys_json: a JSON array of keys. values_json:
 * [{"key", "base64"}] in the order asked, each payload as stored (usually a torch.save archive),
 * base64-encoded. Keys the service does not serve: 5 (NOT_FOUND) listing them; nothing returned. */
int shardcast_read_bytes(shardcast_client* client, const char* keys_json, char** values_json, char** error);

/* ncclGetVersion() of the library this client would load (0 and an error if it cannot). */
int shardcast_nccl_version(shardcast_client* client, int* version, char** error);

#ifdef __cplusplus
}
#endif

#endif /* SHARDCAST_CLIENT_C_API_H_ */
