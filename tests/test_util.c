/*
 * test_util.c - common/util/ (ut_*): the buffer, the clocks, whole-file
 * reads (limits, links, FIFOs), atomic writes (planted links, leftovers),
 * mkdir -p, remove tree, path join and base64 both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"
#include "testutil.h"
#include "ut_base64.h"
#include "ut_buf.h"
#include "ut_clock.h"
#include "ut_file.h"
#include "ut_path.h"

static void test_buf(void)
{
    ut_buf b = {0};
    CHECK(ut_buf_add(&b, "ab", 2) == ADJ_OK, "add");
    CHECK(ut_buf_printf(&b, "%d-%s", 42, "x") == ADJ_OK, "printf");
    CHECK(b.len == 6 && !strcmp(b.s, "ab42-x"), "got '%s'", b.s);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 20; i++)
        ut_buf_printf(&b, "%s", big); /* over the 256-byte fast path and the first 4 KiB */
    CHECK(b.len == 6 + 20 * 999 && b.s[b.len] == '\0' && !b.failed, "len %zu", b.len);
    CHECK(ut_buf_puts(&b, "!") == ADJ_OK && b.s[b.len - 1] == '!', "puts");
    size_t n = 0;
    char *s = ut_buf_take(&b, &n);
    CHECK(s && n == 6 + 20 * 999 + 1 && strlen(s) == n, "take %zu", n);
    CHECK(!b.s && !b.len && !b.cap, "empty after take");
    free(s);
    s = ut_buf_take(&b, &n);
    CHECK(s && n == 0 && !*s, "take of an empty buffer gives \"\"");
    free(s);
    ut_buf f = {0};
    f.failed = 1;
    CHECK(ut_buf_add(&f, "x", 1) == ADJ_ERR_NOMEM && !f.s, "a failed buffer stays failed");
    CHECK(ut_buf_take(&f, NULL) == NULL, "take of a failed buffer");
    ut_buf_free(&f);
    ut_buf_free(NULL);
    ut_buf r = {0};
    CHECK(ut_buf_reserve(&r, 100) == ADJ_OK && r.cap >= 101 && r.s && !*r.s, "reserve: an empty string");
    s = ut_buf_take(&r, &n);
    CHECK(s && n == 0 && !*s, "take after reserve");
    free(s);
}

