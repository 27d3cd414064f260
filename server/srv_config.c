#include "srv_config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "status.h"

#ifndef ADVJPG_VERSION
#define ADVJPG_VERSION "unknown"
#endif
#ifndef ADVJPG_BUILD_ROOT
#define ADVJPG_BUILD_ROOT ""
#endif
#ifndef ADVJPG_SOURCE_CONFIG_DIR
#define ADVJPG_SOURCE_CONFIG_DIR "config"
#endif
#ifndef ADVJPG_INSTALL_CONFIG_DIR
#define ADVJPG_INSTALL_CONFIG_DIR "/etc/advjpg"
#endif
#ifndef ADVJPG_INSTALL_DATA_DIR
#define ADVJPG_INSTALL_DATA_DIR "/usr/share/advjpg"
#endif

enum opt_id {
    O_CONFIG, O_LISTEN, O_THREADS, O_CONN_TIMEOUT, O_HEADER_TIMEOUT, O_MIN_RATE, O_CONN_LIMIT,
    O_PER_IP_LIMIT, O_KEEP_ALIVE, O_PORT_FILE,
    O_TOKEN, O_TOKEN_FILE,
    O_MODEL, O_WEIGHTS, O_LABELS, O_PREPROCESS,
    O_MAX_BODY, O_MAX_PIXELS, O_TIMEOUT,
    O_MAX_BATCH, O_BATCH_DELAY, O_QUEUE_SIZE,
    O_DATA_ROOT, O_JOBS_DIR, O_JOB_BATCH, O_JOB_BATCH_MS,
    O_RUN, O_OUT, O_SHARD,
    O_HELP, O_VERSION,
    O_COUNT
};

/* Value kinds, for parsing and for relative-path resolution. */
enum opt_kind { K_STR, K_PATH, K_INT, K_SIZE, K_FLAG };

typedef struct {
    const char *name;    /* long option and INI key */
    const char *section; /* INI section, NULL: command line only */
    enum opt_kind kind;
    long lo, hi;         /* K_INT / K_SIZE bounds */
    const char *arg;     /* metavariable for --help */
    const char *help;
    const char *def;     /* the default as the option's text, NULL: none (or computed) */
    const char *def_note; /* after the default in --help (": as many as ...") */
    size_t target;       /* offsetof(srv_config, field) + 1: an int (K_INT), size_t
                          * (K_SIZE) or char * (K_STR, K_PATH); 0: set by apply_opt */
} opt_def;

/* The field an option sets (int, size_t or char * by the option's kind). */
#define AT(field) .target = offsetof(srv_config, field) + 1

