#include <pcap/pcap.h>
/* PACKET_IGNORE_OUTGOING (Linux 4.20+): the tap leaves the packets this host sends. */
#include <linux/if_packet.h>
