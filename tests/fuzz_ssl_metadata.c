/* libFuzzer target for the reader of an SSL checkpoint's training options and data options
 * (c3_ssl_options_from_metadata, lib/model/ssl_api.c; c3_ssl_data_from_metadata,
 * lib/model/ssl_data.c) behind the safetensors parser and the model configuration reader. Not part of make check; the seed corpus
 * tests/data/ssl_metadata is replayed by tests/test_ssl.c.
 *
 * Build and run (clang 14; run `make` first), from the repository root:
 *   sh tests/fuzz_ssl_build.sh
 *   rm -rf build/fuzz_ssl_corpus && cp -r tests/data/ssl_metadata build/fuzz_ssl_corpus
 *   rm build/fuzz_ssl_corpus/make_corpus.py
 *   build/fuzz_ssl_metadata -max_total_time=300 build/fuzz_ssl_corpus
 *
 * Properties beyond "no crash, no leak, no UB": accepted options pass the options check
 * (every value in range), accepted data options are in range (a known modality, a valid
 * channel, finite spacings >= 0, consistent statistics), and a refusal sets a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/ssl_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  c3_safetensors *st = NULL;
  if (c3_st_parse(data, size, "fuzz", &st) != CSAL3D_OK) return 0;
  c3_model_config mc;
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  c3_error_clear();
  c3_ssl_data d;
  csal3d_status s = c3_model_config_from_metadata(st, &mc);
  if (s == CSAL3D_OK) s = c3_ssl_options_from_metadata(st, &mc, &o);
  if (s == CSAL3D_OK) s = c3_ssl_data_from_metadata(st, &d);
  if (s == CSAL3D_OK) {
    if (o.embed_dim % 12 || o.in_channels < 1 || o.batch_size < 1 || o.iterations < 1 ||
        !(o.mask_ratio >= 0 && o.mask_ratio <= 1) || o.crop_size[0] % 32 ||
        o.crop_size[1] % 32 || o.crop_size[2] % 32 || o.crop_size[0] < 32 ||
        o.crop_size[1] < 32 || o.crop_size[2] < 32 || o.checkpoint_every < 0)
      abort();
    /* the data options: known values in range, statistics consistent */
    if ((d.known & ~7) || d.modality < CSAL3D_MODALITY_NONE ||
        d.modality > CSAL3D_MODALITY_MRI ||
        (d.channel < 0 && d.channel != CSAL3D_CHANNEL_ALL && d.channel != CSAL3D_CHANNEL_NONE))
      abort();
    for (int a = 0; a < 3; a++)
      if (!(d.spacing[a] >= 0 && d.spacing[a] <= 1e308)) abort();
    const c3_intensity_acc *t = &d.stats;
    if (t->crops < 0 || (t->crops > 0 && (t->voxels < t->crops || !(t->m2 >= 0) ||
                                          !(t->min <= t->max) || t->m2 > 1e308)))
      abort();
  } else if (!csal3d_last_error()[0]) {
    abort();
  }
  c3_st_free(st);
  return 0;
}