static const opt_def OPTS[O_COUNT] = {
    [O_CONFIG] = {"config", NULL, K_PATH, 0, 0, "FILE",
                  "INI config file (default: config/advjpgd.conf in a build tree, else "
                  ADVJPG_INSTALL_CONFIG_DIR "/advjpgd.conf)"},
    [O_LISTEN] = {"listen", "server", K_STR, 0, 0, "ADDR:PORT",
                  "where to listen; port 0 picks a free port",
        .def = "127.0.0.1:8080", AT(listen)},
    [O_THREADS] = {"threads", "server", K_INT, 1, 64, "N",
                   "threads that decode and encode images, and as many HTTP threads "
                   "(default: cores, 2..4)",
        AT(threads)},
    [O_CONN_TIMEOUT] = {"connection-timeout", "server", K_INT, 1, 86400, "SECONDS",
                        "close a connection idle this long",
        .def = "30", AT(conn_timeout_s)},
    [O_HEADER_TIMEOUT] = {"header-timeout", "server", K_INT, 1, 3600, "SECONDS",
                          "a connection must send a request's headers within this of its "
                          "start or its previous answer, and its body gets this long before "
                          "--min-rate applies",
        .def = "10", AT(header_timeout_s)},
    [O_MIN_RATE] = {"min-rate", "server", K_SIZE, 1, (long)1 << 30, "BYTES",
                    "slowest body upload, in bytes per second after --header-timeout; "
                    "slower connections are closed",
        .def = "4K", AT(min_rate)},
    [O_CONN_LIMIT] = {"connection-limit", "server", K_INT, 1, 100000, "N",
                      "open connections at most; when full, a new one closes the oldest "
                      "connection that is waiting for a request",
        .def = "256", AT(conn_limit)},
    [O_PER_IP_LIMIT] = {"per-ip-limit", "server", K_INT, 1, 100000, "N",
                        "open connections per client address at most, the same way (the "
                        "default lets one address keep a full --queue-size of requests in "
                        "flight)",
        .def = "64", AT(per_ip_limit)},
    [O_KEEP_ALIVE] = {"keep-alive", "server", K_INT, 0, 1, "0|1",
                      "1: keep connections open between requests (faster for many small "
                      "requests, but only a connection's first request head is checked, so a "
                      "later malformed one may get libmicrohttpd's HTML error); 0: close "
                      "after every answer",
        .def = "0", AT(keep_alive)},
    [O_PORT_FILE] = {"port-file", "server", K_PATH, 0, 0, "FILE",
                     "write the bound port number to FILE once listening",
        AT(port_file)},
    [O_TOKEN] = {"token", "server", K_STR, 0, 0, "TOKEN",
                 "require 'Authorization: Bearer TOKEN' on every endpoint but /health and "
                 "/livez"},
    [O_TOKEN_FILE] = {"token-file", "server", K_PATH, 0, 0, "FILE",
                      "read that token from the first line of FILE"},
    [O_MODEL] = {"model", "model", K_STR, 0, 0, "NAME|FILE.json|FILE.onnx",
                 "built-in model (" MODEL_DEFAULT_NAME ", overfeat-fast, overfeat-accurate), "
                 "a spec file or an ONNX model",
        .def = MODEL_DEFAULT_NAME, AT(model)},
    [O_WEIGHTS] = {"weights", "model", K_PATH, 0, 0, "FILE",
                   "weight file of that model (required unless the model is the default one)",
        AT(weights)},
    [O_PREPROCESS] = {"preprocess", "model", K_PATH, 0, 0, "FILE.json",
                      "an ONNX model's preprocessing (default: FILE.json beside it, else "
                      "torchvision's)",
        AT(preprocess)},
    [O_LABELS] = {"labels", "model", K_PATH, 0, 0, "FILE",
                  "class names, one per line, in output order (optional)",
        AT(labels)},
    [O_MAX_BODY] = {"max-body", "limits", K_SIZE, 1, (long)1 << 40, "BYTES",
                    "largest request body; larger ones get 413",
        .def = "32M", AT(max_body)},
    [O_MAX_PIXELS] = {"max-pixels", "limits", K_SIZE, 1, (long)1 << 40, "N",
                      "largest width x height of an image; larger ones get 400",
        .def = "16M", AT(max_pixels)},
    [O_TIMEOUT] = {"timeout", "limits", K_INT, 1, 86400, "SECONDS",
                   "a request still queued after this gets 503",
        .def = "60", AT(timeout_s)},
    [O_MAX_BATCH] = {"max-batch", "batching", K_INT, 1, 256, "N",
                     "images per forward pass at most",
        .def = "16", AT(max_batch)},
    [O_BATCH_DELAY] = {"batch-delay-ms", "batching", K_INT, 0, 10000, "MS",
                       "how long a request waits for others to share its batch",
        .def = "2", AT(batch_delay_ms)},
    [O_QUEUE_SIZE] = {"queue-size", "batching", K_INT, 1, 1000000, "N",
                      "requests waiting for the model, and images waiting for a decode "
                      "thread, at most; more get 503",
        .def = "64", AT(queue_size)},
    [O_DATA_ROOT] = {"data-root", "jobs", K_PATH, 0, 0, "DIR",
                     "the only folder tree evaluation jobs may read (default: none)",
        AT(data_root)},
    [O_JOBS_DIR] = {"jobs-dir", "jobs", K_PATH, 0, 0, "DIR",
                    "where evaluation jobs keep their state (default "
                    "$XDG_STATE_HOME/advjpg/jobs or ~/.local/state/advjpg/jobs)",
        AT(jobs_dir)},
    [O_JOB_BATCH] = {"job-batch", "jobs", K_INT, 0, 256, "N",
                     "images per chunk of an evaluation job; an FGSM job's chunk runs pass by "
                     "pass (interactive requests wait at most one pass), an iterative "
                     "attack's whole (they wait at most one chunk)",
        .def = "0", .def_note = ": --max-batch for FGSM, else as many as take about --job-batch-ms",
        AT(job_batch)},
    [O_JOB_BATCH_MS] = {"job-batch-ms", "jobs", K_INT, 1, 600000, "MS",
                        "with --job-batch 0, aim for chunks of an iterative attack of about "
                        "this long",
        .def = "250", AT(job_batch_ms)},
    [O_RUN] = {"run", NULL, K_PATH, 0, 0, "REQUEST.json",
               "batch mode: run the /evaluate body REQUEST.json as one job without HTTP (its "
               "paths under --data-root), its files in --out, progress on stderr, then exit: 0 "
               "done, 1 failed or stopped, 2 a bad request, 3 a disk error; run again on the "
               "same --out to resume",
        AT(run)},
    [O_OUT] = {"out", NULL, K_PATH, 0, 0, "DIR",
               "batch mode: the job's folder (request.json, rows.csv, status.json, result.json, "
               "figure3.svg, figure4.svg), made if missing",
        AT(out)},
    [O_SHARD] = {"shard", NULL, K_STR, 0, 0, "I/N|auto/N",
                 "batch mode: evaluate only shard I of N of the request's images (overrides its "
                 "\"shard\"); auto takes I from $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX",
        AT(shard)},
    [O_HELP] = {"help", NULL, K_FLAG, 0, 0, NULL, "print this help and exit"},
    [O_VERSION] = {"version", NULL, K_FLAG, 0, 0, NULL, "print the version and exit"},
};

