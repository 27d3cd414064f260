/*
 * test_hardening.c - issue 11, sections 1 and 2: what one request can cost
 * and answers that never came or lied, against a live advjpgd on the
 * embedded model (127.0.0.1 only), plus the JPEG work budget of img_decode.
 *
 *   - the JPEG decode work budget (many progressive scans) in img_decode
 *     and as a 400 from /classify;
 *   - multipart /evaluate bodies of tiny parts: answered, memory bounded;
 *   - decoding runs on the decode pool, not on the HTTP threads;
 *   - slow connections (headers a byte a second, a body below the minimum
 *     rate) are closed and /health still gets in, also past the per-address
 *     limit with idle keep-alive connections;
 *   - every error answer is JSON, also when it echoes bytes that are not
 *     UTF-8; two Content-Length headers are refused; a body over the limit
 *     is answered 413 to a client that sends it all before reading;
 *   - control characters never reach the request log raw;
 *   - a load round that repeats every bad kind keeps the daemon's RSS
 *     bounded and /health answering;
 *   - the front (srv_front): request heads libmicrohttpd would answer with
 *     its own HTML (a garbage request line, HTTP/2.0, HTTP/0.9, a header
 *     line without a colon, an oversized head, ...) get a JSON error, a
 *     slow head 408, while good requests (HTTP/1.0, pipelined, Expect:
 *     100-continue, chunked) still work; every answer closes the connection
 *     unless --keep-alive 1; repeated bad heads leak neither memory nor
 *     descriptors.
 *
 * Nothing asserts on timing beyond generous deadlines (a shared, noisy
 * machine); memory bounds have a wide margin.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jpeglib.h>

#include "image.h"
#include "server_harness.h"
#include "testutil.h"

static char TMP[4096];

/* ---------------------------------------------------------------- helpers */

/* A progressive JPEG (w x h, RGB 4:2:0) in memory: with many_scans, one DC
 * scan then every AC band of every component alone with one refinement
 * (379 scans); else libjpeg's standard progressive script. New (free()). */
static uint8_t *make_progressive(int w, int hgt, int many_scans, size_t *len)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &out, &out_len);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)hgt;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 75, TRUE);
    jpeg_scan_info scans[1 + 3 * 63 * 2];
    if (many_scans) {
        int k = 0;
        memset(scans, 0, sizeof scans);
        scans[k].comps_in_scan = 3;
        for (int c = 0; c < 3; c++)
            scans[k].component_index[c] = c;
        k++;
        for (int c = 0; c < 3; c++)
            for (int b = 1; b < 64; b++)
                for (int pass = 0; pass < 2; pass++) {
                    scans[k].comps_in_scan = 1;
                    scans[k].component_index[0] = c;
                    scans[k].Ss = scans[k].Se = b;
                    scans[k].Ah = pass;
                    scans[k].Al = 1 - pass;
                    k++;
                }
        ci.scan_info = scans;
        ci.num_scans = k;
    } else {
        jpeg_simple_progression(&ci);
    }
    jpeg_start_compress(&ci, TRUE);
    JSAMPLE *row = malloc((size_t)w * 3);
    while (ci.next_scanline < ci.image_height) {
        for (int x = 0; x < w; x++) {
            row[3 * x] = (JSAMPLE)(x * 7);
            row[3 * x + 1] = (JSAMPLE)(ci.next_scanline * 3);
            row[3 * x + 2] = (JSAMPLE)(((unsigned)x ^ ci.next_scanline) & 0xf0);
        }
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    *len = out_len;
    return out;
}

/* The daemon's resident memory in MiB (VmRSS), -1 if unknown. */
static long rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

/* A connected socket to 127.0.0.1:port, -1 on failure. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Sends all of buf (0, or -1 when the peer closed). */
static int send_all(int fd, const void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Reads until the peer closes or timeout_s passes; out gets up to outsz - 1
 * bytes, NUL-terminated. Returns the bytes read, -1 on a reset. */
static long read_until_close(int fd, char *out, size_t outsz, double timeout_s)
{
    size_t got = 0;
    double end = sh_now() + timeout_s;
    for (;;) {
        double left = end - sh_now();
        if (left <= 0)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            break;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            out[got < outsz ? got : outsz - 1] = '\0';
            return -1;
        }
        if (n == 0)
            break;
        size_t k = got + (size_t)n < outsz - 1 ? (size_t)n : outsz - 1 - got;
        memcpy(out + got, buf, k);
        got += k;
    }
    out[got] = '\0';
    return (long)got;
}

