/* Opening engines: the CPU engine in-process, the CUDA engine from its plugin. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/cuda/plugin.h"
#include "engine/engine.h"

/* Where the plugin is looked for: $CSAL3D_CUDA_PLUGIN, then beside the loaded
 * libcsal3d.so, then the dynamic loader's search path. */
static void *c3_plugin_load(char *why, size_t cap) {
  const char *env = getenv("CSAL3D_CUDA_PLUGIN");
  if (env && *env) {
    void *h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    if (!h) snprintf(why, cap, "CSAL3D_CUDA_PLUGIN=%s: %s", env, dlerror());
    return h;
  }
  Dl_info info;
  if (dladdr((void *)c3_plugin_load, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash) {
      char path[4096];
      int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname),
                       info.dli_fname, C3_CUDA_PLUGIN_FILE);
      if (n > 0 && (size_t)n < sizeof path) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
      }
    }
  }
  void *h = dlopen(C3_CUDA_PLUGIN_FILE, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    snprintf(why, cap,
             "the CUDA engine plugin %s could not be loaded (%s); build libcsal3d "
             "with nvcc available, or set CSAL3D_CUDA_PLUGIN",
             C3_CUDA_PLUGIN_FILE, dlerror());
  return h;
}

/* The plugin's ops set the calling thread's error message through this. */
static int c3_plugin_set_error(int status, const char *message) {
  return (int)c3_error((csal3d_status)status, "%s", message ? message : "CUDA engine error");
}

static const c3_cuda_host c3_plugin_host = {sizeof(c3_cuda_host), c3_plugin_set_error};

static csal3d_status c3_open_cuda(int device_index, c3_engine *e) {
  char why[1024] = "";
  void *h = c3_plugin_load(why, sizeof why);
  if (!h) return c3_error(CSAL3D_ERR_DEVICE_UNAVAILABLE, "%s", why);
  c3_cuda_plugin_open_fn open_fn;
  *(void **)&open_fn = dlsym(h, C3_CUDA_PLUGIN_SYMBOL);
  if (!open_fn) {
    dlclose(h);
    return c3_error(CSAL3D_ERR_DEVICE_UNAVAILABLE,
                    "%s does not export %s: not a libcsal3d CUDA plugin",
                    C3_CUDA_PLUGIN_FILE, C3_CUDA_PLUGIN_SYMBOL);
  }
  int s = open_fn(C3_CUDA_PLUGIN_ABI, device_index, &c3_plugin_host, e, why, sizeof why);
  if (s != CSAL3D_OK) {
    dlclose(h);
    return c3_error((csal3d_status)s, "CUDA engine: %s", why);
  }
  e->plugin = h;
  return CSAL3D_OK;
}

csal3d_status c3_engine_open(csal3d_device device, int device_index,
                             c3_engine **out) {
  *out = NULL;
  C3_CHECK_ARG(device == CSAL3D_DEVICE_AUTO || device == CSAL3D_DEVICE_CPU ||
                   device == CSAL3D_DEVICE_CUDA,
               "unknown device %d", (int)device);
  C3_CHECK_ARG(device_index >= 0, "device_index is %d (must be >= 0)",
               device_index);
  c3_engine *e;
  C3_TRY(c3_calloc_array(1, sizeof *e, "engine", (void **)&e));
  if (device != CSAL3D_DEVICE_CPU) {
    csal3d_status s = c3_open_cuda(device_index, e);
    if (s == CSAL3D_OK) {
      *out = e;
      return CSAL3D_OK;
    }
    if (device == CSAL3D_DEVICE_CUDA) {
      c3_free(e);
      return s;
    }
    memset(e, 0, sizeof *e); /* AUTO: fall back to the CPU */
  }
  csal3d_status s = c3_cpu_engine_init(e);
  if (s != CSAL3D_OK) {
    c3_free(e);
    return c3_error_prefix(s, "CPU engine");
  }
  *out = e;
  return CSAL3D_OK;
}

void c3_engine_close(c3_engine *e) {
  if (!e) return;
  if (e->close) e->close(e);
  if (e->plugin) dlclose(e->plugin);
  c3_free(e);
}
