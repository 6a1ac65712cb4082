#define _GNU_SOURCE
#include "CShim.h"

#include <assert.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

_Static_assert(sizeof(dnsd_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(dnsd_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

const int dnsd_CLONE_NEWNET = CLONE_NEWNET;
const int dnsd_CLONE_NEWNS = CLONE_NEWNS;

int dnsd_setns(int fd, int nstype) { return setns(fd, nstype); }
int dnsd_unshare(int flags) { return unshare(flags); }
int dnsd_gettid(void) { return (int)syscall(SYS_gettid); }

int64_t dnsd_fs_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return (int64_t)fs.f_type;
}

const uint32_t dnsd_EPOLLIN = EPOLLIN;
const uint32_t dnsd_EPOLLOUT = EPOLLOUT;
const uint32_t dnsd_EPOLLERR = EPOLLERR;
const uint32_t dnsd_EPOLLHUP = EPOLLHUP;
const uint32_t dnsd_EPOLLRDHUP = EPOLLRDHUP;

int dnsd_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int epoll_ctl_data(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int dnsd_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    return epoll_ctl_data(epfd, EPOLL_CTL_ADD, fd, events, data);
}

int dnsd_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data) {
    return epoll_ctl_data(epfd, EPOLL_CTL_MOD, fd, events, data);
}

int dnsd_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int dnsd_epoll_wait(int epfd, dnsd_event *events, int max, int timeout_ms) {
    struct epoll_event raw[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, raw, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i].data = raw[i].data.u64;
        events[i].events = raw[i].events;
    }
    return n;
}

int dnsd_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int dnsd_recvmmsg(int fd, dnsd_mmsghdr *vec, unsigned int vlen, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, flags, NULL);
}

int dnsd_sendmmsg(int fd, dnsd_mmsghdr *vec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, flags);
}

int dnsd_link_set_up(const char *ifname) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

long dnsd_peer_uid(int fd) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return (long)credentials.uid;
}
