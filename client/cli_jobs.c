/*
 * cli_jobs.c - evaluation jobs: evaluate, jobs, job, result, rows, cancel,
 * and waiting for a job with a progress display.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_cmd.h"
#include "cli_io.h"
#include "exp_param.h"
#include "cli_progress.h"

#define WAIT_MAX_MISSES 10 /* polls in a row without an answer before giving up */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps s seconds or until Ctrl-C. */
static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!interrupted && nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* A job id from the command line: non-empty, printable, not absurdly long. */
static int check_id(cli_ctx *ctx, const char *id)
{
    if (!*id || strlen(id) > 200)
        return cli_usage(ctx, "'%s' is not a job id", id);
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cli_usage(ctx, "a job id has no blanks or control characters");
    return 0;
}

/* path = "/jobs/<escaped id><suffix>"; new string. */
static char *job_path(const char *id, const char *suffix)
{
    char *e = cli_escape(id);
    if (!e)
        return NULL;
    size_t n = strlen("/jobs/") + strlen(e) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "/jobs/%s%s", e, suffix);
    free(e);
    return p;
}

static int is_final(const char *status)
{
    return !strcmp(status, "done") || !strcmp(status, "failed") || !strcmp(status, "canceled");
}

static double num_or(const json_t *j, const char *key, double dflt)
{
    const json_t *v = json_object_get(j, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/*
 * Polls GET /jobs/{id} every interval seconds until the job is done, failed
 * or canceled, showing progress on stderr. A few polls in a row without an
 * answer (or with 503) are tolerated, since a restarted daemon resumes its
 * jobs. On success *job is the last state (new reference) and 0 is
 * returned; otherwise the exit status, with the problem printed.
 */
static int wait_job(cli_ctx *ctx, const char *id, double interval, json_t **job)
{
    char err[CLI_ERRLEN];
    char *path = job_path(id, "");
    int misses = 0, rc;
    cli_progress prog;
    struct sigaction sa, old;
    if (!path)
        return cli_fail("out of memory");
    if ((rc = cli_connect(ctx))) {
        free(path);
        return rc;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C ends the nap */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;
    cli_progress_init(&prog, stderr, ctx->err_tty);

    for (;;) {
        cli_request q = {.method = "GET", .path = path};
        cli_response r;
        double pause = interval;
        int answered = cli_http_do(&ctx->http, &q, &r, err, sizeof err) == 0;
        if (!answered || r.status == 503) {
            if (answered)
                cli_http_status_message(&r, err, sizeof err);
            if (answered && r.retry_after > pause)
                pause = r.retry_after < 60 ? (double)r.retry_after : 60.0;
            cli_response_free(&r);
            if (++misses >= WAIT_MAX_MISSES) {
                cli_progress_end(&prog);
                rc = cli_fail("%s (gave up waiting for job %s after %d tries)", err, id,
                              misses);
                break;
            }
        } else if (r.status < 200 || r.status >= 300) {
            cli_progress_end(&prog);
            rc = cli_fail("%s", cli_http_status_message(&r, err, sizeof err));
            cli_response_free(&r);
            break;
        } else {
            misses = 0;
            json_t *j = json_loadb(r.body, r.len, 0, NULL);
            cli_response_free(&r);
            const char *status = json_string_value(json_object_get(j, "status"));
            if (!status) {
                json_decref(j);
                cli_progress_end(&prog);
                rc = cli_fail("server answered GET %s without a \"status\"", path);
                break;
            }
            cli_progress_update(&prog, id, status, (long)num_or(j, "done", 0),
                                (long)num_or(j, "total", 0), num_or(j, "images_per_s", -1),
                                num_or(j, "eta_s", -1));
            if (is_final(status)) {
                cli_progress_end(&prog);
                *job = j;
                rc = 0;
                break;
            }
            json_decref(j);
        }
        nap(pause);
        if (interrupted) {
            cli_progress_end(&prog);
            fprintf(stderr, "advjpg: stopped waiting; job %s goes on (see 'advjpg job %s')\n",
                    id, id);
            rc = 130;
            break;
        }
    }
    sigaction(SIGINT, &old, NULL);
    free(path);
    return rc;
}

/* After wait_job: 0 if the job is done, else prints why not and returns 1. */
static int job_outcome(const char *id, const json_t *job)
{
    const char *status = json_string_value(json_object_get(job, "status"));
    if (status && !strcmp(status, "done"))
        return 0;
    const char *why = json_string_value(json_object_get(job, "error"));
    return cli_fail("job %s %s%s%s", id, status ? status : "ended", why ? ": " : "",
                    why ? why : "");
}

/* GET /jobs/{id}{suffix} ("" or "/result") and print the JSON. */
static int print_job_json(cli_ctx *ctx, const char *id, const char *suffix)
{
    char *path = job_path(id, suffix);
    json_t *j;
    if (!path)
        return cli_fail("out of memory");
    cli_request q = {.method = "GET", .path = path};
    int rc = cli_call_json(ctx, &q, &j);
    free(path);
    if (rc)
        return rc;
    rc = cli_output(ctx, j);
    json_decref(j);
    return rc;
}

/* ---- evaluate ---------------------------------------------------------- */

/* The images of an upload: each path with its base name (the name the
 * server keys it by) and its type. */
typedef struct {
    char *path;       /* owned */
    const char *name; /* the base name, inside path */
    const char *type; /* cli_image_type()'s answer */
} upload_image;

typedef struct {
    upload_image *v;
    size_t n, cap;
} upload_list;

static void upload_list_free(upload_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Appends path (copied) with its type; 0, or -1 when memory ran out. */
static int upload_add(upload_list *l, const char *path, const char *type)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        upload_image *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    char *p = strdup(path);
    if (!p)
        return -1;
    const char *slash = strrchr(p, '/');
    l->v[l->n++] = (upload_image){p, slash ? slash + 1 : p, type};
    return 0;
}

static int cmp_upload(const void *a, const void *b)
{
    return strcmp(((const upload_image *)a)->name, ((const upload_image *)b)->name);
}

/*
 * Adds every image of folder dir (regular files, not hidden, whose first
 * bytes are a JPEG, PNG or PPM/PGM; anything else is passed over, like the
 * server does for a dataset folder). Exit status (usage error printed).
 */
static int upload_add_dir(cli_ctx *ctx, upload_list *l, const char *dir)
{
    char err[CLI_ERRLEN], path[4096];
    DIR *d = opendir(dir);
    if (!d)
        return cli_usage(ctx, "--upload %s: %s", dir, strerror(errno));
    size_t before = l->n;
    struct dirent *e;
    int rc = 0;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    while (!rc && (e = readdir(d))) {
        const char *type;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        int n = snprintf(path, sizeof path, "%.*s/%s", (int)dl, dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) || !S_ISREG(st.st_mode) ||
            cli_image_check(path, &type, err, sizeof err))
            continue;
        if (upload_add(l, path, type))
            rc = cli_fail("out of memory");
    }
    closedir(d);
    if (!rc && l->n == before)
        rc = cli_usage(ctx, "--upload %s: no JPEG, PNG or PPM images in the folder", dir);
    return rc;
}

/* The labels file of an upload: --labels, else DIR/labels.txt if there is one. */
static int upload_labels(cli_ctx *ctx, const char *labels, const char *dir, char **text,
                         size_t *len)
{
    char err[CLI_ERRLEN], path[4096];
    *text = NULL;
    *len = 0;
    if (!labels && dir) {
        struct stat st;
        int n = snprintf(path, sizeof path, "%s/labels.txt", dir);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) || !S_ISREG(st.st_mode))
            return 0;
        labels = path;
    }
    if (!labels)
        return 0;
    if (cli_read_file(labels, text, len, err, sizeof err))
        return cli_usage(ctx, "--labels: %s", err);
    return 0;
}

