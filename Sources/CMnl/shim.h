// libmnl and the rtnetlink UAPI headers. <linux/if.h> is deliberately not included: it clashes
// with Glibc's <net/if.h>, which Swift already imports.
#include <stdint.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/veth.h>

// MNL_SOCKET_BUFFER_SIZE is a macro with a call in it: Swift does not import it.
static inline long dnsd_mnl_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
