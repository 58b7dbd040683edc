/* The program of the nonewprivs e2e test image, written for pykubelet: it is installed set-uid
 * root, so it reports uid 0 unless the container runs with no_new_privs (allowPrivilegeEscalation
 * false), in which case the kernel ignores the set-uid bit and it reports the caller's uid. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Effective uid: %d\n", (int)geteuid());
  return 0;
}