static void test_clock(void)
{
    double a = ut_now();
    usleep(20000);
    double b = ut_now();
    CHECK(b - a >= 0.015 && b - a < 5, "monotonic step %g", b - a);
    int64_t w = ut_wall_ms();
    CHECK(w > 1600000000000LL, "wall clock %lld", (long long)w);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_read(const char *dir)
{
    char p[PATH_MAX], err[ADJ_ERRLEN];
    char *s = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/a.txt", dir);
    put(p, "hello\n");
    CHECK(ut_read_file(p, 100, 0, &s, &n, err, sizeof err) == ADJ_OK && n == 6 && !strcmp(s, "hello\n"),
          "read: %s", err);
    free(s);
    s = NULL;
    CHECK(ut_read_file(p, 6, UT_NOFOLLOW, &s, &n, err, sizeof err) == ADJ_OK && n == 6, "exactly max");
    free(s);
    s = NULL;
    CHECK(ut_read_file(p, 5, 0, &s, &n, err, sizeof err) == ADJ_ERR_LIMIT && !s && errno == EFBIG,
          "over max: %s", err);
    snprintf(p, sizeof p, "%s/empty", dir);
    put(p, "");
    CHECK(ut_read_file(p, 0, 0, &s, &n, err, sizeof err) == ADJ_OK && n == 0 && s && !*s, "empty");
    free(s);
    s = NULL;
    snprintf(p, sizeof p, "%s/missing", dir);
    CHECK(ut_read_file(p, 10, 0, &s, &n, err, sizeof err) == ADJ_ERR_NOTFOUND && errno == ENOENT &&
              strstr(err, "missing"),
          "missing: %s", err);
    char link[PATH_MAX];
    snprintf(p, sizeof p, "%s/a.txt", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    CHECK(symlink(p, link) == 0, "symlink");
    CHECK(ut_read_file(link, 100, 0, &s, &n, err, sizeof err) == ADJ_OK, "a link is followed without flags");
    free(s);
    s = NULL;
    CHECK(ut_read_file(link, 100, UT_NOFOLLOW, &s, &n, err, sizeof err) == ADJ_ERR_IO && errno == ELOOP &&
              strstr(err, "symbolic link"),
          "UT_NOFOLLOW refuses a link: %s", err);
    CHECK(ut_read_file(dir, 100, UT_NOFOLLOW, &s, &n, err, sizeof err) == ADJ_ERR_IO && errno == EISDIR,
          "a folder: %s", err);
    snprintf(p, sizeof p, "%s/fifo", dir);
    CHECK(mkfifo(p, 0600) == 0, "mkfifo");
    CHECK(ut_read_file(p, 100, UT_NOFOLLOW, &s, &n, err, sizeof err) == ADJ_ERR_IO && errno == EINVAL,
          "a FIFO is refused without hanging: %s", err);
    /* a pipe: read until end of file, with the limit */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    CHECK(ut_write_all(fds[1], "0123456789", 10) == ADJ_OK, "write_all");
    close(fds[1]);
    CHECK(ut_read_fd(fds[0], 9, &s, &n, err, sizeof err) == ADJ_ERR_LIMIT, "a pipe over max");
    close(fds[0]);
    CHECK(pipe(fds) == 0, "pipe");
    ut_write_all(fds[1], "0123456789", 10);
    close(fds[1]);
    CHECK(ut_read_fd(fds[0], 10, &s, &n, err, sizeof err) == ADJ_OK && n == 10 && !strcmp(s, "0123456789"),
          "a pipe: %s", err);
    free(s);
    close(fds[0]);
    /* a large file (no fixed-size buffers) */
    size_t big = (size_t)3 << 20;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    CHECK(ut_write_atomic(dir, "big", data, big, 0644, err, sizeof err) == ADJ_OK, "%s", err);
    snprintf(p, sizeof p, "%s/big", dir);
    s = NULL;
    CHECK(ut_read_file(p, big, 0, &s, &n, err, sizeof err) == ADJ_OK && n == big && !memcmp(s, data, big),
          "3 MiB: %s", err);
    free(s);
    free(data);
}

static void test_atomic(const char *dir)
{
    char p[PATH_MAX], err[ADJ_ERRLEN], *s = NULL;
    size_t n;
    CHECK(ut_write_atomic(dir, "w.json", "{}", 2, 0600, err, sizeof err) == ADJ_OK, "%s", err);
    snprintf(p, sizeof p, "%s/w.json", dir);
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 2, "mode and size");
    /* replaces the file; a leftover temporary file of a crash is removed first */
    snprintf(p, sizeof p, "%s/.w.json.tmp", dir);
    put(p, "leftover");
    CHECK(ut_write_atomic(dir, "w.json", "[1]", 3, 0600, err, sizeof err) == ADJ_OK, "%s", err);
    CHECK(access(p, F_OK) != 0, "no temporary file left");
    snprintf(p, sizeof p, "%s/w.json", dir);
    CHECK(ut_read_file(p, 10, 0, &s, &n, err, sizeof err) == ADJ_OK && !strcmp(s, "[1]"), "replaced");
    free(s);
    /* a link planted at the temporary name: removed, its target untouched */
    char target[PATH_MAX], tmp[PATH_MAX];
    snprintf(target, sizeof target, "%s/target", dir);
    put(target, "keep");
    snprintf(tmp, sizeof tmp, "%s/.v.tmp", dir);
    CHECK(symlink(target, tmp) == 0, "symlink");
    CHECK(ut_write_atomic(dir, "v", "new", 3, 0600, err, sizeof err) == ADJ_OK, "%s", err);
    s = NULL;
    CHECK(ut_read_file(target, 10, 0, &s, &n, err, sizeof err) == ADJ_OK && !strcmp(s, "keep"),
          "the link's target is untouched");
    free(s);
    /* a link at the final name is replaced, not written through */
    snprintf(p, sizeof p, "%s/u", dir);
    CHECK(symlink(target, p) == 0, "symlink");
    CHECK(ut_write_atomic(dir, "u", "mine", 4, 0600, err, sizeof err) == ADJ_OK, "%s", err);
    CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode), "the link became a file");
    s = NULL;
    CHECK(ut_read_file(target, 10, 0, &s, &n, err, sizeof err) == ADJ_OK && !strcmp(s, "keep"), "target kept");
    free(s);
    /* a missing folder: an error that names the file */
    snprintf(p, sizeof p, "%s/nope", dir);
    CHECK(ut_write_atomic(p, "x", "1", 1, 0600, err, sizeof err) == ADJ_ERR_IO && errno == ENOENT &&
              strstr(err, ".x.tmp"),
          "missing folder: %s", err);
}

