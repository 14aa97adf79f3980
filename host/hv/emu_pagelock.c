/* Replaces Unicorn 2.0.1's per-store page_collection_lock/unlock with 2.1.0's no-ops, gated on the exact version. */
#include "emu_pagelock.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicorn/unicorn.h>

/*
 * Why (docs/backends.md, "The emu cost model"): Unicorn 2.0.1 keeps no dirty
 * bitmap, so every guest store to RAM takes notdirty_write(), which calls
 *     pages = page_collection_lock(uc, ram_addr, ram_addr + size);
 *     tb_invalidate_phys_page_fast(uc, pages, ram_addr, size, retaddr);
 *     page_collection_unlock(pages);
 * page_collection_lock() mallocs a set and a GTree, adds a node per page
 * holding translated code, and page_collection_unlock() frees it all. Page
 * locks are compiled out of Unicorn (single-threaded TCG), and `pages` is
 * read by nothing but page_collection_unlock() (tb_invalidate_phys_page_fast
 * and tb_invalidate_phys_page_range__locked only pass it back to it), so the
 * set does no work. Unicorn 2.1.0 (commit 75d26b77, "Ignore
 * page_collection_lock") made lock return NULL and unlock do nothing; this
 * file does the same for 2.0.1, where the set is about 40 % of every store.
 *
 * How: libunicorn.so.2 exports the functions under their target-suffixed
 * names and calls them through its PLT, so a definition earlier in the
 * symbol lookup order (the executable linking libnub.a, which ld exports
 * because libunicorn.so defines the name, or libnub.so, loaded before
 * libunicorn.so) takes their place. These are the only non-nub_ names nub
 * defines. The emu backend references nub_emu_pagelock_init(), which pulls
 * this object out of libnub.a.
 *
 * Risk: these are Unicorn internals. The replacement is compiled only
 * against Unicorn 2.0.1 headers and used only when the loaded library says
 * it is 2.0.1; in every other case (and with NUB_EMU_PAGELOCK=0) the calls
 * go on to Unicorn's own functions. The state is decided once per process
 * under pthread_once and never changes afterwards: the one other
 * process-wide cache in the library besides the kvm probe's.
 */

#if UC_API_MAJOR == 2 && UC_API_MINOR == 0 && UC_API_PATCH == 1
#define NUB_PAGELOCK_BUILT 1
/* uc_version() of the library these headers belong to (2.0.1 with its EXTRA byte). */
#define UC_BUILT_VERSION ((unsigned)UC_API_MAJOR << 24 | (unsigned)UC_API_MINOR << 16 | \
                          (unsigned)UC_API_PATCH << 8 | (unsigned)UC_API_EXTRA)
#else
#define NUB_PAGELOCK_BUILT 0
#endif

struct uc_struct;
struct page_collection;
typedef struct page_collection *(*lock_fn)(struct uc_struct *, uint64_t, uint64_t);
typedef void (*unlock_fn)(struct page_collection *);

/* Written once under pthread_once, then only read. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static enum nub_emu_pagelock state = NUB_EMU_PAGELOCK_NOT_BUILT;
static lock_fn real_lock;
static unlock_fn real_unlock;

#if NUB_PAGELOCK_BUILT
/* Default visibility although libnub is built with -fvisibility=hidden: the
 * replacement only works while these names are in the dynamic symbol table
 * (of libnub.so, or of the executable that links libnub.a). They are the
 * only exported names outside the public headers (tests/exports/run.sh). */
__attribute__((visibility("default"))) struct page_collection *
page_collection_lock_x86_64(struct uc_struct *uc, uint64_t start, uint64_t end);
__attribute__((visibility("default"))) void page_collection_unlock_x86_64(struct page_collection *set);

static int switched_off(void)
{
    const char *v = getenv("NUB_EMU_PAGELOCK");
    return v != NULL && strcmp(v, "0") == 0;
}

static void decide(void)
{
    real_lock = (lock_fn)dlsym(RTLD_NEXT, "page_collection_lock_x86_64");
    real_unlock = (unlock_fn)dlsym(RTLD_NEXT, "page_collection_unlock_x86_64");
    void *bound = dlsym(RTLD_DEFAULT, "page_collection_lock_x86_64");
    if (uc_version(NULL, NULL) != UC_BUILT_VERSION)
        state = NUB_EMU_PAGELOCK_OTHER_VERSION;
    else if (switched_off())
        state = NUB_EMU_PAGELOCK_OFF;
    else if (bound != (void *)page_collection_lock_x86_64 || real_lock == NULL || real_unlock == NULL)
        state = NUB_EMU_PAGELOCK_NOT_BOUND;
    else
        state = NUB_EMU_PAGELOCK_ACTIVE;
}

/* Unicorn calls these on every guest store to RAM. */
struct page_collection *page_collection_lock_x86_64(struct uc_struct *uc, uint64_t start, uint64_t end)
{
    pthread_once(&once, decide);
    if (state == NUB_EMU_PAGELOCK_ACTIVE || real_lock == NULL)
        return NULL;
    return real_lock(uc, start, end);
}

void page_collection_unlock_x86_64(struct page_collection *set)
{
    pthread_once(&once, decide);
    /* NULL only ever comes from the replacement above: nothing to free. */
    if (set != NULL && real_unlock != NULL)
        real_unlock(set);
}
#else
static void decide(void)
{
    state = NUB_EMU_PAGELOCK_NOT_BUILT;
}
#endif

enum nub_emu_pagelock nub_emu_pagelock_init(void)
{
    pthread_once(&once, decide);
    return state;
}

const char *nub_emu_pagelock_name(enum nub_emu_pagelock s)
{
    switch (s) {
    case NUB_EMU_PAGELOCK_ACTIVE: return "active (Unicorn 2.0.1 page_collection_lock replaced)";
    case NUB_EMU_PAGELOCK_OFF: return "off (NUB_EMU_PAGELOCK=0)";
    case NUB_EMU_PAGELOCK_OTHER_VERSION: return "off (Unicorn at run time is not 2.0.1)";
    case NUB_EMU_PAGELOCK_NOT_BUILT: return "not built (built against another Unicorn)";
    case NUB_EMU_PAGELOCK_NOT_BOUND: return "off (Unicorn's calls do not reach the replacement)";
    }
    return "unknown";
}
