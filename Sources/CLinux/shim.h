/* Linux interfaces Swift's Glibc module leaves out (it is built without _GNU_SOURCE). */
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>

/* recvmmsg and struct mmsghdr: same layout and symbol, under names of our own. */
struct xw_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
extern int xw_recvmmsg(int fd, struct xw_mmsghdr *vector, unsigned int count, int flags,
                       struct timespec *timeout) __asm__("recvmmsg");
