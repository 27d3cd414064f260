/*
 * srv_config.h - advjpgd's options: defaults, the INI config file, the
 * command line (which wins over the file), and --help.
 *
 *     srv_config cfg;
 *     char err[ADJ_ERRLEN];
 *     int rc = srv_config_load(&cfg, argc, argv, stdout, err, sizeof err);
 *     if (rc == SRV_CONFIG_EXIT) return 0;          // --help / --version printed
 *     if (rc) { fprintf(stderr, "advjpgd: %s\n", err); return 2; }
 *     ...
 *     srv_config_free(&cfg);
 *
 * Every option is a long command-line option (`--max-body 32M`) and a key of
 * the same name in one section of the INI file (`max-body = 32M` or
 * `max_body = 32M` under `[limits]`; a key may also stand before the first
 * section). Relative paths in the file are relative to the file's folder;
 * on the command line, to the current directory.
 *
 * Default config file: <source>/config/advjpgd.conf when the program runs
 * from its build tree, else <sysconfdir>/advjpg/advjpgd.conf. A missing
 * default file is fine (built-in defaults apply); a missing --config is an
 * error. The embedded default model's weights and labels
 * (MODEL_DEFAULT_NAME.weights / .labels) are looked up in the source config
 * folder (build tree) or <datadir>/advjpg (installed).
 *
 * Sizes take an optional binary suffix: 512K, 32M, 1G (powers of 1024).
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/** srv_config_load's return value when --help or --version was printed. */
#define SRV_CONFIG_EXIT 1

typedef struct {
    char *config_path;   /**< the file that was read, NULL if none */
    /* [server] */
    char *listen;        /**< "ADDR:PORT", "[v6]:PORT" or ":PORT" (all IPv4 interfaces) */
    int threads;         /**< decode-pool threads, and as many HTTP threads (libmicrohttpd's pool) */
    int conn_timeout_s;  /**< idle connection timeout, seconds */
    int header_timeout_s; /**< a request's headers must arrive within this, seconds */
    size_t min_rate;     /**< slowest body upload after header_timeout_s, bytes per second */
    int conn_limit;      /**< open connections at most */
    int per_ip_limit;    /**< open connections per client address at most */
    int keep_alive;      /**< 0: Connection: close on every answer (each request passes srv_front) */
    char *port_file;     /**< write the bound port here, or NULL */
    char *token;         /**< required bearer token, or NULL (no auth) */
    char *token_file;    /**< where the token was read from, or NULL */
    /* [model] */
    char *model;         /**< built-in name or spec file (never NULL after load) */
    char *weights;       /**< weight file (never NULL after load) */
    char *labels;        /**< labels file, or NULL */
    char *preprocess;    /**< an ONNX model's preprocessing spec, or NULL (model.h) */
    int labels_required; /**< nonzero when the labels file was named explicitly */
    /* [limits] */
    size_t max_body;     /**< request body bytes at most */
    size_t max_pixels;   /**< decoded width * height at most */
    int timeout_s;       /**< per-request deadline (queueing included), seconds */
    /* [batching] */
    int max_batch;       /**< images per forward pass at most */
    int batch_delay_ms;  /**< how long a request may wait for others to join its batch */
    int queue_size;      /**< queued interactive requests at most */
    /* [jobs] */
    char *data_root;     /**< NULL: server-side datasets disabled */
    char *jobs_dir;      /**< where jobs keep their folders (created with the first job) */
    int job_batch;       /**< images per background batch of a job, 0: automatic */
    int job_batch_ms;    /**< automatic: aim for batches of about this long */
    /* batch mode (command line only; srv_batch.h) */
    char *run;           /**< --run: the /evaluate body to run without HTTP, or NULL: serve */
    char *out;           /**< --out: its job folder (set exactly when run is) */
    char *shard;         /**< --shard "I/N" or "auto/N", or NULL: the request's */
} srv_config;

/**
 * Fills cfg from defaults, the config file and the command line.
 * Returns 0, SRV_CONFIG_EXIT after printing --help or --version to out, or
 * ADJ_ERR_ARG / ADJ_ERR_IO with one line in err (the option or the file and
 * line, and the bad value). On error cfg holds nothing to free.
 * Reads the token file, if any, so cfg->token is the token to require.
 */
int srv_config_load(srv_config *cfg, int argc, char **argv, FILE *out, char *err, size_t errsz);

/** Frees the strings (a zeroed struct is fine). */
void srv_config_free(srv_config *cfg);

/** Prints the --help text. */
void srv_config_usage(FILE *out);

/**
 * Parses a size with an optional K/M/G suffix (powers of 1024, an optional
 * trailing "B" or "iB"). Returns 0 or ADJ_ERR_ARG.
 */
int srv_parse_size(const char *s, size_t *out);

/**
 * Splits "ADDR:PORT" / "[ADDR]:PORT" / ":PORT" into host (without brackets;
 * "0.0.0.0" for an empty host) and port 0..65535. Returns 0 or ADJ_ERR_ARG.
 */
int srv_parse_listen(const char *s, char *host, size_t hostsz, int *port);

#endif
