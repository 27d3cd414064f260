/* image_sniff.c - img_sniff (image.h) on its own: dependency-free, the client links it too. */
#include <string.h>

#include "image.h"

img_format img_sniff(const uint8_t *buf, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!buf)
        return IMG_FMT_UNKNOWN;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return IMG_FMT_JPEG;
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
        return IMG_FMT_PNG;
    if (len >= 3 && buf[0] == 'P' && (buf[1] == '6' || buf[1] == '5') &&
        (buf[2] == ' ' || buf[2] == '\t' || buf[2] == '\n' || buf[2] == '\r' ||
         buf[2] == '\v' || buf[2] == '\f' || buf[2] == '#'))
        return IMG_FMT_PPM;
    return IMG_FMT_UNKNOWN;
}
