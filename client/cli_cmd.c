/*
 * cli_cmd.c - see cli_cmd.h.
 */
#include "cli_cmd.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_io.h"
#include "exp_param.h"

void cli_ctx_init(cli_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    const char *s = getenv("ADVJPG_SERVER");
    ctx->server = s && *s ? s : CLI_DEFAULT_SERVER;
    const char *t = getenv("ADVJPG_TOKEN");
    if (t && *t)
        ctx->token = strdup(t);
    ctx->timeout_s = CLI_DEFAULT_TIMEOUT;
    ctx->out_tty = isatty(STDOUT_FILENO);
    ctx->err_tty = isatty(STDERR_FILENO);
}

static void drop_token(cli_ctx *ctx)
{
    if (ctx->token) {
        memset(ctx->token, 0, strlen(ctx->token));
        free(ctx->token);
        ctx->token = NULL;
    }
}

void cli_ctx_free(cli_ctx *ctx)
{
    drop_token(ctx);
    if (ctx->http_ready)
        cli_http_cleanup(&ctx->http);
    ctx->http_ready = 0;
}

static const char *cmd_name(const cli_ctx *ctx)
{
    return ctx->cmd ? ctx->cmd->name : NULL;
}

int cli_usage(cli_ctx *ctx, const char *fmt, ...)
{
    const char *name = cmd_name(ctx);
    va_list ap;
    fprintf(stderr, name ? "advjpg %s: " : "advjpg: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (name)
        fprintf(stderr, " (see 'advjpg %s --help')\n", name);
    else
        fprintf(stderr, " (see 'advjpg --help')\n");
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fputs("advjpg: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_SERVER;
}

void cli_print_help(const cli_command *cmd, FILE *f)
{
    fputs(cmd->help, f);
    fputs("\nGlobal options (also after the command): --server URL, --token T,\n"
          "--token-file FILE, --timeout S; see 'advjpg --help'.\n"
          "Exit status: 0 success, 1 server or connection error, 2 usage error.\n",
          f);
}

/* The first line of a file, without its end of line. */
static int read_token_file(cli_ctx *ctx, const char *path)
{
    char *data, err[CLI_ERRLEN];
    size_t len;
    if (cli_read_file(path, &data, &len, err, sizeof err))
        return cli_usage(ctx, "--token-file: %s", err);
    data[strcspn(data, "\r\n")] = '\0';
    if (!*data) {
        free(data);
        return cli_usage(ctx, "--token-file: %s holds no token on its first line", path);
    }
    drop_token(ctx);
    ctx->token = data;
    return -1;
}

int cli_common_option(cli_ctx *ctx, int c, char **argv)
{
    switch (c) {
    case OPT_SERVER:
        ctx->server = optarg;
        return -1;
    case OPT_TOKEN:
        drop_token(ctx);
        ctx->token = strdup(optarg);
        return -1;
    case OPT_TOKEN_FILE:
        return read_token_file(ctx, optarg);
    case OPT_TIMEOUT: {
        int rc = cli_parse_seconds(ctx, "--timeout", optarg, &ctx->timeout_s);
        return rc ? rc : -1;
    }
    case 'h':
        if (ctx->cmd)
            cli_print_help(ctx->cmd, stdout);
        return CLI_EXIT_OK;
    case ':':
        /* a long option as typed (argv[optind - 1]), a short one by its letter */
        if (!strncmp(argv[optind - 1], "--", 2) || !optopt || optopt >= 256)
            return cli_usage(ctx, "option %s needs a value", argv[optind - 1]);
        return cli_usage(ctx, "option -%c needs a value", optopt);
    case '?':
    default:
        if (!strncmp(argv[optind - 1], "--", 2) || !optopt || optopt >= 256)
            return cli_usage(ctx, "unknown option %.*s", (int)strcspn(argv[optind - 1], "="),
                             argv[optind - 1]);
        return cli_usage(ctx, "unknown option -%c", optopt);
    }
}

int cli_parse_long(cli_ctx *ctx, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno || v < lo || v > hi)
        return cli_usage(ctx, "%s wants an integer from %ld to %ld, not '%s'", opt, lo, hi, s);
    *out = v;
    return 0;
}

int cli_parse_seed(cli_ctx *ctx, const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno || v > max)
        return cli_usage(ctx, "--seed wants an integer from 0 to %llu, not '%s'", max, s);
    *out = v;
    return 0;
}

