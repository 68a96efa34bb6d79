/* SPDX-License-Identifier: MIT */
/* The small server answers: ping (XEP-0199), software version (XEP-0092)
 * and entity time (XEP-0202). */
#include "sm.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "xml.h"

#define NS_PING    "urn:xmpp:ping"
#define NS_VERSION "jabber:iq:version"
#define NS_TIME    "urn:xmpp:time"

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "0"
#endif

static bool get_only(struct sm_pkt *p)
{
    if (strcmp(p->type, "get") == 0)
        return true;
    sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
    return false;
}

static void text_child(struct sm_pkt *p, struct xml_node *parent, const char *name,
                       const char *text)
{
    struct xml_node *n = xml_elem_add(p->a, parent, NULL, name);
    xml_text_add(p->a, n, text, strlen(text));
}

static void on_ping(struct sm_pkt *p, struct xml_node *req)
{
    (void)req;
    if (get_only(p))
        sm_iq_result(p, NULL);
}

static void on_version(struct sm_pkt *p, struct xml_node *req)
{
    (void)req;
    if (!get_only(p))
        return;
    struct xml_node *q = xml_elem_new(p->a, NS_VERSION, "query");
    text_child(p, q, "name", "Parley");
    text_child(p, q, "version", PARLEY_VERSION);
    sm_iq_result(p, q);
}

static void on_time(struct sm_pkt *p, struct xml_node *req)
{
    (void)req;
    if (!get_only(p))
        return;
    char stamp[40];
    sm_stamp(sm_now_us(), stamp, sizeof(stamp));
    struct xml_node *t = xml_elem_new(p->a, NS_TIME, "time");
    text_child(p, t, "tzo", "+00:00");
    text_child(p, t, "utc", stamp);
    sm_iq_result(p, t);
}

static const struct sm_iq_handler iqs[] = {
    {NS_PING, SM_IQ_SERVER | SM_IQ_ACCOUNT, on_ping},
    {NS_VERSION, SM_IQ_SERVER, on_version},
    {NS_TIME, SM_IQ_SERVER, on_time},
};
static const char *const server_features[] = {NS_PING, NS_VERSION, NS_TIME, NULL};

const struct sm_feature sm_feat_basic = {
    .name = "basic",
    .order = 50,
    .server_features = server_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
