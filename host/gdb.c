/* gdb remote serial protocol stub: loopback listener, bounded packet parser, registers, memory through the guest page tables, breakpoints, stepping, stops. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gdb.h"
#include "internal.h"
#include "nub/vmem.h"

/*
 * One stub per sandbox (docs/debugging.md). The vCPU only runs inside
 * nub_gdb_run(), on the caller's thread; while it runs, a watcher thread
 * polls the socket for Ctrl-C and stops it with ops->interrupt(). Between
 * runs (host code, other calls) gdb simply waits for the next stop reply.
 */

#define GDB_RX_CAP (2 * NUB_GDB_PACKET_MAX + 64)
#define GDB_TX_CAP (2 * NUB_GDB_PACKET_MAX + 8)
#define GDB_MEM_MAX ((NUB_GDB_PACKET_MAX - 8) / 2) /* bytes in one m reply */
#define GDB_NREGS 57                               /* registers in target.xml */
#define GDB_XML_CAP 6144
#define GDB_SEND_TRIES 8                           /* resends after a '-' */
#define GDB_TRAP_PORT 0xe9                         /* the OUT put at the guest's #BP handler (kvm) */

/* gdb's signal numbers (not the host's). */
#define GDB_SIGINT 2
#define GDB_SIGILL 4
#define GDB_SIGTRAP 5
#define GDB_SIGABRT 6
#define GDB_SIGFPE 8
#define GDB_SIGBUS 10
#define GDB_SIGSEGV 11

struct gdb_swbp {
    uint64_t addr;
    uint8_t orig;     /* the byte under the int3 while inserted (kvm) */
    bool inserted;
};

/* What serve() ended with. */
enum gdb_next { GDB_CONTINUE, GDB_STEP, GDB_DETACH, GDB_KILL };

struct nub_gdb {
    int listen_fd;
    int fd;                      /* the debugger's connection, -1 when none */
    uint16_t port;
    bool first_done;             /* the first run waited for gdb already */
    bool just_attached;          /* gdb connected and asks '?' for the first stop */
    bool stepping;               /* the current resume is a single step */
    bool step_done;              /* a step ended at an exit the call path serves: report it next */
    bool intr_done;              /* Ctrl-C came with such an exit: report SIGINT next */
    bool fault_view;             /* registers shown are `view` (a fault the guest reported) */
    struct nub_hv_regs view;
    int wake[2];                 /* wakes the watcher */
    pthread_t watcher;
    atomic_bool intr;            /* the watcher saw Ctrl-C and interrupted the vCPU */
    atomic_bool lost;            /* the watcher saw the connection close */
    size_t nsw;
    struct gdb_swbp sw[NUB_HV_MAX_SW_BP];
    size_t nhw;
    uint64_t hw[NUB_HV_MAX_HW_BP];
    uint64_t trap;               /* kvm: GVA of the guest's #BP handler while the OUT is there, else 0 */
    uint8_t trap_orig[2];
    uint64_t trap_hit;           /* the trap of the last run (handle_exit looks for its OUT) */
    uint64_t written, written_end; /* guest memory M wrote since the last resume */
    char stop[64];               /* the last stop reply, for '?' */
    size_t rx_len;
    uint8_t rx[GDB_RX_CAP];
    uint8_t pkt[NUB_GDB_PACKET_MAX + 1];
    char tx[GDB_TX_CAP];
    char xml[GDB_XML_CAP];
    size_t xml_len;
};

/* ---- packet parser (pure, bounded) ---------------------------------------- */

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nub_gdb_parse_hex(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *s = *p;
    uint64_t acc = 0;
    size_t n = 0;
    for (; s < end && hex_digit(*s) >= 0; s++, n++) {
        if (n == 16)
            return -1;
        acc = acc << 4 | (uint64_t)hex_digit(*s);
    }
    if (n == 0)
        return -1;
    *v = acc;
    *p = s;
    return 0;
}

/* Offset of the next '$' at or after `from`, or len. */
static size_t next_start(const uint8_t *buf, size_t len, size_t from)
{
    while (from < len && buf[from] != '$')
        from++;
    return from;
}

int nub_gdb_packet_parse(const uint8_t *buf, size_t len, uint8_t *out, size_t out_cap,
                         size_t *out_len, size_t *used)
{
    *out_len = 0;
    *used = len == 0 ? 0 : next_start(buf, len, 1);
    if (len == 0)
        return NUB_GDB_PKT_MORE;
    if (buf[0] != '$')
        return NUB_GDB_PKT_MALFORMED;
    uint8_t sum = 0;
    size_t n = 0, i = 1;
    for (; i < len && buf[i] != '#'; i++) {
        if (buf[i] == '$') {
            *used = i;
            return NUB_GDB_PKT_MALFORMED;
        }
        if (i > NUB_GDB_PACKET_MAX) {
            *used = next_start(buf, len, i);
            return NUB_GDB_PKT_TOO_LONG;
        }
        sum = (uint8_t)(sum + buf[i]);
        uint8_t c = buf[i];
        if (c == '}') {
            if (i + 1 > NUB_GDB_PACKET_MAX) { /* the escaped byte would be raw byte MAX + 1 */
                *used = next_start(buf, len, i);
                return NUB_GDB_PKT_TOO_LONG;
            }
            if (i + 1 >= len)
                return NUB_GDB_PKT_MORE;
            if (buf[i + 1] == '#' || buf[i + 1] == '$') {
                *used = next_start(buf, len, i + 1);
                return NUB_GDB_PKT_MALFORMED;
            }
            i++;
            sum = (uint8_t)(sum + buf[i]);
            c = buf[i] ^ 0x20;
        }
        if (n == out_cap) {
            *used = next_start(buf, len, i);
            return NUB_GDB_PKT_TOO_LONG;
        }
        out[n++] = c;
    }
    if (i + 2 >= len)
        return NUB_GDB_PKT_MORE;
    *used = i + 3;
    int hi = hex_digit(buf[i + 1]), lo = hex_digit(buf[i + 2]);
    if (hi < 0 || lo < 0)
        return NUB_GDB_PKT_MALFORMED;
    if ((uint8_t)(hi << 4 | lo) != sum)
        return NUB_GDB_PKT_BAD_CHECKSUM;
    *out_len = n;
    return NUB_GDB_PKT_OK;
}

