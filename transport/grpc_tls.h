// TLS for shardcast's gRPC connections, with gRPC's own credentials. Off unless configured:
//  * shardcastd --tls-cert F --tls-key F [--tls-ca F]: every port of every rank serves TLS only;
//    the ranks' connections to each other trust --tls-ca (default: the certificate itself, for a
//    self-signed one);
//  * clients --tls-ca F (or $SHARDCAST_TLS_CA): trust that CA, or that self-signed certificate.
// The certificate must name the hosts clients dial (rank 0's and every rank's host, e.g. with
// subjectAltName entries); --tls-server-name (or $SHARDCAST_TLS_SERVER_NAME) checks one fixed name
// instead, for a certificate shared by all nodes.
#ifndef SHARDCAST_TRANSPORT_GRPC_TLS_H_
#define SHARDCAST_TRANSPORT_GRPC_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace shardcast {

struct TlsConfig {
  std::string cert_pem, key_pem;  // serving (shardcastd)
  std::string ca_pem;             // trusted by outgoing connections; "" = plaintext
  std::string server_name;        // name checked in the server's certificate ("" = the host dialled)
  bool serving() const { return !cert_pem.empty(); }
  bool dialing() const { return !ca_pem.empty(); }
};

// Reads the PEM files (each may be ""). A certificate needs its key; a server with a certificate
// and no CA trusts its own certificate. NotFound / InvalidArgument name the file and the flag.
absl::StatusOr<TlsConfig> LoadTlsConfig(const std::string& cert_file, const std::string& key_file,
                                        const std::string& ca_file, const std::string& server_name);

// Credentials for listening ports: TLS when serving(), plaintext otherwise.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls);

// Metadata (an error's message travels in it) that channels and servers accept: 64 KiB, so that
// an error listing every problem (cut at kMaxStatusMessageBytes) arrives whole.
inline constexpr int kMaxMetadataBytes = 64 << 10;
inline constexpr size_t kMaxStatusMessageBytes = 16000;

// A channel to `address`: TLS when dialing(), plaintext otherwise; messages up to 64 MiB, metadata
// up to kMaxMetadataBytes.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address, const TlsConfig& tls);

// What to try when a channel cannot connect (a sentence, for error messages).
std::string ConnectHint(const TlsConfig& tls);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_GRPC_TLS_H_
