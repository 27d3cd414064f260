/*
 * fuzz_image.c - the image decoder on untrusted bytes: img_probe and
 * img_decode (JPEG, PNG, PPM) with a small pixel limit, so that the JPEG
 * work budget and the limit checks are reached quickly. A decoded image
 * must have the size img_probe read from its header.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[ADJ_ERRLEN];
    img_format fmt;
    int pw = 0, ph = 0;
    int probed = img_probe(data, size, &fmt, &pw, &ph, err, sizeof err);
    img_rgb im;
    if (img_decode(data, size, 1u << 20, &im, err, sizeof err) == ADJ_OK) {
        if (probed != ADJ_OK || im.w != pw || im.h != ph)
            abort(); /* decoded something whose header says otherwise */
        img_free(&im);
    }
    return 0;
}
