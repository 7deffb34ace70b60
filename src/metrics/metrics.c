/* SPDX-License-Identifier: MIT */
/* Metric storage and the Prometheus text exposition, generated from metrics.def.
 *
 * A family's values live in one flat array (no config-name label) or in one block per config
 * name slot, allocated on first use and published with a release store, so a scraper on
 * another thread sees either no block or a zeroed one. Inside a block (or the flat array) the
 * fixed-label combinations follow each other; a combination is one cell, or for a histogram
 * HIST_CELLS cells: the count of each finite bucket, the count above the last bound, and the
 * sum in nanoseconds. The owner thread is the only writer; it uses relaxed atomic loads and
 * stores (plain moves on every target we run on), and a scraper reads with relaxed loads. */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cairn/version.h>

#include "core/alloc.h"
#include "core/assert.h"

/* ---- label tables ----------------------------------------------------------------------- */

static const unsigned code_numbers[] = {
    200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405,
    408, 409, 410, 412, 413, 414, 416, 429, 431, 499, 500, 501, 502, 503, 504,
};
static const char *const code_values[] = {
    "200", "201", "204", "206", "301", "302", "303", "304", "307", "308", "400", "401",
    "403", "404", "405", "408", "409", "410", "412", "413", "414", "416", "429", "431",
    "499", "500", "501", "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
};
#define N_CODES CN_ARRAY_LEN(code_numbers)
_Static_assert(CN_ARRAY_LEN(code_values) == N_CODES + 6, "code table");

static const char *const tier_values[] = {"memory"};
static const char *const lookup_values[] = {"hit", "miss"};
static const char *const cache_status_values[] = {"hit",         "stale",     "miss", "expired",
                                                  "revalidated", "coalesced", "pass", "error",
                                                  "bypass",      "other"};
static const char *const err_kind_values[] = {"connect", "timeout", "protocol", "closed", "other"};
static const char *const queue_outcome_values[] = {"admitted", "timeout", "gone"};
static const char *const fill_event_values[] = {"background_revalidation", "takeover",
                                                "leader_elected", "abandoned"};
static const char *const conn_state_values[] = {"active", "idle"};
static const char *const reload_values[] = {"ok", "error"};
static const char *const handshake_values[] = {"ok", "failed"};
static const char *const version_values[] = {CAIRN_VERSION_STRING};

_Static_assert(CN_ARRAY_LEN(tier_values) == CN_METRICS_TIER_MEMORY + 1, "tier table");
_Static_assert(CN_ARRAY_LEN(lookup_values) == CN_METRICS_LOOKUP_MISS + 1, "lookup table");
_Static_assert(CN_ARRAY_LEN(cache_status_values) == CN_METRICS_CS_OTHER + 1, "status table");
_Static_assert(CN_ARRAY_LEN(err_kind_values) == CN_METRICS_ERR_OTHER + 1, "kind table");
_Static_assert(CN_ARRAY_LEN(queue_outcome_values) == CN_METRICS_QUEUE_GONE + 1, "outcome table");
_Static_assert(CN_ARRAY_LEN(fill_event_values) == CN_METRICS_FILL_ABANDONED + 1, "fill table");
_Static_assert(CN_ARRAY_LEN(conn_state_values) == CN_METRICS_CONN_IDLE + 1, "state table");
_Static_assert(CN_ARRAY_LEN(reload_values) == CN_METRICS_RELOAD_ERROR + 1, "reload table");

struct label_def {
    const char *name;
    const char *const *values; /* NULL: config names */
    size_t n;
};

#define FIXED(name, t)                                                                             \
    {                                                                                              \
        name, t, CN_ARRAY_LEN(t)                                                                   \
    }
static const struct label_def label_defs[CN_ML__COUNT] = {
    [CN_ML_ROUTE] = {"route", NULL, 0},
    [CN_ML_UPSTREAM] = {"upstream", NULL, 0},
    [CN_ML_CACHE] = {"cache", NULL, 0},
    [CN_ML_LISTENER] = {"listener", NULL, 0},
    [CN_ML_CODE] = FIXED("code", code_values),
    [CN_ML_TIER] = FIXED("tier", tier_values),
    [CN_ML_LOOKUP] = FIXED("result", lookup_values),
    [CN_ML_CACHE_STATUS] = FIXED("status", cache_status_values),
    [CN_ML_ERROR_KIND] = FIXED("kind", err_kind_values),
    [CN_ML_QUEUE_OUTCOME] = FIXED("outcome", queue_outcome_values),
    [CN_ML_FILL_EVENT] = FIXED("event", fill_event_values),
    [CN_ML_CONN_STATE] = FIXED("state", conn_state_values),
    [CN_ML_RELOAD_RESULT] = FIXED("result", reload_values),
    [CN_ML_VERSION] = FIXED("version", version_values),
    [CN_ML_HANDSHAKE] = FIXED("result", handshake_values),
};
#undef FIXED

