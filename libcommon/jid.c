/* SPDX-License-Identifier: MIT */
/* RFC 7622 JIDs: the PRECIS profiles (RFC 8264/8265) for localpart and
 * resourcepart on libunistring, IDNA2008 for the domainpart on libidn2, and
 * formatting and comparison of the normalised result. */
#include "jid.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "jid_private.h"

/* Raw parts longer than this are refused before any Unicode work, so a huge
 * input costs nothing; normalisation can shrink a part, so the limit on the
 * result (JID_PART_MAX) is checked again afterwards. */
#define JID_RAW_MAX (4UL * JID_PART_MAX)

#define IDN_FLAGS (IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL)

enum precis_prop {
    PRECIS_PVALID,
    PRECIS_CONTEXTJ,
    PRECIS_CONTEXTO,
    PRECIS_DISALLOWED,
};

PL_NORETURN static void unistring_oom(void)
{
    log_fatal(NULL, PL_EXIT_NOMEM, "out of memory in Unicode processing");
}

static int malformed(struct err *err, const char *fmt, ...) PL_PRINTF(2, 3);

static int malformed(struct err *err, const char *fmt, ...)
{
    char text[sizeof(err->text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return err_set(err, XMPP_COND_JID_MALFORMED, "%s", text);
}

/* Names a code point for an error message without echoing raw input bytes. */
static const char *cp_name(char *dst, size_t cap, uint32_t c)
{
    if (c > 0x20 && c < 0x7f)
        snprintf(dst, cap, "'%c'", (char)c);
    else
        snprintf(dst, cap, "U+%04X", (unsigned)c);
    return dst;
}

static bool has_compat(uint32_t c)
{
    uint32_t tmp[32];
    size_t n = PL_ARRAY_LEN(tmp);
    uint32_t *r = u32_normalize(UNINORM_NFKC, &c, 1, tmp, &n);
    if (r == NULL)
        unistring_oom();
    bool differs = n != 1 || r[0] != c;
    if (r != tmp)
        free(r);
    return differs;
}

/* The PRECIS derived property (RFC 8264 §8) of one code point in the
 * IdentifierClass or, with freeform, the FreeformClass. */
static enum precis_prop precis_prop(uint32_t c, bool freeform)
{
    /* Exceptions (RFC 5892 §2.6). */
    switch (c) {
    case 0x00DF:
    case 0x03C2:
    case 0x06FD:
    case 0x06FE:
    case 0x0F0B:
    case 0x3007:
        return PRECIS_PVALID;
    case 0x00B7:
    case 0x0375:
    case 0x05F3:
    case 0x05F4:
    case 0x30FB:
        return PRECIS_CONTEXTO;
    case 0x0640:
    case 0x07FA:
    case 0x302E:
    case 0x302F:
    case 0x303B:
        return PRECIS_DISALLOWED;
    default:
        break;
    }
    if ((c >= 0x0660 && c <= 0x0669) || (c >= 0x06F0 && c <= 0x06F9))
        return PRECIS_CONTEXTO;
    if (c >= 0x3031 && c <= 0x3035)
        return PRECIS_DISALLOWED;
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Cn))
        return PRECIS_DISALLOWED; /* unassigned */
    if (c >= 0x21 && c <= 0x7E)
        return PRECIS_PVALID; /* ASCII7 */
    if (c == 0x200C || c == 0x200D)
        return PRECIS_CONTEXTJ;
    if ((c >= 0x1100 && c <= 0x11FF) || (c >= 0xA960 && c <= 0xA97C) ||
        (c >= 0xD7B0 && c <= 0xD7FB))
        return PRECIS_DISALLOWED; /* OldHangulJamo */
    if (uc_is_property_default_ignorable_code_point(c) || uc_is_property_not_a_character(c))
        return PRECIS_DISALLOWED;
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Cc))
        return PRECIS_DISALLOWED;
    if (has_compat(c))
        return freeform ? PRECIS_PVALID : PRECIS_DISALLOWED;
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Ll | UC_CATEGORY_MASK_Lu |
                                                UC_CATEGORY_MASK_Lo | UC_CATEGORY_MASK_Nd |
                                                UC_CATEGORY_MASK_Lm | UC_CATEGORY_MASK_Mn |
                                                UC_CATEGORY_MASK_Mc))
        return PRECIS_PVALID; /* LetterDigits */
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Lt | UC_CATEGORY_MASK_Nl |
                                                UC_CATEGORY_MASK_No | UC_CATEGORY_MASK_Me |
                                                UC_CATEGORY_MASK_Zs | UC_CATEGORY_MASK_S |
                                                UC_CATEGORY_MASK_P))
        return freeform ? PRECIS_PVALID : PRECIS_DISALLOWED;
    return PRECIS_DISALLOWED;
}

