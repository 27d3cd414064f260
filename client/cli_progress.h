/*
 * cli_progress.h - progress of a job while the client waits for it.
 *
 * On a terminal one line is redrawn in place with '\r':
 *
 *   job 3f2a9c0b1d4e5f60 running  [########------------]  120/1000  12%  3.1 img/s      ETA 4m44s
 *
 * Elsewhere (a log file, a CI job) plain lines are printed, one when the
 * state changes and otherwise at most one every CLI_PROGRESS_LOG_S seconds:
 *
 *   advjpg: job 3f2a9c0b1d4e5f60 running: 120/1000 (12%), 3.1 images/s, ETA 4m44s
 *
 * The rate and ETA are the server's (images_per_s, eta_s) when it sends
 * them, else estimated from what the client has seen. Every field of the bar
 * has a fixed width, so the bar keeps its length between redraws; the ETA is
 * shown only while the job is queued or running.
 */
#ifndef CLI_PROGRESS_H
#define CLI_PROGRESS_H

#include <stdio.h>

#define CLI_PROGRESS_LOG_S 10.0

typedef struct {
    FILE *f;           /**< where progress goes (stderr), borrowed */
    int tty;           /**< redraw one line in place */
    int drawn;         /**< a partial line is on the terminal */
    double t0;         /**< monotonic time of the first update */
    long done0;        /**< done at the first update */
    double last_log;   /**< time of the last plain line */
    long last_done;
    char last_status[24];
} cli_progress;

/** Starts progress output on f; tty decides between the bar and plain lines. */
void cli_progress_init(cli_progress *p, FILE *f, int tty);

/**
 * Shows the job's state. total <= 0 means unknown; rate < 0 and eta < 0 mean
 * "not sent by the server".
 */
void cli_progress_update(cli_progress *p, const char *id, const char *status, long done,
                         long total, double rate, double eta);

/** Ends the bar's line on a terminal so that later output starts on a fresh line. */
void cli_progress_end(cli_progress *p);

/** Seconds on a monotonic clock. */
double cli_now(void);

#endif
