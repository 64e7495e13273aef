/* The library's version, as loaded. */
#include "csal3d/common.h"

#define C3_STR2(x) #x
#define C3_STR(x) C3_STR2(x)

CSAL3D_API const char *csal3d_version(void) {
  return C3_STR(CSAL3D_VERSION_MAJOR) "." C3_STR(CSAL3D_VERSION_MINOR) "." C3_STR(
      CSAL3D_VERSION_PATCH);
}

CSAL3D_API int csal3d_version_number(void) { return CSAL3D_VERSION_NUMBER; }