static bool in_script(uint32_t c, const char *name)
{
    const uc_script_t *sc = uc_script(c);
    return sc != NULL && strcmp(sc->name, name) == 0;
}

/* ZWNJ's second rule (RFC 5892 A.1): (L|D) T* ZWNJ T* (R|D). */
static bool zwnj_joins(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    int jt = UC_JOINING_TYPE_T;
    while (j > 0 && (jt = uc_joining_type(s[--j])) == UC_JOINING_TYPE_T)
        ;
    if (jt != UC_JOINING_TYPE_L && jt != UC_JOINING_TYPE_D)
        return false;
    jt = UC_JOINING_TYPE_T;
    for (j = i + 1; j < n && (jt = uc_joining_type(s[j])) == UC_JOINING_TYPE_T; j++)
        ;
    return j < n && (jt == UC_JOINING_TYPE_R || jt == UC_JOINING_TYPE_D);
}

static bool any_in_range(const uint32_t *s, size_t n, uint32_t lo, uint32_t hi)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= lo && s[i] <= hi)
            return true;
    }
    return false;
}

/* The CONTEXTJ and CONTEXTO rules of RFC 5892 Appendix A for s[i]. */
static bool context_ok(const uint32_t *s, size_t n, size_t i)
{
    uint32_t c = s[i];
    bool after_virama = i > 0 && uc_combining_class(s[i - 1]) == UC_CCC_VR;

    switch (c) {
    case 0x200C:
        return after_virama || zwnj_joins(s, n, i);
    case 0x200D:
        return after_virama;
    case 0x00B7:
        return i > 0 && i + 1 < n && s[i - 1] == 'l' && s[i + 1] == 'l';
    case 0x0375:
        return i + 1 < n && in_script(s[i + 1], "Greek");
    case 0x05F3:
    case 0x05F4:
        return i > 0 && in_script(s[i - 1], "Hebrew");
    case 0x30FB:
        for (size_t j = 0; j < n; j++) {
            if (in_script(s[j], "Hiragana") || in_script(s[j], "Katakana") ||
                in_script(s[j], "Han"))
                return true;
        }
        return false;
    default:
        break;
    }
    if (c >= 0x0660 && c <= 0x0669)
        return !any_in_range(s, n, 0x06F0, 0x06F9);
    if (c >= 0x06F0 && c <= 0x06F9)
        return !any_in_range(s, n, 0x0660, 0x0669);
    return false;
}

