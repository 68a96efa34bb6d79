/* SPDX-License-Identifier: MIT */
/* Errors carried back to the caller: an XMPP condition (most failures end as
 * a stream or stanza error) and a human-readable reason for the log. */
#ifndef PL_ERR_H
#define PL_ERR_H

#include <stdbool.h>

#include "attr.h"

/* Stanza conditions (RFC 6120 §8.3.3) and stream conditions (RFC 6120
 * §4.9.3). A few names exist in both lists; the stream ones carry STREAM_. */
enum xmpp_cond {
    XMPP_COND_NONE = 0,
    /* stanza errors */
    XMPP_COND_BAD_REQUEST,
    XMPP_COND_CONFLICT,
    XMPP_COND_FEATURE_NOT_IMPLEMENTED,
    XMPP_COND_FORBIDDEN,
    XMPP_COND_GONE,
    XMPP_COND_INTERNAL_SERVER_ERROR,
    XMPP_COND_ITEM_NOT_FOUND,
    XMPP_COND_JID_MALFORMED,
    XMPP_COND_NOT_ACCEPTABLE,
    XMPP_COND_NOT_ALLOWED,
    XMPP_COND_NOT_AUTHORIZED,
    XMPP_COND_POLICY_VIOLATION,
    XMPP_COND_RECIPIENT_UNAVAILABLE,
    XMPP_COND_REDIRECT,
    XMPP_COND_REGISTRATION_REQUIRED,
    XMPP_COND_REMOTE_SERVER_NOT_FOUND,
    XMPP_COND_REMOTE_SERVER_TIMEOUT,
    XMPP_COND_RESOURCE_CONSTRAINT,
    XMPP_COND_SERVICE_UNAVAILABLE,
    XMPP_COND_SUBSCRIPTION_REQUIRED,
    XMPP_COND_UNDEFINED_CONDITION,
    XMPP_COND_UNEXPECTED_REQUEST,
    /* stream errors */
    XMPP_COND_STREAM_FIRST,
    XMPP_COND_STREAM_BAD_FORMAT = XMPP_COND_STREAM_FIRST,
    XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX,
    XMPP_COND_STREAM_CONFLICT,
    XMPP_COND_STREAM_CONNECTION_TIMEOUT,
    XMPP_COND_STREAM_HOST_GONE,
    XMPP_COND_STREAM_HOST_UNKNOWN,
    XMPP_COND_STREAM_IMPROPER_ADDRESSING,
    XMPP_COND_STREAM_INTERNAL_SERVER_ERROR,
    XMPP_COND_STREAM_INVALID_FROM,
    XMPP_COND_STREAM_INVALID_NAMESPACE,
    XMPP_COND_STREAM_INVALID_XML,
    XMPP_COND_STREAM_NOT_AUTHORIZED,
    XMPP_COND_STREAM_NOT_WELL_FORMED,
    XMPP_COND_STREAM_POLICY_VIOLATION,
    XMPP_COND_STREAM_REMOTE_CONNECTION_FAILED,
    XMPP_COND_STREAM_RESET,
    XMPP_COND_STREAM_RESOURCE_CONSTRAINT,
    XMPP_COND_STREAM_RESTRICTED_XML,
    XMPP_COND_STREAM_SEE_OTHER_HOST,
    XMPP_COND_STREAM_SYSTEM_SHUTDOWN,
    XMPP_COND_STREAM_UNDEFINED_CONDITION,
    XMPP_COND_STREAM_UNSUPPORTED_ENCODING,
    XMPP_COND_STREAM_UNSUPPORTED_FEATURE,
    XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
    XMPP_COND_STREAM_UNSUPPORTED_VERSION,
    XMPP_COND_COUNT
};

#define XMPP_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define XMPP_NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"

struct err {
    enum xmpp_cond cond;
    char text[256];
};

/* Sets err (if not NULL) to cond and the formatted reason. Returns -1 so a
 * caller can write `return err_set(err, ...);`. */
int err_set(struct err *err, enum xmpp_cond cond, const char *fmt, ...) PL_PRINTF(3, 4);
void err_clear(struct err *err);

/* The element name of a condition, e.g. "service-unavailable". */
const char *xmpp_cond_name(enum xmpp_cond cond);
/* Looks a condition up by element name; stream selects which list. Returns
 * XMPP_COND_NONE when unknown. */
enum xmpp_cond xmpp_cond_from_name(const char *name, bool stream);
bool xmpp_cond_is_stream(enum xmpp_cond cond);
/* The error type RFC 6120 §8.3.3 pairs with a stanza condition:
 * "cancel", "modify", "auth" or "wait". */
const char *xmpp_cond_type(enum xmpp_cond cond);

#endif
