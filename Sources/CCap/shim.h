#include <sys/capability.h>
#include <sys/prctl.h>

/* prctl(2) is variadic, which Swift cannot call: one fixed-argument form for the options
   the privilege drop uses (keep capabilities across setuid, no new privileges, ambient set). */
static inline int xw_prctl(int option, unsigned long a2, unsigned long a3) {
    return prctl(option, a2, a3, 0UL, 0UL);
}

/* setresuid/setresgid, hidden without _GNU_SOURCE: real, effective and saved ids in one call,
   so no saved root id survives the switch. */
#include <sys/types.h>
extern int xw_setresuid(uid_t r, uid_t e, uid_t s) __asm__("setresuid");
extern int xw_setresgid(gid_t r, gid_t e, gid_t s) __asm__("setresgid");
