// See CCurl.h: libcurl resolved at run time, once.
#include "CCurl.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = -1;
static char error[256] = "libcurl not loaded";

#define RESOLVE(field, name) \
    if (!(*(void **)&api.field = dlsym(library, name))) { snprintf(error, sizeof error, "libcurl lacks %s", name); return; }

static void load(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, sizeof error, "cannot load libcurl.so.4: %s", dlerror());
        return;
    }
    RESOLVE(global_init, "curl_global_init")
    RESOLVE(easy_init, "curl_easy_init")
    RESOLVE(easy_cleanup, "curl_easy_cleanup")
    RESOLVE(easy_reset, "curl_easy_reset")
    RESOLVE(easy_perform, "curl_easy_perform")
    RESOLVE(easy_strerror, "curl_easy_strerror")
    RESOLVE(easy_setopt, "curl_easy_setopt")
    RESOLVE(easy_getinfo, "curl_easy_getinfo")
    RESOLVE(slist_append, "curl_slist_append")
    RESOLVE(slist_free_all, "curl_slist_free_all")
    RESOLVE(multi_init, "curl_multi_init")
    RESOLVE(multi_add_handle, "curl_multi_add_handle")
    RESOLVE(multi_remove_handle, "curl_multi_remove_handle")
    RESOLVE(multi_cleanup, "curl_multi_cleanup")
    RESOLVE(multi_perform, "curl_multi_perform")
    RESOLVE(multi_poll, "curl_multi_poll")
    RESOLVE(multi_wakeup, "curl_multi_wakeup")
    RESOLVE(multi_info_read, "curl_multi_info_read")
    loaded = 0;
}

int dnsd_curl_load(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *dnsd_curl_load_error(void) { return error; }

CURLcode dnsd_curl_global_init(long flags) { return api.global_init(flags); }
CURL *dnsd_curl_easy_init(void) { return api.easy_init(); }
void dnsd_curl_easy_cleanup(CURL *h) { api.easy_cleanup(h); }
void dnsd_curl_easy_reset(CURL *h) { api.easy_reset(h); }
CURLcode dnsd_curl_easy_perform(CURL *h) { return api.easy_perform(h); }
const char *dnsd_curl_easy_strerror(CURLcode code) { return api.easy_strerror(code); }
struct curl_slist *dnsd_curl_slist_append(struct curl_slist *list, const char *text) { return api.slist_append(list, text); }
void dnsd_curl_slist_free_all(struct curl_slist *list) { api.slist_free_all(list); }
CURLM *dnsd_curl_multi_init(void) { return api.multi_init(); }
CURLMcode dnsd_curl_multi_add_handle(CURLM *m, CURL *h) { return api.multi_add_handle(m, h); }
CURLMcode dnsd_curl_multi_remove_handle(CURLM *m, CURL *h) { return api.multi_remove_handle(m, h); }
CURLMcode dnsd_curl_multi_cleanup(CURLM *m) { return api.multi_cleanup(m); }
CURLMcode dnsd_curl_multi_perform(CURLM *m, int *running) { return api.multi_perform(m, running); }
CURLMcode dnsd_curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned int count, int timeout_ms, int *ready) {
    return api.multi_poll(m, fds, count, timeout_ms, ready);
}
CURLMcode dnsd_curl_multi_wakeup(CURLM *m) { return api.multi_wakeup(m); }
CURLMsg *dnsd_curl_multi_info_read(CURLM *m, int *left) { return api.multi_info_read(m, left); }

CURLcode dnsd_curl_set_long(CURL *h, CURLoption o, long v) { return api.easy_setopt(h, o, v); }
CURLcode dnsd_curl_set_string(CURL *h, CURLoption o, const char *v) { return api.easy_setopt(h, o, v); }
CURLcode dnsd_curl_set_pointer(CURL *h, CURLoption o, void *v) { return api.easy_setopt(h, o, v); }
CURLcode dnsd_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return api.easy_setopt(h, o, v); }
CURLcode dnsd_curl_set_write(CURL *h, dnsd_curl_write_callback f) { return api.easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
CURLcode dnsd_curl_response_code(CURL *h, long *code) { return api.easy_getinfo(h, CURLINFO_RESPONSE_CODE, code); }
CURLcode dnsd_curl_set_header(CURL *h, dnsd_curl_write_callback f, void *context) {
    api.easy_setopt(h, CURLOPT_HEADERDATA, context);
    return api.easy_setopt(h, CURLOPT_HEADERFUNCTION, f);
}
