/* SPDX-License-Identifier: MIT */
/* Readiness notification in the systemd protocol (a datagram to
 * $NOTIFY_SOCKET), used by systemd units, parleyd and the test harness. */
#ifndef PL_NOTIFY_H
#define PL_NOTIFY_H

/* Sends state (e.g. "READY=1") when NOTIFY_SOCKET is set. Returns 0, or -1
 * when the socket is set but the datagram could not be sent. */
int notify_send(const char *state);

#endif