/* The Bidi Rule of RFC 5893 §2, applied when s holds right-to-left text. */
static bool bidi_ok(const uint32_t *s, size_t n)
{
    bool rtl = false;
    for (size_t i = 0; i < n && !rtl; i++) {
        int b = uc_bidi_class(s[i]);
        rtl = b == UC_BIDI_R || b == UC_BIDI_AL || b == UC_BIDI_AN;
    }
    if (!rtl)
        return true;

    int first = uc_bidi_class(s[0]);
    bool is_rtl = first == UC_BIDI_R || first == UC_BIDI_AL;
    if (!is_rtl && first != UC_BIDI_L)
        return false;
    bool en = false, an = false;
    int last = first;
    for (size_t i = 0; i < n; i++) {
        int b = uc_bidi_class(s[i]);
        bool common = b == UC_BIDI_EN || b == UC_BIDI_ES || b == UC_BIDI_CS || b == UC_BIDI_ET ||
                      b == UC_BIDI_ON || b == UC_BIDI_BN || b == UC_BIDI_NSM;
        bool ok = is_rtl ? common || b == UC_BIDI_R || b == UC_BIDI_AL || b == UC_BIDI_AN
                         : common || b == UC_BIDI_L;
        if (!ok)
            return false;
        en |= b == UC_BIDI_EN;
        an |= b == UC_BIDI_AN;
        if (b != UC_BIDI_NSM)
            last = b;
    }
    if (is_rtl)
        return !(en && an) && (last == UC_BIDI_R || last == UC_BIDI_AL || last == UC_BIDI_EN ||
                               last == UC_BIDI_AN);
    return last == UC_BIDI_L || last == UC_BIDI_EN;
}

/* Checks every code point of a prepared part against its PRECIS class and,
 * for the localpart, the characters XMPP forbids on top of it. */
static int check_chars(const uint32_t *s, size_t n, const char *part, bool freeform,
                       struct err *err)
{
    char name[16];
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (!freeform && c < 0x80 && strchr("\"&'/:<>@", (int)c) != NULL)
            return malformed(err, "%s contains forbidden character %s", part,
                             cp_name(name, sizeof(name), c));
        switch (precis_prop(c, freeform)) {
        case PRECIS_PVALID:
            break;
        case PRECIS_CONTEXTJ:
        case PRECIS_CONTEXTO:
            if (!context_ok(s, n, i))
                return malformed(err, "%s contains character %s where it is not allowed", part,
                                 cp_name(name, sizeof(name), c));
            break;
        case PRECIS_DISALLOWED:
            return malformed(err, "%s contains forbidden character %s", part,
                             cp_name(name, sizeof(name), c));
        }
    }
    return 0;
}

/* Decodes a raw part into code points the caller frees. */
static int decode_part(const char *s, size_t len, const char *part, uint32_t **u_r, size_t *n_r,
                       struct err *err)
{
    if (len > JID_RAW_MAX)
        return malformed(err, "%s is longer than %d bytes", part, JID_PART_MAX);
    if (u8_check((const uint8_t *)s, len) != NULL)
        return malformed(err, "%s is not valid UTF-8", part);
    size_t n = 0;
    uint32_t *u = u8_to_u32((const uint8_t *)s, len, NULL, &n);
    if (u == NULL)
        unistring_oom();
    *u_r = u;
    *n_r = n;
    return 0;
}

/* Encodes a prepared part into a and checks its length. */
static int encode_part(struct arena *a, const uint32_t *u, size_t n, const char *part,
                       const char **out_r, struct err *err)
{
    size_t len = 0;
    uint8_t *p = u32_to_u8(u, n, NULL, &len);
    if (p == NULL)
        unistring_oom();
    int rc = 0;
    if (len == 0)
        rc = malformed(err, "%s is empty", part);
    else if (len > JID_PART_MAX)
        rc = malformed(err, "%s is longer than %d bytes", part, JID_PART_MAX);
    else
        *out_r = arena_strndup(a, (const char *)p, len);
    free(p);
    return rc;
}

/* PRECIS UsernameCaseMapped (RFC 8265 §3.3) plus RFC 7622's forbidden
 * characters. Case mapping is Unicode default case folding, as jid.h says. */
static int prep_local(struct arena *a, const char *s, size_t len, const char **out_r,
                      struct err *err)
{
    int rc = -1;
    uint32_t *u = NULL, *f = NULL;
    size_t n = 0, fn = 0;