/* ---- socket I/O ------------------------------------------------------------ */

static int send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read more bytes into rx; -1 on EOF or error. */
static int rx_fill(struct nub_gdb *g)
{
    if (g->rx_len == sizeof g->rx)
        g->rx_len = 0; /* only garbage fills it: drop it */
    for (;;) {
        ssize_t n = recv(g->fd, g->rx + g->rx_len, sizeof g->rx - g->rx_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        g->rx_len += (size_t)n;
        return 0;
    }
}

static void rx_drop(struct nub_gdb *g, size_t n)
{
    memmove(g->rx, g->rx + n, g->rx_len - n);
    g->rx_len -= n;
}

/* Wait for the '+' acknowledging a packet; 1 for '-', -1 when the connection broke. */
static int wait_ack(struct nub_gdb *g)
{
    for (;;) {
        for (size_t i = 0; i < g->rx_len; i++) {
            if (g->rx[i] == '+' || g->rx[i] == '-') {
                int nak = g->rx[i] == '-';
                rx_drop(g, i + 1);
                return nak;
            }
            if (g->rx[i] == '$') { /* a packet instead of an ack: take it as acked */
                rx_drop(g, i);
                return 0;
            }
        }
        g->rx_len = 0;
        if (rx_fill(g) != 0)
            return -1;
    }
}

/* Send "$payload#hh" and wait for the ack; -1 when the connection broke. */
static int send_packet(struct nub_gdb *g, const char *payload, size_t len)
{
    if (len > GDB_TX_CAP - 4)
        len = GDB_TX_CAP - 4;
    uint8_t sum = 0;
    g->tx[0] = '$';
    for (size_t i = 0; i < len; i++) {
        g->tx[1 + i] = payload[i];
        sum = (uint8_t)(sum + (uint8_t)payload[i]);
    }
    snprintf(g->tx + 1 + len, 4, "#%02x", sum);
    for (int tries = 0; tries < GDB_SEND_TRIES; tries++) {
        if (send_all(g->fd, g->tx, len + 4) != 0)
            return -1;
        int rc = wait_ack(g);
        if (rc <= 0)
            return rc;
    }
    return -1;
}

static int reply(struct nub_gdb *g, const char *s)
{
    return send_packet(g, s, strlen(s));
}

/* Receive the next packet into g->pkt (NUL-terminated); its length, or -1 when the connection broke. */
static long recv_packet(struct nub_gdb *g)
{
    for (;;) {
        size_t skip = 0;
        while (skip < g->rx_len && g->rx[skip] != '$')
            skip++; /* acks, and Ctrl-C while already stopped */
        rx_drop(g, skip);
        size_t n = 0, used = 0;
        int rc = nub_gdb_packet_parse(g->rx, g->rx_len, g->pkt, NUB_GDB_PACKET_MAX, &n, &used);
        if (rc == NUB_GDB_PKT_MORE) {
            if (rx_fill(g) != 0)
                return -1;
            continue;
        }
        rx_drop(g, used);
        if (send_all(g->fd, rc == NUB_GDB_PKT_OK ? "+" : "-", 1) != 0)
            return -1;
        if (rc == NUB_GDB_PKT_OK) {
            g->pkt[n] = '\0';
            return (long)n;
        }
    }
}

/* ---- guest memory through the page tables ---------------------------------- */

/* Host pointer for [gpa, gpa + len) inside one of the sandbox's regions, or NULL. */
static uint8_t *gpa_host(nub_sandbox *sb, uint64_t gpa, uint64_t len)
{
    const struct nub_layout *l = &sb->lay;
    uint64_t sbase = nub_scratch_gpa(l, 0);
    if (gpa >= NUB_BASE_GPA && gpa - NUB_BASE_GPA <= l->snapshot_size &&
        len <= l->snapshot_size - (gpa - NUB_BASE_GPA))
        return sb->snapshot + (gpa - NUB_BASE_GPA);
    if (gpa >= sbase && gpa - sbase <= l->scratch_size && len <= l->scratch_size - (gpa - sbase))
        return sb->scratch + (gpa - sbase);
    return NULL;
}

static int read_pte(void *ctx, uint64_t pa, uint64_t *val)
{
    const uint8_t *p = (pa & 7) == 0 ? gpa_host(ctx, pa, 8) : NULL;
    if (p == NULL)
        return NUB_VMEM_E_ACCESS;
    memcpy(val, p, 8);
    return NUB_VMEM_OK;
}

/* Host pointer for guest virtual va and the bytes left in its 4 KiB page; NULL when unmapped. */
static uint8_t *gva_host(nub_sandbox *sb, uint64_t va, size_t *avail)
{
    struct nub_vmem_ops ops = {.ctx = sb, .read = read_pte, .root = sb->cr3};
    uint64_t pa;
    if (nub_vmem_virt_to_phys(&ops, va, &pa, NULL) != NUB_VMEM_OK) /* at most 4 levels */
        return NULL;
    *avail = (size_t)(NUB_PAGE_SIZE - (va & (NUB_PAGE_SIZE - 1)));
    return gpa_host(sb, pa, *avail);
}

/* Copy guest memory out (write = 0) or in; the bytes done (short at the first unmapped page). */
static size_t guest_copy(nub_sandbox *sb, uint64_t va, uint8_t *buf, size_t len, int write)
{
    size_t done = 0;
    while (done < len) {
        size_t avail;
        uint8_t *h = gva_host(sb, va + done, &avail);
        if (h == NULL || va + done < va)
            break;
        size_t n = len - done < avail ? len - done : avail;
        if (write)
            memcpy(h, buf + done, n);
        else
            memcpy(buf + done, h, n);
        done += n;
    }
    return done;
}

/* ---- breakpoints -------------------------------------------------------------- */

static struct gdb_swbp *find_sw(struct nub_gdb *g, uint64_t addr)
{
    for (size_t i = 0; i < g->nsw; i++)
        if (g->sw[i].addr == addr)
            return &g->sw[i];
    return NULL;
}

/* kvm: write an int3 at every software breakpoint before a run. */
static void insert_sw(nub_sandbox *sb, struct nub_gdb *g)
{
    for (size_t i = 0; i < g->nsw; i++) {
        size_t avail;
        uint8_t *h = gva_host(sb, g->sw[i].addr, &avail);
        if (h == NULL || g->sw[i].inserted)
            continue;
        g->sw[i].orig = *h;
        *h = 0xcc;
        g->sw[i].inserted = true;
    }
}

/* kvm: put the original bytes back (unless the guest overwrote the int3 itself). */
static void remove_sw(nub_sandbox *sb, struct nub_gdb *g)
{
    for (size_t i = 0; i < g->nsw; i++) {
        size_t avail;
        uint8_t *h = g->sw[i].inserted ? gva_host(sb, g->sw[i].addr, &avail) : NULL;
        if (h != NULL && *h == 0xcc)
            *h = g->sw[i].orig;
        g->sw[i].inserted = false;
    }
}

/*
 * kvm: a hypervisor that does not intercept #BP (QEMU's software CPU, for
 * one) delivers an int3 to the guest's own #BP handler. To catch it there
 * with the registers intact, the first two bytes of that handler become
 * "out %al, $GDB_TRAP_PORT" while breakpoints are in; on the exit the
 * exception delivery is undone (trap_unwind): with RIP moved off the OUT,
 * KVM does not complete it either.
 */
static void insert_trap(nub_sandbox *sb, struct nub_gdb *g)
{
    uint64_t idt;
    uint16_t limit;
    uint8_t gate[16];
    size_t avail;
    g->trap = 0;
    if (sb->ops->get_idt == NULL || sb->ops->get_idt(sb->hv, &idt, &limit) != NUB_OK ||
        limit < 4 * 16 - 1 || guest_copy(sb, idt + 3 * 16, gate, sizeof gate, 0) != sizeof gate ||
        !(gate[5] & 0x80))
        return; /* no IDT (yet) or gate 3 not present */
    uint64_t h = (uint64_t)gate[0] | (uint64_t)gate[1] << 8 | (uint64_t)gate[6] << 16 |
                 (uint64_t)gate[7] << 24 | (uint64_t)gate[8] << 32 | (uint64_t)gate[9] << 40 |
                 (uint64_t)gate[10] << 48 | (uint64_t)gate[11] << 56;
    uint8_t *p = gva_host(sb, h, &avail);
    if (p == NULL || avail < 2 || find_sw(g, h) != NULL || find_sw(g, h + 1) != NULL)
        return;
    memcpy(g->trap_orig, p, 2);
    p[0] = 0xe6;
    p[1] = GDB_TRAP_PORT;
    g->trap = g->trap_hit = h;
}

static void remove_trap(nub_sandbox *sb, struct nub_gdb *g)
{
    size_t avail;
    uint8_t *p = g->trap != 0 ? gva_host(sb, g->trap, &avail) : NULL;
    if (p != NULL && avail >= 2 && p[0] == 0xe6 && p[1] == GDB_TRAP_PORT)
        memcpy(p, g->trap_orig, 2);
    g->trap = 0;
}

/*
 * The trap's OUT ran: undo the #BP delivery from the frame the CPU pushed
 * (RIP after the int3, CS, RFLAGS, RSP, SS at RSP). Turns x into the
 * breakpoint stop, or into a #BP fault when the int3 was the guest's own.
 */
static void trap_unwind(nub_sandbox *sb, struct nub_gdb *g, struct nub_hv_exit *x)
{
    struct nub_hv_regs r;
    uint64_t frame[5];
    if (sb->ops->get_regs(sb->hv, &r) != NUB_OK ||
        guest_copy(sb, r.rsp, (uint8_t *)frame, sizeof frame, 0) != sizeof frame || frame[0] == 0)
        return;
    uint64_t bp = frame[0] - 1;
    memset(x, 0, sizeof *x);
    if (find_sw(g, bp) == NULL) {
        x->kind = NUB_HV_EXIT_FAULT;
        x->vector = 3;
        x->rip = frame[0];
        return;
    }
    r.rip = bp;
    r.rflags = frame[2];
    r.rsp = frame[3];
    if (sb->ops->set_regs(sb->hv, &r) != NUB_OK)
        return;
    x->kind = NUB_HV_EXIT_DEBUG;
    x->debug = NUB_HV_DBG_SW_BP;
    x->rip = bp;
}

/* Z0/Z1/z0/z1: 0, or -1 when refused (unmapped address, table full, unknown). */
static int set_breakpoint(nub_sandbox *sb, struct nub_gdb *g, int type, uint64_t addr, int insert)
{
    size_t avail;
    if (type == 0) {
        struct gdb_swbp *b = find_sw(g, addr);
        if (!insert) {
            if (b != NULL)
                *b = g->sw[--g->nsw];
            return 0;
        }
        if (b != NULL)
            return 0;
        if (g->nsw == NUB_HV_MAX_SW_BP || gva_host(sb, addr, &avail) == NULL)
            return -1;
        g->sw[g->nsw++] = (struct gdb_swbp){.addr = addr};
        return 0;
    }
    for (size_t i = 0; i < g->nhw; i++) {
        if (g->hw[i] == addr) {
            if (!insert)
                g->hw[i] = g->hw[--g->nhw];
            return 0;
        }
    }
    if (!insert)
        return 0;
    if (g->nhw == NUB_HV_MAX_HW_BP)
        return -1;
    g->hw[g->nhw++] = addr;
    return 0;
}

/* ---- registers ------------------------------------------------------------------ */

/* Bytes of gdb register n in target.xml's order. */
static size_t reg_size(unsigned n)
{
    if (n <= 16)
        return 8;                /* rax..r15, rip */
    if (n >= 24 && n <= 31)
        return 10;               /* st0-st7 */
    if (n >= 40 && n <= 55)
        return 16;               /* xmm0-xmm15 */
    return 4;                    /* eflags, segments, x87 control, mxcsr */
}

/* The field behind gdb register n, or NULL when nub does not know it (shown unavailable). */
static uint64_t *reg_field(struct nub_hv_regs *r, unsigned n)
{
    uint64_t *const map[18] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
                               &r->rbp, &r->rsp, &r->r8,  &r->r9,  &r->r10, &r->r11,
                               &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags};
    return n < 18 ? map[n] : NULL;
}