/* One raw request (sent whole before anything is read); the status of the
 * answer, 0 if none came. body gets the answer's body when not NULL. */
static int raw_request(int port, const void *req, size_t len, char *body, size_t bodysz)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return 0;
    static char answer[1 << 16];
    int status = 0;
    send_all(fd, req, len); /* a server that closed early may still have answered */
    read_until_close(fd, answer, sizeof answer, 30);
    if (sscanf(answer, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    close(fd);
    if (body) {
        const char *b = strstr(answer, "\r\n\r\n");
        snprintf(body, bodysz, "%s", b ? b + 4 : "");
    }
    return status;
}

/* Whether text is a JSON object with a string "error". */
static int is_json_error(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    int ok = j && json_is_string(json_object_get(j, "error"));
    json_decref(j);
    return ok;
}

/* A multipart/form-data body of n 'image' parts of part_len bytes each,
 * named image<i>.jpg (or all the same name); new (free()). */
static char *multipart_tiny(int n, size_t part_len, size_t *len)
{
    static const char head[] = "--bnd\r\nContent-Disposition: form-data; name=\"image\"; "
                               "filename=\"p%d.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n";
    size_t cap = (size_t)n * (sizeof head + 16 + part_len + 2) + 16;
    char *b = malloc(cap), *o = b;
    for (int i = 0; i < n; i++) {
        o += sprintf(o, head, i);
        memset(o, 0xff, part_len);
        o += part_len;
        *o++ = '\r';
        *o++ = '\n';
    }
    o += sprintf(o, "--bnd--\r\n");
    *len = (size_t)(o - b);
    return b;
}

/* POST /evaluate with a multipart body; the status. */
static long post_multipart(int port, const char *body, size_t len)
{
    const char *hdr[] = {"Content-Type: multipart/form-data; boundary=bnd", NULL};
    sh_resp r;
    sh_http(port, "POST", "/evaluate", hdr, body, len, &r);
    long st = r.status;
    CHECK(st == 0 || is_json_error((const char *)r.body) || st == 202,
          "/evaluate multipart answer is JSON: %s", r.body ? (char *)r.body : "");
    sh_resp_free(&r);
    return st;
}

/* GET /health answers 200. */
static int health_ok(int port)
{
    sh_resp r;
    int ok = sh_http(port, "GET", "/health", NULL, NULL, 0, &r) == 0 && r.status == 200;
    sh_resp_free(&r);
    return ok;
}

/* ---------------------------------------------------------------- the decode budget */

static void test_decode_budget(void)
{
    char err[ADJ_ERRLEN];
    size_t len;
    img_rgb im;
    /* 512 x 512, 379 scans: 4096 * 127 + 1024 * 252 = 778,240 block decodes */
    uint8_t *many = make_progressive(512, 512, 1, &len);
    int rc = img_decode(many, len, 1u << 20, &im, err, sizeof err);
    CHECK(rc == ADJ_ERR_LIMIT && strstr(err, "scans"),
          "379 scans over 512x512 exceed the budget at a 1M pixel limit (rc %d: %s)", rc, err);
    rc = img_decode(many, len, 64u << 20, &im, err, sizeof err);
    CHECK(rc == ADJ_OK && im.w == 512, "the same file is within the budget at 64M pixels (%s)",
          rc ? err : "");
    if (!rc)
        img_free(&im);
    free(many);
    /* libjpeg's standard progressive script fits even at the pixel limit */
    uint8_t *std = make_progressive(1024, 1024, 0, &len);
    rc = img_decode(std, len, 1024 * 1024, &im, err, sizeof err);
    CHECK(rc == ADJ_OK, "a standard progressive JPEG at the pixel limit decodes (%s)",
          rc ? err : "");
    if (!rc)
        img_free(&im);
    free(std);
}

/* ---------------------------------------------------------------- answers */

static void test_answers(sh_daemon *d)
{
    int port = d->port;
    char body[8192];
    struct {
        const char *what;
        const char *req;
        int status;
    } cases[] = {
        {"top_k=%ff", "POST /classify?top_k=%ff HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n", 400},
        {"GET /%ff", "GET /%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
        {"a cut UTF-8 path", "GET /%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9"
                             "%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9"
                             "%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9"
                             "%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9"
                             "%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9%c3%a9 HTTP/1.1\r\n"
                             "Host: x\r\nConnection: close\r\n\r\n", 404},
        {"GET /jobs/%ff", "GET /jobs/%ffzz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
        {"eps=%e2%82", "POST /attack?eps=%e2%82 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n", 400},
        {"an unknown parameter %ff", "POST /classify?%ff=1 HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n", 400},
        {"jansson's message", "POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              "application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
                              "{\"\xff", 400},
        {"a Latin-1 JSON value", "POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                 "application/json\r\nContent-Length: 16\r\nConnection: close\r\n"
                                 "\r\n{\"dataset\": \"\xe9\"}", 400},
        {"two Content-Length", "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                               "Content-Length: 5\r\nConnection: close\r\n\r\nabcde", 400},
        {"Content-Length and chunked", "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5"
                                       "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                                       "\r\n5\r\nabcde\r\n0\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = raw_request(port, cases[i].req, strlen(cases[i].req), body, sizeof body);
        CHECK(st == cases[i].status && is_json_error(body), "%s: %d %s (want %d and JSON)",
              cases[i].what, st, body, cases[i].status);
    }

    /* a Latin-1 upload file name */
    static const char latin1[] =
        "--bnd\r\nContent-Disposition: form-data; name=\"image\"; filename=\"caf\xe9.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\r\n--bnd--\r\n";
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                     "boundary=bnd\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof latin1 - 1, latin1);
    int st = raw_request(port, req, (size_t)n, body, sizeof body);
    CHECK(st == 400 && is_json_error(body), "a Latin-1 file name: %d %s", st, body);

    /* the log: a forged line never appears, the control character is escaped */
    static const char forge[] = "GET /x%0a2026-01-01T00:00:00Z%20GET%20/forged%20200 HTTP/1.1\r\n"
                                "Host: x\r\nConnection: close\r\n\r\n";
    raw_request(port, forge, sizeof forge - 1, NULL, 0);
    usleep(200 * 1000);
    char *log = sh_log(d);
    CHECK(log && !strstr(log, "\n2026-01-01T00:00:00Z GET /forged") && strstr(log, "/x\\x0a2026"),
          "a newline in the path is escaped in the log");
    free(log);
}

/* A body over --max-body (1M here) is answered 413 to a client that sends
 * everything before reading (Python's urllib), chunked or not. */
static void test_413(int port)
{
    size_t big = 3u << 20;
    char *req = malloc(big + 8192), body[4096];
    int h = sprintf(req, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n", big);
    memset(req + h, 0xff, big);
    int st = raw_request(port, req, (size_t)h + big, body, sizeof body);
    CHECK(st == 413 && is_json_error(body), "3 MiB with Content-Length, sent whole: %d %s", st,
          body);
    /* chunked, three times the limit */
    h = sprintf(req, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    size_t off = (size_t)h;
    for (int i = 0; i < 48; i++) {
        off += (size_t)sprintf(req + off, "10000\r\n");
        memset(req + off, 0xff, 0x10000);
        off += 0x10000;
        off += (size_t)sprintf(req + off, "\r\n");
    }
    off += (size_t)sprintf(req + off, "0\r\n\r\n");
    st = raw_request(port, req, off, body, sizeof body);
    CHECK(st == 413 && is_json_error(body), "3 MiB chunked, sent whole: %d %s", st, body);
    /* a client that waits for 100 Continue sends only the headers */
    h = sprintf(req, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     "Content-Length: %zu\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                big);
    st = raw_request(port, req, (size_t)h, body, sizeof body);
    CHECK(st == 413 && is_json_error(body), "Expect: 100-continue: 413 before the body (%d %s)",
          st, body);
    free(req);
}

/* ---------------------------------------------------------------- memory */

/* Multipart bodies of tiny parts: answered, and the RSS stays bounded. */
static void test_multipart_memory(sh_daemon *d)
{
    long before = rss_mib(d->pid), peak = before;
    size_t len;
    /* 7 MiB in 60,000 one-byte parts: more parts than allowed */
    char *many = multipart_tiny(60000, 1, &len);
    /* 7 MiB in 9,000 parts of 800 bytes: streamed to disk, then refused */
    size_t len2;
    char *fat = multipart_tiny(9000, 800, &len2);
    for (int i = 0; i < 4; i++) {
        long st = post_multipart(d->port, many, len);
        CHECK(st == 413, "60,000 parts: 413 (got %ld)", st);
        st = post_multipart(d->port, fat, len2);
        CHECK(st == 400, "9,000 parts that are not images: 400 (got %ld)", st);
        long r = rss_mib(d->pid);
        peak = r > peak ? r : peak;
    }
    free(many);
    free(fat);
    CHECK(peak - before < 100, "RSS %ld MiB -> %ld MiB over 8 multipart requests of 7 MiB",
          before, peak);
    CHECK(health_ok(d->port), "/health after the multipart requests");
}

/* /classify with a JPEG over the decode budget: 400 naming the scans. */
static void test_progressive(int port)
{
    size_t len;
    /* 4096 x 4096 = the default pixel limit (16M), 379 scans */
    uint8_t *jpg = make_progressive(4096, 4096, 1, &len);
    const char *hdr[] = {"Content-Type: image/jpeg", NULL};
    sh_resp r;
    sh_http(port, "POST", "/classify", hdr, jpg, len, &r);
    CHECK(r.status == 400 && r.body && strstr((char *)r.body, "scans"),
          "a JPEG of 379 scans over 4096x4096: %ld %s", r.status, r.body ? (char *)r.body : "");
    sh_resp_free(&r);
    free(jpg);
}

/* One /classify of a big image on its own thread, for test_decode_pool. */
typedef struct {
    int port;
    const uint8_t *jpg;
    size_t len;
    long status;
    double end;
} classify_call;

static void *classify_thread(void *arg)
{
    classify_call *c = arg;
    const char *hdr[] = {"Content-Type: image/jpeg", NULL};
    sh_resp r;
    sh_http(c->port, "POST", "/classify", hdr, c->jpg, c->len, &r);
    c->status = r.status;
    c->end = sh_now();
    sh_resp_free(&r);
    return NULL;
}

/*
 * Decoding runs off the HTTP threads: with one HTTP thread and one decode
 * thread, /health sent while three 16-megapixel JPEGs are being decoded
 * one after another is answered before the last of them (decoded on the
 * HTTP thread, it would wait for all three). An order, not a duration.
 */
static void test_decode_pool(void)
{
    sh_daemon d;
    const char *args[] = {"--jobs-dir", TMP, "--threads", "1", NULL};
    if (sh_start(&d, "pool", args, 60)) {
        CHECK(0, "the one-thread daemon starts");
        return;
    }
    size_t len;
    uint8_t *jpg = make_progressive(4096, 4096, 0, &len);
    classify_call calls[3];
    pthread_t tid[3];
    for (int i = 0; i < 3; i++) {
        calls[i] = (classify_call){d.port, jpg, len, 0, 0};
        pthread_create(&tid[i], NULL, classify_thread, &calls[i]);
    }
    usleep(300 * 1000); /* the bodies are in, the decodes under way */
    int ok = health_ok(d.port);
    double health_end = sh_now(), last = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(tid[i], NULL);
        last = calls[i].end > last ? calls[i].end : last;
        CHECK(calls[i].status == 200, "a 4096x4096 progressive JPEG is classified (%ld)",
              calls[i].status);
    }
    CHECK(ok && health_end < last,
          "/health is answered while the decode thread works (%.2f s before the last decode)",
          last - health_end);
    free(jpg);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "the one-thread daemon stops cleanly");
}

/* ---------------------------------------------------------------- slow clients */

/* n connections that send a partial request line and then nothing. */
static void open_slow(int port, int *fds, int n, const char *start)
{
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect(port);
        if (fds[i] >= 0)
            send_all(fds[i], start, strlen(start));
    }
}

/* Whether the server closed fd within timeout_s (recv gives 0 or a reset). */
static int closed_by_server(int fd, double timeout_s)
{
    char buf[4096];
    double end = sh_now() + timeout_s;
    while (sh_now() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

static void test_slow_clients(void)
{
    sh_daemon d;
    const char *args[] = {"--jobs-dir", TMP, "--header-timeout", "2", "--min-rate", "4K",
                          "--per-ip-limit", "8", "--connection-limit", "32", NULL};
    if (sh_start(&d, "slow", args, 60)) {
        CHECK(0, "the slow-clients daemon starts");
        return;
    }
    /* 40 slowloris connections: more than both limits */
    int fds[40];
    open_slow(d.port, fds, 40, "GET /health HTTP/1.1\r\nHost: x\r\nX-");
    int ok = 0;
    for (int i = 0; i < 5; i++)
        ok += health_ok(d.port);
    CHECK(ok == 5, "/health answers with 40 slow connections open (%d of 5)", ok);
    int closed = 0;
    for (int i = 0; i < 40; i++)
        closed += fds[i] >= 0 && closed_by_server(fds[i], 8);
    CHECK(closed == 40, "every slow connection is closed by the header deadline (%d of 40)",
          closed);
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0)
            close(fds[i]);

    /* idle keep-alive connections up to the per-address limit */
    static const char ka[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    int kfd[8];
    for (int i = 0; i < 8; i++) {
        kfd[i] = tcp_connect(d.port);
        char buf[1024];
        if (kfd[i] >= 0 && send_all(kfd[i], ka, sizeof ka - 1) == 0)
            recv(kfd[i], buf, sizeof buf, 0);
    }
    usleep(100 * 1000);
    CHECK(health_ok(d.port), "/health gets in past 8 idle keep-alive connections (limit 8)");
    for (int i = 0; i < 8; i++)
        if (kfd[i] >= 0)
            close(kfd[i]);

    /* a body below the minimum rate */
    int fd = tcp_connect(d.port);
    static const char slow_body[] = "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                    "image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8";
    send_all(fd, slow_body, sizeof slow_body - 1);
    double t0 = sh_now();
    int gone = 0;
    while (!gone && sh_now() - t0 < 15) {
        if (send_all(fd, "\xff", 1))
            gone = 1;
        else
            gone = closed_by_server(fd, 1);
    }
    CHECK(gone, "a body at a byte a second is closed (min rate 4K/s after 2 s)");
    close(fd);
    CHECK(health_ok(d.port), "/health after the slow clients");
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "the slow-clients daemon stops cleanly");
}

/* ---------------------------------------------------------------- the front */

/* One raw request sent whole; the whole answer (headers and body) in out,
 * and how long the server took to close. Returns the status, 0 if none. */
static int raw_answer(int port, const void *req, size_t len, char *out, size_t outsz,
                      double *secs)
{
    int fd = tcp_connect(port), status = 0;
    out[0] = '\0';
    if (fd < 0)
        return 0;
    double t0 = sh_now();
    send_all(fd, req, len);
    read_until_close(fd, out, outsz, 20);
    *secs = sh_now() - t0;
    close(fd);
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

/* The number of descriptors the daemon has open, -1 if unknown. */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    int n = 0;
    if (!dir)
        return -1;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* An 8x8 PPM for /classify, in ppm (at least 256 bytes); its length. */
static size_t tiny_ppm(char *ppm)
{
    int h = sprintf(ppm, "P6\n8 8\n255\n");
    for (int i = 0; i < 8 * 8 * 3; i++)
        ppm[h + i] = (char)(i * 37);
    return (size_t)h + 8 * 8 * 3;
}

/* The heads libmicrohttpd would answer itself (with HTML), and a few more. */
static const struct {
    const char *what;
    const char *req;
    int status;
} front_bad[] = {
    {"a garbage request line", "GARBAGE\r\n\r\n", 400},
    {"HTTP/2.0", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    {"an HTTP/0.9-style line", "GET /health\r\n", 505},
    {"a lower-case version", "GET /health http/1.1\r\nHost: x\r\n\r\n", 400},
    {"a bare CR in the request line", "GET /health HTTP/1.1\rHost: x\r\n\r\n", 400},
    {"a header line without a colon", "GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400},
    {"a space before the colon", "GET /health HTTP/1.1\r\nHost : x\r\n\r\n", 400},
    {"a folded header line", "GET /health HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
    {"a control character in a value", "GET /health HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n", 400},
    {"two different Content-Length", "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                     "Content-Length: 5\r\n\r\nabcde", 400},
    {"a Content-Length that is not a number", "POST /classify HTTP/1.1\r\nHost: x\r\n"
                                              "Content-Length: 5x\r\n\r\nabcde", 400},
    {"Transfer-Encoding gzip", "POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                               "\r\nabc", 501},
};

/* Heads over the limits: a header of 40 KiB and of 200 KiB (past
 * libmicrohttpd's own 128 KiB), a request line of 40 KiB, too many header
 * lines or query parameters. */
static void test_front_sizes(int port)
{
    size_t big = 200 * 1024;
    char *req = malloc(big + 256), *ans = malloc(1 << 16);
    double secs;
    static const size_t sizes[] = {40 * 1024, 200 * 1024};
    for (int i = 0; i < 2; i++) {
        int h = sprintf(req, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(req + h, 'a', sizes[i]);
        int t = sprintf(req + h + sizes[i], "\r\n\r\n");
        int st = raw_answer(port, req, (size_t)h + sizes[i] + (size_t)t, ans, 1 << 16, &secs);
        const char *b = strstr(ans, "\r\n\r\n");
        CHECK(st == 431 && b && is_json_error(b + 4), "a %zu KiB header: %d (want 431 and JSON)",
              sizes[i] / 1024, st);
    }
    int h = sprintf(req, "GET /");
    memset(req + h, 'a', 40 * 1024);
    int t = sprintf(req + h + 40 * 1024, " HTTP/1.1\r\nHost: x\r\n\r\n");
    int st = raw_answer(port, req, (size_t)h + 40 * 1024 + (size_t)t, ans, 1 << 16, &secs);
    const char *b = strstr(ans, "\r\n\r\n");
    CHECK(st == 414 && b && is_json_error(b + 4), "a 40 KiB request line: %d (want 414 and JSON)",
          st);
    /* 2,000 header lines and 2,000 query parameters (within 32 KiB): libmicrohttpd
     * ran out of its pool (431 HTML, and no answer at all for the parameters) */
    h = sprintf(req, "GET /health HTTP/1.1\r\n");
    for (int i = 0; i < 2000; i++)
        h += sprintf(req + h, "a:b\r\n");
    h += sprintf(req + h, "\r\n");
    st = raw_answer(port, req, (size_t)h, ans, 1 << 16, &secs);
    b = strstr(ans, "\r\n\r\n");
    CHECK(st == 431 && b && is_json_error(b + 4), "2,000 header lines: %d (want 431 and JSON)", st);
    h = sprintf(req, "GET /health?");
    for (int i = 0; i < 2000; i++)
        h += sprintf(req + h, "a=1&");
    h += sprintf(req + h, " HTTP/1.1\r\nHost: x\r\n\r\n");
    st = raw_answer(port, req, (size_t)h, ans, 1 << 16, &secs);
    b = strstr(ans, "\r\n\r\n");
    CHECK(st == 400 && b && is_json_error(b + 4), "2,000 query parameters: %d (want 400 and JSON)",
          st);
    free(req);
    free(ans);
}

/* A head that stops (slowloris: 408 after --header-timeout 2) or is cut
 * by the client's shutdown (400). */
static void test_front_slow(int port)
{
    char ans[4096];
    int fd = tcp_connect(port);
    double t0 = sh_now();
    send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", 32);
    read_until_close(fd, ans, sizeof ans, 10);
    double secs = sh_now() - t0;
    close(fd);
    int st = 0;
    sscanf(ans, "HTTP/1.1 %d", &st);
    const char *b = strstr(ans, "\r\n\r\n");
    CHECK(st == 408 && b && is_json_error(b + 4) && secs > 1.5 && secs < 8,
          "a head that stops: %d after %.1f s (want 408 and JSON after about 2 s)", st, secs);
    fd = tcp_connect(port);
    send_all(fd, "GET /health HTTP/1.1\r\nHost: x\r\n", 32);
    shutdown(fd, SHUT_WR);
    read_until_close(fd, ans, sizeof ans, 10);
    close(fd);
    st = 0;
    sscanf(ans, "HTTP/1.1 %d", &st);
    b = strstr(ans, "\r\n\r\n");
    CHECK(st == 400 && b && is_json_error(b + 4), "a head cut by the client: %d (want 400)", st);
}

/* Count of answers in a stream (status lines; the bodies here are JSON
 * without that text, and a body does not end in a newline). */
static int answers_in(const char *s)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, "HTTP/1.1 ")); p++)
        n++;
    return n;
}

/* Good requests: closed after the answer (the default), HTTP/1.0, a
 * leading empty line, pipelined, Expect: 100-continue, a chunked body. */
static void test_front_good(int port)
{
    static char ans[1 << 16];
    double secs;
    static const char ka[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    int st = raw_answer(port, ka, sizeof ka - 1, ans, sizeof ans, &secs);
    CHECK(st == 200 && strstr(ans, "\r\nConnection: close\r\n") && secs < 5,
          "a keep-alive request: 200 with Connection: close, closed after %.1f s", secs);
    static const char v10[] = "\r\nGET /health HTTP/1.0\r\n\r\n";
    st = raw_answer(port, v10, sizeof v10 - 1, ans, sizeof ans, &secs);
    CHECK(st == 200, "HTTP/1.0 after an empty line: %d", st);
    static const char two[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /models HTTP/1.1\r\nHost: x\r\n\r\n";
    st = raw_answer(port, two, sizeof two - 1, ans, sizeof ans, &secs);
    CHECK(st == 200 && answers_in(ans) == 1,
          "two pipelined requests: the first answered (%d), then the close (%d answers)", st,
          answers_in(ans));

    char ppm[512], req[1024];
    size_t plen = tiny_ppm(ppm);
    int h = sprintf(req, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/x-portable-"
                         "pixmap\r\nContent-Length: %zu\r\nExpect: 100-continue\r\n\r\n", plen);
    int fd = tcp_connect(port);
    send_all(fd, req, (size_t)h);
    char cont[256] = "";
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n = poll(&p, 1, 5000) > 0 ? recv(fd, cont, sizeof cont - 1, 0) : -1;
    cont[n > 0 ? n : 0] = '\0';
    send_all(fd, ppm, plen);
    read_until_close(fd, ans, sizeof ans, 20);
    close(fd);
    CHECK(strstr(cont, "HTTP/1.1 100") && strstr(ans, "HTTP/1.1 200") && strstr(ans, "\"top\""),
          "Expect: 100-continue: 100, then the body, then 200 (%.40s / %.40s)", cont, ans);

    h = sprintf(req, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/x-portable-pixmap"
                     "\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", (size_t)100);
    memcpy(req + h, ppm, 100);
    h += 100;
    h += sprintf(req + h, "\r\n%zx\r\n", plen - 100);
    memcpy(req + h, ppm + 100, plen - 100);
    h += (int)(plen - 100);
    h += sprintf(req + h, "\r\n0\r\n\r\n");
    st = raw_answer(port, req, (size_t)h, ans, sizeof ans, &secs);
    CHECK(st == 200 && strstr(ans, "\"top\""), "a chunked body in two chunks: %d", st);
}

/* Every malformed kind, repeated: JSON each time, no memory or descriptor kept. */
static void test_front_load(sh_daemon *d)
{
    char body[4096];
    int before_fd = fd_count(d->pid), ok = 0, total = 0;
    long before = rss_mib(d->pid);
    for (int round = 0; round < 100; round++)
        for (size_t i = 0; i < sizeof front_bad / sizeof front_bad[0]; i++, total++)
            ok += raw_request(d->port, front_bad[i].req, strlen(front_bad[i].req), body,
                              sizeof body) == front_bad[i].status && is_json_error(body);
    sleep(3); /* the lingering closes end after 2 s */
    long after = rss_mib(d->pid);
    int after_fd = fd_count(d->pid);
    CHECK(ok == total, "%d of %d repeated malformed heads answered with their JSON error", ok,
          total);
    CHECK(after - before < 20, "RSS %ld MiB -> %ld MiB over %d malformed heads", before, after,
          total);
    CHECK(after_fd <= before_fd + 2, "descriptors %d -> %d over %d malformed heads", before_fd,
          after_fd, total);
    CHECK(health_ok(d->port), "/health after the malformed heads");
}

static void test_front(void)
{
    sh_daemon d;
    const char *args[] = {"--jobs-dir", TMP, "--header-timeout", "2", NULL};
    if (sh_start(&d, "front", args, 60)) {
        CHECK(0, "the front daemon starts");
        return;
    }
    char body[4096];
    for (size_t i = 0; i < sizeof front_bad / sizeof front_bad[0]; i++) {
        int st = raw_request(d.port, front_bad[i].req, strlen(front_bad[i].req), body, sizeof body);
        CHECK(st == front_bad[i].status && is_json_error(body), "%s: %d %s (want %d and JSON)",
              front_bad[i].what, st, body, front_bad[i].status);
    }
    test_front_sizes(d.port);
    test_front_slow(d.port);
    test_front_good(d.port);
    test_front_load(&d);
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "the front daemon stops cleanly");

    /* --keep-alive 1: two pipelined requests, two answers on one connection */
    const char *ka[] = {"--jobs-dir", TMP, "--keep-alive", "1", NULL};
    if (sh_start(&d, "keepalive", ka, 60)) {
        CHECK(0, "the keep-alive daemon starts");
        return;
    }
    int fd = tcp_connect(d.port);
    static const char two[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static char ans[8192];
    send_all(fd, two, sizeof two - 1);
    read_until_close(fd, ans, sizeof ans, 10);
    close(fd);
    CHECK(answers_in(ans) == 2, "--keep-alive 1: two pipelined requests, %d answers",
          answers_in(ans));
    CHECK(sh_stop(&d, SIGTERM, 30) == 0, "the keep-alive daemon stops cleanly");
}

/* ---------------------------------------------------------------- load */

/* Every bad kind, repeated, against one daemon: RSS bounded, /health up. */
static void test_load(sh_daemon *d)
{
    size_t len, jlen;
    char *tiny = multipart_tiny(20000, 1, &len);
    uint8_t *jpg = make_progressive(2048, 2048, 1, &jlen);
    const char *hdr[] = {"Content-Type: image/jpeg", NULL};
    long before = rss_mib(d->pid), peak = before;
    int kinds[4] = {0, 0, 0, 0}, rounds = 10;
    for (int i = 0; i < rounds; i++) {
        char body[4096];
        kinds[0] += post_multipart(d->port, tiny, len) == 413;
        sh_resp r;
        sh_http(d->port, "POST", "/classify", hdr, jpg, jlen, &r);
        kinds[1] += r.status == 400;
        sh_resp_free(&r);
        static const char bad[] = "GET /%ff%0a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        kinds[2] += raw_request(d->port, bad, sizeof bad - 1, body, sizeof body) == 404 &&
                    is_json_error(body);
        int fds[10];
        open_slow(d->port, fds, 10, "GET / HTTP/1.1\r\n");
        kinds[3] += health_ok(d->port);
        for (int k = 0; k < 10; k++)
            if (fds[k] >= 0)
                close(fds[k]);
        long rs = rss_mib(d->pid);
        peak = rs > peak ? rs : peak;
    }
    free(tiny);
    free(jpg);
    CHECK(kinds[0] == rounds && kinds[1] == rounds && kinds[2] == rounds && kinds[3] == rounds,
          "every request of %d rounds answered as expected: multipart %d, progressive %d, "
          "non-UTF-8 %d, /health beside slow connections %d",
          rounds, kinds[0], kinds[1], kinds[2], kinds[3]);
    CHECK(peak - before < 150, "RSS %ld MiB -> peak %ld MiB over the load rounds", before, peak);
}

int main(void)
{
    if (!sh_program()) {
        fprintf(stderr, "test_hardening: ADVJPGD is not set (tests/meson.build sets it)\n");
        return 1;
    }
    snprintf(TMP, sizeof TMP, "%s", tu_tmpdir());
    sh_init(TMP);
    test_decode_budget();

    sh_daemon d;
    const char *args[] = {"--jobs-dir", TMP, "--max-body", "8M", NULL};
    if (sh_start(&d, "main", args, 60) == 0) {
        test_answers(&d);
        test_multipart_memory(&d);
        test_progressive(d.port);
        test_load(&d);
        CHECK(sh_stop(&d, SIGTERM, 30) == 0, "the main daemon stops cleanly");
    } else {
        CHECK(0, "the main daemon starts");
    }
    sh_daemon s;
    const char *small[] = {"--jobs-dir", TMP, "--max-body", "1M", NULL};
    if (sh_start(&s, "small", small, 60) == 0) {
        test_413(s.port);
        CHECK(sh_stop(&s, SIGTERM, 30) == 0, "the 1M daemon stops cleanly");
    } else {
        CHECK(0, "the 1M daemon starts");
    }
    test_slow_clients();
    test_decode_pool();
    test_front();
    return tu_done();
}