void srv_config_usage(FILE *out)
{
    fprintf(out,
            "Usage: advjpgd [OPTION]...\n"
            "       advjpgd --run REQUEST.json --out DIR [--shard I/N|auto/N] [OPTION]...\n"
            "Serves an image classifier and the JPEG-vs-adversarial experiment over HTTP,\n"
            "or (--run) runs one evaluation without HTTP.\n"
            "Every option can also be set in the config file (the command line wins).\n\n");
    for (int i = 0; i < O_COUNT; i++) {
        const opt_def *o = &OPTS[i];
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-30s %s", lhs, o->help);
        if (o->def)
            fprintf(out, " (default %s%s)", o->def, o->def_note ? o->def_note : "");
        if (o->section)
            fprintf(out, " [%s]", o->section);
        fputc('\n', out);
    }
    fprintf(out,
            "\nEndpoints: POST /classify, POST /attack, POST /recompress, POST /evaluate,\n"
            "GET /jobs, GET|DELETE /jobs/ID,\n"
            "GET /jobs/ID/{result,rows,figure3.svg,figure4.svg,quality.svg,images/FILE,dct,dct.svg},\n"
            "GET /health, GET /livez, GET /models, GET /metrics, GET / (the demo page).\n"
            "Sizes take K, M, G suffixes (powers of 1024).\n"
            "Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 on a runtime\n"
            "error, 2 on a bad option or config file.\n");
}

/* ---------------------------------------------------------------- parsing */

