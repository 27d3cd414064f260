#include "server_harness.h"

#include <curl/curl.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_CHILDREN 32

static char tmp_root[4000];
static volatile pid_t children[MAX_CHILDREN];

double sh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void kill_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

static void cleanup(void)
{
    kill_children();
    if (*tmp_root) {
        tu_rmtree(tmp_root);
        *tmp_root = '\0';
    }
}

static void on_fatal_signal(int sig)
{
    fprintf(stderr, "test_server: signal %d: killing the daemons, removing %s\n", sig, tmp_root);
    cleanup();
    _exit(1);
}

void sh_init(const char *tmpdir)
{
    snprintf(tmp_root, sizeof tmp_root, "%s", tmpdir);
    atexit(cleanup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *sh_program(void)
{
    const char *p = getenv("ADVJPGD");
    return p && *p ? p : NULL;
}

static void remember(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
}

static void forget(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

/* fork + exec advjpgd with args; stdout/stderr to the two files. */
static pid_t spawn(const char *const *args, const char *out_path, const char *err_path)
{
    const char *prog = sh_program();
    if (!prog)
        return -1;
    const char *argv[64];
    int n = 0;
    argv[n++] = prog;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = strcmp(out_path, err_path) == 0 ? o : open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    remember(pid);
    return pid;
}

/* Waits for pid up to timeout_s; returns the status code as sh_stop does. */
static int wait_exit(pid_t pid, double timeout_s)
{
    double end = sh_now() + timeout_s;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget(pid);
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 1000 + WTERMSIG(st);
        }
        if (r < 0 && errno != EINTR) {
            forget(pid);
            return -1;
        }
        if (sh_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            forget(pid);
            return -1;
        }
        usleep(10000);
    }
}

static char *read_text(const char *path)
{
    size_t len = 0;
    uint8_t *b = tu_read_file(path, &len);
    char *s = malloc(len + 1);
    if (!s) {
        free(b);
        return NULL;
    }
    if (b)
        memcpy(s, b, len);
    s[b ? len : 0] = '\0';
    free(b);
    return s;
}

char *sh_log(const sh_daemon *d)
{
    return read_text(d->log_path);
}

int sh_run(const char *const *args, double timeout_s, char **out, char **err)
{
    char o[4200], e[4200];
    static int seq;
    snprintf(o, sizeof o, "%s/run%d.out", tmp_root, seq);
    snprintf(e, sizeof e, "%s/run%d.err", tmp_root, seq++);
    pid_t pid = spawn(args, o, e);
    if (pid < 0)
        return -1;
    int rc = wait_exit(pid, timeout_s);
    if (out)
        *out = read_text(o);
    if (err)
        *err = read_text(e);
    return rc;
}

int sh_start(sh_daemon *d, const char *name, const char *const *args, double timeout_s)
{
    char port_path[4200];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->log_path, sizeof d->log_path, "%s/%s.log", tmp_root, name);
    snprintf(port_path, sizeof port_path, "%s/%s.port", tmp_root, name);
    unlink(port_path);
    const char *all[64];
    int n = 0;
    all[n++] = "--listen";
    all[n++] = "127.0.0.1:0";
    all[n++] = "--port-file";
    all[n++] = port_path;
    for (int i = 0; args && args[i] && n < 63; i++)
        all[n++] = args[i];
    all[n] = NULL;
    d->pid = spawn(all, d->log_path, d->log_path);
    if (d->pid < 0) {
        fprintf(stderr, "cannot start %s (ADVJPGD=%s)\n", name, sh_program() ? sh_program() : "unset");
        d->pid = 0;
        return -1;
    }
    double end = sh_now() + timeout_s;
    const char *why = "timed out";
    while (sh_now() < end) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            forget(d->pid);
            d->pid = 0;
            why = "exited";
            break;
        }
        if (!d->port) {
            char *p = read_text(port_path);
            if (p && *p && strchr(p, '\n'))
                d->port = atoi(p);
            free(p);
        }
        if (d->port) {
            sh_resp r;
            if (sh_http(d->port, "GET", "/health", NULL, NULL, 0, &r) == 0) {
                char retry[16];
                if (r.status == 200) {
                    sh_resp_free(&r);
                    return 0;
                }
                if (r.status == 503 && sh_header(&r, "Retry-After", retry, sizeof retry) &&
                    strstr((char *)r.body, "{\"error\":\"model is loading\"}"))
                    d->loading_503++;
                else
                    d->other_non_200++;
            }
            sh_resp_free(&r);
        }
        usleep(20000);
    }
    char *log = sh_log(d);
    fprintf(stderr, "advjpgd %s did not become healthy (%s); its log:\n%s\n", name, why,
            log ? log : "");
    free(log);
    if (d->pid) {
        kill(d->pid, SIGKILL);
        wait_exit(d->pid, 10);
        d->pid = 0;
    }
    return -1;
}

int sh_stop(sh_daemon *d, int sig, double timeout_s)
{
    if (!d->pid)
        return -1;
    kill(d->pid, sig);
    int rc = wait_exit(d->pid, timeout_s);
    d->pid = 0;
    return rc;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} growbuf;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    growbuf *g = arg;
    size_t add = size * n;
    if (g->len + add + 1 > g->cap) {
        size_t cap = (g->len + add + 1) * 2;
        uint8_t *nb = realloc(g->buf, cap);
        if (!nb)
            return 0;
        g->buf = nb;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, p, add);
    g->len += add;
    g->buf[g->len] = '\0';
    return add;
}