/* ---- histogram buckets: 1, 2.5, 5 per decade, 100 µs .. 100 s ---------------------------- */

static const uint64_t bucket_ns[] = {
    100000ull,      250000ull,      500000ull,      1000000ull,      2500000ull,
    5000000ull,     10000000ull,    25000000ull,    50000000ull,     100000000ull,
    250000000ull,   500000000ull,   1000000000ull,  2500000000ull,   5000000000ull,
    10000000000ull, 25000000000ull, 50000000000ull, 100000000000ull,
};
static const char *const bucket_le[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "25",   "50",    "100",
};
#define N_BUCKETS CN_ARRAY_LEN(bucket_ns)
_Static_assert(CN_ARRAY_LEN(bucket_le) == N_BUCKETS, "bucket table");
/* Cells of one histogram series: N_BUCKETS finite buckets, one above the last bound, the sum. */
#define HIST_CELLS (N_BUCKETS + 2)

/* ---- families ---------------------------------------------------------------------------- */

enum family_type { FT_COUNTER, FT_GAUGE, FT_HISTOGRAM };

struct family {
    const char *name;
    const char *help;
    enum family_type type;
    size_t n_labels;
    uint8_t labels[4]; /* labels[0] is padding, so that a family without labels is valid C */
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static const struct family families[CN_M__COUNT] = {
#define X(id, name, type, help, ...)                                                               \
    [CN_M_##id] = {                                                                                \
        name, help, FT_##type, sizeof((const uint8_t[]){0, __VA_ARGS__}) - 1, {0, __VA_ARGS__}},
#include "metrics/metrics.def"
#undef X
};

static const uint8_t *
fam_labels(const struct family *f)
{
    return f->labels + 1;
}

/* The position of the config-name label, or -1. */
static int
fam_named(const struct family *f)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (fam_labels(f)[i] < CN_ML__NAMED)
            return (int)i;
    return -1;
}

size_t
cn_metrics_combos(cn_metric_id_t id)
{
    const struct family *f = &families[id];
    size_t n = 1;
    for (size_t i = 0; i < f->n_labels; i++)
        if (fam_labels(f)[i] >= CN_ML__NAMED)
            n *= label_defs[fam_labels(f)[i]].n;
    return n;
}

static size_t
fam_cells(cn_metric_id_t id)
{
    return families[id].type == FT_HISTOGRAM ? HIST_CELLS : 1;
}

static size_t
fam_size(cn_metric_id_t id)
{
    return cn_metrics_combos(id) * fam_cells(id);
}

static bool
fam_is_seconds(const struct family *f)
{
    return f->type == FT_HISTOGRAM || strstr(f->name, "_seconds") != NULL;
}

static bool
fam_has_code(const struct family *f)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (fam_labels(f)[i] == CN_ML_CODE)
            return true;
    return false;
}

/* ---- sets ---------------------------------------------------------------------------------- */

/* Config position → slot, for one config generation (a reference is held). */
struct metrics_map {
    cn_config_t *cfg;
    uint32_t *slots[CN_ML__NAMED];
    size_t n[CN_ML__NAMED];
};

struct cn_metrics {
    uint64_t *flat[CN_M__COUNT];    /* families without a config-name label */
    uint64_t **blocks[CN_M__COUNT]; /* the others: CN_METRICS_MAX_NAMES block pointers */
    char *names[CN_ML__NAMED][CN_METRICS_MAX_NAMES];
    uint32_t n_names[CN_ML__NAMED]; /* published with a release store */
    struct metrics_map maps[2];     /* most recently used first */
};

static inline uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void
store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Single writer: a load and a store, no locked instruction. */
static inline void
add(uint64_t *p, uint64_t v)
{
    store(p, load(p) + v);
}

cn_metrics_t *
cn_metrics_new(void)
{
    cn_metrics_t *m = cn_xcalloc(1, sizeof(*m));
    for (size_t id = 0; id < CN_M__COUNT; id++) {
        if (fam_named(&families[id]) >= 0)
            m->blocks[id] = cn_xcalloc(CN_METRICS_MAX_NAMES, sizeof(uint64_t *));
        else
            m->flat[id] = cn_xcalloc(fam_size((cn_metric_id_t)id), sizeof(uint64_t));
    }
    return m;
}

