/* OpenSSL: libcrypto for file digests, libssl for syslog over TLS (RFC 5425). The digests use
   the low-level MD5/SHA interfaces, deprecated in OpenSSL 3 but kept: EVP's first digest loads
   the provider machinery, 2 MB of resident memory an agent without TLS never needs. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Macros in OpenSSL's headers, as functions Swift can call. */
static inline long xw_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline int xw_ssl_ctx_set_min_tls12(SSL_CTX *ctx) { return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline int xw_ssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