typedef struct {
    const uint8_t *data;
    size_t len, off;
} reader;

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    reader *r = arg;
    size_t want = size * n, left = r->len - r->off;
    if (want > left)
        want = left;
    if (want > 1000) /* small pieces: several chunks */
        want = 1000;
    memcpy(p, r->data + r->off, want);
    r->off += want;
    return want;
}

static int perform(CURL *c, int port, const char *path, struct curl_slist *hl, sh_resp *r)
{
    growbuf body = {0}, head = {0};
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    memset(r, 0, sizeof *r);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
    if (!body.buf) {
        body.buf = calloc(1, 1);
    }
    r->body = body.buf;
    r->len = body.len;
    r->headers = head.buf ? (char *)head.buf : calloc(1, 1);
    return cc == CURLE_OK ? 0 : -1;
}

static struct curl_slist *header_list(const char *const *headers)
{
    /* no "Expect: 100-continue" round trip: the tests want plain requests */
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    return hl;
}

int sh_http(int port, const char *method, const char *path, const char *const *headers,
            const void *body, size_t len, sh_resp *r)
{
    CURL *c = curl_easy_init();
    if (!c) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    struct curl_slist *hl = header_list(headers);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    int rc = perform(c, port, path, hl, r);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}

int sh_http_chunked(int port, const char *path, const char *const *headers, const void *body,
                    size_t len, sh_resp *r)
{
    CURL *c = curl_easy_init();
    if (!c) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    struct curl_slist *hl = header_list(headers);
    hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    reader rd = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &rd);
    int rc = perform(c, port, path, hl, r);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}

int sh_http_multipart(int port, const char *path, const char *field, const void *data, size_t len,
                      const char *type, sh_resp *r)
{
    CURL *c = curl_easy_init();
    if (!c) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "comment");
    curl_mime_data(p, "a field the server ignores", CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(m);
    curl_mime_name(p, field);
    curl_mime_data(p, data, len);
    curl_mime_filename(p, "upload.bin");
    curl_mime_type(p, type);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    struct curl_slist *hl = header_list(NULL);
    int rc = perform(c, port, path, hl, r);
    curl_slist_free_all(hl);
    curl_mime_free(m);
    curl_easy_cleanup(c);
    return rc;
}

const char *sh_header(const sh_resp *r, const char *name, char *buf, size_t size)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(p + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= size)
                vl = size - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

json_t *sh_json(const sh_resp *r)
{
    return r->body ? json_loadb((const char *)r->body, r->len, 0, NULL) : NULL;
}

void sh_resp_free(sh_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

uint8_t *sh_base64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4)
        return NULL;
    uint8_t *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char ch = s[i + k];
            int d;
            if (ch >= 'A' && ch <= 'Z') d = ch - 'A';
            else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 26;
            else if (ch >= '0' && ch <= '9') d = ch - '0' + 52;
            else if (ch == '+') d = 62;
            else if (ch == '/') d = 63;
            else if (ch == '=' && i + 4 == n && k >= 2) { d = 0; pad++; }
            else { free(out); return NULL; }
            v = v << 6 | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(v >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)v;
    }
    *len = o;
    return out;
}

const char *sh_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

double sh_jnum(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

long sh_jint(const json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

void sh_test_image(img_rgb *im, int w, int h, uint64_t seed)
{
    if (img_alloc(im, w, h)) {
        fprintf(stderr, "img_alloc failed\n");
        exit(1);
    }
    uint64_t s = seed * 7919 + 1;
    double fx = 0.05 + 0.3 * tu_uniform(&s, 0, 1), fy = 0.05 + 0.3 * tu_uniform(&s, 0, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * sin(fx * x * (c + 1) + fy * y + seed + c) +
                           tu_uniform(&s, -25, 25);
                im->px[(y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

json_t *sh_get_json(int port, const char *path, long *status)
{
    sh_resp r;
    sh_http(port, "GET", path, NULL, NULL, 0, &r);
    *status = r.status;
    json_t *j = sh_json(&r);
    sh_resp_free(&r);
    return j;
}

long sh_post_evaluate(int port, const char *body, char id[17], char *msg, size_t msgsz)
{
    const char *headers[] = {"Content-Type: application/json", NULL};
    sh_resp r;
    sh_http(port, "POST", "/evaluate", headers, body, strlen(body), &r);
    json_t *j = sh_json(&r);
    if (id)
        snprintf(id, 17, "%s", r.status == 202 ? sh_jstr(j, "id") : "");
    if (msg)
        snprintf(msg, msgsz, "%s", r.status == 202 ? "" : sh_jstr(j, "error"));
    long st = r.status;
    json_decref(j);
    sh_resp_free(&r);
    return st;
}

json_t *sh_wait_job(int port, const char *id, double timeout_s)
{
    char path[64];
    snprintf(path, sizeof path, "/jobs/%s", id);
    double end = sh_now() + timeout_s;
    json_t *j = NULL;
    while (sh_now() < end) {
        long st;
        json_decref(j);
        j = sh_get_json(port, path, &st);
        const char *s = sh_jstr(j, "status");
        if (!strcmp(s, "done") || !strcmp(s, "failed") || !strcmp(s, "canceled"))
            return j;
        usleep(20000);
    }
    return j;
}
