// libcurl for the store clients, loaded on first use (dlopen) rather than linked: libcurl and
// the ~30 libraries it pulls in (TLS, HTTP/2, IDN, Kerberos...) cost every process ~4.5 ms of
// start-up, and most dnsd processes are CLI clients that never speak to a store. The header
// gives the types and constants; every call goes through a pointer resolved once.
#ifndef DNSD_CCURL_H
#define DNSD_CCURL_H

#include <curl/curl.h>

/// Loads libcurl.so.4 and resolves what dnsd calls; 0 on success, -1 otherwise (then
/// `dnsd_curl_load_error` says why). Safe to call from any thread, any number of times.
int dnsd_curl_load(void);
const char *dnsd_curl_load_error(void);

CURLcode dnsd_curl_global_init(long flags);
CURL *dnsd_curl_easy_init(void);
void dnsd_curl_easy_cleanup(CURL *h);
void dnsd_curl_easy_reset(CURL *h);
CURLcode dnsd_curl_easy_perform(CURL *h);
const char *dnsd_curl_easy_strerror(CURLcode code);
struct curl_slist *dnsd_curl_slist_append(struct curl_slist *list, const char *text);
void dnsd_curl_slist_free_all(struct curl_slist *list);
CURLM *dnsd_curl_multi_init(void);
CURLMcode dnsd_curl_multi_add_handle(CURLM *m, CURL *h);
CURLMcode dnsd_curl_multi_remove_handle(CURLM *m, CURL *h);
CURLMcode dnsd_curl_multi_cleanup(CURLM *m);
CURLMcode dnsd_curl_multi_perform(CURLM *m, int *running);
CURLMcode dnsd_curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned int count, int timeout_ms, int *ready);
CURLMcode dnsd_curl_multi_wakeup(CURLM *m);
CURLMsg *dnsd_curl_multi_info_read(CURLM *m, int *left);

// curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them. Typed wrappers.
CURLcode dnsd_curl_set_long(CURL *h, CURLoption o, long v);
CURLcode dnsd_curl_set_string(CURL *h, CURLoption o, const char *v);
CURLcode dnsd_curl_set_pointer(CURL *h, CURLoption o, void *v);
CURLcode dnsd_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v);
typedef size_t (*dnsd_curl_write_callback)(char *data, size_t size, size_t count, void *context);
CURLcode dnsd_curl_set_write(CURL *h, dnsd_curl_write_callback f);
CURLcode dnsd_curl_response_code(CURL *h, long *code);
CURLcode dnsd_curl_set_header(CURL *h, dnsd_curl_write_callback f, void *context);

#endif