static void
map_fini(struct metrics_map *mp)
{
    for (size_t l = 0; l < CN_ML__NAMED; l++)
        cn_free(mp->slots[l]);
    cn_config_unref(mp->cfg);
    memset(mp, 0, sizeof(*mp));
}

void
cn_metrics_free(cn_metrics_t *m)
{
    if (m == NULL)
        return;
    for (size_t id = 0; id < CN_M__COUNT; id++) {
        cn_free(m->flat[id]);
        if (m->blocks[id] != NULL)
            for (size_t s = 0; s < CN_METRICS_MAX_NAMES; s++)
                cn_free(m->blocks[id][s]);
        cn_free(m->blocks[id]);
    }
    for (size_t l = 0; l < CN_ML__NAMED; l++)
        for (size_t i = 0; i < m->n_names[l]; i++)
            cn_free(m->names[l][i]);
    map_fini(&m->maps[0]);
    map_fini(&m->maps[1]);
    cn_free(m);
}

uint32_t
cn_metrics_intern(cn_metrics_t *m, cn_metrics_label_t label, const char *name)
{
    CN_ASSERT(label < CN_ML__NAMED);
    uint32_t n = m->n_names[label];
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(m->names[label][i], name) == 0)
            return i;
    if (n == CN_METRICS_MAX_NAMES)
        return CN_METRICS_MAX_NAMES - 1;
    m->names[label][n] = cn_xstrdup(n == CN_METRICS_MAX_NAMES - 1 ? "_other" : name);
    __atomic_store_n(&m->n_names[label], n + 1, __ATOMIC_RELEASE);
    return n;
}

bool
cn_metrics_find(const cn_metrics_t *m, cn_metrics_label_t label, const char *name, uint32_t *slot)
{
    CN_ASSERT(label < CN_ML__NAMED);
    for (uint32_t i = 0; i < m->n_names[label]; i++)
        if (strcmp(m->names[label][i], name) == 0) {
            *slot = i;
            return true;
        }
    return false;
}

static const char *
config_name(const cn_config_t *cfg, cn_metrics_label_t label, size_t i)
{
    switch (label) {
    case CN_ML_ROUTE:
        return cfg->routes[i].name ? cfg->routes[i].name : "-";
    case CN_ML_UPSTREAM:
        return cfg->upstreams[i].name;
    case CN_ML_LISTENER:
        return cfg->listeners[i].name ? cfg->listeners[i].name : "-";
    default:
        return cfg->caches[i].name;
    }
}

static void
map_build(cn_metrics_t *m, struct metrics_map *mp, cn_config_t *cfg)
{
    const size_t counts[CN_ML__NAMED] = {cfg->n_routes, cfg->n_upstreams, cfg->n_caches,
                                         cfg->n_listeners};
    cn_config_ref(cfg);
    mp->cfg = cfg;
    for (size_t l = 0; l < CN_ML__NAMED; l++) {
        mp->n[l] = counts[l];
        mp->slots[l] = cn_xcalloc(counts[l] ? counts[l] : 1, sizeof(uint32_t));
        for (size_t i = 0; i < counts[l]; i++)
            mp->slots[l][i] = cn_metrics_intern(m, (cn_metrics_label_t)l,
                                                config_name(cfg, (cn_metrics_label_t)l, i));
    }
}

uint32_t
cn_metrics_config_slot(cn_metrics_t *m, cn_config_t *cfg, cn_metrics_label_t label, size_t index)
{
    CN_ASSERT(label < CN_ML__NAMED);
    if (m->maps[0].cfg != cfg) {
        struct metrics_map tmp = m->maps[1];
        if (tmp.cfg != cfg) {
            map_fini(&tmp);
            map_build(m, &tmp, cfg);
        }
        m->maps[1] = m->maps[0];
        m->maps[0] = tmp;
    }
    const struct metrics_map *mp = &m->maps[0];
    if (index >= mp->n[label])
        return cn_metrics_intern(m, label, "-");
    return mp->slots[label][index];
}

