/*
 * advjpgd-load: drives a running advjpgd with concurrent clients and prints
 * latency and throughput, one JSON line per run.
 *
 *   advjpgd-load --server http://127.0.0.1:8080 --image IMG [--path /classify]
 *                [--clients 1,16] [--seconds 10]
 *
 * Each client is a thread with its own libcurl handle (keep-alive) that posts
 * IMG as the raw body in a loop for the given time. A failed request is
 * counted and the client goes on (it stops only when the server cannot be
 * reached at all). Prints
 *   {"path":"/classify","clients":16,"requests":..,"errors":..,"http_503":..,
 *    "http_other":..,"conn_errors":..,"ms_per_request_mean":..,"ms_p50":..,
 *    "ms_p90":..,"images_per_s":..}
 * requests and the latencies count answers 200 only; errors = http_503 +
 * http_other (any other status) + conn_errors (no answer: refused, reset).
 * From the daemon's /metrics before and after the run (when it answers, i.e.
 * without a --token), the line adds where an answered request's time went,
 * "stages_ms" (advjpgd_stage_seconds per request, by stage), the worker's
 * forward batches ("batch_images_mean", "compute_ms_per_image") and its idle
 * share of the run ("worker_idle_share").
 * Compare with advjpg-bench's engine figures in the same session.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *url, *type;
    const char *body;
    size_t len;
    double until;
    double *lat;   /* latencies, seconds */
    int n, cap;
    int http_503, http_other, conn_errors;
} client;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t sink(void *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static void *run(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, c->type);
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)c->len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    while (now() < c->until) {
        double t0 = now();
        long code = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_COULDNT_CONNECT) { /* no server: nothing more to measure */
            c->conn_errors++;
            break;
        }
        if (rc != CURLE_OK || code != 200) {
            if (rc != CURLE_OK) {
                c->conn_errors++;
                nanosleep(&(struct timespec){0, 10000000}, NULL); /* 10 ms, as a client backs off */
            }
            else if (code == 503)
                c->http_503++;
            else
                c->http_other++;
            continue;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->lat = realloc(c->lat, (size_t)c->cap * sizeof(double));
        }
        c->lat[c->n++] = now() - t0;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

/* The /metrics series the line reports (their sum over the run). */
static const char *const SERIES[] = {
    "advjpgd_stage_seconds_sum{stage=\"receive\"}", "advjpgd_stage_seconds_sum{stage=\"decode_wait\"}",
    "advjpgd_stage_seconds_sum{stage=\"decode\"}",  "advjpgd_stage_seconds_sum{stage=\"submit\"}",
    "advjpgd_stage_seconds_sum{stage=\"queue\"}",   "advjpgd_stage_seconds_sum{stage=\"compute\"}",
    "advjpgd_stage_seconds_sum{stage=\"resume\"}",  "advjpgd_stage_seconds_sum{stage=\"answer\"}",
    "advjpgd_stage_seconds_count{stage=\"answer\"}",
    "advjpgd_compute_seconds_sum{kind=\"forward\"}", "advjpgd_batch_size_sum{kind=\"forward\"}",
    "advjpgd_batch_size_count{kind=\"forward\"}",   "advjpgd_worker_idle_seconds_total",
};
enum { N_STAGES = 8, S_COUNT = 8, S_COMPUTE, S_IMAGES, S_BATCHES, S_IDLE, N_SERIES };
_Static_assert(sizeof SERIES / sizeof SERIES[0] == N_SERIES, "a name per series");
static const char *const STAGE_LABELS[N_STAGES] = {"receive", "decode_wait", "decode", "submit",
                                                   "queue",   "compute",     "resume", "answer"};

typedef struct {
    char *s;
    size_t len;
} text;

static size_t keep(void *p, size_t s, size_t n, void *u)
{
    text *t = u;
    char *g = realloc(t->s, t->len + s * n + 1);
    if (!g)
        return 0;
    memcpy(g + t->len, p, s * n);
    t->s = g;
    t->len += s * n;
    t->s[t->len] = '\0';
    return s * n;
}