/* Prints the answer to POST /evaluate, or waits for the job and prints its result. */
static int evaluate_started(cli_ctx *ctx, json_t *ans, int wait, double interval)
{
    const json_t *idv = json_object_get(ans, "id");
    char id[256];
    int rc;
    if (json_is_string(idv))
        snprintf(id, sizeof id, "%s", json_string_value(idv));
    else if (json_is_integer(idv))
        snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT, json_integer_value(idv));
    else
        id[0] = '\0';
    if (!wait || !id[0]) {
        rc = cli_output(ctx, ans);
        json_decref(ans);
        if (!rc && wait)
            rc = cli_fail("server answered POST /evaluate without a job \"id\"; cannot wait");
        return rc;
    }
    json_decref(ans);
    if (!ctx->err_tty)
        fprintf(stderr, "advjpg: job %s started; waiting for it\n", id);
    json_t *job;
    if ((rc = wait_job(ctx, id, interval, &job)))
        return rc;
    rc = job_outcome(id, job);
    if (rc) {
        cli_output(ctx, job);
        json_decref(job);
        return rc;
    }
    json_decref(job);
    return print_job_json(ctx, id, "/result");
}

static int run_evaluate(cli_ctx *ctx, int argc, char **argv)
{
    enum {
        O_DATASET = OPT_FIRST_LOCAL, O_TRUTH, O_LABELS, O_UPLOAD, O_OFFSET, O_LIMIT, O_SHARD,
        O_WAIT, O_INTERVAL
    };
    static const struct option opts[] = {
        {"dataset", required_argument, NULL, O_DATASET},
        {"ground-truth", required_argument, NULL, O_TRUTH},
        {"labels", required_argument, NULL, O_LABELS},
        {"upload", required_argument, NULL, O_UPLOAD},
        {"eps", required_argument, NULL, 'e'},
        {"quality", required_argument, NULL, 'q'},
        {"seed", required_argument, NULL, 's'},
        {"offset", required_argument, NULL, O_OFFSET},
        {"limit", required_argument, NULL, O_LIMIT},
        {"shard", required_argument, NULL, O_SHARD},
        {"wait", no_argument, NULL, O_WAIT},
        {"interval", required_argument, NULL, O_INTERVAL},
        CLI_ATTACK_OPTIONS,
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    cli_attack atk = {0};
    const char *dataset = NULL, *truth = NULL, *labels = NULL, *dir = NULL;
    long offset = -1, limit = -1, shard_i = -1, shard_n = -1;
    unsigned long long seed = 0;
    int have_seed = 0, wait = 0, c, rc = 0;
    double interval = 1.0;
    char eps[512] = "", quality[256] = "", err[CLI_ERRLEN];
    while ((c = getopt_long(argc, argv, ":he:q:s:", opts, NULL)) != -1) {
        switch (c) {
        case O_DATASET:
            if (!*optarg)
                return cli_usage(ctx, "--dataset wants a folder under the server's --data-root");
            dataset = optarg;
            break;
        case O_TRUTH:
            if (!*optarg)
                return cli_usage(ctx, "--ground-truth wants a file under the server's --data-root");
            truth = optarg;
            break;
        case O_LABELS:
            if (!*optarg)
                return cli_usage(ctx, "--labels wants a local file of filename<TAB>class lines");
            labels = optarg;
            break;
        case O_UPLOAD:
            if (!*optarg)
                return cli_usage(ctx, "--upload wants a local folder of images");
            if (dir)
                return cli_usage(ctx, "one --upload folder (or list the images)");
            dir = optarg;
            break;
        case 'e':
            if ((rc = cli_parse_eps(ctx, optarg, eps, sizeof eps, NULL)))
                return rc;
            break;
        case 'q':
            if ((rc = cli_parse_quality(ctx, optarg, quality, sizeof quality, NULL)))
                return rc;
            break;
        case 's':
            /* jansson's integers are signed 64-bit */
            if ((rc = cli_parse_seed(ctx, optarg, LLONG_MAX, &seed)))
                return rc;
            have_seed = 1;
            break;
        case O_OFFSET:
            if ((rc = cli_parse_long(ctx, "--offset", optarg, 0, 2147483647L, &offset)))
                return rc;
            break;
        case O_LIMIT:
            if ((rc = cli_parse_long(ctx, "--limit", optarg, 1, 2147483647L, &limit)))
                return rc;
            break;
        case O_SHARD: {
            char extra;
            if (sscanf(optarg, "%ld/%ld%c", &shard_i, &shard_n, &extra) != 2 || shard_n < 1 ||
                shard_i < 0 || shard_i >= shard_n || shard_n > 1000000)
                return cli_usage(ctx, "--shard wants INDEX/COUNT with 0 <= INDEX < COUNT, such "
                                      "as 0/4, not '%s'", optarg);
            break;
        }
        case O_WAIT:
            wait = 1;
            break;
        case O_INTERVAL:
            if ((rc = cli_parse_seconds(ctx, "--interval", optarg, &interval)))
                return rc;
            if (interval < 0.05)
                return cli_usage(ctx, "--interval is at least 0.05 seconds");
            break;
        default:
            if ((rc = cli_attack_option(ctx, c, optarg, &atk)) > 0 ||
                (rc < 0 && (rc = cli_common_option(ctx, c, argv)) >= 0))
                return rc;
        }
    }
    int upload = dir || optind < argc;
    if (dataset && upload)
        return cli_usage(ctx, "--dataset names images on the server; IMG... and --upload "
                              "send local ones: not both");
    if (!dataset && !upload)
        return cli_usage(ctx, "which images? IMG... or --upload DIR (sent to the server), or "
                              "--dataset DIR (a folder under the server's --data-root)");
    if (dataset && labels)
        return cli_usage(ctx, "--labels goes with uploaded images; for a --dataset give "
                              "--ground-truth or put labels.txt in its folder");
    if (upload && truth)
        return cli_usage(ctx, "--ground-truth names a file on the server; with uploaded "
                              "images give --labels FILE (filename<TAB>class lines)");

    if (dataset) {
        json_t *body = json_pack("{s:s}", "dataset", dataset), *arr = NULL;
        if (!body)
            return cli_fail("out of memory");
        if (truth)
            json_object_set_new(body, "ground_truth", json_string(truth));
        char norm[sizeof eps];
        if (eps[0] && !cli_parse_eps(ctx, eps, norm, sizeof norm, &arr)) /* checked: no error */
            json_object_set_new(body, "eps", arr);
        char qnorm[sizeof quality];
        json_t *qarr = NULL;
        if (quality[0] && !cli_parse_quality(ctx, quality, qnorm, sizeof qnorm, &qarr))
            json_object_set_new(body, "quality", json_array_size(qarr) == 1
                                                     ? json_incref(json_array_get(qarr, 0))
                                                     : json_incref(qarr));
        json_decref(qarr);
        if (have_seed)
            json_object_set_new(body, "seed", json_integer((json_int_t)seed));
        json_t *attack = cli_attack_json(&atk);
        if (attack)
            json_object_set_new(body, "attack", attack);
        if (offset >= 0)
            json_object_set_new(body, "offset", json_integer(offset));
        if (limit > 0)
            json_object_set_new(body, "limit", json_integer(limit));
        if (shard_n > 0)
            json_object_set_new(body, "shard", json_pack("{s:I,s:I}", "index",
                                                         (json_int_t)shard_i, "count",
                                                         (json_int_t)shard_n));
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text)
            return cli_fail("out of memory");
        cli_request q = {.method = "POST", .path = "/evaluate", .body = text,
                         .body_len = strlen(text), .content_type = "application/json"};
        json_t *ans;
        rc = cli_call_json(ctx, &q, &ans);
        free(text);
        return rc ? rc : evaluate_started(ctx, ans, wait, interval);
    }

    /* an upload: the images, sorted by name as the server sorts them, sliced
     * by --offset, --limit and --shard as the server slices a dataset */
    upload_list l = {0};
    for (int i = optind; !rc && i < argc; i++) {
        const char *type;
        if (cli_image_check(argv[i], &type, err, sizeof err))
            rc = cli_usage(ctx, "%s", err);
        else if (upload_add(&l, argv[i], type))
            rc = cli_fail("out of memory");
    }
    if (!rc && dir)
        rc = upload_add_dir(ctx, &l, dir);
    if (rc) {
        upload_list_free(&l);
        return rc;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_upload);
    for (size_t i = 1; i < l.n; i++)
        if (!strcmp(l.v[i].name, l.v[i - 1].name)) {
            rc = cli_usage(ctx, "%s and %s have the same name; the server keys uploaded images "
                                "by file name", l.v[i - 1].path, l.v[i].path);
            upload_list_free(&l);
            return rc;
        }
    size_t from = offset > 0 ? (size_t)offset : 0, to = l.n;
    if (from > l.n)
        from = l.n;
    if (limit > 0 && (size_t)limit < to - from)
        to = from + (size_t)limit;
    size_t step = shard_n > 0 ? (size_t)shard_n : 1, first = from + (shard_n > 0 ? (size_t)shard_i : 0);
    size_t n_parts = 0;
    cli_part *parts = calloc(to - from + 1, sizeof *parts);
    if (!parts) {
        upload_list_free(&l);
        return cli_fail("out of memory");
    }
    for (size_t i = first; i < to; i += step)
        parts[n_parts++] = (cli_part){.name = "image", .filename = l.v[i].name,
                                      .path = l.v[i].path, .type = l.v[i].type};
    if (!n_parts) {
        free(parts);
        upload_list_free(&l);
        return cli_usage(ctx, "--offset, --limit and --shard leave none of the %zu images", l.n);
    }
    char *text = NULL;
    size_t text_len = 0;
    if ((rc = upload_labels(ctx, labels, dir, &text, &text_len))) {
        free(parts);
        upload_list_free(&l);
        return rc;
    }
    if (text)
        parts[n_parts++] = (cli_part){.name = "labels", .filename = "labels.txt", .data = text,
                                      .len = text_len, .type = "text/plain"};
    char path[768] = "/evaluate";
    if ((eps[0] && cli_query_add(path, sizeof path, "eps=%s", eps)) ||
        (quality[0] && cli_query_add(path, sizeof path, "quality=%s", quality)) ||
        (have_seed && cli_query_add(path, sizeof path, "seed=%llu", seed)) ||
        cli_attack_query(&atk, path, sizeof path))
        rc = cli_fail("the request's URL is too long");
    json_t *ans = NULL;
    if (!rc) {
        cli_request q = {.method = "POST", .path = path, .parts = parts, .n_parts = n_parts};
        rc = cli_call_json(ctx, &q, &ans);
    }
    free(text);
    free(parts);
    upload_list_free(&l);
    return rc ? rc : evaluate_started(ctx, ans, wait, interval);
}