/* The cells of (@id, @slot), allocated on first use. Owner thread. */
static uint64_t *
cells_of(cn_metrics_t *m, cn_metric_id_t id, uint32_t slot)
{
    if (m->blocks[id] == NULL)
        return m->flat[id];
    if (slot >= CN_METRICS_MAX_NAMES)
        slot = CN_METRICS_MAX_NAMES - 1;
    uint64_t *b = m->blocks[id][slot];
    if (b == NULL) {
        b = cn_xcalloc(fam_size(id), sizeof(uint64_t));
        __atomic_store_n(&m->blocks[id][slot], b, __ATOMIC_RELEASE);
    }
    return b;
}

static const uint64_t *
cells_peek(const cn_metrics_t *m, cn_metric_id_t id, uint32_t slot)
{
    if (m->blocks[id] == NULL)
        return m->flat[id];
    if (slot >= CN_METRICS_MAX_NAMES)
        return NULL;
    return __atomic_load_n(&m->blocks[id][slot], __ATOMIC_ACQUIRE);
}

/* ---- events ------------------------------------------------------------------------------- */

static size_t
code_index(unsigned status)
{
    size_t lo = 0, hi = N_CODES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (code_numbers[mid] == status)
            return mid;
        if (code_numbers[mid] < status)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (status >= 100 && status < 600)
        return N_CODES + status / 100 - 1;
    return N_CODES + 5;
}

static void
observe(uint64_t *h, uint64_t ns)
{
    size_t i = 0;
    while (i < N_BUCKETS && ns > bucket_ns[i])
        i++;
    add(&h[i], 1);
    add(&h[HIST_CELLS - 1], ns);
}

void
cn_metrics_request_done(cn_metrics_t *m, uint32_t route_slot, unsigned status, uint64_t duration_ns,
                        uint64_t body_bytes)
{
    add(&cells_of(m, CN_M_REQUESTS_TOTAL, route_slot)[code_index(status)], 1);
    observe(cells_of(m, CN_M_REQUEST_DURATION, 0), duration_ns);
    add(cells_of(m, CN_M_RESPONSE_BYTES, route_slot), body_bytes);
}

void
cn_metrics_cache_request(cn_metrics_t *m, uint32_t cache_slot, cn_metrics_cache_status_t st)
{
    add(&cells_of(m, CN_M_CACHE_REQUESTS, cache_slot)[st], 1);
}

void
cn_metrics_fill_event(cn_metrics_t *m, uint32_t cache_slot, cn_metrics_fill_event_t ev)
{
    add(&cells_of(m, CN_M_CACHE_FILL_EVENTS, cache_slot)[ev], 1);
}

void
cn_metrics_upstream_response(cn_metrics_t *m, uint32_t upstream_slot, unsigned status)
{
    add(&cells_of(m, CN_M_UPSTREAM_REQUESTS, upstream_slot)[code_index(status)], 1);
}

void
cn_metrics_upstream_error(cn_metrics_t *m, uint32_t upstream_slot, cn_metrics_err_kind_t kind)
{
    add(&cells_of(m, CN_M_UPSTREAM_ERRORS, upstream_slot)[kind], 1);
}

void
cn_metrics_tls_handshake(cn_metrics_t *m, uint32_t listener_slot, bool ok, bool resumed)
{
    add(&cells_of(m, CN_M_TLS_HANDSHAKES, listener_slot)[ok ? 0 : 1], 1);
    if (ok && resumed)
        add(cells_of(m, CN_M_TLS_RESUMED, listener_slot), 1);
}

cn_metrics_err_kind_t
cn_metrics_err_kind(cairn_err_t err)
{
    switch (err) {
    case CAIRN_ECONNREFUSED:
    case CAIRN_ENOENT:
    case CAIRN_ETLS:
    case CAIRN_ENOUPSTREAM:
        return CN_METRICS_ERR_CONNECT;
    case CAIRN_ETIMEDOUT:
        return CN_METRICS_ERR_TIMEOUT;
    case CAIRN_EPROTO:
    case CAIRN_ETOOBIG:
        return CN_METRICS_ERR_PROTOCOL;
    case CAIRN_ECLOSED:
    case CAIRN_ERESET:
        return CN_METRICS_ERR_CLOSED;
    default:
        return CN_METRICS_ERR_OTHER;
    }
}

void
cn_metrics_cache_lock_waiters(cn_metrics_t *m, int delta)
{
    add(cells_of(m, CN_M_CACHE_LOCK_WAITERS, 0), (uint64_t)(int64_t)delta);
}

void
cn_metrics_cache_lock_wait(cn_metrics_t *m, uint64_t wait_ns)
{
    observe(cells_of(m, CN_M_CACHE_LOCK_WAIT, 0), wait_ns);
}

