/*
 * accept_nodelay.c — TCP_NODELAY on every socket the process accepts, for
 * the embedded broker (`dealsignal broker`, librdkafka's mock cluster).
 *
 * librdkafka 2.0.2's mock cluster accepts client connections with plain
 * accept() and leaves Nagle's algorithm on, so a client with several
 * requests in flight (a producer writing to more than one partition) waits
 * for the delayed ACK: measured here, 100 messages to 48 partitions were
 * acknowledged in 48 ms, 5,000 in 60 ms; with TCP_NODELAY 3 ms and 11 ms.
 * Real Kafka brokers set TCP_NODELAY on every socket, so this makes the
 * embedded broker behave like one.
 *
 * How: this accept() is defined in the executable, whose symbols come
 * before libc's when the shared librdkafka resolves accept; it calls
 * libc's (dlsym RTLD_NEXT) and sets the option on the new socket.  It is
 * linked into the `dealsignal` executable only (CMakeLists.txt), not into
 * the library that the tests and benchmarks link, so no other program
 * gets an accept() of ours.  In dealsignal nothing else calls accept()
 * (libmicrohttpd, the metrics server, uses accept4()).
 */
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
    static accept_fn real;
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "accept");
        memcpy(&real, &sym, sizeof(real));
    }
    int s = real(fd, addr, len);
    if (s >= 0) {
        int one = 1;
        (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return s;
}