/* The SERIES' values in the server's /metrics; 0 when it cannot be read. */
static int read_metrics(const char *server, double v[N_SERIES])
{
    char url[1100];
    snprintf(url, sizeof url, "%s/metrics", server);
    text t = {0};
    long code = 0;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    int ok = curl_easy_perform(h) == CURLE_OK &&
             curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 && t.s;
    curl_easy_cleanup(h);
    for (int i = 0; i < N_SERIES; i++)
        v[i] = 0;
    for (const char *line = ok ? t.s : NULL; line && *line;) { /* "name value" lines */
        for (int i = 0; i < N_SERIES; i++) {
            size_t n = strlen(SERIES[i]);
            if (!strncmp(line, SERIES[i], n) && line[n] == ' ')
                v[i] = atof(line + n + 1);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(t.s);
    return ok;
}

/* ,"stages_ms":{..},... from two readings of /metrics over `seconds`. */
static void print_metrics(const double a[N_SERIES], const double b[N_SERIES], double seconds)
{
    const double n = b[S_COUNT] - a[S_COUNT], batches = b[S_BATCHES] - a[S_BATCHES];
    const double images = b[S_IMAGES] - a[S_IMAGES];
    printf(",\"stages_ms\":{");
    for (int i = 0; i < N_STAGES; i++)
        printf("%s\"%s\":%.3f", i ? "," : "", STAGE_LABELS[i], n > 0 ? (b[i] - a[i]) / n * 1e3 : 0);
    printf("},\"batch_images_mean\":%.2f,\"compute_ms_per_image\":%.2f,\"worker_idle_share\":%.3f",
           batches > 0 ? images / batches : 0,
           images > 0 ? (b[S_COMPUTE] - a[S_COMPUTE]) / images * 1e3 : 0,
           (b[S_IDLE] - a[S_IDLE]) / seconds);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *server = "http://127.0.0.1:8080", *image = NULL, *path = "/classify", *list = "1,16";
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: advjpgd-load --image IMG [--server URL] [--path /classify] [--clients 1,16] [--seconds S]");
            return 0;
        } else if (!v) {
            fprintf(stderr, "advjpgd-load: option '%s' needs a value\n", argv[i]);
            return 2;
        } else if (!strcmp(argv[i], "--server")) server = v;
        else if (!strcmp(argv[i], "--image")) image = v;
        else if (!strcmp(argv[i], "--path")) path = v;
        else if (!strcmp(argv[i], "--clients")) list = v;
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(v);
        else {
            fprintf(stderr, "advjpgd-load: unknown option '%s'\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (!image) {
        fprintf(stderr, "advjpgd-load: --image is required\n");
        return 2;
    }
    FILE *f = fopen(image, "rb");
    if (!f) {
        fprintf(stderr, "advjpgd-load: cannot read %s\n", image);
        return 1;
    }
    static char body[64 << 20];
    size_t len = fread(body, 1, sizeof body, f);
    fclose(f);
    const char *type = (len > 2 && (unsigned char)body[0] == 0xff) ? "Content-Type: image/jpeg"
                       : (len > 2 && body[0] == 'P') ? "Content-Type: image/x-portable-pixmap"
                                                     : "Content-Type: image/png";
    char url[1024];
    snprintf(url, sizeof url, "%s%s", server, path);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int n = atoi(tok);
        if (n < 1 || n > 256) {
            fprintf(stderr, "advjpgd-load: clients '%s' not in 1..256\n", tok);
            return 2;
        }
        client *cs = calloc((size_t)n, sizeof *cs);
        pthread_t *th = calloc((size_t)n, sizeof *th);
        double m0[N_SERIES], m1[N_SERIES];
        int have_metrics = read_metrics(server, m0);
        double t0 = now();
        for (int i = 0; i < n; i++) {
            cs[i] = (client){.url = url, .type = type, .body = body, .len = len, .until = t0 + seconds};
            pthread_create(&th[i], NULL, run, &cs[i]);
        }
        int total = 0, e503 = 0, eother = 0, econn = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            total += cs[i].n;
            e503 += cs[i].http_503;
            eother += cs[i].http_other;
            econn += cs[i].conn_errors;
        }
        double el = now() - t0;
        have_metrics = have_metrics && read_metrics(server, m1);
        double *all = malloc((size_t)(total ? total : 1) * sizeof(double)), sum = 0;
        int k = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < cs[i].n; j++) {
                all[k++] = cs[i].lat[j];
                sum += cs[i].lat[j];
            }
        qsort(all, (size_t)total, sizeof(double), cmp);
        printf("{\"path\":\"%s\",\"clients\":%d,\"requests\":%d,\"errors\":%d,\"http_503\":%d,"
               "\"http_other\":%d,\"conn_errors\":%d,\"ms_per_request_mean\":%.2f,"
               "\"ms_p50\":%.2f,\"ms_p90\":%.2f,\"images_per_s\":%.2f",
               path, n, total, e503 + eother + econn, e503, eother, econn,
               total ? sum / total * 1e3 : 0, total ? all[total / 2] * 1e3 : 0,
               total ? all[total * 9 / 10] * 1e3 : 0, total / el);
        if (have_metrics)
            print_metrics(m0, m1, el);
        printf("}\n");
        fflush(stdout);
        for (int i = 0; i < n; i++)
            free(cs[i].lat);
        free(all);
        free(cs);
        free(th);
    }
    curl_global_cleanup();
    return 0;
}
