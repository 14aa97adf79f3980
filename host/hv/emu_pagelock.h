/* Replacement of Unicorn 2.0.1's page_collection_lock/unlock for the emu backend (see emu_pagelock.c). */
#ifndef NUB_HOST_HV_EMU_PAGELOCK_H
#define NUB_HOST_HV_EMU_PAGELOCK_H

/*
 * Unicorn 2.0.1 builds and frees a malloc'd tree on every guest store to RAM
 * (page_collection_lock/unlock, whose result nothing but the unlock reads);
 * Unicorn 2.1.0 replaced both with no-ops. This file's definitions of the
 * two internal, exported symbols take the place of Unicorn's (libunicorn.so.2
 * calls them through its PLT) and do the same as 2.1.0, but only when:
 *   - nub was built against Unicorn 2.0.1 (otherwise nothing is defined),
 *   - the Unicorn loaded at run time reports exactly 2.0.1, and
 *   - NUB_EMU_PAGELOCK is not "0" (the switch to turn it off).
 * Otherwise they call Unicorn's own functions (found with dlsym(RTLD_NEXT)).
 * The decision is made once per process (a documented process-wide cache,
 * like the kvm probe's).
 */

enum nub_emu_pagelock {
    NUB_EMU_PAGELOCK_ACTIVE = 1,   /* the no-op versions are in use */
    NUB_EMU_PAGELOCK_OFF,          /* NUB_EMU_PAGELOCK=0: Unicorn's own */
    NUB_EMU_PAGELOCK_OTHER_VERSION,/* Unicorn at run time is not 2.0.1: Unicorn's own */
    NUB_EMU_PAGELOCK_NOT_BUILT,    /* built against another Unicorn: nothing replaced */
    NUB_EMU_PAGELOCK_NOT_BOUND,    /* defined, but Unicorn's calls do not reach them */
};

/* Make the once-per-process decision (idempotent, thread-safe); the emu
 * backend calls it before it maps guest memory. Returns the state. */
enum nub_emu_pagelock nub_emu_pagelock_init(void);

/* Short description of a state, for logs and docs. */
const char *nub_emu_pagelock_name(enum nub_emu_pagelock state);

#endif /* NUB_HOST_HV_EMU_PAGELOCK_H */
