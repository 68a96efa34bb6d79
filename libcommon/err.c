/* SPDX-License-Identifier: MIT */
/* Condition tables and struct err helpers. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct cond_info {
    const char *name;
    const char *type; /* stanza errors only */
};

static const struct cond_info conds[XMPP_COND_COUNT] = {
    [XMPP_COND_NONE] = {"undefined-condition", "cancel"},
    [XMPP_COND_BAD_REQUEST] = {"bad-request", "modify"},
    [XMPP_COND_CONFLICT] = {"conflict", "cancel"},
    [XMPP_COND_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", "cancel"},
    [XMPP_COND_FORBIDDEN] = {"forbidden", "auth"},
    [XMPP_COND_GONE] = {"gone", "cancel"},
    [XMPP_COND_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel"},
    [XMPP_COND_ITEM_NOT_FOUND] = {"item-not-found", "cancel"},
    [XMPP_COND_JID_MALFORMED] = {"jid-malformed", "modify"},
    [XMPP_COND_NOT_ACCEPTABLE] = {"not-acceptable", "modify"},
    [XMPP_COND_NOT_ALLOWED] = {"not-allowed", "cancel"},
    [XMPP_COND_NOT_AUTHORIZED] = {"not-authorized", "auth"},
    [XMPP_COND_POLICY_VIOLATION] = {"policy-violation", "modify"},
    [XMPP_COND_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", "wait"},
    [XMPP_COND_REDIRECT] = {"redirect", "modify"},
    [XMPP_COND_REGISTRATION_REQUIRED] = {"registration-required", "auth"},
    [XMPP_COND_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", "cancel"},
    [XMPP_COND_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", "wait"},
    [XMPP_COND_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait"},
    [XMPP_COND_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel"},
    [XMPP_COND_SUBSCRIPTION_REQUIRED] = {"subscription-required", "auth"},
    [XMPP_COND_UNDEFINED_CONDITION] = {"undefined-condition", "cancel"},
    [XMPP_COND_UNEXPECTED_REQUEST] = {"unexpected-request", "wait"},
    [XMPP_COND_STREAM_BAD_FORMAT] = {"bad-format", NULL},
    [XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX] = {"bad-namespace-prefix", NULL},
    [XMPP_COND_STREAM_CONFLICT] = {"conflict", NULL},
    [XMPP_COND_STREAM_CONNECTION_TIMEOUT] = {"connection-timeout", NULL},
    [XMPP_COND_STREAM_HOST_GONE] = {"host-gone", NULL},
    [XMPP_COND_STREAM_HOST_UNKNOWN] = {"host-unknown", NULL},
    [XMPP_COND_STREAM_IMPROPER_ADDRESSING] = {"improper-addressing", NULL},
    [XMPP_COND_STREAM_INTERNAL_SERVER_ERROR] = {"internal-server-error", NULL},
    [XMPP_COND_STREAM_INVALID_FROM] = {"invalid-from", NULL},
    [XMPP_COND_STREAM_INVALID_NAMESPACE] = {"invalid-namespace", NULL},
    [XMPP_COND_STREAM_INVALID_XML] = {"invalid-xml", NULL},
    [XMPP_COND_STREAM_NOT_AUTHORIZED] = {"not-authorized", NULL},
    [XMPP_COND_STREAM_NOT_WELL_FORMED] = {"not-well-formed", NULL},
    [XMPP_COND_STREAM_POLICY_VIOLATION] = {"policy-violation", NULL},
    [XMPP_COND_STREAM_REMOTE_CONNECTION_FAILED] = {"remote-connection-failed", NULL},
    [XMPP_COND_STREAM_RESET] = {"reset", NULL},
    [XMPP_COND_STREAM_RESOURCE_CONSTRAINT] = {"resource-constraint", NULL},
    [XMPP_COND_STREAM_RESTRICTED_XML] = {"restricted-xml", NULL},
    [XMPP_COND_STREAM_SEE_OTHER_HOST] = {"see-other-host", NULL},
    [XMPP_COND_STREAM_SYSTEM_SHUTDOWN] = {"system-shutdown", NULL},
    [XMPP_COND_STREAM_UNDEFINED_CONDITION] = {"undefined-condition", NULL},
    [XMPP_COND_STREAM_UNSUPPORTED_ENCODING] = {"unsupported-encoding", NULL},
    [XMPP_COND_STREAM_UNSUPPORTED_FEATURE] = {"unsupported-feature", NULL},
    [XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE] = {"unsupported-stanza-type", NULL},
    [XMPP_COND_STREAM_UNSUPPORTED_VERSION] = {"unsupported-version", NULL},
};

int err_set(struct err *err, enum xmpp_cond cond, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->cond = cond;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

void err_clear(struct err *err)
{
    err->cond = XMPP_COND_NONE;
    err->text[0] = '\0';
}

const char *xmpp_cond_name(enum xmpp_cond cond)
{
    if ((unsigned)cond >= XMPP_COND_COUNT)
        return "undefined-condition";
    return conds[cond].name;
}

enum xmpp_cond xmpp_cond_from_name(const char *name, bool stream)
{
    int first = stream ? XMPP_COND_STREAM_FIRST : XMPP_COND_NONE + 1;
    int last = stream ? XMPP_COND_COUNT : XMPP_COND_STREAM_FIRST;
    for (int c = first; c < last; c++) {
        if (strcmp(conds[c].name, name) == 0)
            return (enum xmpp_cond)c;
    }
    return XMPP_COND_NONE;
}

bool xmpp_cond_is_stream(enum xmpp_cond cond)
{
    return cond >= XMPP_COND_STREAM_FIRST && cond < XMPP_COND_COUNT;
}

const char *xmpp_cond_type(enum xmpp_cond cond)
{
    if ((unsigned)cond >= XMPP_COND_COUNT || conds[cond].type == NULL)
        return "cancel";
    return conds[cond].type;
}
