/* The cheapest reader of the kernel's audit stream, for bench/rule_cost.py: becomes the audit
   daemon (AUDIT_SET pid) and throws every record away, so a rule's cost to the audited process
   is measured without any consumer's parsing. Stops on SIGTERM or SIGINT and prints how many
   records it read. Usage (as root): auditdrain */
#include <linux/audit.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void stop(int signal) { (void)signal; stopping = 1; }

int main(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd < 0) { perror("auditdrain: socket"); return 1; }
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct { struct nlmsghdr header; struct audit_status status; } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = AUDIT_SET;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.status.mask = AUDIT_STATUS_PID;
    request.status.pid = (unsigned)getpid();
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        perror("auditdrain: AUDIT_SET");
        return 1;
    }
    struct sigaction action = { .sa_handler = stop };
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    static char buffer[1 << 16];
    unsigned long records = 0;
    while (!stopping) {
        if (recv(fd, buffer, sizeof buffer, 0) > 0) records++;
    }
    request.status.pid = 0;
    sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel);
    printf("%lu\n", records);
    return 0;
}
