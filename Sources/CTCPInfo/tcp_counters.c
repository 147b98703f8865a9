#include "tcp_counters.h"
#include <linux/tcp.h>
#include <string.h>

#define END_OF(field) (offsetof(struct tcp_info, field) + sizeof(((struct tcp_info *)0)->field))

int xw_tcp_counters(const void *info, size_t length, struct xw_tcp_counters *out) {
    struct tcp_info copy;
    memset(&copy, 0, sizeof copy);
    memcpy(&copy, info, length < sizeof copy ? length : sizeof copy);
    memset(out, 0, sizeof *out);
    if (length < END_OF(tcpi_bytes_received)) return 0;
    out->state = copy.tcpi_state;
    out->bytes_acked = copy.tcpi_bytes_acked;
    out->bytes_received = copy.tcpi_bytes_received;
    if (length >= END_OF(tcpi_bytes_retrans)) {
        out->bytes_sent = copy.tcpi_bytes_sent;
        out->bytes_retrans = copy.tcpi_bytes_retrans;
        out->has_sent = 1;
    }
    return 1;
}