int cli_parse_seconds(cli_ctx *ctx, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end || errno || !isfinite(v) || v < 0 ||
        v > 1e6)
        return cli_usage(ctx, "%s wants a number of seconds (0 to 1000000), not '%s'", opt, s);
    *out = v;
    return 0;
}

int cli_parse_list(cli_ctx *ctx, const char *opt, const char *s, long lo, long hi,
                   const char *example, char *norm, size_t n, json_t **arr)
{
    json_t *a = json_array();
    size_t o = 0;
    const char *p = s;
    if (!a)
        return cli_fail("out of memory");
    norm[0] = '\0';
    for (;;) {
        while (*p == ' ')
            p++;
        char *end;
        long v = 0;
        if (*p >= '0' && *p <= '9') {
            errno = 0;
            v = strtol(p, &end, 10);
        } else {
            end = (char *)p;
        }
        /* the range is the server's (exp_param.h); how many values it takes
         * (EXP_MAX_EPS) it says itself, in one 400 line */
        if (end == p || errno || v < lo || v > hi) {
            json_decref(a);
            return cli_usage(ctx, "%s wants integers from %ld to %ld separated by commas, "
                                  "such as %s, not '%s'", opt, lo, hi, example, s);
        }
        int w = snprintf(norm + o, n - o, "%s%ld", o ? "," : "", v);
        if (w < 0 || (size_t)w >= n - o) {
            json_decref(a);
            return cli_usage(ctx, "%s: the list '%s' is too long", opt, s);
        }
        o += (size_t)w;
        json_array_append_new(a, json_integer(v));
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',') {
            json_decref(a);
            return cli_usage(ctx, "%s wants integers from %ld to %ld separated by commas, "
                                  "such as %s, not '%s'", opt, lo, hi, example, s);
        }
        p++;
    }
    if (arr)
        *arr = a;
    else
        json_decref(a);
    return 0;
}

int cli_parse_eps(cli_ctx *ctx, const char *s, char *norm, size_t n, json_t **arr)
{
    return cli_parse_list(ctx, "--eps", s, EXP_EPS_MIN, EXP_EPS_MAX, EXP_DEFAULT_EPS, norm, n, arr);
}

int cli_parse_quality(cli_ctx *ctx, const char *s, char *norm, size_t n, json_t **arr)
{
    return cli_parse_list(ctx, "--quality", s, EXP_QUALITY_MIN, EXP_QUALITY_MAX, "75 or 50,75,90",
                          norm, n, arr);
}

/* The parameter row of each attack option, in the order of OPT_ATTACK.. */
static const exp_param_id ATTACK_ROWS[] = {EXP_PARAM_ATTACK, EXP_PARAM_STEPS, EXP_PARAM_STEP_SIZE,
                                           EXP_PARAM_ADAPTIVE, EXP_PARAM_EOT_QUALITIES};
_Static_assert(sizeof ATTACK_ROWS / sizeof ATTACK_ROWS[0] == OPT_ATTACK_END - OPT_ATTACK,
               "one parameter row per attack option");

int cli_attack_option(cli_ctx *ctx, int c, const char *arg, cli_attack *a)
{
    if (c < OPT_ATTACK || c >= OPT_ATTACK_END)
        return -1;
    const exp_param_id id = ATTACK_ROWS[c - OPT_ATTACK];
    const exp_param_def *d = &exp_param_defs[id];
    char opt[32], words[64];
    snprintf(opt, sizeof opt, "--%s", d->name);
    for (char *p = opt; *p; p++)
        *p = *p == '_' ? '-' : *p;
    long v;
    if (d->kind == EXP_PK_CHOICE && exp_param_choice_index(id, arg) < 0)
        return cli_usage(ctx, "%s is one of %s, not '%s'", opt,
                         exp_param_choices_text(id, words, sizeof words), arg);
    if (d->kind == EXP_PK_INT && cli_parse_long(ctx, opt, arg, d->lo, d->hi, &v))
        return CLI_EXIT_USAGE;
    char norm[256]; /* how many values a list may have the server says, as for --eps */
    int rc = d->kind == EXP_PK_INT_LIST
                 ? cli_parse_list(ctx, opt, arg, d->lo, d->hi, d->def, norm, sizeof norm, NULL)
                 : 0;
    if (rc)
        return rc;
    a->val[c - OPT_ATTACK] = arg;
    return 0;
}

