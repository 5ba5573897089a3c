/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stand-in for registry.k8s.io/e2e-test-images/nonewprivs: installed setuid root in the
 * image, it prints its effective uid, which is 0 when the runtime lets the setuid bit
 * work and the caller's uid under no_new_privs. Built static by critest.sh; not part of
 * pinlet.
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
        printf("Effective uid: %d\n", (int)geteuid());
        return 0;
}