static void test_dirs(const char *dir)
{
    char p[PATH_MAX], err[ADJ_ERRLEN];
    snprintf(p, sizeof p, "%s/t/a/b/c", dir);
    CHECK(ut_mkdir_p(p, 0700, err, sizeof err) == ADJ_OK, "%s", err);
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "made");
    CHECK(ut_mkdir_p(p, 0700, err, sizeof err) == ADJ_OK, "again is fine");
    snprintf(p, sizeof p, "%s/t/a/b/c/", dir);
    CHECK(ut_mkdir_p(p, 0700, err, sizeof err) == ADJ_OK, "a trailing slash: %s", err);
    snprintf(p, sizeof p, "%s/t/a/f", dir);
    put(p, "x");
    CHECK(ut_mkdir_p(p, 0700, err, sizeof err) == ADJ_ERR_IO && errno == ENOTDIR, "a file: %s", err);
    snprintf(p, sizeof p, "%s/t/a/f/g", dir);
    CHECK(ut_mkdir_p(p, 0700, err, sizeof err) == ADJ_ERR_IO, "under a file: %s", err);
    /* rmtree removes a link, never its target */
    char outside[PATH_MAX];
    snprintf(outside, sizeof outside, "%s/outside", dir);
    CHECK(ut_mkdir_p(outside, 0700, err, sizeof err) == ADJ_OK, "%s", err);
    snprintf(p, sizeof p, "%s/outside/keep", dir);
    put(p, "x");
    snprintf(p, sizeof p, "%s/t/a/b/link", dir);
    CHECK(symlink(outside, p) == 0, "symlink");
    snprintf(p, sizeof p, "%s/t", dir);
    CHECK(ut_rmtree(p, err, sizeof err) == ADJ_OK, "%s", err);
    CHECK(access(p, F_OK) != 0, "removed");
    snprintf(p, sizeof p, "%s/outside/keep", dir);
    CHECK(access(p, F_OK) == 0, "the link's target is kept");
    snprintf(p, sizeof p, "%s/t", dir);
    CHECK(ut_rmtree(p, err, sizeof err) == ADJ_OK, "a missing tree is fine");
    char *long_path = malloc(PATH_MAX + 10);
    memset(long_path, 'a', PATH_MAX + 9);
    long_path[PATH_MAX + 9] = '\0';
    CHECK(ut_mkdir_p(long_path, 0700, err, sizeof err) == ADJ_ERR_ARG, "too long");
    free(long_path);
}

static void test_path(void)
{
    char *s = ut_path_join("a/b", "c");
    CHECK(s && !strcmp(s, "a/b/c"), "%s", s);
    free(s);
    s = ut_path_join("/", "c");
    CHECK(s && !strcmp(s, "/c"), "%s", s);
    free(s);
    s = ut_path_join("", "c");
    CHECK(s && !strcmp(s, "c"), "%s", s);
    free(s);
    char buf[8], err[ADJ_ERRLEN];
    CHECK(ut_path_join_buf(buf, sizeof buf, "ab/", "cd", err, sizeof err) == ADJ_OK && !strcmp(buf, "ab/cd"),
          "%s", buf);
    CHECK(ut_path_join_buf(buf, sizeof buf, "abcd", "efgh", err, sizeof err) == ADJ_ERR_ARG && !*buf,
          "too long");
}

static void test_base64(void)
{
    /* RFC 4648 section 10 */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char err[ADJ_ERRLEN];
    for (int i = 0; i < 7; i++) {
        size_t n = 99;
        char *e = ut_base64_encode(plain[i], strlen(plain[i]), &n);
        CHECK(e && !strcmp(e, coded[i]) && n == strlen(coded[i]), "encode '%s': %s", plain[i], e);
        free(e);
        uint8_t *d = NULL;
        CHECK(ut_base64_decode(coded[i], strlen(coded[i]), &d, &n, err, sizeof err) == ADJ_OK &&
                  n == strlen(plain[i]) && !memcmp(d, plain[i], n),
              "decode '%s': %s", coded[i], err);
        free(d);
    }
    uint8_t *d = NULL;
    size_t n;
    CHECK(ut_base64_decode("Zm9vYg", 6, &d, &n, err, sizeof err) == ADJ_OK && n == 4, "no padding");
    free(d);
    d = NULL;
    CHECK(ut_base64_decode("Zm9v\r\nYmFy\n", 11, &d, &n, err, sizeof err) == ADJ_OK && n == 6, "line breaks");
    free(d);
    d = NULL;
    static const char *const bad[] = {"Zm9v!", "Z", "Zm9vY", "=Zm9", "Zg==Zg==", "Zg===", "Z==="};
    for (int i = 0; i < 7; i++)
        CHECK(ut_base64_decode(bad[i], strlen(bad[i]), &d, &n, err, sizeof err) == ADJ_ERR_FORMAT && !d,
              "bad '%s' accepted", bad[i]);
    /* every byte value round-trips, at every length mod 3 */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 250; len <= 256; len++) {
        char *e = ut_base64_encode(all, len, NULL);
        d = NULL;
        CHECK(e && ut_base64_decode(e, strlen(e), &d, &n, err, sizeof err) == ADJ_OK && n == len &&
                  !memcmp(d, all, len),
              "round trip %zu", len);
        free(e);
        free(d);
    }
}

int main(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    test_buf();
    test_clock();
    test_read(dir);
    test_atomic(dir);
    test_dirs(dir);
    test_path();
    test_base64();
    tu_rmtree(dir);
    return tu_done();
}
