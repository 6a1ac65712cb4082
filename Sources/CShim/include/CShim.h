// Thin C shims for what Swift's Glibc module does not import on Linux:
// functions that need _GNU_SOURCE (setns, unshare, recvmmsg, sendmmsg) and epoll,
// whose struct epoll_event is packed on x86_64. No state lives here.
#ifndef DNSD_CSHIM_H
#define DNSD_CSHIM_H

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- namespaces
extern const int dnsd_CLONE_NEWNET;
extern const int dnsd_CLONE_NEWNS;
int dnsd_setns(int fd, int nstype);
int dnsd_unshare(int flags);
/// Kernel thread id of the caller (gettid).
int dnsd_gettid(void);
/// The filesystem type (statfs f_type) of `path`, or -1 with errno.
int64_t dnsd_fs_type(const char *path);

// ---- epoll (our own unpacked event type; the shim converts)
typedef struct dnsd_event {
    uint64_t data;
    uint32_t events;
} dnsd_event;
extern const uint32_t dnsd_EPOLLIN;
extern const uint32_t dnsd_EPOLLOUT;
extern const uint32_t dnsd_EPOLLERR;
extern const uint32_t dnsd_EPOLLHUP;
extern const uint32_t dnsd_EPOLLRDHUP;
int dnsd_epoll_create(void);
int dnsd_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int dnsd_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int dnsd_epoll_del(int epfd, int fd);
int dnsd_epoll_wait(int epfd, dnsd_event *events, int max, int timeout_ms);

// ---- eventfd (a wake-up for an event loop)
int dnsd_eventfd(void);

// ---- batched datagrams: same layout as struct mmsghdr (checked in the .c file)
typedef struct dnsd_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} dnsd_mmsghdr;
int dnsd_recvmmsg(int fd, dnsd_mmsghdr *vec, unsigned int vlen, int flags);
int dnsd_sendmmsg(int fd, dnsd_mmsghdr *vec, unsigned int vlen, int flags);

// ---- links: set an interface up in the caller's network namespace (ioctl, no netlink needed)
int dnsd_link_set_up(const char *ifname);

// ---- unix sockets: the uid of the connected peer (SO_PEERCRED), or -1
long dnsd_peer_uid(int fd);
/// struct ucred's layout (which needs _GNU_SOURCE), for reading SO_PEERCRED through SwiftNIO.
typedef struct dnsd_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
} dnsd_ucred;

// ---- counters written by one thread and read by another (metrics): relaxed atomic load and
// store, no read-modify-write (no lock prefix on the hot path). Inline so the compiler sees them.
static inline void dnsd_counter_add(uint64_t *counter, uint64_t amount) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + amount, __ATOMIC_RELAXED);
}
static inline uint64_t dnsd_counter_read(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

#ifdef __cplusplus
}
#endif
#endif