    if (decode_part(s, len, "localpart", &u, &n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        ucs4_t d[UC_DECOMPOSITION_MAX_LENGTH];
        int tag = 0;
        if (u[i] >= 0x80 && uc_decomposition(u[i], &tag, d) == 1 &&
            (tag == UC_DECOMP_WIDE || tag == UC_DECOMP_NARROW))
            u[i] = d[0]; /* width mapping */
    }
    f = u32_casefold(u, n, NULL, UNINORM_NFC, NULL, &fn);
    if (f == NULL)
        unistring_oom();
    if (check_chars(f, fn, "localpart", false, err) < 0)
        goto out;
    if (!bidi_ok(f, fn)) {
        malformed(err, "localpart breaks the bidi rule");
        goto out;
    }
    rc = encode_part(a, f, fn, "localpart", out_r, err);
out:
    free(u);
    free(f);
    return rc;
}

/* PRECIS OpaqueString (RFC 8265 §4.2): spaces mapped to U+0020, NFC. */
static int prep_resource(struct arena *a, const char *s, size_t len, const char **out_r,
                         struct err *err)
{
    int rc = -1;
    uint32_t *u = NULL, *f = NULL;
    size_t n = 0, fn = 0;

    if (decode_part(s, len, "resourcepart", &u, &n, err) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (u[i] >= 0x80 && uc_is_general_category_withtable(u[i], UC_CATEGORY_MASK_Zs))
            u[i] = 0x20;
    }
    f = u32_normalize(UNINORM_NFC, u, n, NULL, &fn);
    if (f == NULL)
        unistring_oom();
    if (check_chars(f, fn, "resourcepart", true, err) < 0)
        goto out;
    rc = encode_part(a, f, fn, "resourcepart", out_r, err);
out:
    free(u);
    free(f);
    return rc;
}

/* Checks an ASCII label (already lower-cased) for NR-LDH or A-label form. */
static int check_ldh(const char *l, size_t n, struct err *err)
{
    char name[16];
    if (n == 0)
        return malformed(err, "domainpart has an empty label");
    if (n > 63)
        return malformed(err, "domainpart has a label longer than 63 bytes");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return malformed(err, "domainpart contains forbidden character %s",
                             cp_name(name, sizeof(name), c));
    }
    if (l[0] == '-' || l[n - 1] == '-')
        return malformed(err, "domainpart has a label starting or ending with a hyphen");
    if (n >= 4 && l[2] == '-' && l[3] == '-' && memcmp(l, "xn", 2) != 0)
        return malformed(err, "domainpart has a reserved label (\"--\" in positions 3 and 4)");
    return 0;
}

/* Converts a lower-case A-label to its U-label, appended to out, refusing
 * any A-label that is not exactly what IDNA2008 makes of its U-label. */
static int append_ulabel(struct buf *out, const char *alabel, struct err *err)
{
    char *u = NULL;
    uint8_t *back = NULL;
    int rc = -1;

    if (idn2_to_unicode_8z8z(alabel, &u, 0) != IDN2_OK ||
        idn2_lookup_u8((const uint8_t *)u, &back, IDN_FLAGS) != IDN2_OK ||
        strcmp((const char *)back, alabel) != 0) {
        malformed(err, "domainpart has an invalid A-label");
        goto out;
    }
    buf_append_str(out, u);
    rc = 0;
out:
    idn2_free(u);
    idn2_free(back);
    return rc;
}

