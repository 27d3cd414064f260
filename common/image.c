/* Placeholder: the image module is being written (see image.h). */
#include "image.h"
