/* A listener for sock_diag's TCP and UDP destroy notifications, for bench/close_cost.py: while it
   is subscribed, the kernel hands every socket's destruction in this network namespace to a
   workqueue that builds the notification first. Mode "read" receives each one as it comes (as
   the agent does); "none" never reads, so only the kernel's side is left (the receive buffer
   fills and the rest are dropped). Stops on SIGTERM. Usage: closedrain read|none */
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "read") != 0 && strcmp(argv[1], "none") != 0)) {
        fprintf(stderr, "usage: closedrain read|none\n");
        return 64;
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    struct sockaddr_nl address = { .nl_family = AF_NETLINK };
    address.nl_groups = 1 << (SKNLGRP_INET_TCP_DESTROY - 1) | 1 << (SKNLGRP_INET6_TCP_DESTROY - 1)
        | 1 << (SKNLGRP_INET_UDP_DESTROY - 1) | 1 << (SKNLGRP_INET6_UDP_DESTROY - 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("closedrain: sock_diag destroy groups");
        return 1;
    }
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    printf("subscribed\n");
    fflush(stdout);
    static char buffer[1 << 16];
    if (strcmp(argv[1], "none") == 0) for (;;) pause();
    for (;;) recv(fd, buffer, sizeof buffer, 0);
}
