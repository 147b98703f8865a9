/* Network load generator for bench/sweep.py: TCP connections (connect, accept, close) or UDP
   datagrams (sendto on an unconnected socket) on loopback at a fixed rate for a fixed time;
   RATE 0 runs as fast as it can (the fastest loop). Datagrams go to a socket of its own that
   nobody reads (the kernel drops them once its buffer is full, after the syscall was audited).
   Usage: netload connect|sendto RATE SECONDS
   Prints the achieved count and rate. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in bound(int fd) {
    struct sockaddr_in at = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &at.sin_addr);
    socklen_t length = sizeof at;
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0 || getsockname(fd, (struct sockaddr *)&at, &length) != 0) {
        perror("netload: bind");
        exit(1);
    }
    return at;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "connect") != 0 && strcmp(argv[1], "sendto") != 0)) {
        fprintf(stderr, "usage: netload connect|sendto RATE SECONDS\n");
        return 64;
    }
    int tcp = strcmp(argv[1], "connect") == 0;
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    int listener = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    struct sockaddr_in to = bound(listener);
    if (tcp && listen(listener, 4096) != 0) { perror("netload: listen"); return 1; }
    int sender = tcp ? -1 : socket(AF_INET, SOCK_DGRAM, 0);
    char datagram[64] = "netload";
    long count = 0, failed = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        if (rate > 0) {
            double due = start + count / rate;
            while ((t = now()) < due) usleep(50);
        }
        if (tcp) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0) {
                int accepted = accept(listener, NULL, NULL);
                if (accepted >= 0) {
                    /* Reset, not FIN: no TIME_WAIT piles up, so a run does not slow the next. */
                    struct linger reset = { .l_onoff = 1, .l_linger = 0 };
                    setsockopt(accepted, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
                    close(accepted);
                }
            } else {
                failed++;
            }
            close(fd);
        } else if (sendto(sender, datagram, sizeof datagram, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            failed++;
        }
        count++;
        if (rate <= 0 || (count & 63) == 0) t = now();
    }
    double took = now() - start;
    printf("netload: %ld %s in %.2f s (%.0f/s), %ld failed\n", count, tcp ? "connects" : "datagrams", took, count / took, failed);
    return 0;
}