const cli_command cli_cmd_evaluate = {
    "evaluate", run_evaluate, "start an evaluation job over a set of images (POST /evaluate)",
    "usage: advjpg evaluate IMG... [--labels FILE] [OPTIONS]\n"
    "       advjpg evaluate --upload DIR [--labels FILE] [OPTIONS]\n"
    "       advjpg evaluate --dataset DIR [--ground-truth FILE] [OPTIONS]\n"
    "\n"
    "Starts the experiment over a set of images: local images sent with the\n"
    "request (IMG..., or every JPEG, PNG and PPM of the folder given to --upload;\n"
    "one multipart/form-data upload, streamed from the files), or DIR, a folder\n"
    "under the server's --data-root (the files are read by the server, not sent).\n"
    "Without --wait, prints the server's answer, {\"id\": \"...\", \"status\": \"queued\"};\n"
    "follow the job with 'advjpg job ID' and fetch its table with 'advjpg result ID'.\n"
    "\n"
    "Options (server defaults when left out):\n"
    "      --upload DIR         send the images of this local folder (not hidden,\n"
    "                           not in subfolders); its labels.txt, if any, is sent\n"
    "                           as the labels unless --labels is given\n"
    "      --labels FILE        a local file of filename<TAB>class-index lines, one\n"
    "                           per uploaded image (by its base name); gives top-1\n"
    "                           accuracy\n"
    "      --dataset DIR        the images, relative to the server's --data-root\n"
    "      --ground-truth FILE  with --dataset: one class index per line, in the\n"
    "                           sorted order of the images (ILSVRC2012 style), a file\n"
    "                           under the server's --data-root\n"
    "  -e, --eps LIST           eps values, integers 1..255: 1,5,10\n"
    "  -q, --quality Q[,Q...]   JPEG quality 1..100; a list (50,75,90) is the quality\n"
    "                           grid: every (eps, quality) pair, the gradients once\n"
    "  -s, --seed S             seed of JPGnoise's random permutation of the JPEG change\n"
    "                           (and of PGD's random start)\n"
    CLI_ATTACK_HELP("   ")
    "      --offset N           skip the first N images of the sorted list\n"
    "      --limit N            take at most N images\n"
    "      --shard I/C          every C-th image starting at the I-th (0 <= I < C)\n"
    "                           (with uploads the client takes this slice of the\n"
    "                           images sorted by file name, and sends only those)\n"
    "      --wait               wait for the job, then print its result table; the\n"
    "                           progress goes to standard error, as a bar redrawn in\n"
    "                           place on a terminal (done/total, rate, ETA) and as\n"
    "                           plain lines otherwise. Ctrl-C stops waiting, not\n"
    "                           the job. A job that fails gives exit status 1.\n"
    "      --interval S         seconds between polls while waiting (default 1)\n"
    "\n"
    "Uploaded images are keyed by their base names, which must differ; one\n"
    "request holds at most the server's --max-body (32 MiB by default) and\n"
    "10,000 images.\n"
    "\n"
    "Examples:\n"
    "  advjpg evaluate photos/*.jpg --labels photos/labels.txt --wait\n"
    "  advjpg evaluate --upload data/shapes/demo --eps 1,5,10 --wait\n"
    "  advjpg evaluate --dataset imagenet/val --limit 1000 --eps 1,5,10\n"
    "  advjpg evaluate --dataset imagenet/val \\\n"
    "      --ground-truth imagenet/ILSVRC2012_validation_ground_truth.txt --wait\n",
};