static int get_regs(nub_sandbox *sb, struct nub_gdb *g, struct nub_hv_regs *r)
{
    if (g->fault_view) {
        *r = g->view;
        return 0;
    }
    return sb->ops->get_regs(sb->hv, r) == NUB_OK ? 0 : -1;
}

static char *put_hex_le(char *o, uint64_t v, size_t bytes)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < bytes; i++, v >>= 8) {
        *o++ = digits[(v >> 4) & 0xf];
        *o++ = digits[v & 0xf];
    }
    return o;
}

static char *put_reg(char *o, struct nub_hv_regs *r, unsigned n)
{
    uint64_t *f = reg_field(r, n);
    if (f != NULL)
        return put_hex_le(o, *f, reg_size(n));
    memset(o, 'x', 2 * reg_size(n));
    return o + 2 * reg_size(n);
}

/* Little-endian hex of `bytes` bytes at *p; -1 when malformed. */
static int get_hex_le(const uint8_t **p, const uint8_t *end, size_t bytes, uint64_t *v)
{
    uint64_t acc = 0;
    if ((size_t)(end - *p) < 2 * bytes)
        return -1;
    for (size_t i = 0; i < bytes; i++) {
        int hi = hex_digit((*p)[2 * i]), lo = hex_digit((*p)[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        acc |= (uint64_t)(hi << 4 | lo) << (8 * i);
    }
    *p += 2 * bytes;
    *v = acc;
    return 0;
}

static int cmd_read_regs(nub_sandbox *sb, struct nub_gdb *g)
{
    struct nub_hv_regs r;
    if (get_regs(sb, g, &r) != 0)
        return reply(g, "E05");
    char buf[GDB_NREGS * 32 + 1];
    char *o = buf;
    for (unsigned n = 0; n < GDB_NREGS; n++)
        o = put_reg(o, &r, n);
    return send_packet(g, buf, (size_t)(o - buf));
}

/* Write register n from hex at *p (only the ones nub knows; the rest are accepted and dropped). */
static int write_reg(struct nub_hv_regs *r, unsigned n, const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    uint64_t *f = reg_field(r, n);
    if (f == NULL) {
        if ((size_t)(end - *p) < 2 * reg_size(n))
            return -1;
        *p += 2 * reg_size(n);
        return 0;
    }
    if (get_hex_le(p, end, reg_size(n), &v) != 0)
        return -1;
    *f = n == 17 ? (*f & ~0xffffffffull) | v : v;
    return 0;
}

static int cmd_write_regs(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    struct nub_hv_regs r;
    if (g->fault_view || get_regs(sb, g, &r) != 0)
        return reply(g, "E01");
    for (unsigned n = 0; n < GDB_NREGS && a < end; n++) {
        if (*a == 'x') { /* unavailable: keep */
            size_t skip = 2 * reg_size(n);
            a += (size_t)(end - a) < skip ? (size_t)(end - a) : skip;
            continue;
        }
        if (write_reg(&r, n, &a, end) != 0)
            return reply(g, "E22");
    }
    return reply(g, sb->ops->set_regs(sb->hv, &r) == NUB_OK ? "OK" : "E05");
}

static int cmd_read_reg(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    uint64_t n;
    struct nub_hv_regs r;
    char buf[40];
    if (nub_gdb_parse_hex(&a, end, &n) != 0 || a != end || n >= GDB_NREGS)
        return reply(g, "E22");
    if (get_regs(sb, g, &r) != 0)
        return reply(g, "E05");
    char *o = put_reg(buf, &r, (unsigned)n);
    return send_packet(g, buf, (size_t)(o - buf));
}

static int cmd_write_reg(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    uint64_t n;
    struct nub_hv_regs r;
    if (nub_gdb_parse_hex(&a, end, &n) != 0 || a == end || *a++ != '=' || n >= GDB_NREGS)
        return reply(g, "E22");
    if (g->fault_view || get_regs(sb, g, &r) != 0)
        return reply(g, "E01");
    if (write_reg(&r, (unsigned)n, &a, end) != 0 || a != end)
        return reply(g, "E22");
    return reply(g, sb->ops->set_regs(sb->hv, &r) == NUB_OK ? "OK" : "E05");
}

/* ---- memory commands ---------------------------------------------------------------- */

/* "ADDR,LEN" then optionally ':' (for M); 0 or -1. */
static int parse_addr_len(const uint8_t **a, const uint8_t *end, uint64_t *addr, uint64_t *len)
{
    if (nub_gdb_parse_hex(a, end, addr) != 0 || *a == end || *(*a)++ != ',')
        return -1;
    return nub_gdb_parse_hex(a, end, len);
}

static int cmd_read_mem(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    uint64_t addr, len;
    uint8_t bytes[GDB_MEM_MAX];
    char buf[2 * GDB_MEM_MAX];
    if (parse_addr_len(&a, end, &addr, &len) != 0 || a != end)
        return reply(g, "E22");
    if (len > GDB_MEM_MAX)
        len = GDB_MEM_MAX; /* gdb accepts a short read */
    size_t got = guest_copy(sb, addr, bytes, (size_t)len, 0);
    if (got == 0 && len != 0)
        return reply(g, "E14");
    for (size_t i = 0; i < got; i++)
        put_hex_le(buf + 2 * i, bytes[i], 1);
    return send_packet(g, buf, 2 * got);
}

static int cmd_write_mem(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    uint64_t addr, len, v;
    uint8_t bytes[NUB_GDB_PACKET_MAX / 2];
    if (parse_addr_len(&a, end, &addr, &len) != 0 || a == end || *a++ != ':' ||
        len > sizeof bytes || (size_t)(end - a) != 2 * len)
        return reply(g, "E22");
    for (size_t i = 0; i < len; i++) {
        if (get_hex_le(&a, end, 1, &v) != 0)
            return reply(g, "E22");
        bytes[i] = (uint8_t)v;
    }
    size_t done = guest_copy(sb, addr, bytes, (size_t)len, 1);
    if (done != 0) { /* widen the range the emu backend re-translates */
        if (g->written == g->written_end || addr < g->written)
            g->written = addr;
        if (addr + done > g->written_end)
            g->written_end = addr + done;
    }
    return reply(g, done == len ? "OK" : "E14");
}

/* ---- target description ------------------------------------------------------------ */

static void xml_text(struct nub_gdb *g, const char *text)
{
    int n = snprintf(g->xml + g->xml_len, sizeof g->xml - g->xml_len, "%s", text);
    if (n > 0 && (size_t)n < sizeof g->xml - g->xml_len)
        g->xml_len += (size_t)n;
}

static void xml_reg(struct nub_gdb *g, const char *name, unsigned bits, const char *type)
{
    int n = snprintf(g->xml + g->xml_len, sizeof g->xml - g->xml_len,
                     "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\"/>\n", name, bits, type);
    if (n > 0 && (size_t)n < sizeof g->xml - g->xml_len)
        g->xml_len += (size_t)n;
}

/* amd64: the i386 core feature (GPRs, rip, eflags, segments, x87) and the SSE feature. */
static void build_xml(struct nub_gdb *g)
{
    static const char *const gprs[16] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                         "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
    static const char *const segs[6] = {"cs", "ss", "ds", "es", "fs", "gs"};
    static const char *const x87[8] = {"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"};
    char name[8];
    g->xml_len = 0;
    xml_text(g, "<?xml version=\"1.0\"?>\n<target version=\"1.0\">\n"
                "<architecture>i386:x86-64</architecture>\n<feature name=\"org.gnu.gdb.i386.core\">\n");
    for (int i = 0; i < 16; i++)
        xml_reg(g, gprs[i], 64, i == 6 || i == 7 ? "data_ptr" : "int64");
    xml_reg(g, "rip", 64, "code_ptr");
    xml_reg(g, "eflags", 32, "int32");
    for (int i = 0; i < 6; i++)
        xml_reg(g, segs[i], 32, "int32");
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "st%d", i);
        xml_reg(g, name, 80, "i387_ext");
    }
    for (int i = 0; i < 8; i++)
        xml_reg(g, x87[i], 32, "int");
    xml_text(g, "</feature>\n<feature name=\"org.gnu.gdb.i386.sse\">\n");
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "xmm%d", i);
        xml_reg(g, name, 128, "uint128");
    }
    xml_reg(g, "mxcsr", 32, "int");
    xml_text(g, "</feature>\n</target>\n");
}

