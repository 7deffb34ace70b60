/* SPDX-License-Identifier: MIT */
/* cairn version numbers and the hook-table ABI revision. */
#ifndef CAIRN_VERSION_H
#define CAIRN_VERSION_H

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"

/** Revision of cairn_hooks_t; bumped whenever members are appended. */
#define CAIRN_HOOKS_ABI 1

#if defined(__GNUC__)
#define CAIRN_API __attribute__((visibility("default")))
#else
#define CAIRN_API
#endif

#endif
