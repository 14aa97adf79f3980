/* Example host for examples/errors: guest errors, a per-call timeout, poisoning, and an interrupt sent from another thread. */
#include <nub/nub.h>
#include <pthread.h>
#include <stdio.h>

#define HOST_FN_TICK 100u

static nub_sandbox *make_sandbox(const char *guest, uint32_t timeout_ms, nub_host_fn tick, void *ctx)
{
    struct nub_config cfg;
    nub_config_default(&cfg);
    cfg.call_timeout_ms = timeout_ms; /* 0: no timeout */
    nub_sandbox *sb;
    struct nub_error err;
    if (nub_sandbox_new_from_file(guest, NULL, &cfg, &sb, &err) != NUB_OK) {
        fprintf(stderr, "errors: %s: %s\n", guest, err.message);
        return NULL;
    }
    if ((tick && nub_sandbox_register(sb, HOST_FN_TICK, tick, ctx) != NUB_OK) ||
        nub_sandbox_evolve(sb) != NUB_OK) {
        fprintf(stderr, "errors: %s\n", nub_sandbox_last_error(sb)->message);
        nub_sandbox_destroy(sb);
        return NULL;
    }
    return sb;
}

static void show(const char *what, nub_sandbox *sb, nub_status rc)
{
    printf("%-22s %s\n", what, nub_strerror(rc));
    if (rc == NUB_E_GUEST)
        printf("%-22s guest status %u: %s\n", "", nub_sandbox_last_error(sb)->guest_status,
               nub_sandbox_last_error(sb)->message);
}

/* The interrupting thread waits until the guest is inside fn 3 (the first
 * tick has arrived), then interrupts: no sleeping, no guessing. */
struct ticker {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ticked;
    nub_sandbox *sb;
};

static int tick(void *ctx, struct nub_host_call *call)
{
    struct ticker *t = ctx;
    (void)call;
    pthread_mutex_lock(&t->lock);
    t->ticked = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

static void *interrupter(void *arg)
{
    struct ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->ticked)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    nub_interrupt(t->sb); /* any thread may call this */
    return NULL;
}

int main(int argc, char **argv)
{
    const char *guest = argc > 1 ? argv[1] : "guest.elf";
    uint8_t out[64];
    size_t out_len;

    /* A guest error leaves the sandbox usable; a timeout poisons it. */
    nub_sandbox *sb = make_sandbox(guest, 1000, NULL, NULL);
    if (sb == NULL)
        return 1;
    show("fn 1 (refuses):", sb, nub_call_into(sb, 1, "abc", 3, out, sizeof out, &out_len));
    show("fn 1 again:", sb, nub_call_into(sb, 1, "", 0, out, sizeof out, &out_len));
    show("fn 2 (spins, 1 s max):", sb, nub_call_into(sb, 2, NULL, 0, out, sizeof out, &out_len));
    show("fn 1 after that:", sb, nub_call_into(sb, 1, NULL, 0, out, sizeof out, &out_len));
    nub_sandbox_destroy(sb); /* a poisoned sandbox can only be destroyed */

    /* An interrupt from another thread ends the call it lands in. */
    struct ticker t = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};
    t.sb = make_sandbox(guest, 0, tick, &t);
    if (t.sb == NULL)
        return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, interrupter, &t) != 0) {
        nub_sandbox_destroy(t.sb);
        return 1;
    }
    show("fn 3 (interrupted):", t.sb, nub_call_into(t.sb, 3, NULL, 0, out, sizeof out, &out_len));
    pthread_join(th, NULL);
    nub_sandbox_destroy(t.sb);
    return 0;
}
