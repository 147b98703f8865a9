/* OpenSSL's libcrypto, for SHA-256 of scanned files only. */
#include <openssl/evp.h>
