/* Load generator for the benchmarks: fork/exec of /bin/true at a fixed rate for a fixed time,
   with a non-blocking TCP connect to a loopback port every CONNECT_EVERY-th exec. With
   "vfork" the child is made by vfork, which costs the generator far less than fork: rates a
   2-core machine cannot reach with fork (2,000 exec/s beside the watcher) become possible.
   Usage: loadgen RATE SECONDS CONNECT_EVERY PORT [vfork]
   Prints the achieved exec and connect counts. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void connect_once(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    connect(fd, (struct sockaddr *)&to, sizeof to);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "vfork") == 0)) {
        fprintf(stderr, "usage: loadgen RATE SECONDS CONNECT_EVERY PORT [vfork]\n");
        return 64;
    }
    int use_vfork = argc == 6;
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    int every = atoi(argv[3]), port = atoi(argv[4]);
    long execs = 0, connects = 0;
    double start = now();
    while (now() - start < seconds) {
        double due = start + execs / rate;
        while (now() < due) usleep(100);
        pid_t child = use_vfork ? vfork() : fork();
        if (child == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
        if (child > 0) waitpid(child, NULL, 0);
        execs++;
        if (every > 0 && execs % every == 0) { connect_once(port); connects++; }
    }
    double took = now() - start;
    printf("loadgen: %ld execs, %ld connects in %.2f s (%.0f exec/s)\n", execs, connects, took, execs / took);
    return 0;
}
