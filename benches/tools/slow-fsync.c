/*
 * slow-fsync: emulates a disk whose fsync is slower than this machine's,
 * for `store-bench` (docs/benchmarks.md, "Where the durable round goes").
 *
 * Preloaded into a process, every fsync/fdatasync does the real call and
 * then sleeps EXTRA_FSYNC_US microseconds, so the store's commits and the
 * raw redb baseline's (same process, same calls) pay the same extra cost.
 * Nothing else changes. A measuring aid only: never preload it into a
 * server.
 *
 *   gcc -O2 -shared -fPIC -o /tmp/slow-fsync.so benches/tools/slow-fsync.c -ldl
 *   EXTRA_FSYNC_US=600 LD_PRELOAD=/tmp/slow-fsync.so \
 *       target/release/store-bench --quick --publish-only
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void pause_extra(void) {
  static long us = -1;
  if (us < 0) {
    const char *v = getenv("EXTRA_FSYNC_US");
    us = v ? atol(v) : 0;
  }
  if (us > 0) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, 0);
  }
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  int r = real(fd);
  pause_extra();
  return r;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  int r = real(fd);
  pause_extra();
  return r;
}
