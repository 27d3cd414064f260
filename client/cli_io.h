/*
 * cli_io.h - the client's local side: reading images (their type by
 * common/image.h's img_sniff), writing files safely, printing JSON.
 * (base64 is common/util/ut_base64.h.)
 *
 * Functions that can fail return 0 or -1 and put one line describing the
 * problem into a caller-supplied buffer (err, errsz); they never print.
 */
#ifndef CLI_IO_H
#define CLI_IO_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/**
 * The Content-Type for an image file's first bytes (head, n of them):
 * "image/jpeg" (FF D8 FF), "image/png" (89 50 4E 47 0D 0A 1A 0A),
 * "image/x-portable-pixmap" ("P6" or "P5" followed by a blank), or NULL when
 * the bytes are none of these. The result is a static string.
 */
const char *cli_image_type(const unsigned char *head, size_t n);

/**
 * Checks without reading all of it that path is a regular, readable file
 * whose first bytes are a JPEG, PNG or PPM/PGM header. On success *type
 * gets cli_image_type()'s answer.
 */
int cli_image_check(const char *path, const char **type, char *err, size_t errsz);

/**
 * Reads a whole file. *data is new (caller frees with free()), NUL-terminated
 * beyond *len. Only regular files.
 */
int cli_read_file(const char *path, char **data, size_t *len, char *err, size_t errsz);

/**
 * Writes len bytes to path atomically: a temporary file in the same folder,
 * then rename(), so a reader never sees half a file and an existing symbolic
 * link at path is replaced rather than followed. New files get mode 0666
 * minus the umask.
 */
int cli_write_file(const char *path, const void *data, size_t len, char *err, size_t errsz);

/** Creates a folder and its missing parents (mode 0777 minus the umask), like mkdir -p. */
int cli_mkdirs(const char *path, char *err, size_t errsz);

/**
 * A file name for a server-supplied name such as "JPG(Adv1(x))": letters,
 * digits and ( ) + , . _ - are kept, anything else (a '/', blanks, control
 * or non-ASCII bytes) becomes '_'; a leading '.' or '-' becomes '_' so the
 * name is never hidden, "..", or taken for an option; empty names become
 * "_"; at most 200 bytes are kept. Then suffix (e.g. ".png") is appended.
 * out has room for n bytes (n >= 256 always suffices with a short suffix).
 */
void cli_safe_name(const char *name, const char *suffix, char *out, size_t n);


/**
 * A file path as a new JSON string. JSON strings are UTF-8 and a path can be
 * any bytes: a path that is not UTF-8 gets '?' for each byte above 0x7f.
 * NULL only when memory ran out.
 */
json_t *cli_json_path(const char *path);

/**
 * Prints a JSON value and a newline to f: indented by two spaces when
 * pretty, else compact (one line); reals with 15 significant digits, so a
 * number the server wrote with up to 15 digits is printed as it was.
 * Returns 0, or -1 when writing failed.
 */
int cli_print_json(FILE *f, const json_t *j, int pretty);

#endif