/* qXfer:features:read:target.xml:OFFSET,LENGTH */
static int cmd_xfer_features(struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    static const char annex[] = "target.xml:";
    uint64_t off, len;
    char buf[NUB_GDB_PACKET_MAX];
    if ((size_t)(end - a) < sizeof annex - 1 || memcmp(a, annex, sizeof annex - 1) != 0)
        return reply(g, "E00");
    a += sizeof annex - 1;
    if (parse_addr_len(&a, end, &off, &len) != 0 || a != end)
        return reply(g, "E22");
    if (off > g->xml_len)
        return reply(g, "E22");
    size_t n = g->xml_len - (size_t)off;
    if (n > len)
        n = (size_t)len;
    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    buf[0] = off + n >= g->xml_len ? 'l' : 'm';
    memcpy(buf + 1, g->xml + off, n); /* the text has no '$', '#', '}' or '*' to escape */
    return send_packet(g, buf, n + 1);
}

/* ---- stops ------------------------------------------------------------------------- */

static int vector_signal(uint64_t vector)
{
    switch (vector) {
    case 0: case 7: case 16: case 19: return GDB_SIGFPE;
    case 1: case 3: return GDB_SIGTRAP;
    case 6: return GDB_SIGILL;
    case 11: case 12: case 17: return GDB_SIGBUS;
    default: return GDB_SIGSEGV;
    }
}