/* ---- jobs, job, result, rows, cancel ----------------------------------- */

/* Parses the options of the commands that take one job id (and maybe
 * --wait); returns -1 to go on, or an exit status. */
static int parse_id_command(cli_ctx *ctx, int argc, char **argv, int can_wait, int *wait,
                            double *interval, const char **id)
{
    enum { O_WAIT = OPT_FIRST_LOCAL, O_INTERVAL };
    static const struct option with_wait[] = {
        {"wait", no_argument, NULL, O_WAIT},
        {"interval", required_argument, NULL, O_INTERVAL},
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    static const struct option plain[] = {CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", can_wait ? with_wait : plain, NULL)) != -1) {
        if (c == O_WAIT) {
            *wait = 1;
        } else if (c == O_INTERVAL) {
            if ((rc = cli_parse_seconds(ctx, "--interval", optarg, interval)))
                return rc;
            if (*interval < 0.05)
                return cli_usage(ctx, "--interval is at least 0.05 seconds");
        } else if ((rc = cli_common_option(ctx, c, argv)) >= 0) {
            return rc;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "which job? (advjpg %s ID)", argv[0]);
    if (argc - optind > 1)
        return cli_usage(ctx, "one job id, not %d", argc - optind);
    *id = argv[optind];
    return (rc = check_id(ctx, *id)) ? rc : -1;
}

static int run_jobs(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {CLI_GLOBAL_OPTIONS, {"status", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *status = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":hs:", opts, NULL)) != -1) {
        if (c == 's') {
            status = optarg;
            continue;
        }
        if ((rc = cli_common_option(ctx, c, argv)) >= 0)
            return rc;
    }
    if (optind < argc)
        return cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    char path[128], *e = status ? cli_escape(status) : NULL;
    if (status && (!e || strlen(e) > 64)) {
        free(e);
        return cli_usage(ctx, "--status: queued, running, done, failed or canceled");
    }
    snprintf(path, sizeof path, "/jobs%s%s", e ? "?status=" : "", e ? e : "");
    free(e);
    cli_request q = {.method = "GET", .path = path};
    json_t *j;
    if ((rc = cli_call_json(ctx, &q, &j)))
        return rc;
    rc = cli_output(ctx, j);
    json_decref(j);
    return rc;
}

static int run_job(cli_ctx *ctx, int argc, char **argv)
{
    const char *id = NULL;
    int wait = 0, rc;
    double interval = 1.0;
    json_t *j;
    if ((rc = parse_id_command(ctx, argc, argv, 1, &wait, &interval, &id)) >= 0)
        return rc;
    if (wait) {
        if ((rc = wait_job(ctx, id, interval, &j)))
            return rc;
        int out = cli_output(ctx, j);
        rc = job_outcome(id, j);
        json_decref(j);
        return rc ? rc : out;
    }
    return print_job_json(ctx, id, "");
}

static int run_result(cli_ctx *ctx, int argc, char **argv)
{
    const char *id = NULL;
    int wait = 0, rc;
    double interval = 1.0;
    if ((rc = parse_id_command(ctx, argc, argv, 1, &wait, &interval, &id)) >= 0)
        return rc;
    if (wait) {
        json_t *j;
        if ((rc = wait_job(ctx, id, interval, &j)))
            return rc;
        rc = job_outcome(id, j);
        json_decref(j);
        if (rc)
            return rc;
    }
    return print_job_json(ctx, id, "/result");
}

static int run_rows(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *id, *out = NULL;
    char err[CLI_ERRLEN];
    int c, rc;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        if (c == 'o') {
            if (!*optarg)
                return cli_usage(ctx, "-o wants a file name");
            out = optarg;
        } else if ((rc = cli_common_option(ctx, c, argv)) >= 0) {
            return rc;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "which job? (advjpg rows ID [-o FILE])");
    if (argc - optind > 1)
        return cli_usage(ctx, "one job id, not %d", argc - optind);
    id = argv[optind];
    if ((rc = check_id(ctx, id)))
        return rc;
    if (out && !strcmp(out, "-"))
        out = NULL;
    char *path = job_path(id, "/rows");
    if (!path)
        return cli_fail("out of memory");
    cli_request q = {.method = "GET", .path = path, .accept = "text/csv"};
    cli_response r;
    rc = cli_call(ctx, &q, &r);
    free(path);
    if (rc)
        return rc;
    if (out) {
        if (cli_write_file(out, r.body, r.len, err, sizeof err))
            rc = cli_fail("%s", err);
    } else if (fwrite(r.body, 1, r.len, stdout) != r.len || fflush(stdout)) {
        rc = cli_fail("cannot write the output: %s", strerror(errno));
    }
    cli_response_free(&r);
    return rc;
}

/* DELETE /jobs/ID, with the query `query` ("" or "?purge=1"); prints the answer. */
static int delete_job(cli_ctx *ctx, int argc, char **argv, const char *query)
{
    const char *id = NULL;
    int rc;
    if ((rc = parse_id_command(ctx, argc, argv, 0, NULL, NULL, &id)) >= 0)
        return rc;
    char *path = job_path(id, query);
    if (!path)
        return cli_fail("out of memory");
    cli_request q = {.method = "DELETE", .path = path};
    cli_response r;
    rc = cli_call(ctx, &q, &r);
    free(path);
    if (rc)
        return rc;
    json_t *j = r.len ? json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL) : NULL;
    if (j)
        rc = cli_output(ctx, j);
    json_decref(j);
    cli_response_free(&r);
    return rc;
}

