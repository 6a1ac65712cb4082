#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them. Typed wrappers.
static inline CURLcode dnsd_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode dnsd_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode dnsd_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode dnsd_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
typedef size_t (*dnsd_curl_write_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode dnsd_curl_set_write(CURL *h, dnsd_curl_write_callback f) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
static inline CURLcode dnsd_curl_response_code(CURL *h, long *code) { return curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code); }
static inline CURLcode dnsd_curl_set_header(CURL *h, dnsd_curl_write_callback f, void *context) {
    curl_easy_setopt(h, CURLOPT_HEADERDATA, context);
    return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, f);
}
