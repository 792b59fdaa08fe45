#include "transport/grpc_tls.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, " ", path, ": cannot be read"));
  std::ostringstream s;
  s << in.rdbuf();
  if (s.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return s.str();
}

}  // namespace

absl::StatusOr<TlsConfig> LoadTlsConfig(const std::string& cert_file, const std::string& key_file,
                                        const std::string& ca_file, const std::string& server_name) {
  TlsConfig c;
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(cert_file, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(key_file, "--tls-key");
    if (!key.ok()) return key.status();
    c.cert_pem = *cert;
    c.key_pem = *key;
  }
  if (!ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(ca_file, "--tls-ca");
    if (!ca.ok()) return ca.status();
    c.ca_pem = *ca;
  } else if (c.serving()) {
    c.ca_pem = c.cert_pem;  // a self-signed certificate trusts itself
  }
  c.server_name = server_name;
  return c;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls) {
  if (!tls.serving()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o;
  o.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(o);
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const TlsConfig& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Room for an error that lists every problem (statuses are cut at kMaxStatusMessageBytes): gRPC
  // refuses more than 8 KiB of metadata by default, which a list of 50 long keys exceeds.
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
  if (!tls.dialing()) return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = tls.ca_pem;
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(o), args);
}

std::string ConnectHint(const TlsConfig& tls) {
  if (!tls.dialing()) {
    return "is it running, and is the address right? If the service uses TLS, pass --tls-ca (or set SHARDCAST_TLS_CA)";
  }
  return "is it running, and is the address right? With TLS: --tls-ca must be the CA (or self-signed certificate) "
         "of the service, and the certificate must name the host dialled (or pass --tls-server-name)";
}

}  // namespace shardcast
