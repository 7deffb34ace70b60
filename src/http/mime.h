/* SPDX-License-Identifier: MIT */
/* Content-Type by file extension, for the files route action and anything else that needs a
 * type for a name. The table is immutable and static; lookups are case-insensitive. */
#ifndef CN_HTTP_MIME_H
#define CN_HTTP_MIME_H

#include "core/types.h"

/** The type used when an extension is missing or unknown. */
#define CN_MIME_DEFAULT "application/octet-stream"

/**
 * Content-Type for the extension @ext, given without the leading dot ("html", "TAR", "gz").
 * Text types carry "; charset=utf-8". Returns a static string valid forever, or NULL when the
 * extension is not in the table. Any thread.
 */
const char *cn_mime_type_for_ext(cairn_iov_t ext);

/**
 * Content-Type for the file name or path @path: the extension is what follows the last dot of
 * the last path segment ("a/b.tar.gz" → "gz"). Dot files without another dot (".htaccess")
 * and names without an extension get CN_MIME_DEFAULT. Never returns NULL; the result is a
 * static string valid forever. Any thread.
 */
const char *cn_mime_type_for_path(cairn_iov_t path);

#endif