/* One label of the domainpart, appended to out in normal form. */
static int append_label(struct buf *out, const char *l, size_t n, struct err *err)
{
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        ascii &= (unsigned char)l[i] < 0x80;

    char *low = NULL;
    uint8_t *alabel = NULL;
    int rc = -1;
    if (ascii) {
        /* not xstrndup: a NUL byte in the label must reach check_ldh */
        low = xmalloc(n + 1);
        memcpy(low, l, n);
        low[n] = '\0';
        for (size_t i = 0; i < n; i++) {
            if (low[i] >= 'A' && low[i] <= 'Z')
                low[i] = (char)(low[i] - 'A' + 'a');
        }
        if (check_ldh(low, n, err) < 0)
            goto out;
        if (strncmp(low, "xn--", 4) == 0) {
            rc = append_ulabel(out, low, err);
        } else {
            buf_append(out, low, n);
            rc = 0;
        }
        goto out;
    }

    low = xstrndup(l, n); /* NUL-terminated for libidn2 */
    int irc = idn2_lookup_u8((const uint8_t *)low, &alabel, IDN_FLAGS);
    if (irc != IDN2_OK) {
        malformed(err, "domainpart is not a valid internationalised name: %s", idn2_strerror(irc));
        goto out;
    }
    /* TR46 mapping may turn a label into plain ASCII or even split it. */
    size_t an = strlen((const char *)alabel);
    if (memchr(alabel, '.', an) != NULL) {
        malformed(err, "domainpart has a character that maps to a dot");
        goto out;
    }
    if (check_ldh((const char *)alabel, an, err) < 0)
        goto out;
    if (strncmp((const char *)alabel, "xn--", 4) == 0) {
        rc = append_ulabel(out, (const char *)alabel, err);
    } else {
        buf_append(out, alabel, an);
        rc = 0;
    }
out:
    free(low);
    idn2_free(alabel);
    return rc;
}

