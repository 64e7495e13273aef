/*
 * libcsal3d: cold-start active learning for 3D medical images.
 * Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file common.h
 * @brief Versions, status codes, error messages and the export macro.
 *
 * Every function of the library returns a ::csal3d_status: 0 on success,
 * a negative code on failure. The code says what kind of failure it was;
 * csal3d_last_error() says what exactly went wrong, in words meant for the
 * person running the program.
 */
#ifndef CSAL3D_COMMON_H
#define CSAL3D_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol exported from the shared library. */
#if defined(CSAL3D_BUILDING) && defined(__GNUC__)
#define CSAL3D_API __attribute__((visibility("default")))
#else
#define CSAL3D_API
#endif

/** Major version: changes when the ABI breaks (it is the SONAME's number). */
#define CSAL3D_VERSION_MAJOR 0
/** Minor version: new functions or new trailing options members. */
#define CSAL3D_VERSION_MINOR 1
/** Patch version: fixes only. */
#define CSAL3D_VERSION_PATCH 0
/** The version as one number: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define CSAL3D_VERSION_NUMBER                                                  \
  (CSAL3D_VERSION_MAJOR * 10000 + CSAL3D_VERSION_MINOR * 100 +               \
   CSAL3D_VERSION_PATCH)

/**
 * Status codes. Values never change once released; new codes are only added.
 * Success is 0, every failure is negative.
 */
typedef enum csal3d_status {
  CSAL3D_OK = 0,                         /**< Success. */
  CSAL3D_ERR_INVALID_ARGUMENT = -1,      /**< A NULL handle, a bad value, a bad struct_size. */
  CSAL3D_ERR_OUT_OF_MEMORY = -2,         /**< An allocation failed (host or device). */
  CSAL3D_ERR_IO = -3,                    /**< A file could not be opened, read or written. */
  CSAL3D_ERR_FORMAT = -4,                /**< A file or buffer is malformed or inconsistent. */
  CSAL3D_ERR_UNSUPPORTED = -5,           /**< Valid but not supported (datatype, option, size). */
  CSAL3D_ERR_DEVICE_UNAVAILABLE = -6,    /**< The requested device or engine plugin is missing. */
  CSAL3D_ERR_CANCELLED = -7,             /**< The progress callback asked to stop. */
  CSAL3D_ERR_NUMERICAL = -8,             /**< NaN or Inf where finite values are required. */
  CSAL3D_ERR_BUFFER_TOO_SMALL = -9,      /**< A caller's buffer has less capacity than needed. */
  CSAL3D_ERR_CHECKSUM = -10,             /**< Stored data failed its integrity check. */
  CSAL3D_ERR_STATE = -11,                /**< The call is not valid in the handle's current state. */
  CSAL3D_ERR_INTERNAL = -12              /**< A bug in the library; please report it. */
} csal3d_status;

/**
 * The library's version as a string, "MAJOR.MINOR.PATCH", for the library
 * actually loaded (which may be newer than the headers a program was built with).
 * @return a static string; never NULL.
 */
CSAL3D_API const char *csal3d_version(void);

/**
 * The library's version as one number (see ::CSAL3D_VERSION_NUMBER).
 * Compare with the macro to detect a header/library mismatch.
 */
CSAL3D_API int csal3d_version_number(void);

/**
 * A short constant name for a status code, such as "invalid argument".
 * @param status any value; unknown values give "unknown status".
 * @return a static string; never NULL.
 */
CSAL3D_API const char *csal3d_status_string(csal3d_status status);

/**
 * The calling thread's last error message: what failed and why, specific
 * enough to act on. Set by every function that returns a failure; not
 * cleared by successful calls. Valid until the next library call on the same
 * thread.
 * @return a thread-local string; "" if no error has happened on this thread.
 */
CSAL3D_API const char *csal3d_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_COMMON_H */
