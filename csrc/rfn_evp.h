/* The few OpenSSL 3 functions the extension calls, declared here so that a
 * machine with only the runtime library (Debian's libssl3, on every image)
 * and no headers (libssl-dev) can build it: setup.py then links
 * libcrypto.so.3 by its file name.
 *
 * These declarations are always the ones compiled. Where OpenSSL's own
 * headers are on the include path they are included first, so the compiler
 * checks every line below against them (a mismatch is a "conflicting types"
 * error) and the header-less build compiles exactly what every developer
 * build has checked. Only stable OpenSSL 3 ABI is used: opaque types behind
 * pointers, no macros, no struct layouts.
 */
#ifndef RFN_EVP_H
#define RFN_EVP_H

#if defined(__has_include)
#if __has_include(<openssl/evp.h>) && __has_include(<openssl/err.h>)
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
#endif

#include <stddef.h>

typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct engine_st ENGINE;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;

EVP_MD *EVP_MD_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *properties);
void EVP_MD_free(EVP_MD *md);
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);

unsigned long ERR_peek_last_error(void);
const char *ERR_reason_error_string(unsigned long e);
void ERR_clear_error(void);

#endif /* RFN_EVP_H */
