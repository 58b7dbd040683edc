/*
 * pykubelet's pause: the process that holds a pod sandbox's namespaces open.
 *
 * It does nothing but wait. SIGINT and SIGTERM end it with status 0; as PID 1 of the pod's PID
 * namespace (when the namespace is shared) it reaps every child that gets re-parented to it.
 * Built with `gcc -static -Os` and stripped by cluster/images.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "pykubelet-pause 1"
#endif

static void say(int fd, const char *text) {
  ssize_t n = write(fd, text, strlen(text));
  (void)n;
}

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  int saved = errno;
  (void)sig;
  /* Several children may have exited behind a single SIGCHLD: collect them all. */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int install(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    say(1, PAUSE_VERSION "\n");
    return 0;
  }
  if (getpid() != 1) {
    say(2, "pause: warning: not PID 1, orphans of other processes will not be reaped here\n");
  }
  if (install(SIGINT, on_stop, 0) != 0 || install(SIGTERM, on_stop, 0) != 0 ||
      install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
    say(2, "pause: sigaction failed\n");
    return 1;
  }
  for (;;) {
    pause();
  }
}