static int run_cancel(cli_ctx *ctx, int argc, char **argv) { return delete_job(ctx, argc, argv, ""); }

static int run_delete(cli_ctx *ctx, int argc, char **argv)
{
    return delete_job(ctx, argc, argv, "?purge=1");
}

const cli_command cli_cmd_jobs = {
    "jobs", run_jobs, "list the evaluation jobs (GET /jobs)",
    "usage: advjpg jobs [--status S]\n"
    "\n"
    "Prints the server's list of evaluation jobs; with --status, only those in\n"
    "that state (queued, running, done, failed or canceled).\n",
};

const cli_command cli_cmd_job = {
    "job", run_job, "one job's state and progress (GET /jobs/ID)",
    "usage: advjpg job ID [--wait [--interval S]]\n"
    "\n"
    "Prints the job's state: {\"id\", \"status\": queued|running|done|failed|canceled,\n"
    "\"done\", \"total\", \"images_per_s\", \"eta_s\"}. With --wait, first waits until\n"
    "the job has ended, showing its progress on standard error, and exits with\n"
    "status 1 if it failed or was canceled.\n",
};

const cli_command cli_cmd_result = {
    "result", run_result, "a finished job's table (GET /jobs/ID/result)",
    "usage: advjpg result ID [--wait [--interval S]]\n"
    "\n"
    "Prints the job's result: n, eps, quality, seed and \"table\", one row per\n"
    "transform with top-1 accuracy (null without ground truth), the mean\n"
    "top-label probability and its box-plot statistics. With --wait, first\n"
    "waits until the job has ended (progress on standard error).\n",
};

const cli_command cli_cmd_rows = {
    "rows", run_rows, "a job's per-image rows as CSV (GET /jobs/ID/rows)",
    "usage: advjpg rows ID [-o FILE]\n"
    "\n"
    "Prints the job's CSV as the server sends it: one row per image with file,\n"
    "truth, label_x and, per transform, its top-label probability and label.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE     write the CSV to FILE instead (replaced atomically, so\n"
    "                        FILE is only ever a whole answer; '-' is standard output)\n",
};

const cli_command cli_cmd_cancel = {
    "cancel", run_cancel, "cancel a job (DELETE /jobs/ID)",
    "usage: advjpg cancel ID\n"
    "\n"
    "Asks the server to cancel the job and prints its answer.\n",
};

const cli_command cli_cmd_delete = {
    "delete", run_delete, "delete an ended job and its files (DELETE /jobs/ID?purge=1)",
    "usage: advjpg delete ID\n"
    "\n"
    "Asks the server to delete a job that has ended (done, failed or canceled):\n"
    "its folder is removed and the job is gone. A queued or running job is\n"
    "refused (409): cancel it first.\n",
};
