/*
 * cli_progress.c - see cli_progress.h.
 */
#include "cli_progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "4m44s", "1h02m", "37s"; "?" when unknown. */
static void fmt_duration(char *buf, size_t n, double s)
{
    if (s < 0 || s > 99 * 86400.0) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

static int term_width(FILE *f)
{
    struct winsize ws;
    if (!ioctl(fileno(f), TIOCGWINSZ, &ws) && ws.ws_col >= 20)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
    return w >= 20 ? w : 80;
}

void cli_progress_init(cli_progress *p, FILE *f, int tty)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = tty;
    p->t0 = -1;
    p->last_log = -1e9;
    p->last_done = -1;
}

void cli_progress_update(cli_progress *p, const char *id, const char *status, long done,
                         long total, double rate, double eta)
{
    double now = cli_now();
    if (p->t0 < 0) {
        p->t0 = now;
        p->done0 = done;
    }
    /* the client's own estimate when the server sends none */
    if (rate < 0 && now - p->t0 > 0.5 && done > p->done0)
        rate = (done - p->done0) / (now - p->t0);
    if (eta < 0 && rate > 0 && total > 0 && done <= total)
        eta = (total - done) / rate;
    /* only a job that goes on has an ETA: not one done, failed or canceled */
    int going = !strcmp(status, "queued") || !strcmp(status, "running");
    char ratebuf[32] = "", etabuf[32] = "", counts[48];
    if (rate >= 0)
        snprintf(ratebuf, sizeof ratebuf, "%.3g img/s", rate);
    if (going)
        fmt_duration(etabuf, sizeof etabuf, eta); /* "?" when unknown */
    int pct = total > 0 ? (int)(100.0 * done / total) : -1;
    if (pct > 100)
        pct = 100;
    if (total > 0)
        snprintf(counts, sizeof counts, "%ld/%ld", done, total);
    else
        snprintf(counts, sizeof counts, "%ld/?", done);

    if (p->tty) {
        /* Every field has a fixed width (the counts that of "total/total"),
         * so the bar keeps its length from one redraw to the next. The id
         * is whole: it is what 'advjpg job ID' wants. */
        char head[256], tail[160], bar[256], etafield[24] = "";
        int cw = total > 0 ? 2 * snprintf(NULL, 0, "%ld", total) + 1 : 0;
        snprintf(head, sizeof head, "job %.200s %-8.8s ", id, status);
        if (etabuf[0])
            snprintf(etafield, sizeof etafield, "ETA %s", etabuf);
        if (pct >= 0)
            snprintf(tail, sizeof tail, " %*s %3d%%  %-13s  %-12s", cw, counts, pct, ratebuf,
                     etafield);
        else
            snprintf(tail, sizeof tail, " %s  %-13s", counts, ratebuf);
        int width = term_width(p->f) - 1; /* never touch the last column: no wrap */
        int room = width - (int)strlen(head) - (int)strlen(tail) - 2;
        if (room > 40)
            room = 40;
        bar[0] = '\0';
        if (room >= 5) {
            int fill = pct >= 0 ? pct * room / 100 : 0;
            bar[0] = '[';
            for (int i = 0; i < room; i++)
                bar[1 + i] = i < fill ? '#' : '-';
            bar[1 + room] = ']';
            bar[2 + room] = '\0';
        }
        char line[512];
        snprintf(line, sizeof line, "%s%s%s", head, bar, tail);
        if ((int)strlen(line) > width && width > 0)
            line[width] = '\0';
        /* \r, the line, then clear to the end of the line */
        fprintf(p->f, "\r%s\033[K", line);
        p->drawn = 1;
    } else {
        int changed = strcmp(status, p->last_status) != 0;
        if (changed || (done != p->last_done && now - p->last_log >= CLI_PROGRESS_LOG_S)) {
            fprintf(p->f, "advjpg: job %s %s: %s", id, status, counts);
            if (pct >= 0)
                fprintf(p->f, " (%d%%)", pct);
            if (rate >= 0)
                fprintf(p->f, ", %.3g images/s", rate);
            if (going && eta >= 0)
                fprintf(p->f, ", ETA %s", etabuf);
            fputc('\n', p->f);
            p->last_log = now;
        }
    }
    fflush(p->f);
    p->last_done = done;
    snprintf(p->last_status, sizeof p->last_status, "%s", status);
}

void cli_progress_end(cli_progress *p)
{
    if (p->tty && p->drawn) {
        fputc('\n', p->f);
        fflush(p->f);
    }
    p->drawn = 0;
}
