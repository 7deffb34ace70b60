/* SPDX-License-Identifier: MIT */
/* Header rules every hop applies, whatever the codec: hop-by-hop fields never cross. */
#include "upstream/upstream.h"

#include "core/str.h"

static bool
is_hop_by_hop(cairn_iov_t name)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "content-length",
                                      "proxy-authenticate",
                                      "proxy-authorization"};
    for (size_t i = 0; i < CN_ARRAY_LEN(hop); i++)
        if (cn_iov_ieq_cstr(name, hop[i]))
            return true;
    return false;
}

void
cn_up_strip_hop_by_hop(cn_headers_t *h)
{
    for (ssize_t i = cn_headers_find(h, CAIRN_IOV_LIT("connection"), -1); i >= 0;
         i = cn_headers_find(h, CAIRN_IOV_LIT("connection"), i)) {
        cairn_iov_t v = h->items[i].value; /* removals below may move the items */
        size_t pos = 0;
        cairn_iov_t tok;
        while (cn_iov_next_item(v, ',', &pos, &tok))
            if (!cn_iov_ieq_cstr(tok, "connection"))
                cn_headers_remove(h, tok);
    }
    size_t w = 0;
    for (size_t r = 0; r < h->n; r++)
        if (!is_hop_by_hop(h->items[r].name))
            h->items[w++] = h->items[r];
    h->n = w;
}
