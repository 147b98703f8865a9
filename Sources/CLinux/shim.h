/* Linux interfaces Swift's Glibc module leaves out (it is built without _GNU_SOURCE). */
#include <malloc.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <linux/rtnetlink.h>

/* recvmmsg and struct mmsghdr: same layout and symbol, under names of our own. */
struct xw_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
extern int xw_recvmmsg(int fd, struct xw_mmsghdr *vector, unsigned int count, int flags,
                       struct timespec *timeout) __asm__("recvmmsg");

/* setns(2) to open sock_diag sockets inside another network namespace. */
extern int xw_setns(int fd, int nstype) __asm__("setns");
static const int xw_clone_newnet = 0x40000000;
/* Netlink socket options, from linux/socket.h and linux/netlink.h. */
static const int xw_sol_netlink = 270;

/* A copy of another process's file descriptor (pidfd_open + pidfd_getfd, Linux 5.6+; needs
 * ptrace access to the process, e.g. CAP_SYS_PTRACE). Returns the new descriptor (close-on-exec)
 * or -1 with errno set. */
#include <unistd.h>
#include <sys/syscall.h>
#include <errno.h>
static inline int xw_copy_descriptor(int pid, int fd) {
    int pidfd = (int)syscall(434 /* pidfd_open */, pid, 0);
    if (pidfd < 0) return -1;
    int copy = (int)syscall(438 /* pidfd_getfd */, pidfd, fd, 0);
    int saved = errno;
    close(pidfd);
    errno = saved;
    return copy;
}
static const int xw_so_cookie = 57;
static const int xw_so_protocol = 38;
static const int xw_tcp_info = 11;

/* SO_PEERCRED's struct ucred (hidden without _GNU_SOURCE) and SO_PEERGROUPS (Linux 4.13+):
 * who is on the other end of a Unix socket, with their supplementary groups. */
struct xw_ucred {
    int pid;
    unsigned int uid;
    unsigned int gid;
};
static const int xw_so_peercred = 17;
static const int xw_so_peergroups = 59;

/* Descriptors passed over a Unix socket (SCM_RIGHTS), for the namespace helper. The CMSG_*
 * macros do not import into Swift. Each returns what sendmsg/recvmsg return. */
#include <string.h>
static inline long xw_send_with_fds(int sock, const void *data, unsigned long length, const int *fds, int count) {
    struct iovec vector = { (void *)data, length };
    union { char buffer[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr align; } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    if (count > 0 && count <= 4) {
        memset(&control, 0, sizeof control);
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
    }
    return sendmsg(sock, &message, MSG_NOSIGNAL);
}
/* Receives up to 4 descriptors (close-on-exec) into fds, their number into *count. */
static inline long xw_receive_with_fds(int sock, void *data, unsigned long length, int *fds, int *count) {
    struct iovec vector = { data, length };
    union { char buffer[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr align; } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    long received = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
    *count = 0;
    if (received < 0) return received;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            if (*count < 4) fds[(*count)++] = fd; else close(fd);
        }
    }
    return received;
}

/* posix_spawn's action closing every descriptor from one on (glibc 2.34+), hidden without
 * _GNU_SOURCE: the tests' children inherit no other test's pipe. */
#include <spawn.h>
extern int xw_spawn_close_from(posix_spawn_file_actions_t *actions, int from)
    __asm__("posix_spawn_file_actions_addclosefrom_np");

/* epoll, each event carrying its descriptor. struct epoll_event is packed on x86_64, a layout
 * Swift does not import, so the events pass through these as plain arrays. Its event bits are
 * poll's (EPOLLIN == POLLIN, EPOLLOUT == POLLOUT, EPOLLERR == POLLERR, EPOLLHUP == POLLHUP). */
#include <sys/epoll.h>
static const int xw_epoll_ctl_add = EPOLL_CTL_ADD;
static const int xw_epoll_ctl_del = EPOLL_CTL_DEL;
static const int xw_epoll_ctl_mod = EPOLL_CTL_MOD;
static inline int xw_epoll_control(int epfd, int op, int fd, unsigned int events) {
    struct epoll_event event = { .events = events, .data = { .fd = fd } };
    return epoll_ctl(epfd, op, fd, &event);
}
/* Waits up to `timeout` ms for at most 32 events; returns how many (their descriptors and
 * events in `fds` and `events`), or -1 with errno set. */
static inline int xw_epoll_wait(int epfd, int *fds, unsigned int *events, int count, int timeout) {
    struct epoll_event ready[32];
    int n = epoll_wait(epfd, ready, count < 32 ? count : 32, timeout);
    for (int i = 0; i < n; i++) {
        fds[i] = ready[i].data.fd;
        events[i] = ready[i].events;
    }
    return n;
}
