/* SPDX-License-Identifier: MIT */
/* The extension → Content-Type table used by the files route action. A linear scan over ~70
 * short entries is cheap next to the open() it accompanies, so there is no hash here. */
#include "http/mime.h"

#include "core/compiler.h"
#include "core/str.h"

#define UTF8 "; charset=utf-8"

struct mime_entry {
    const char *ext;
    const char *type;
};

static const struct mime_entry mime_table[] = {
    /* Text and web documents. */
    {"html", "text/html" UTF8},
    {"htm", "text/html" UTF8},
    {"shtml", "text/html" UTF8},
    {"xhtml", "application/xhtml+xml" UTF8},
    {"css", "text/css" UTF8},
    {"js", "text/javascript" UTF8},
    {"mjs", "text/javascript" UTF8},
    {"cjs", "text/javascript" UTF8},
    {"json", "application/json" UTF8},
    {"jsonld", "application/ld+json" UTF8},
    {"map", "application/json" UTF8},
    {"webmanifest", "application/manifest+json" UTF8},
    {"txt", "text/plain" UTF8},
    {"text", "text/plain" UTF8},
    {"log", "text/plain" UTF8},
    {"md", "text/markdown" UTF8},
    {"markdown", "text/markdown" UTF8},
    {"csv", "text/csv" UTF8},
    {"tsv", "text/tab-separated-values" UTF8},
    {"xml", "application/xml" UTF8},
    {"xsl", "application/xml" UTF8},
    {"rss", "application/rss+xml" UTF8},
    {"atom", "application/atom+xml" UTF8},
    {"svg", "image/svg+xml" UTF8},
    {"svgz", "image/svg+xml"},
    {"ics", "text/calendar" UTF8},
    {"vtt", "text/vtt" UTF8},
    {"yaml", "application/yaml" UTF8},
    {"yml", "application/yaml" UTF8},
    {"toml", "application/toml" UTF8},
    /* Images. */
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"apng", "image/apng"},
    /* Fonts. */
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    /* Documents and archives. */
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"zst", "application/zstd"},
    {"7z", "application/x-7z-compressed"},
    {"br", "application/octet-stream"},
    {"wasm", "application/wasm"},
    {"bin", "application/octet-stream"},
    {"exe", "application/octet-stream"},
    {"dmg", "application/octet-stream"},
    {"iso", "application/octet-stream"},
    {"deb", "application/vnd.debian.binary-package"},
    {"rpm", "application/x-rpm"},
    /* Audio and video. */
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"webm", "video/webm"},
    {"mov", "video/quicktime"},
    {"mkv", "video/x-matroska"},
    {"ogv", "video/ogg"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"ts", "video/mp2t"},
    {"mp3", "audio/mpeg"},
    {"m4a", "audio/mp4"},
    {"aac", "audio/aac"},
    {"ogg", "audio/ogg"},
    {"oga", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"wav", "audio/wav"},
    {"flac", "audio/flac"},
    {"mid", "audio/midi"},
};

const char *
cn_mime_type_for_ext(cairn_iov_t ext)
{
    if (ext.len == 0)
        return NULL;
    for (size_t i = 0; i < CN_ARRAY_LEN(mime_table); i++)
        if (cn_iov_ieq_cstr(ext, mime_table[i].ext))
            return mime_table[i].type;
    return NULL;
}

const char *
cn_mime_type_for_path(cairn_iov_t path)
{
    size_t name = 0;
    for (size_t i = 0; i < path.len; i++)
        if (path.base[i] == '/')
            name = i + 1;
    /* The dot must follow at least one character of the name, so ".htaccess" has none. */
    for (size_t i = path.len; i > name + 1; i--) {
        if (path.base[i - 1] == '.') {
            const char *t = cn_mime_type_for_ext(cn_iov(path.base + i, path.len - i));
            return t ? t : CN_MIME_DEFAULT;
        }
    }
    return CN_MIME_DEFAULT;
}