int srv_parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return ADJ_ERR_ARG;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return ADJ_ERR_ARG;
    unsigned long long mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1ULL << 10; end++; break;
    case 'M': mul = 1ULL << 20; end++; break;
    case 'G': mul = 1ULL << 30; end++; break;
    default: break;
    }
    if (mul > 1 && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || (v && mul > ULLONG_MAX / v) || v * mul > SIZE_MAX)
        return ADJ_ERR_ARG;
    *out = (size_t)(v * mul);
    return ADJ_OK;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return ADJ_ERR_ARG;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return ADJ_ERR_ARG;
    *out = v;
    return ADJ_OK;
}

int srv_parse_listen(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    const char *h;
    size_t hl;
    if (!s)
        return ADJ_ERR_ARG;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return ADJ_ERR_ARG;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return ADJ_ERR_ARG;
        h = s;
        hl = (size_t)(colon - s);
        if (memchr(h, ':', hl)) /* bare IPv6 needs brackets */
            return ADJ_ERR_ARG;
    }
    long p;
    if (parse_int(colon + 1, 0, 65535, &p))
        return ADJ_ERR_ARG;
    if (hl == 0 || (hl == 1 && h[0] == '*')) {
        h = "0.0.0.0";
        hl = 7;
    }
    if (hl + 1 > hostsz)
        return ADJ_ERR_ARG;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return ADJ_OK;
}

/* ---------------------------------------------------------------- applying */

/* base_dir/path for a relative path from the config file; a new string. */
static char *resolve_path(const char *base_dir, const char *path)
{
    if (!base_dir || !*path || path[0] == '/')
        return strdup(path);
    size_t n = strlen(base_dir) + strlen(path) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", base_dir, path);
    return s;
}

static void set_str(char **slot, char *value)
{
    free(*slot);
    *slot = value;
}

/* --listen's value must be ADDR:PORT. */
static int check_listen(const char *s, const char *where, const char *value, char *err,
                        size_t errsz)
{
    char host[256];
    int port;
    if (!srv_parse_listen(s, host, sizeof host, &port))
        return ADJ_OK;
    return adj_fail(err, errsz, ADJ_ERR_ARG,
                    "%s: '%s' is not ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:8080, :8080)", where,
                    value);
}

/*
 * Applies option id with value to cfg. where names the origin for messages
 * ("--max-batch" or "advjpgd.conf:12: max-batch"); base_dir resolves
 * relative paths (NULL: as given).
 */
static int apply_opt(srv_config *cfg, int id, const char *value, const char *where,
                     const char *base_dir, char *err, size_t errsz)
{
    const opt_def *o = &OPTS[id];
    long iv = 0;
    size_t sv = 0;
    char *str = NULL;

    switch (o->kind) {
    case K_INT:
        if (parse_int(value, o->lo, o->hi, &iv))
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: '%s' is not an integer in %ld..%ld",
                            where, value, o->lo, o->hi);
        break;
    case K_SIZE:
        if (srv_parse_size(value, &sv) || sv < (size_t)o->lo || sv > (size_t)o->hi)
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "%s: '%s' is not a size (a number with an optional K, M or G)",
                            where, value);
        break;
    case K_STR:
        if (!*value)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: empty value", where);
        str = strdup(value);
        break;
    case K_PATH:
        if (!*value)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "%s: empty path", where);
        str = resolve_path(base_dir, value);
        break;
    case K_FLAG:
        return ADJ_OK;
    }
    if ((o->kind == K_STR || o->kind == K_PATH) && !str)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");

    if (id == O_LISTEN && check_listen(str, where, value, err, errsz)) {
        free(str);
        return ADJ_ERR_ARG;
    }
    if (o->target) {
        char *field = (char *)cfg + o->target - 1;
        if (o->kind == K_INT)
            *(int *)field = (int)iv;
        else if (o->kind == K_SIZE)
            *(size_t *)field = sv;
        else
            set_str((char **)field, str);
        return ADJ_OK;
    }
    switch (id) { /* the options that set more than one field */
    case O_CONFIG: set_str(&cfg->config_path, str); break;
    case O_TOKEN: /* the later of token / token-file wins */
        set_str(&cfg->token, str);
        set_str(&cfg->token_file, NULL);
        break;
    case O_TOKEN_FILE:
        set_str(&cfg->token_file, str);
        set_str(&cfg->token, NULL);
        break;
    default: free(str); break;
    }
    return ADJ_OK;
}