static int prep_ip6(struct arena *a, const char *s, size_t len, const char **out_r, struct err *err)
{
    char in[INET6_ADDRSTRLEN], txt[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    if (len < 3 || len - 2 >= sizeof(in) || s[len - 1] != ']')
        return malformed(err, "domainpart is not a valid IPv6 literal");
    memcpy(in, s + 1, len - 2);
    in[len - 2] = '\0';
    if (inet_pton(AF_INET6, in, &addr) != 1 || inet_ntop(AF_INET6, &addr, txt, sizeof(txt)) == NULL)
        return malformed(err, "domainpart is not a valid IPv6 literal");
    *out_r = arena_printf(a, "[%s]", txt);
    return 0;
}

/* Copies s with the ideographic and fullwidth full stops that IDNA treats
 * as label separators replaced by '.'. */
static void map_dots(struct buf *b, const char *s, size_t len)
{
    static const char *const dots[] = {"\xE3\x80\x82", "\xEF\xBC\x8E", "\xEF\xBD\xA1"};
    for (size_t i = 0; i < len;) {
        bool mapped = false;
        for (size_t d = 0; d < PL_ARRAY_LEN(dots) && !mapped; d++) {
            if (len - i >= 3 && memcmp(s + i, dots[d], 3) == 0) {
                buf_append_char(b, '.');
                i += 3;
                mapped = true;
            }
        }
        if (!mapped)
            buf_append_char(b, s[i++]);
    }
}

static int prep_domain(struct arena *a, const char *s, size_t len, const char **out_r,
                       struct err *err)
{
    struct buf in = BUF_INIT, out = BUF_INIT;
    int rc = -1;

    if (len == 0) {
        malformed(err, "domainpart is empty");
        goto out;
    }
    if (s[0] == '[') {
        rc = prep_ip6(a, s, len, out_r, err);
        goto out;
    }
    if (len > JID_RAW_MAX) {
        malformed(err, "domainpart is longer than %d bytes", JID_PART_MAX);
        goto out;
    }
    if (u8_check((const uint8_t *)s, len) != NULL) {
        malformed(err, "domainpart is not valid UTF-8");
        goto out;
    }
    map_dots(&in, s, len);
    if (in.data[in.len - 1] == '.')
        in.data[--in.len] = '\0';
    if (in.len == 0) {
        malformed(err, "domainpart is empty");
        goto out;
    }
    if (strspn(in.data, "0123456789.") == in.len && strchr(in.data, '.') != NULL) {
        struct in_addr addr;
        if (inet_pton(AF_INET, in.data, &addr) != 1) {
            malformed(err, "domainpart is not a valid IPv4 address");
            goto out;
        }
        *out_r = arena_strndup(a, in.data, in.len);
        rc = 0;
        goto out;
    }
    for (const char *l = in.data, *end = in.data + in.len;;) {
        const char *dot = memchr(l, '.', (size_t)(end - l));
        const char *lend = dot ? dot : end;
        if (append_label(&out, l, (size_t)(lend - l), err) < 0)
            goto out;
        if (dot == NULL)
            break;
        buf_append_char(&out, '.');
        l = dot + 1;
    }
    if (out.len > JID_PART_MAX) {
        malformed(err, "domainpart is longer than %d bytes", JID_PART_MAX);
        goto out;
    }
    *out_r = arena_strndup(a, out.data, out.len);
    rc = 0;
out:
    buf_fini(&in);
    buf_fini(&out);
    return rc;
}

/* ---- the ASCII fast path ---------------------------------------------------
 * Nearly every JID on the wire is short ASCII. For the inputs accepted here
 * the PRECIS and IDNA steps above reduce to ASCII lower-casing (localpart,
 * domain labels) or the identity (resourcepart), so each part is copied
 * directly. Anything else (non-ASCII, controls, forbidden characters, A-labels,
 * IP literals, a trailing dot, bad lengths) returns false and takes the full
 * path, which alone produces errors: results and error texts are the same by
 * construction, and tests/unit/test_jid.c checks it against the full path. */

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Printable ASCII without space and without RFC 7622's forbidden
 * characters is PVALID in the IdentifierClass, has no width or case mapping
 * beyond A-Z and cannot trigger the bidi rule. */
static bool fast_local(struct arena *a, const char *s, size_t len, const char **out_r)
{
    if (len == 0 || len > JID_PART_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' ||
            c == '<' || c == '>' || c == '@')
            return false;
    }
    char *p = arena_alloc(a, len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = ascii_lower(s[i]);
    *out_r = p;
    return true;
}

/* Space and printable ASCII are PVALID in the FreeformClass and NFC leaves
 * them alone. */
static bool fast_resource(struct arena *a, const char *s, size_t len, const char **out_r)
{
    if (len == 0 || len > JID_PART_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return false;
    }
    *out_r = arena_strndup(a, s, len);
    return true;
}

/* One NR-LDH label: 1..63 letters, digits and hyphens, no hyphen at either
 * end, nothing in positions 3-4 that could make it an A-label or reserved. */
static bool fast_label(const char *l, size_t n)
{
    if (n == 0 || n > 63 || l[0] == '-' || l[n - 1] == '-')
        return false;
    if (n >= 4 && l[2] == '-' && l[3] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)l[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

/* A domain of NR-LDH labels that is not an IPv4 literal (some label has a
 * character other than a digit) and has no trailing dot. */
static bool fast_domain(struct arena *a, const char *s, size_t len, const char **out_r)
{
    if (len == 0 || len > JID_PART_MAX)
        return false;
    bool only_digits = true;
    for (const char *l = s, *end = s + len;;) {
        const char *dot = memchr(l, '.', (size_t)(end - l));
        const char *lend = dot ? dot : end;
        if (!fast_label(l, (size_t)(lend - l)))
            return false;
        for (const char *q = l; q < lend && only_digits; q++)
            only_digits = *q >= '0' && *q <= '9';
        if (dot == NULL)
            break;
        l = dot + 1;
    }
    /* digits and dots only: the full path decides whether it is an IPv4
     * literal (a lone label of digits is an ordinary name, but rare). */
    if (only_digits)
        return false;
    char *p = arena_alloc(a, len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = ascii_lower(s[i]);
    *out_r = p;
    return true;
}

static int parse_local(struct arena *a, const char *s, size_t len, const char **out_r,
                       struct err *err, bool fast)
{
    if (fast && fast_local(a, s, len, out_r))
        return 0;
    return prep_local(a, s, len, out_r, err);
}

static int parse_domain(struct arena *a, const char *s, size_t len, const char **out_r,
                        struct err *err, bool fast)
{
    if (fast && fast_domain(a, s, len, out_r))
        return 0;
    return prep_domain(a, s, len, out_r, err);
}

static int parse_resource(struct arena *a, const char *s, size_t len, const char **out_r,
                          struct err *err, bool fast)
{
    if (fast && fast_resource(a, s, len, out_r))
        return 0;
    return prep_resource(a, s, len, out_r, err);
}

static int parse(struct arena *a, const char *s, size_t len, struct jid *jid_r, struct err *err,
                 bool fast)
{
    /* RFC 7622 §3.1: the resource starts at the first '/', the localpart
     * ends at the first '@' before it. */
    const char *end = s + len;
    const char *slash = len ? memchr(s, '/', len) : NULL;
    const char *bare_end = slash ? slash : end;
    const char *at = memchr(s, '@', (size_t)(bare_end - s));
    const char *dom = at ? at + 1 : s;
    struct jid j = {NULL, NULL, NULL};

    if (at != NULL && at == s)
        return malformed(err, "localpart is empty");
    if (at != NULL && parse_local(a, s, (size_t)(at - s), &j.local, err, fast) < 0)
        return -1;
    if (parse_domain(a, dom, (size_t)(bare_end - dom), &j.domain, err, fast) < 0)
        return -1;
    if (slash != NULL) {
        if (slash + 1 == end)
            return malformed(err, "resourcepart is empty");
        if (parse_resource(a, slash + 1, (size_t)(end - slash - 1), &j.resource, err, fast) < 0)
            return -1;
    }
    *jid_r = j;
    return 0;
}

int jid_parse(struct arena *a, const char *s, size_t len, struct jid *jid_r, struct err *err)
{
    return parse(a, s, len, jid_r, err, true);
}

int jid_parse_full(struct arena *a, const char *s, size_t len, struct jid *jid_r, struct err *err)
{
    return parse(a, s, len, jid_r, err, false);
}

int jid_parse_str(struct arena *a, const char *s, struct jid *jid_r, struct err *err)
{
    return jid_parse(a, s, strlen(s), jid_r, err);
}

/* Hot on every stanza: plain copies instead of a printf format. */
static char *format(struct arena *a, const struct jid *j, bool full)
{
    size_t ll = j->local ? strlen(j->local) : 0;
    size_t dl = strlen(j->domain);
    size_t rl = full && j->resource ? strlen(j->resource) : 0;
    char *out = arena_alloc(a, ll + 1 + dl + 1 + rl + 1);
    char *p = out;
    if (j->local != NULL) {
        memcpy(p, j->local, ll);
        p += ll;
        *p++ = '@';
    }
    memcpy(p, j->domain, dl);
    p += dl;
    if (full && j->resource != NULL) {
        *p++ = '/';
        memcpy(p, j->resource, rl);
        p += rl;
    }
    *p = '\0';
    return out;
}

char *jid_full(struct arena *a, const struct jid *j)
{
    return format(a, j, true);
}

char *jid_bare(struct arena *a, const struct jid *j)
{
    return format(a, j, false);
}

static bool part_eq(const char *x, const char *y)
{
    if (x == NULL || y == NULL)
        return x == y;
    return strcmp(x, y) == 0;
}

bool jid_bare_eq(const struct jid *x, const struct jid *y)
{
    return part_eq(x->local, y->local) && part_eq(x->domain, y->domain);
}

bool jid_eq(const struct jid *x, const struct jid *y)
{
    return jid_bare_eq(x, y) && part_eq(x->resource, y->resource);
}

bool jid_is_bare(const struct jid *j)
{
    return j->resource == NULL;
}