void
cn_metrics_origin_queue_wait(cn_metrics_t *m, uint32_t upstream_slot,
                             cn_metrics_queue_outcome_t outcome, uint64_t wait_ns)
{
    observe(cells_of(m, CN_M_ORIGIN_QUEUE_WAIT, upstream_slot) + (size_t)outcome * HIST_CELLS,
            wait_ns);
}

/* ---- scrape ------------------------------------------------------------------------------- */

void
cn_metrics_declare(cn_metrics_t *m, cn_metrics_label_t label, const char *name)
{
    uint32_t slot = cn_metrics_intern(m, label, name);
    for (size_t id = 0; id < CN_M__COUNT; id++) {
        int k = fam_named(&families[id]);
        if (k >= 0 && fam_labels(&families[id])[k] == label)
            (void)cells_of(m, (cn_metric_id_t)id, slot);
    }
}

static void
add_cells(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += load(&src[i]);
}

void
cn_metrics_merge(cn_metrics_t *dst, const cn_metrics_t *src)
{
    uint32_t remap[CN_ML__NAMED][CN_METRICS_MAX_NAMES];
    uint32_t n[CN_ML__NAMED];
    for (size_t l = 0; l < CN_ML__NAMED; l++) {
        n[l] = __atomic_load_n(&src->n_names[l], __ATOMIC_ACQUIRE);
        for (uint32_t i = 0; i < n[l]; i++)
            remap[l][i] = cn_metrics_intern(dst, (cn_metrics_label_t)l, src->names[l][i]);
    }
    for (size_t id = 0; id < CN_M__COUNT; id++) {
        size_t size = fam_size((cn_metric_id_t)id);
        int k = fam_named(&families[id]);
        if (k < 0) {
            add_cells(dst->flat[id], src->flat[id], size);
            continue;
        }
        size_t l = fam_labels(&families[id])[k];
        for (uint32_t s = 0; s < n[l]; s++) {
            const uint64_t *b = cells_peek(src, (cn_metric_id_t)id, s);
            if (b != NULL)
                add_cells(cells_of(dst, (cn_metric_id_t)id, remap[l][s]), b, size);
        }
    }
}

void
cn_metrics_set(cn_metrics_t *m, cn_metric_id_t id, uint32_t slot, size_t combo, uint64_t v)
{
    CN_ASSERT(families[id].type != FT_HISTOGRAM && combo < cn_metrics_combos(id));
    store(&cells_of(m, id, slot)[combo], v);
}

uint64_t
cn_metrics_get(const cn_metrics_t *m, cn_metric_id_t id, uint32_t slot, size_t combo)
{
    CN_ASSERT(combo < cn_metrics_combos(id));
    const uint64_t *b = cells_peek(m, id, slot);
    if (b == NULL)
        return 0;
    if (families[id].type != FT_HISTOGRAM)
        return load(&b[combo]);
    uint64_t count = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++)
        count += load(&b[combo * HIST_CELLS + i]);
    return count;
}

const char *
cn_metrics_label_value(cn_metrics_label_t label, size_t index)
{
    const struct label_def *d = &label_defs[label];
    return d->values != NULL && index < d->n ? d->values[index] : NULL;
}

/* ---- exposition ----------------------------------------------------------------------------- */

static void
put(cn_buf_t *out, const char *s)
{
    cn_buf_append(out, s, strlen(s));
}

static void CN_PRINTF(2, 3) putf(cn_buf_t *out, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    CN_ASSERT(n >= 0 && (size_t)n < sizeof(tmp));
    cn_buf_append(out, tmp, (size_t)n);
}

/* Label values escape backslash, double quote and newline; HELP text backslash and newline. */
static void
put_escaped(cn_buf_t *out, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            put(out, "\\\\");
        else if (*s == '\n')
            put(out, "\\n");
        else if (*s == '"' && quote)
            put(out, "\\\"");
        else
            cn_buf_append(out, s, 1);
    }
}

/* Nanoseconds as decimal seconds, without trailing zeros. */
static void
put_seconds(cn_buf_t *out, uint64_t ns)
{
    char frac[16];
    uint64_t sec = ns / 1000000000u, rest = ns % 1000000000u;
    if (rest == 0) {
        putf(out, "%" PRIu64, sec);
        return;
    }
    int k = snprintf(frac, sizeof(frac), "%09" PRIu64, rest);
    while (k > 0 && frac[k - 1] == '0')
        frac[--k] = '\0';
    putf(out, "%" PRIu64 ".%s", sec, frac);
}

