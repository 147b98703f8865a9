/* The byte counters of the kernel's struct tcp_info, read by offset in C: Swift cannot import
 * <linux/tcp.h> next to glibc's <netinet/tcp.h>, which declares an older tcp_info. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct xw_tcp_counters {
    uint8_t state;
    uint64_t bytes_acked;
    uint64_t bytes_received;
    /* Payload bytes handed to IP, retransmissions included (Linux 4.19+); has_sent is 0 before. */
    uint64_t bytes_sent;
    uint64_t bytes_retrans;
    int has_sent;
};

/* Fills *out from a tcp_info of `length` bytes (older kernels send shorter ones).
 * Returns 0 when the structure is too short to hold the acked/received counters. */
int xw_tcp_counters(const void *info, size_t length, struct xw_tcp_counters *out);