int cli_attack_query(const cli_attack *a, char *path, size_t n)
{
    for (int i = 0; i < OPT_ATTACK_END - OPT_ATTACK; i++) {
        char v[256];
        size_t k = 0; /* a list without its blanks: no escaping needed */
        for (const char *p = a->val[i]; p && *p && k + 1 < sizeof v; p++)
            if (*p != ' ')
                v[k++] = *p;
        v[k] = '\0';
        if (a->val[i] && cli_query_add(path, n, "%s=%s", exp_param_defs[ATTACK_ROWS[i]].name, v))
            return -1;
    }
    return 0;
}

json_t *cli_attack_json(const cli_attack *a)
{
    json_t *o = NULL;
    for (int i = 0; i < OPT_ATTACK_END - OPT_ATTACK; i++) {
        const exp_param_def *d = &exp_param_defs[ATTACK_ROWS[i]];
        const char *s = a->val[i];
        if (!s)
            continue;
        if (!o && !(o = json_object()))
            return NULL;
        json_t *v;
        if (d->kind == EXP_PK_CHOICE) {
            v = json_string(s);
        } else if (d->kind == EXP_PK_INT) {
            v = json_integer(strtol(s, NULL, 10));
        } else { /* a list, checked */
            v = json_array();
            for (const char *p = s; v && *p;) {
                char *end;
                json_array_append_new(v, json_integer(strtol(p, &end, 10)));
                p = end + strspn(end, " ,");
            }
        }
        json_object_set_new(o, d->name, v);
    }
    return o;
}

int cli_check_resize(cli_ctx *ctx, const char *s)
{
    if (strcmp(s, "center") && strcmp(s, "none"))
        return cli_usage(ctx, "--resize is 'center' or 'none', not '%s'", s);
    return 0;
}

int cli_query_add(char *path, size_t n, const char *fmt, ...)
{
    size_t o = strlen(path);
    if (o + 1 >= n)
        return -1;
    path[o++] = strchr(path, '?') ? '&' : '?';
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(path + o, n - o, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n - o) {
        path[o - 1] = '\0';
        return -1;
    }
    return 0;
}

int cli_connect(cli_ctx *ctx)
{
    char err[CLI_ERRLEN];
    if (ctx->http_ready)
        return 0;
    if (cli_http_init(&ctx->http, ctx->server, ctx->token, ctx->timeout_s, err, sizeof err))
        return cli_usage(ctx, "server URL: %s", err);
    ctx->http_ready = 1;
    drop_token(ctx); /* the HTTP client has its own copy in the header */
    return 0;
}

int cli_call(cli_ctx *ctx, const cli_request *req, cli_response *resp)
{
    char err[CLI_ERRLEN];
    int rc = cli_connect(ctx);
    memset(resp, 0, sizeof *resp);
    if (rc)
        return rc;
    if (cli_http_do(&ctx->http, req, resp, err, sizeof err)) {
        cli_response_free(resp);
        return cli_fail("%s", err);
    }
    if (resp->status < 200 || resp->status >= 300) {
        cli_http_status_message(resp, err, sizeof err);
        cli_response_free(resp);
        return cli_fail("%s", err);
    }
    return 0;
}

int cli_call_json(cli_ctx *ctx, const cli_request *req, json_t **out)
{
    cli_response r;
    json_error_t je;
    int rc = cli_call(ctx, req, &r);
    if (rc)
        return rc;
    json_t *j = json_loadb(r.body, r.len, JSON_DECODE_ANY, &je);
    if (!j) {
        rc = cli_fail("server answered %ld to %s %s with something that is not JSON "
                      "(Content-Type '%s')", r.status, req->method, req->path,
                      r.content_type);
        cli_response_free(&r);
        return rc;
    }
    cli_response_free(&r);
    *out = j;
    return 0;
}

int cli_output(cli_ctx *ctx, const json_t *j)
{
    if (cli_print_json(stdout, j, ctx->out_tty))
        return cli_fail("cannot write the output: %s", strerror(errno));
    return 0;
}

char *cli_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}
