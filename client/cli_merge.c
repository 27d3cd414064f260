/*
 * cli_merge.c - advjpg merge: the shards of one evaluation (the folders of
 * advjpgd --run --shard I/N, or of jobs) merged into one job folder, through
 * the daemon's own job store (srv_batch_merge, libadvjpgsrv), so that the
 * merged result is what the job runner writes when a job finishes.
 */
#include <stdlib.h>

#include "cli_cmd.h"
#include "srv_batch.h"
#include "status.h"

static int run_merge(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {CLI_GLOBAL_OPTIONS, {"out", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        if (c == 'o') {
            out = optarg;
            continue;
        }
        if ((rc = cli_common_option(ctx, c, argv)) >= 0)
            return rc;
    }
    if (!out || !*out)
        return cli_usage(ctx, "give the merged folder: --out DIR");
    if (optind >= argc)
        return cli_usage(ctx, "give the shards' folders");
    char err[ADJ_ERRLEN];
    rc = srv_batch_merge((const char *const *)argv + optind, argc - optind, out, err, sizeof err);
    if (rc == ADJ_ERR_ARG)
        return fprintf(stderr, "advjpg merge: %s\n", err), CLI_EXIT_USAGE;
    if (rc)
        return cli_fail("merge: %s", err);
    fprintf(stderr, "advjpg merge: %d shards merged into %s (result.json, rows.csv, figures)\n",
            argc - optind, out);
    return CLI_EXIT_OK;
}

const cli_command cli_cmd_merge = {
    "merge", run_merge, "merge the shards of one evaluation into one result (no server)",
    "usage: advjpg merge DIR... --out DIR\n"
    "\n"
    "Merges the folders of the shards 0..N-1 of one evaluation (advjpgd --run\n"
    "--shard I/N, or jobs with \"shard\") into the new folder --out: the same\n"
    "request.json, rows.csv (each image's row as its shard computed it, in the\n"
    "order of one run over the whole set), status.json, result.json, figure3.svg\n"
    "and figure4.svg as one run over the whole set would write. Works on files\n"
    "only: no server is asked. Refused (exit 2), naming the folders: a shard\n"
    "that is not done (all of them are listed), shards of another model, weights\n"
    "or parameters, a shard missing or given twice, an image in two shards.\n",
};