static void
put_value(cn_buf_t *out, const struct family *f, uint64_t v)
{
    if (fam_is_seconds(f))
        put_seconds(out, v);
    else if (f->type == FT_GAUGE)
        putf(out, "%" PRId64, (int64_t)v);
    else
        putf(out, "%" PRIu64, v);
}

/* "{a="x",b="y"" for one series (no closing brace; nothing at all without labels). */
static void
series_labels(cn_buf_t *lb, const struct family *f, const char *name, size_t combo)
{
    size_t idx[4] = {0};
    for (size_t i = f->n_labels; i-- > 0;) {
        size_t n = label_defs[fam_labels(f)[i]].n;
        if (n == 0)
            continue;
        idx[i] = combo % n;
        combo /= n;
    }
    lb->head = lb->len = 0;
    for (size_t i = 0; i < f->n_labels; i++) {
        const struct label_def *d = &label_defs[fam_labels(f)[i]];
        put(lb, i == 0 ? "{" : ",");
        put(lb, d->name);
        put(lb, "=\"");
        put_escaped(lb, d->values != NULL ? d->values[idx[i]] : name, true);
        put(lb, "\"");
    }
}

static void
sample(cn_buf_t *out, const struct family *f, const char *suffix, const cn_buf_t *lb,
       const char *le, uint64_t v, bool seconds)
{
    put(out, f->name);
    put(out, suffix);
    if (lb->len > 0)
        cn_buf_append(out, cn_buf_start(lb), lb->len);
    if (le != NULL) {
        put(out, lb->len > 0 ? ",le=\"" : "{le=\"");
        put(out, le);
        put(out, "\"}");
    } else if (lb->len > 0) {
        put(out, "}");
    }
    put(out, " ");
    if (seconds)
        put_seconds(out, v);
    else
        putf(out, "%" PRIu64, v);
    put(out, "\n");
}

static void
render_histogram(cn_buf_t *out, const struct family *f, const cn_buf_t *lb, const uint64_t *h)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += load(&h[i]);
        sample(out, f, "_bucket", lb, bucket_le[i], cum, false);
    }
    cum += load(&h[N_BUCKETS]);
    sample(out, f, "_bucket", lb, "+Inf", cum, false);
    sample(out, f, "_sum", lb, NULL, load(&h[HIST_CELLS - 1]), true);
    sample(out, f, "_count", lb, NULL, cum, false);
}

static void
render_block(cn_buf_t *out, cn_buf_t *lb, cn_metric_id_t id, const char *name, const uint64_t *b)
{
    const struct family *f = &families[id];
    bool sparse = fam_has_code(f);
    size_t combos = cn_metrics_combos(id);
    for (size_t c = 0; c < combos; c++) {
        if (f->type == FT_HISTOGRAM) {
            series_labels(lb, f, name, c);
            render_histogram(out, f, lb, b + c * HIST_CELLS);
            continue;
        }
        uint64_t v = load(&b[c]);
        if (sparse && v == 0)
            continue;
        series_labels(lb, f, name, c);
        put(out, f->name);
        if (lb->len > 0)
            if (lb->len > 0)
                cn_buf_append(out, cn_buf_start(lb), lb->len);
        put(out, lb->len > 0 ? "} " : " ");
        put_value(out, f, v);
        put(out, "\n");
    }
}

void
cn_metrics_render(const cn_metrics_t *m, cn_buf_t *out)
{
    cn_buf_t lb = {0};
    for (size_t id = 0; id < CN_M__COUNT; id++) {
        const struct family *f = &families[id];
        put(out, "# HELP ");
        put(out, f->name);
        put(out, " ");
        put_escaped(out, f->help, false);
        put(out, "\n# TYPE ");
        put(out, f->name);
        put(out, " ");
        put(out, type_names[f->type]);
        put(out, "\n");
        int k = fam_named(f);
        if (k < 0) {
            render_block(out, &lb, (cn_metric_id_t)id, NULL, m->flat[id]);
            continue;
        }
        size_t l = fam_labels(f)[k];
        uint32_t n = __atomic_load_n(&m->n_names[l], __ATOMIC_ACQUIRE);
        for (uint32_t s = 0; s < n; s++) {
            const uint64_t *b = cells_peek(m, (cn_metric_id_t)id, s);
            if (b != NULL)
                render_block(out, &lb, (cn_metric_id_t)id, m->names[l][s], b);
        }
    }
    cn_buf_fini(&lb);
}
