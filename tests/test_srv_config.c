/*
 * test_srv_config.c - server/srv_config.c without a daemon: the defaults
 * that the README and --help state, the config file under the command
 * line, relative paths resolved against the file's folder, refused values
 * named with their file and line, and every "(default X)" of --help equal
 * to what an empty command line gives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv_config.h"
#include "status.h"
#include "testutil.h"

static int load(srv_config *cfg, const char *conf, const char *a1, const char *a2, char *err)
{
    char c[512];
    snprintf(c, sizeof c, "--config=%s", conf);
    char *argv[] = {"advjpgd", c, (char *)a1, (char *)a2, NULL};
    int argc = 2 + (a1 != NULL) + (a2 != NULL);
    optind = 0;
    return srv_config_load(cfg, argc, argv, stdout, err, ADJ_ERRLEN);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(void)
{
    char dir[512], conf[600], err[ADJ_ERRLEN];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(conf, sizeof conf, "%s/a.conf", dir);
    write_file(conf, "");
    srv_config cfg;
    CHECK(load(&cfg, conf, NULL, NULL, err) == 0, "empty file: %s", err);
    /* the documented defaults (the README's "The daemon: advjpgd") */
    CHECK(!strcmp(cfg.listen, "127.0.0.1:8080") && cfg.conn_timeout_s == 30 &&
              cfg.header_timeout_s == 10 && cfg.min_rate == 4096 && cfg.conn_limit == 256 &&
              cfg.per_ip_limit == 64 && cfg.max_body == 32u << 20 &&
              cfg.max_pixels == 16u << 20 && cfg.timeout_s == 60 && cfg.max_batch == 16 &&
              cfg.batch_delay_ms == 2 && cfg.queue_size == 64 && cfg.job_batch == 0 &&
              cfg.job_batch_ms == 250 && cfg.threads >= 2 && cfg.threads <= 4 && !cfg.token &&
              !cfg.data_root, "defaults");
    /* --help's "(default X)" for the numeric options, read back */
    char *help = NULL;
    size_t hl = 0;
    FILE *h = open_memstream(&help, &hl);
    srv_config_usage(h);
    fclose(h);
    struct { const char *opt; size_t want; } nums[] = {
        {"--connection-timeout", (size_t)cfg.conn_timeout_s}, {"--min-rate", cfg.min_rate},
        {"--max-body", cfg.max_body}, {"--max-pixels", cfg.max_pixels},
        {"--timeout", (size_t)cfg.timeout_s}, {"--queue-size", (size_t)cfg.queue_size},
        {"--job-batch-ms", (size_t)cfg.job_batch_ms},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "  %s ", nums[i].opt);
        const char *line = strstr(help, key), *d = line ? strstr(line, "(default ") : NULL;
        char val[32] = "";
        size_t v = 0;
        if (d)
            sscanf(d, "(default %31[^):])", val);
        CHECK(d && !srv_parse_size(val, &v) && v == nums[i].want, "%s: help says '%s'",
              nums[i].opt, val);
    }
    free(help);
    srv_config_free(&cfg);

    /* the file, then the command line over it; paths relative to the file */
    write_file(conf, "[server]\nthreads = 3\nport-file = port.txt\n[limits]\nmax-body = 1M\n"
                     "[batching]\nmax-batch = 8\n");
    CHECK(load(&cfg, conf, "--max-batch", "5", err) == 0, "%s", err);
    char want[700];
    snprintf(want, sizeof want, "%s/port.txt", dir);
    CHECK(cfg.threads == 3 && cfg.max_body == 1u << 20 && cfg.max_batch == 5 &&
              cfg.port_file && !strcmp(cfg.port_file, want), "threads %d body %zu batch %d '%s'",
          cfg.threads, cfg.max_body, cfg.max_batch, cfg.port_file ? cfg.port_file : "");
    srv_config_free(&cfg);

    /* refused values: the file and line, or the option */
    write_file(conf, "[server]\n\nthreads = 0\n");
    CHECK(load(&cfg, conf, NULL, NULL, err) == ADJ_ERR_ARG && strstr(err, "a.conf:3") &&
              strstr(err, "threads"), "%s", err);
    write_file(conf, "");
    CHECK(load(&cfg, conf, "--listen", "nowhere", err) == ADJ_ERR_ARG && strstr(err, "--listen"),
          "%s", err);
    CHECK(load(&cfg, conf, "--max-body", "12Q", err) == ADJ_ERR_ARG && strstr(err, "12Q"), "%s",
          err);
    CHECK(load(&cfg, conf, "--token", "s3cret", err) == 0 && !strcmp(cfg.token, "s3cret"), "%s",
          err);
    srv_config_free(&cfg);
    tu_rmtree(dir);
    return tu_done();
}
