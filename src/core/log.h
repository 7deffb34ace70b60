/* SPDX-License-Identifier: MIT */
/* Error log: levels, one line per event, attributable through a request/connection id. */
#ifndef CN_CORE_LOG_H
#define CN_CORE_LOG_H

#include "core/types.h"
#include "core/compiler.h"

typedef enum cn_log_level {
    CN_LOG_ERROR = 0,
    CN_LOG_WARN,
    CN_LOG_NOTICE,
    CN_LOG_INFO,
    CN_LOG_DEBUG,
    CN_LOG_TRACE,
} cn_log_level_t;

/** Current threshold; lines above it are skipped before their arguments are formatted. */
extern cn_log_level_t cn_log_threshold;

/** Parses "error|warn|notice|info|debug|trace"; returns false when unknown. */
bool cn_log_level_parse(const char *s, cn_log_level_t *out);
const char *cn_log_level_name(cn_log_level_t l);
/** Sends error-log lines to @path ("stderr" or a file, opened for append). */
cairn_err_t cn_log_open(const char *path);
/** Reopens the current file (SIGUSR1 log rotation). */
cairn_err_t cn_log_reopen(void);
/** Writes one line: time, level, optional id ("-" when 0), message. Any thread. */
void cn_log_write(cn_log_level_t l, uint64_t id, const char *fmt, ...) CN_PRINTF(3, 4);

#define CN_LOG(lvl, id, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) <= cn_log_threshold)                                                             \
            cn_log_write((lvl), (id), __VA_ARGS__);                                                \
    } while (0)
#define CN_LOG_ERROR(id, ...) CN_LOG(CN_LOG_ERROR, id, __VA_ARGS__)
#define CN_LOG_WARN(id, ...) CN_LOG(CN_LOG_WARN, id, __VA_ARGS__)
#define CN_LOG_NOTICE(id, ...) CN_LOG(CN_LOG_NOTICE, id, __VA_ARGS__)
#define CN_LOG_INFO(id, ...) CN_LOG(CN_LOG_INFO, id, __VA_ARGS__)
#define CN_LOG_DEBUG(id, ...) CN_LOG(CN_LOG_DEBUG, id, __VA_ARGS__)

#endif
