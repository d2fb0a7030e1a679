// stb_image's decoders compiled into the fuzz targets (instead of the system libstb), so that the
// fuzzer sees their coverage and AddressSanitizer checks their reads. Same header, same code.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