/* Remember the stop reply "T<sig>thread:1;[reason]" and send it unless gdb will ask with '?'. */
static int report_stop(struct nub_gdb *g, int sig, const char *reason, bool send)
{
    snprintf(g->stop, sizeof g->stop, "T%02xthread:1;%s", sig & 0xff, reason);
    return send ? reply(g, g->stop) : 0;
}

/* vCont;ACTION[:thread][;...]: the first action decides (one thread). */
static int parse_vcont(const uint8_t *a, const uint8_t *end, enum gdb_next *next)
{
    if (a == end || *a++ != ';' || a == end)
        return -1;
    if (*a == 'c' || *a == 'C')
        *next = GDB_CONTINUE;
    else if (*a == 's' || *a == 'S')
        *next = GDB_STEP;
    else
        return -1;
    return 0;
}

/* c [ADDR] / s [ADDR]: resume, from ADDR when given. */
static int resume_at(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    uint64_t addr;
    struct nub_hv_regs r;
    if (a == end || g->fault_view)
        return 0;
    if (nub_gdb_parse_hex(&a, end, &addr) != 0 || a != end || sb->ops->get_regs(sb->hv, &r) != NUB_OK)
        return -1;
    r.rip = addr;
    return sb->ops->set_regs(sb->hv, &r) == NUB_OK ? 0 : -1;
}

