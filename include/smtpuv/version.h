/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv version macros. CMake reads the numbers from this file.
 */
#ifndef SMTPUV_VERSION_H
#define SMTPUV_VERSION_H

/** Major version: 0 until the API is declared stable. */
#define SMTPUV_VERSION_MAJOR 0
/** Minor version: below 1.0 it changes the soname (libsmtpuv.so.0.MINOR). */
#define SMTPUV_VERSION_MINOR 2
/** Patch version: fixes only, ABI unchanged. */
#define SMTPUV_VERSION_PATCH 0

/** "MAJOR.MINOR.PATCH" */
#define SMTPUV_VERSION "0.2.0"

/** 0xMMmmpp: compare with `>=` to test for a minimum version at compile time. */
#define SMTPUV_VERSION_NUM                                                     \
  ((SMTPUV_VERSION_MAJOR << 16) | (SMTPUV_VERSION_MINOR << 8) |                \
   SMTPUV_VERSION_PATCH)

#endif /* SMTPUV_VERSION_H */