/* ---------------------------------------------------------------- INI */

typedef struct {
    srv_config *cfg;
    const char *file;     /* for messages */
    const char *base_dir; /* relative paths */
    int line;             /* counted by the reader */
    int failed;
    char *err;
    size_t errsz;
} ini_ctx;

static int find_opt(const char *key)
{
    char norm[64];
    size_t n = strlen(key);
    if (n >= sizeof norm)
        return -1;
    for (size_t i = 0; i <= n; i++)
        norm[i] = key[i] == '_' ? '-' : (char)tolower((unsigned char)key[i]);
    for (int i = 0; i < O_COUNT; i++)
        if (OPTS[i].section && strcmp(OPTS[i].name, norm) == 0)
            return i;
    return -1;
}

static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *c = user;
    if (c->failed)
        return 1;
    char where[512];
    snprintf(where, sizeof where, "%s:%d: %s", c->file, c->line, name);
    int id = find_opt(name);
    if (id < 0) {
        c->failed = 1;
        adj_fail(c->err, c->errsz, ADJ_ERR_ARG, "%s:%d: unknown key '%s' (see advjpgd --help)",
                 c->file, c->line, name);
        return 1;
    }
    if (*section && strcasecmp(section, OPTS[id].section) != 0) {
        c->failed = 1;
        adj_fail(c->err, c->errsz, ADJ_ERR_ARG, "%s:%d: '%s' belongs in [%s], not [%s]",
                 c->file, c->line, name, OPTS[id].section, section);
        return 1;
    }
    if (apply_opt(c->cfg, id, value, where, c->base_dir, c->err, c->errsz)) {
        c->failed = 1;
        return 1;
    }
    return 1;
}

/* An ini_reader that counts lines, so the handler can name the line. */
typedef struct {
    FILE *f;
    ini_ctx *c;
} line_reader;

static char *read_line(char *str, int num, void *stream)
{
    line_reader *r = stream;
    char *s = fgets(str, num, r->f);
    if (s)
        r->c->line++;
    return s;
}

static int load_ini(srv_config *cfg, const char *path, int must_exist, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (!must_exist && errno == ENOENT)
            return ADJ_OK;
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read config file %s: %s", path,
                        strerror(errno));
    }
    char *dir = strdup(path);
    if (!dir) {
        fclose(f);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    ini_ctx c = {cfg, path, slash ? dir : NULL, 0, 0, err, errsz};
    line_reader r = {f, &c};
    int rc = ini_parse_stream(read_line, &r, on_ini_key, &c);
    fclose(f);
    free(dir);
    if (c.failed)
        return ADJ_ERR_ARG;
    if (rc != 0)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "%s:%d: syntax error (expected [section] or key = value)",
                        path, rc > 0 ? rc : 0);
    return ADJ_OK;
}

/* ---------------------------------------------------------------- defaults */

/* Nonzero when the running executable lies under the build tree. */
static int in_build_tree(void)
{
    char exe[PATH_MAX], root[PATH_MAX];
    if (!*ADVJPG_BUILD_ROOT || !realpath("/proc/self/exe", exe) ||
        !realpath(ADVJPG_BUILD_ROOT, root))
        return 0;
    size_t n = strlen(root);
    return strncmp(exe, root, n) == 0 && exe[n] == '/';
}

static const char *data_dir(void)
{
    return in_build_tree() ? ADVJPG_SOURCE_CONFIG_DIR : ADVJPG_INSTALL_DATA_DIR;
}

