/*
 * Connection-rate load generator and one-byte server for `npm run bench`, in C so that on a 2-core
 * machine the client and server cost little of the CPU the proxy under test needs (a Node client
 * spent as much CPU per connection as microsocks itself).
 *
 *   connrate server PORT
 *       listens on 127.0.0.1:PORT; for each connection sends one byte and closes first
 *       (TIME_WAIT stays on the server side, so client ports are not used up).
 *   connrate client PROXY_PORT TARGET_PORT CONCURRENCY DURATION_MS MAX_CONNS TIMEOUT_MS
 *       PROXY_PORT 0 = connect straight to the target. Each connection: TCP connect, SOCKS5 greeting
 *       (no auth), CONNECT 127.0.0.1:TARGET_PORT, read the reply, read the server's byte and its EOF.
 *       Prints one JSON object: counts, failure reasons, CPU seconds, handshake latencies in µs
 *       (greeting sent -> CONNECT reply received).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int server(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4096)) {
    perror("connrate server");
    return 1;
  }
  for (;;) { /* ends when the bench kills it */
    int c = accept(fd, NULL, NULL);
    if (c < 0) continue;
    (void)!send(c, "x", 1, MSG_NOSIGNAL);
    close(c);
  }
}

enum state { CONNECTING, METHOD, REPLY, DATA };

struct slot {
  int fd;
  enum state st;
  int64_t started, greeted;
  unsigned char buf[64];
  size_t have;
  int got_data;
};

#define MAX_REASONS 16
static const char *reason_name[MAX_REASONS];
static long reason_count[MAX_REASONS];

static void fail_reason(const char *why) {
  for (int i = 0; i < MAX_REASONS; i++) {
    if (!reason_name[i]) reason_name[i] = why;
    if (reason_name[i] == why || strcmp(reason_name[i], why) == 0) {
      reason_count[i]++;
      return;
    }
  }
}

static int proxy_port, target_port, epfd;
static long ok, failed, started_total, max_conns;
static uint32_t *latencies;
static long n_lat;

static void start(struct slot *s) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  a.sin_port = htons(proxy_port ? proxy_port : target_port);
  s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s->st = CONNECTING;
  s->have = 0;
  s->got_data = 0;
  s->started = now_us();
  started_total++;
  if (connect(s->fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
    fail_reason(strerror(errno));
    failed++;
    close(s->fd);
    s->fd = -1;
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = s};
  epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
}

static void finish(struct slot *s, const char *why) {
  if (why) {
    fail_reason(why);
    failed++;
  } else {
    ok++;
  }
  close(s->fd);
  s->fd = -1;
}

static void send_all(struct slot *s, const void *p, size_t n) {
  /* tiny messages on a fresh socket: the send buffer always has room */
  if (send(s->fd, p, n, MSG_NOSIGNAL) != (ssize_t)n) finish(s, "short write");
}

static void on_event(struct slot *s, uint32_t events) {
  if (s->st == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) return finish(s, strerror(err));
    if (!(events & EPOLLOUT)) return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
    if (!proxy_port) {
      s->st = DATA;
    } else {
      static const unsigned char greeting[] = {5, 1, 0};
      s->greeted = now_us();
      s->st = METHOD;
      send_all(s, greeting, sizeof greeting);
      return;
    }
  }
  for (;;) {
    ssize_t r = recv(s->fd, s->buf + s->have, sizeof s->buf - s->have, 0);
    if (r < 0) {
      if (errno == EAGAIN) return;
      return finish(s, strerror(errno));
    }
    if (r == 0) return finish(s, s->st == DATA && s->got_data ? NULL : "closed early");
    s->have += (size_t)r;
    if (s->st == METHOD && s->have >= 2) {
      if (s->buf[0] != 5 || s->buf[1] != 0) return finish(s, "bad method reply");
      memmove(s->buf, s->buf + 2, s->have - 2);
      s->have -= 2;
      unsigned char req[10] = {5, 1, 0, 1, 127, 0, 0, 1, (unsigned char)(target_port >> 8), (unsigned char)target_port};
      s->st = REPLY;
      send_all(s, req, sizeof req);
      if (s->fd < 0) return;
    }
    if (s->st == REPLY && s->have >= 5) {
      size_t need = s->buf[3] == 1 ? 10 : s->buf[3] == 4 ? 22 : s->buf[3] == 3 ? 7 + (size_t)s->buf[4] : 0;
      if (s->buf[0] != 5 || need == 0) return finish(s, "bad reply");
      if (s->have < need) continue;
      if (s->buf[1] != 0) return finish(s, "reply code not 0");
      if (n_lat < max_conns) latencies[n_lat++] = (uint32_t)(now_us() - s->greeted);
      memmove(s->buf, s->buf + need, s->have - need);
      s->have -= need;
      s->st = DATA;
    }
    if (s->st == DATA && s->have > 0) {
      s->got_data = 1;
      s->have = 0;
    }
  }
}

static int client(char **argv) {
  proxy_port = atoi(argv[0]);
  target_port = atoi(argv[1]);
  int concurrency = atoi(argv[2]);
  int64_t duration_us = atoll(argv[3]) * 1000, timeout_us = atoll(argv[5]) * 1000;
  max_conns = atol(argv[4]);
  if (concurrency < 1 || concurrency > 4096 || max_conns < 1 || target_port < 1) {
    fprintf(stderr, "connrate: bad arguments\n");
    return 2;
  }
  latencies = calloc((size_t)max_conns, sizeof *latencies);
  struct slot *slots = calloc((size_t)concurrency, sizeof *slots);
  epfd = epoll_create1(0);
  int64_t t0 = now_us(), deadline = t0 + duration_us;
  for (int i = 0; i < concurrency; i++) slots[i].fd = -1;
  struct epoll_event evs[256];
  for (;;) {
    int64_t t = now_us();
    int active = 0;
    for (int i = 0; i < concurrency; i++) {
      struct slot *s = &slots[i];
      if (s->fd >= 0 && t - s->started > timeout_us) finish(s, "timeout");
      if (s->fd < 0 && t < deadline && started_total < max_conns) start(s);
      active += s->fd >= 0;
    }
    if (!active) break;
    int n = epoll_wait(epfd, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      struct slot *s = evs[i].data.ptr;
      if (s->fd >= 0) on_event(s, evs[i].events);
    }
  }
  int64_t elapsed = now_us() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  printf("{\"ok\":%ld,\"failed\":%ld,\"elapsedMs\":%.3f,\"cpuSec\":%.3f,\"errors\":{", ok, failed, elapsed / 1e3, cpu);
  for (int i = 0; i < MAX_REASONS && reason_name[i]; i++)
    printf("%s\"%s\":%ld", i ? "," : "", reason_name[i], reason_count[i]);
  printf("},\"handshakeUs\":[");
  for (long i = 0; i < n_lat; i++) printf("%s%u", i ? "," : "", latencies[i]);
  printf("]}\n");
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && strcmp(argv[1], "server") == 0) return server(atoi(argv[2]));
  if (argc == 8 && strcmp(argv[1], "client") == 0) return client(argv + 2);
  fprintf(stderr,
          "usage: connrate server PORT | connrate client PROXY_PORT TARGET_PORT CONCURRENCY DURATION_MS MAX_CONNS TIMEOUT_MS\n");
  return 2;
}
