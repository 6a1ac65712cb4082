/* The kernel's floor for a sandbox's namespace, for bench/attach.sh: COUNT times, create a file
 * in DIR, unshare(CLONE_NEWNET), bind-mount the new namespace onto the file, set lo up, return to
 * the original namespace (what `ip netns add` + `ip link set lo up` do, without processes).
 * Prints the median of the first 50 and the last 50, then removes everything it made. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *values, int n) {
    double *copy = malloc(n * sizeof(double));
    memcpy(copy, values, n * sizeof(double));
    qsort(copy, n, sizeof(double), compare);
    double m = copy[n / 2];
    free(copy);
    return m;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: netns-floor COUNT DIR PREFIX\n"); return 2; }
    int count = atoi(argv[1]);
    if (count < 100) { fprintf(stderr, "COUNT must be >= 100\n"); return 2; }
    const char *dir = argv[2], *prefix = argv[3];
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    double *took = calloc(count, sizeof(double));
    char path[512];
    int made = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s%d", dir, prefix, i);
        double start = now();
        int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
        if (fd < 0) { failed = 1; break; }
        close(fd);
        made = i + 1;
        if (unshare(CLONE_NEWNET) != 0 || mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) != 0) { failed = 1; break; }
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq request;
        memset(&request, 0, sizeof request);
        strcpy(request.ifr_name, "lo");
        ioctl(s, SIOCGIFFLAGS, &request);
        request.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &request);
        close(s);
        setns(original, CLONE_NEWNET);
        took[i] = now() - start;
    }
    if (!failed) printf("kernel floor (C: netns + bind mount + lo up): first 50 p50 %.2f ms, last 50 p50 %.2f ms\n",
                        median(took, 50) * 1000, median(took + count - 50, 50) * 1000);
    setns(original, CLONE_NEWNET);
    for (int i = 0; i < made; i++) {
        snprintf(path, sizeof path, "%s/%s%d", dir, prefix, i);
        umount2(path, MNT_DETACH);
        unlink(path);
    }
    free(took);
    return failed;
}