/* Every option's default (the table's), and the threads from the cores. */
static int set_defaults(srv_config *cfg, char *err, size_t errsz)
{
    memset(cfg, 0, sizeof *cfg);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cores < 2 ? 2 : cores > 4 ? 4 : (int)cores;
    for (int i = 0; i < O_COUNT; i++) {
        int rc = OPTS[i].def ? apply_opt(cfg, i, OPTS[i].def, "default", NULL, err, errsz) : 0;
        if (rc)
            return rc;
    }
    return ADJ_OK;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

static char *default_jobs_dir(void)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (state && *state)
        return path_join(state, "advjpg/jobs");
    if (home && *home)
        return path_join(home, ".local/state/advjpg/jobs");
    return strdup("advjpg-jobs");
}

/* Model, weights and labels after file and command line are applied. */
static int finish_model(srv_config *cfg, char *err, size_t errsz)
{
    if (cfg->labels)
        cfg->labels_required = 1;
    if (!cfg->model && !(cfg->model = strdup(MODEL_DEFAULT_NAME)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (strcmp(cfg->model, MODEL_DEFAULT_NAME) == 0) {
        const char *dir = data_dir();
        if (!cfg->weights && !(cfg->weights = path_join(dir, MODEL_DEFAULT_NAME ".weights")))
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
        if (!cfg->labels && !(cfg->labels = path_join(dir, MODEL_DEFAULT_NAME ".labels")))
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    } else if (!cfg->weights && model_is_onnx_path(cfg->model)) { /* weights in the file */
        if (!(cfg->weights = strdup(cfg->model)))
            return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    } else if (!cfg->weights) {
        return adj_fail(err, errsz, ADJ_ERR_ARG, "--model %s needs --weights FILE", cfg->model);
    }
    return ADJ_OK;
}

static int read_token_file(srv_config *cfg, char *err, size_t errsz)
{
    FILE *f = fopen(cfg->token_file, "r");
    if (!f)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot read token file %s: %s", cfg->token_file,
                        strerror(errno));
    char line[4096];
    char *s = fgets(line, sizeof line, f);
    fclose(f);
    if (s) {
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            s[--n] = '\0';
        while (isspace((unsigned char)*s))
            s++;
    }
    if (!s || !*s)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "token file %s: the first line is empty",
                        cfg->token_file);
    if (!(cfg->token = strdup(s)))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    return ADJ_OK;
}

/* ---------------------------------------------------------------- load */

typedef struct {
    int id;
    const char *value;
} cli_opt;

/*
 * Pass 1: the command line into cli[] (applied after the file), *config_arg
 * the --config value. SRV_CONFIG_EXIT after --help or --version.
 */
static int read_command_line(int argc, char **argv, FILE *out, cli_opt *cli, int *ncli,
                             const char **config_arg, char *err, size_t errsz)
{
    struct option longopts[O_COUNT + 1];
    for (int i = 0; i < O_COUNT; i++) {
        longopts[i].name = OPTS[i].name;
        longopts[i].has_arg = OPTS[i].kind == K_FLAG ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 1000 + i;
    }
    memset(&longopts[O_COUNT], 0, sizeof longopts[O_COUNT]);
    opterr = 0;
    optind = 1;
    for (;;) {
        int prev = optind;
        int c = getopt_long(argc, argv, ":hV", longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h' || c == 1000 + O_HELP) {
            srv_config_usage(out);
            return SRV_CONFIG_EXIT;
        }
        if (c == 'V' || c == 1000 + O_VERSION) {
            fprintf(out, "advjpgd %s\n", ADVJPG_VERSION);
            return SRV_CONFIG_EXIT;
        }
        const char *arg = prev < argc ? argv[prev] : "?";
        if (c == '?')
            return adj_fail(err, errsz, ADJ_ERR_ARG, "unknown option '%s' (see advjpgd --help)",
                            arg);
        if (c == ':')
            return adj_fail(err, errsz, ADJ_ERR_ARG,
                            "option '%s' needs a value (see advjpgd --help)", arg);
        cli[*ncli].id = c - 1000;
        cli[*ncli].value = optarg;
        if (c - 1000 == O_CONFIG)
            *config_arg = optarg;
        ++*ncli;
    }
    if (optind < argc)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "unexpected argument '%s' (see advjpgd --help)",
                        argv[optind]);
    return ADJ_OK;
}