static int cmd_breakpoint(nub_sandbox *sb, struct nub_gdb *g, const uint8_t *a, const uint8_t *end)
{
    int insert = a[0] == 'Z';
    uint64_t addr, kind;
    if (a + 1 == end || (a[1] != '0' && a[1] != '1'))
        return reply(g, ""); /* watchpoints: not supported */
    int type = a[1] - '0';
    a += 2;
    if (a == end || *a++ != ',' || parse_addr_len(&a, end, &addr, &kind) != 0)
        return reply(g, "E22");
    return reply(g, set_breakpoint(sb, g, type, addr, insert) == 0 ? "OK" : "E0e");
}

static bool starts(const uint8_t *p, const uint8_t *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* Query packets (q..., v... without resuming). */
static int cmd_query(struct nub_gdb *g, const uint8_t *p, const uint8_t *end)
{
    if (starts(p, end, "qSupported"))
        return reply(g, "PacketSize=1000;qXfer:features:read+;swbreak+;hwbreak+;vContSupported+");
    if (starts(p, end, "qXfer:features:read:"))
        return cmd_xfer_features(g, p + 20, end);
    if (starts(p, end, "qfThreadInfo"))
        return reply(g, "m1");
    if (starts(p, end, "qsThreadInfo"))
        return reply(g, "l");
    if (starts(p, end, "qC") && end - p == 2)
        return reply(g, "QC1");
    if (starts(p, end, "qAttached"))
        return reply(g, "1");
    if (starts(p, end, "qSymbol"))
        return reply(g, "OK");
    if (starts(p, end, "vCont?"))
        return reply(g, "vCont;c;C;s;S");
    return reply(g, ""); /* unsupported */
}

/*
 * Serve packets until gdb resumes, detaches or kills. At a terminal stop
 * (a fault) resuming only lets the call return its error.
 */
static enum gdb_next serve(nub_sandbox *sb, struct nub_gdb *g)
{
    for (;;) {
        long n = recv_packet(g);
        if (n < 0)
            return GDB_DETACH;
        const uint8_t *p = g->pkt, *end = g->pkt + n;
        const uint8_t *a = p + 1;
        int rc = 0;
        enum gdb_next next = GDB_CONTINUE;
        switch (n == 0 ? 0 : p[0]) {
        case '?': rc = reply(g, g->stop); break;
        case 'g': rc = cmd_read_regs(sb, g); break;
        case 'G': rc = cmd_write_regs(sb, g, a, end); break;
        case 'p': rc = cmd_read_reg(sb, g, a, end); break;
        case 'P': rc = cmd_write_reg(sb, g, a, end); break;
        case 'm': rc = cmd_read_mem(sb, g, a, end); break;
        case 'M': rc = cmd_write_mem(sb, g, a, end); break;
        case 'Z': case 'z': rc = cmd_breakpoint(sb, g, p, end); break;
        case 'H': case 'T': rc = reply(g, "OK"); break;
        case 'D': reply(g, "OK"); return GDB_DETACH;
        case 'k': return GDB_KILL;
        case 'c': case 's':
            if (resume_at(sb, g, a, end) != 0) {
                rc = reply(g, "E22");
                break;
            }
            return p[0] == 's' ? GDB_STEP : GDB_CONTINUE;
        case 'C': case 'S': return p[0] == 'S' ? GDB_STEP : GDB_CONTINUE; /* the signal is dropped */
        case 'v':
            if (starts(p, end, "vCont;") || (starts(p, end, "vCont") && end - p == 5)) {
                if (parse_vcont(p + 5, end, &next) == 0)
                    return next;
                rc = reply(g, "E22");
            } else if (starts(p, end, "vKill")) {
                reply(g, "OK");
                return GDB_KILL;
            } else {
                rc = cmd_query(g, p, end);
            }
            break;
        case 'q': rc = cmd_query(g, p, end); break;
        default: rc = reply(g, ""); break;
        }
        if (rc < 0)
            return GDB_DETACH;
    }
}

/* ---- attach, detach, the watcher ----------------------------------------------------- */

/* Accept a connection: blocking on the first run, else only one already waiting. 0 when attached. */
static int attach(struct nub_gdb *g, bool wait)
{
    struct pollfd p = {.fd = g->listen_fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, wait ? -1 : 0);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return -1;
    int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g->fd = fd;
    g->rx_len = 0;
    g->nsw = g->nhw = 0;
    g->stepping = g->step_done = g->intr_done = g->fault_view = false;
    atomic_store(&g->intr, false);
    atomic_store(&g->lost, false);
    build_xml(g);
    return 0;
}

/* Forget the debugger: breakpoints gone, debugging off, the guest runs on normally. */
static void detach(nub_sandbox *sb, struct nub_gdb *g)
{
    char err[160];
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    g->nsw = g->nhw = 0;
    g->fault_view = g->stepping = g->step_done = g->intr_done = false;
    (void)sb->ops->set_debug(sb->hv, NULL, err, sizeof err);
}

static void *watch(void *arg)
{
    nub_sandbox *sb = arg;
    struct nub_gdb *g = sb->gdb;
    struct pollfd p[2] = {{.fd = g->fd, .events = POLLIN}, {.fd = g->wake[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0)
            break;
        uint8_t b[64];
        ssize_t n = recv(g->fd, b, sizeof b, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            atomic_store(&g->lost, true);
            sb->ops->interrupt(sb->hv);
            break;
        }
        if (memchr(b, 0x03, (size_t)n) != NULL) { /* other bytes while running: stray acks */
            atomic_store(&g->intr, true);
            sb->ops->interrupt(sb->hv);
            break;
        }
    }
    return NULL;
}

/* Debug state and int3s in, watcher started: ready to run. -1 on failure (exit filled). */
static int arm(nub_sandbox *sb, struct nub_gdb *g, struct nub_hv_exit *x)
{
    struct nub_hv_debug d;
    memset(&d, 0, sizeof d);
    d.enabled = 1;
    d.single_step = g->stepping;
    if (!sb->ops->sw_bp_in_memory) {
        d.nsw = g->nsw;
        for (size_t i = 0; i < g->nsw; i++)
            d.sw[i] = g->sw[i].addr;
    }
    d.nhw = g->nhw;
    memcpy(d.hw, g->hw, sizeof d.hw);
    d.written = g->written;
    d.written_len = g->written_end - g->written;
    g->written = g->written_end = 0;
    if (sb->ops->set_debug(sb->hv, &d, x->msg, sizeof x->msg) != NUB_OK) {
        x->kind = NUB_HV_EXIT_INTERNAL;
        return -1;
    }
    g->trap_hit = 0;
    if (sb->ops->sw_bp_in_memory && !g->stepping && g->nsw != 0) {
        insert_sw(sb, g);
        insert_trap(sb, g);
    }
    if (pthread_create(&g->watcher, NULL, watch, sb) != 0) {
        remove_sw(sb, g);
        remove_trap(sb, g);
        nub_hv_fmt(x->msg, sizeof x->msg, "gdb: cannot start the Ctrl-C watcher thread");
        x->kind = NUB_HV_EXIT_INTERNAL;
        return -1;
    }
    return 0;
}

static void disarm(nub_sandbox *sb, struct nub_gdb *g)
{
    char c = 0;
    while (write(g->wake[1], &c, 1) < 0 && errno == EINTR)
        ;
    pthread_join(g->watcher, NULL);
    while (read(g->wake[0], &c, 1) == 1)
        ;
    if (sb->ops->sw_bp_in_memory) {
        remove_trap(sb, g);
        remove_sw(sb, g);
    }
}

/* ---- the run loop ---------------------------------------------------------------------- */

/* Registers as the guest's exception frame (IST1 stack top) says they were at the fault (kvm):
 * RIP from the abort record, RSP and RFLAGS from the frame, the others saved below it. */
static void fault_view_from_frame(nub_sandbox *sb, struct nub_gdb *g, uint64_t rip)
{
    if (get_regs(sb, g, &g->view) != 0)
        memset(&g->view, 0, sizeof g->view);
    nub_exn_context(sb, &g->view);
    g->view.rip = rip;
    g->fault_view = true;
}

/*
 * The signal to stop with for an exit the call path will treat as the end
 * of the run (faults, a guest abort), or 0. May switch to a fault view.
 */
static int terminal_signal(nub_sandbox *sb, struct nub_gdb *g, const struct nub_hv_exit *x)
{
    if (x->kind == NUB_HV_EXIT_FAULT)
        return vector_signal(x->vector);
    if (x->kind == NUB_HV_EXIT_SHUTDOWN)
        return GDB_SIGSEGV;
    if (x->kind != NUB_HV_EXIT_IO_OUT || x->port != NUB_PORT_ABORT)
        return 0;
    const struct nub_abort_record *rec =
        &((const struct nub_scratch_top *)(sb->scratch + sb->lay.top_off))->abort_rec;
    uint32_t kind;
    uint64_t vector, rip;
    memcpy(&kind, &rec->kind, sizeof kind); /* guest memory: read once, only shown */
    memcpy(&vector, &rec->vector, sizeof vector);
    memcpy(&rip, &rec->rip, sizeof rip);
    if (kind == NUB_ABORT_EXPLICIT)
        return GDB_SIGABRT;
    if (kind != NUB_ABORT_EXCEPTION)
        return 0;
    fault_view_from_frame(sb, g, rip);
    return vector_signal(vector);
}

/* Stop, tell gdb, serve it. 0 to go on, 1 when the run must end (exit set), -1 detached. */
static int stop_and_serve(nub_sandbox *sb, struct nub_gdb *g, int sig, const char *reason,
                          struct nub_hv_exit *x)
{
    bool send = !g->just_attached; /* gdb is waiting for the reply to its resume */
    g->just_attached = false;
    g->stepping = false;
    if (report_stop(g, sig, reason, send) != 0) {
        detach(sb, g);
        return -1;
    }
    enum gdb_next next = serve(sb, g);
    g->fault_view = false;
    if (next == GDB_DETACH) {
        detach(sb, g);
        return -1;
    }
    if (next == GDB_KILL) {
        detach(sb, g);
        memset(x, 0, sizeof *x);
        x->kind = NUB_HV_EXIT_CANCELLED;
        return 1;
    }
    g->stepping = next == GDB_STEP;
    return 0;
}

/*
 * Drop the interrupt the watcher raised, unless the caller's nub_interrupt()
 * or the timeout wants this run stopped too (the state machine records
 * their reason before it interrupts, so checking after clearing loses
 * none). 0 when only gdb's interrupt was pending.
 */
static int drop_gdb_interrupt(nub_sandbox *sb)
{
    sb->ops->clear_interrupt(sb->hv);
    if (nub_state_cancel_reason(sb) == NUB_CANCEL_NONE)
        return 0;
    sb->ops->interrupt(sb->hv);
    return -1;
}

/* What a run of the vCPU ended with, seen from the debugger: 1 to return x, 0 to resume, -1 failure. */
static int handle_exit(nub_sandbox *sb, struct nub_gdb *g, struct nub_hv_exit *x)
{
    bool stepped = g->stepping;
    if (x->kind == NUB_HV_EXIT_IO_OUT && x->port == GDB_TRAP_PORT && g->trap_hit != 0 &&
        (x->rip == g->trap_hit || x->rip == g->trap_hit + 2)) /* KVM reports the OUT's own address */
        trap_unwind(sb, g, x);
    if (atomic_load(&g->lost)) { /* gdb went away while the guest ran: run on without it */
        detach(sb, g);
        if (drop_gdb_interrupt(sb) != 0)
            return 1;
        return x->kind == NUB_HV_EXIT_CANCELLED ? 0 : 1;
    }
    if (atomic_exchange(&g->intr, false)) {
        if (drop_gdb_interrupt(sb) != 0)
            return 1;
        if (x->kind == NUB_HV_EXIT_CANCELLED || x->kind == NUB_HV_EXIT_DEBUG) {
            int rc = stop_and_serve(sb, g, GDB_SIGINT, "", x);
            return rc < 0 ? 0 : rc;
        }
        g->intr_done = true; /* the vCPU stopped for an exit first: stop once it is served */
    }
    if (x->kind == NUB_HV_EXIT_DEBUG) {
        if (x->debug == NUB_HV_DBG_SW_BP && sb->ops->sw_bp_in_memory && find_sw(g, x->rip) == NULL) {
            x->kind = NUB_HV_EXIT_FAULT; /* the guest's own int3 */
            x->vector = 3;
        } else {
            const char *why = x->debug == NUB_HV_DBG_SW_BP ? "swbreak:;"
                              : x->debug == NUB_HV_DBG_HW_BP ? "hwbreak:;" : "";
            int rc = stop_and_serve(sb, g, GDB_SIGTRAP, why, x);
            return rc < 0 ? 0 : rc;
        }
    }
    int sig = terminal_signal(sb, g, x);
    if (sig != 0) {
        (void)stop_and_serve(sb, g, sig, "", x);
        return 1;
    }
    if (stepped && (x->kind == NUB_HV_EXIT_IO_OUT || x->kind == NUB_HV_EXIT_IO_IN))
        g->step_done = true; /* the stepped instruction was the OUT: report once it is served */
    return 1;
}

nub_status nub_gdb_run(nub_sandbox *sb, struct nub_hv_exit *x)
{
    struct nub_gdb *g = sb->gdb;
    if (g->fd < 0) {
        bool wait = !g->first_done;
        g->first_done = true;
        if (attach(g, wait) != 0)
            return sb->ops->run(sb->hv, x);
        g->step_done = true; /* stop here, before the first instruction */
        g->just_attached = true;
    }
    if (g->step_done || g->intr_done) {
        int sig = g->intr_done ? GDB_SIGINT : GDB_SIGTRAP;
        g->step_done = g->intr_done = false;
        if (stop_and_serve(sb, g, sig, "", x) == 1)
            return NUB_OK;
    }
    for (;;) {
        if (g->fd < 0)
            return sb->ops->run(sb->hv, x);
        memset(x, 0, sizeof *x);
        if (arm(sb, g, x) != 0)
            return NUB_E_BACKEND;
        nub_status st = sb->ops->run(sb->hv, x);
        disarm(sb, g);
        if (st != NUB_OK)
            return st;
        if (handle_exit(sb, g, x) != 0)
            return NUB_OK;
    }
}

/* ---- open and close ---------------------------------------------------------------------- */

nub_status nub_gdb_open(nub_sandbox *sb, struct nub_error *err)
{
    struct nub_gdb *g = calloc(1, sizeof *g);
    if (g == NULL)
        return nub_err_set(err, NUB_E_NOMEM, "gdb stub: cannot allocate its state");
    g->fd = -1;
    g->wake[0] = g->wake[1] = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    a.sin_port = htons(sb->cfg.gdb_port == NUB_GDB_PORT_ANY ? 0 : (uint16_t)sb->cfg.gdb_port);
    socklen_t alen = sizeof a;
    int one = 1;
    g->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g->listen_fd < 0 || setsockopt(g->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(g->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(g->listen_fd, 1) != 0 ||
        getsockname(g->listen_fd, (struct sockaddr *)&a, &alen) != 0 ||
        pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        nub_status rc = nub_err_set(err, NUB_E_IO, "gdb stub: cannot listen on 127.0.0.1:%u: %s",
                                    sb->cfg.gdb_port == NUB_GDB_PORT_ANY ? 0 : sb->cfg.gdb_port,
                                    strerror(errno));
        sb->gdb = g;
        nub_gdb_close(sb);
        return rc;
    }
    g->port = ntohs(a.sin_port);
    snprintf(g->stop, sizeof g->stop, "S%02x", GDB_SIGTRAP);
    sb->gdb = g;
    return NUB_OK;
}

void nub_gdb_close(nub_sandbox *sb)
{
    struct nub_gdb *g = sb->gdb;
    if (g == NULL)
        return;
    if (g->fd >= 0) { /* gdb waits for a stop reply: the process has exited */
        struct timeval tv = {.tv_sec = 2};
        setsockopt(g->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* the ack: do not hang destroy */
        if (sb->ops->sw_bp_in_memory) {
            remove_trap(sb, g);
            remove_sw(sb, g);
        }
        reply(g, nub_state_phase(sb) == NUB_SB_POISONED ? "W01" : "W00");
        close(g->fd);
    }
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    if (g->wake[0] >= 0)
        close(g->wake[0]);
    if (g->wake[1] >= 0)
        close(g->wake[1]);
    free(g);
    sb->gdb = NULL;
}

uint16_t nub_sandbox_gdb_port(const nub_sandbox *sb)
{
    return sb != NULL && sb->gdb != NULL ? sb->gdb->port : 0;
}
