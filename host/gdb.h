/* The gdb remote serial protocol stub (gdb.c): its packet parser and its hooks into sandbox creation, runs and destruction. */
#ifndef NUB_HOST_GDB_H
#define NUB_HOST_GDB_H

#include <stddef.h>
#include <stdint.h>

#include "nub/nub.h"

struct nub_hv_exit;

/*
 * Largest packet payload the stub accepts or sends (advertised as
 * PacketSize), in raw bytes: those between '$' and '#' as they travel, an
 * escape ("}x") counting two. The decoded payload is never longer.
 */
#define NUB_GDB_PACKET_MAX 4096

/* nub_gdb_packet_parse() results. */
enum nub_gdb_parse_result {
    NUB_GDB_PKT_OK = 0,            /* a packet: payload in out, *used bytes consumed */
    NUB_GDB_PKT_MORE = 1,          /* incomplete: read more bytes and call again */
    NUB_GDB_PKT_BAD_CHECKSUM = -1, /* complete, but the checksum is wrong (answer '-') */
    NUB_GDB_PKT_TOO_LONG = -2,     /* over out_cap decoded or NUB_GDB_PACKET_MAX raw bytes */
    NUB_GDB_PKT_MALFORMED = -3,    /* not "$...#hh": bad start, escape or checksum digits */
};

/*
 * Parse one packet "$payload#hh" at the start of buf[0, len): the payload
 * (at most NUB_GDB_PACKET_MAX raw bytes, TOO_LONG as soon as a byte past
 * that is seen, the second byte of an escape included) is unescaped
 * ("}x" is x ^ 0x20) into out (at most out_cap bytes, not NUL-terminated;
 * *out_len its length) and its checksum checked. *used is
 * set for every result but MORE: the bytes to drop before parsing again
 * (for errors, up to the next possible packet start). Reads only buf[0, len)
 * and writes only out[0, out_cap): safe on hostile bytes (a fuzz target).
 */
int nub_gdb_packet_parse(const uint8_t *buf, size_t len, uint8_t *out, size_t out_cap,
                         size_t *out_len, size_t *used);

/*
 * Parse up to 16 hex digits at *p (before end) into *v and advance *p.
 * Returns 0, or -1 when there is no digit or more than 16.
 */
int nub_gdb_parse_hex(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Listen on 127.0.0.1:sb->cfg.gdb_port (NUB_GDB_PORT_ANY: any free port). NUB_E_IO on failure. */
nub_status nub_gdb_open(nub_sandbox *sb, struct nub_error *err);

/* Tell an attached gdb the guest has gone, close everything. No-op without a stub. */
void nub_gdb_close(nub_sandbox *sb);

/*
 * ops->run() for a sandbox with a stub: waits for gdb on the first run,
 * serves it at every stop (breakpoint, step, Ctrl-C, fault), and returns
 * the exits the call path must handle, like run().
 */
nub_status nub_gdb_run(nub_sandbox *sb, struct nub_hv_exit *x);

#endif /* NUB_HOST_GDB_H */