/* The config file: --config's (which must exist), else the default one if it exists. */
static int read_config_file(srv_config *cfg, const char *config_arg, char *err, size_t errsz)
{
    int rc;
    if (config_arg) {
        if (!*config_arg)
            return adj_fail(err, errsz, ADJ_ERR_ARG, "--config: empty path");
        if ((rc = load_ini(cfg, config_arg, 1, err, errsz)))
            return rc;
        set_str(&cfg->config_path, strdup(config_arg));
        return ADJ_OK;
    }
    char *def = path_join(in_build_tree() ? ADVJPG_SOURCE_CONFIG_DIR : ADVJPG_INSTALL_CONFIG_DIR,
                          "advjpgd.conf");
    if (!def)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if ((rc = load_ini(cfg, def, 0, err, errsz))) {
        free(def);
        return rc;
    }
    if (access(def, R_OK) == 0)
        set_str(&cfg->config_path, def);
    else
        free(def);
    return ADJ_OK;
}

/* After file and command line: the model's files, the token, the folders. */
static int finish(srv_config *cfg, char *err, size_t errsz)
{
    int rc;
    if ((rc = finish_model(cfg, err, errsz)))
        return rc;
    if (cfg->token_file && (rc = read_token_file(cfg, err, errsz)))
        return rc;
    if (cfg->data_root) {
        struct stat st;
        if (stat(cfg->data_root, &st) || !S_ISDIR(st.st_mode))
            return adj_fail(err, errsz, ADJ_ERR_IO, "--data-root %s is not a folder",
                            cfg->data_root);
    }
    if (!cfg->jobs_dir && !(cfg->jobs_dir = default_jobs_dir()))
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    if (!cfg->run != !cfg->out)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "--run and --out go together (batch mode)");
    if (cfg->shard && !cfg->run)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "--shard is for batch mode (--run, --out)");
    return ADJ_OK;
}

int srv_config_load(srv_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errsz)
{
    cli_opt *cli = calloc((size_t)argc + 1, sizeof *cli);
    if (!cli)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory");
    int ncli = 0;
    const char *config_arg = NULL;
    int rc = read_command_line(argc, argv, out, cli, &ncli, &config_arg, err, errsz);
    if (rc) {
        free(cli);
        return rc;
    }
    if (!(rc = set_defaults(cfg, err, errsz)))
        rc = read_config_file(cfg, config_arg, err, errsz);
    /* The command line wins. */
    for (int i = 0; i < ncli && !rc; i++) {
        if (cli[i].id == O_CONFIG)
            continue;
        char where[80];
        snprintf(where, sizeof where, "--%s", OPTS[cli[i].id].name);
        rc = apply_opt(cfg, cli[i].id, cli[i].value, where, NULL, err, errsz);
    }
    if (!rc)
        rc = finish(cfg, err, errsz);
    if (rc)
        srv_config_free(cfg);
    free(cli);
    return rc;
}

void srv_config_free(srv_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->config_path);
    free(cfg->listen);
    free(cfg->port_file);
    if (cfg->token) /* do not leave the secret in freed memory */
        memset(cfg->token, 0, strlen(cfg->token));
    free(cfg->token);
    free(cfg->token_file);
    free(cfg->model);
    free(cfg->weights);
    free(cfg->labels);
    free(cfg->preprocess);
    free(cfg->data_root);
    free(cfg->jobs_dir);
    free(cfg->run);
    free(cfg->out);
    free(cfg->shard);
    memset(cfg, 0, sizeof *cfg);
}
