/* SPDX-License-Identifier: MIT */
/* The XEP-0114 handshake digest and the names of Parley's router protocol,
 * shared by the router (accepting end) and comp_client (connecting end). */
#ifndef PL_COMP_HANDSHAKE_H
#define PL_COMP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Parley's router namespace: bind, unbind, route, watch, component. See
 * docs/protocol.md. */
#define PL_NS_ROUTER "urn:parley:router:1"

#define COMP_DIGEST_LEN    40 /* hex SHA-1 */
#define COMP_STREAM_ID_LEN 32

/* Writes the lower-case hex SHA-1 of stream_id followed by secret, and a
 * terminating NUL, to out. */
void comp_handshake_digest(const char *stream_id, const char *secret,
                           char out[COMP_DIGEST_LEN + 1]);
/* True when digest (len bytes, hex in either case) is the digest of
 * stream_id and secret. Runs in time independent of where they differ. */
bool comp_handshake_check(const char *stream_id, const char *secret, const char *digest,
                          size_t len);
/* Writes a fresh random stream id (hex) and a NUL to out. */
void comp_stream_id(char out[COMP_STREAM_ID_LEN + 1]);

#endif
