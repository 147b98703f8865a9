#include <libaudit.h>
#include <linux/netlink.h>
#include <linux/audit.h>

/* libaudit keeps rule-building state in globals that auditctl sets itself; they are exported
   but not declared in libaudit.h. A key is refused unless a syscall was added first. Rules
   are built on one thread only. */
extern int _audit_syscalladded;
extern int _audit_archadded;
extern int _audit_elf;

static inline void xw_audit_reset_rule_state(void) {
    _audit_syscalladded = 0;
    _audit_archadded = 0;
    _audit_elf = 0;
}

static inline void xw_audit_mark_syscall_added(void) { _audit_syscalladded = 1; }

