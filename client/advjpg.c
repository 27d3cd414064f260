/*
 * advjpg.c - the thin client of advjpgd: one command per endpoint.
 *
 * main() reads the global options up to the command's name, then hands the
 * rest to the command (cli_images.c, cli_jobs.c, and the service commands
 * below), which may take global options too. The contract of commands,
 * output and exit statuses is the README's "The client"; cli_cmd.h has the summary.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_cmd.h"

#ifndef ADVJPG_VERSION
#define ADVJPG_VERSION "dev"
#endif

/* ---- health, models, metrics ------------------------------------------- */

/* The service commands take no arguments; answers are printed as they come. */
static int run_service(cli_ctx *ctx, int argc, char **argv, const char *path, int json)
{
    static const struct option opts[] = {CLI_GLOBAL_OPTIONS, {NULL, 0, NULL, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if ((rc = cli_common_option(ctx, c, argv)) >= 0)
            return rc;
    if (optind < argc)
        return cli_usage(ctx, "unexpected argument '%s'", argv[optind]);
    cli_request q = {.method = "GET", .path = path, .accept = json ? NULL : "text/plain"};
    if (json) {
        json_t *j;
        if ((rc = cli_call_json(ctx, &q, &j)))
            return rc;
        rc = cli_output(ctx, j);
        json_decref(j);
        return rc;
    }
    cli_response r;
    if ((rc = cli_call(ctx, &q, &r)))
        return rc;
    if (fwrite(r.body, 1, r.len, stdout) != r.len || fflush(stdout))
        rc = cli_fail("cannot write the output: %s", strerror(errno));
    cli_response_free(&r);
    return rc;
}

static int run_health(cli_ctx *ctx, int argc, char **argv)
{
    return run_service(ctx, argc, argv, "/health", 1);
}

static int run_models(cli_ctx *ctx, int argc, char **argv)
{
    return run_service(ctx, argc, argv, "/models", 1);
}

static int run_metrics(cli_ctx *ctx, int argc, char **argv)
{
    return run_service(ctx, argc, argv, "/metrics", 0);
}

const cli_command cli_cmd_health = {
    "health", run_health, "whether the server is up with its model loaded (GET /health)",
    "usage: advjpg health\n"
    "\n"
    "Prints {\"status\": \"ok\"} and exits 0 when the model is loaded; while it\n"
    "loads the server answers 503 and the exit status is 1.\n",
};

const cli_command cli_cmd_models = {
    "models", run_models, "the loaded model (GET /models)",
    "usage: advjpg models\n"
    "\n"
    "Prints the loaded model: name, input size, classes, parameters, weight file.\n",
};

const cli_command cli_cmd_metrics = {
    "metrics", run_metrics, "Prometheus metrics (GET /metrics)",
    "usage: advjpg metrics\n"
    "\n"
    "Prints the server's metrics in the Prometheus text format, as sent.\n",
};

/* ---- the program ------------------------------------------------------- */

const cli_command *const cli_commands[] = {
    &cli_cmd_classify, &cli_cmd_attack, &cli_cmd_recompress, &cli_cmd_evaluate,
    &cli_cmd_jobs,     &cli_cmd_job,    &cli_cmd_result,     &cli_cmd_rows,
    &cli_cmd_cancel,   &cli_cmd_delete, &cli_cmd_health,     &cli_cmd_models,
    &cli_cmd_metrics,  &cli_cmd_compare,  &cli_cmd_merge,
    NULL,
};

static void program_help(FILE *f)
{
    fputs("usage: advjpg [--server URL] [--token T] [--timeout S] COMMAND [ARGS...]\n"
          "\n"
          "The command-line client of advjpgd, the image classifier and adversarial/JPEG\n"
          "experiment server: one command per endpoint.\n"
          "\n"
          "Commands:\n",
          f);
    for (int i = 0; cli_commands[i]; i++)
        fprintf(f, "  %-12s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    fprintf(f, "  %-12s %s\n", "help", "this text, or 'advjpg help COMMAND' for a command's");
    fputs("\n"
          "Global options (before or after the command):\n"
          "  --server URL       the server (default: $ADVJPG_SERVER, else " CLI_DEFAULT_SERVER
          ")\n"
          "  --token T          bearer token for a server started with --token (default:\n"
          "                     $ADVJPG_TOKEN); other users can see a command line, so\n"
          "                     prefer the variable or --token-file\n"
          "  --token-file FILE  read the token from the first line of FILE\n"
          "  --timeout S        give up on a request after S seconds (default 300, 0 = never)\n"
          "  -h, --help         this help; 'advjpg COMMAND --help' for a command\n"
          "  -V, --version      the client's version\n"
          "\n"
          "Images (JPEG, PNG, PPM/PGM) are sent as the raw request body, with the\n"
          "Content-Type of their first bytes; evaluate uploads them as multipart\n"
          "form-data instead.\n"
          "\n"
          "Output: the server's JSON on standard output, indented when that is a\n"
          "terminal and compact (one line per answer) otherwise; problems go to\n"
          "standard error, one line each.\n"
          "\n"
          "Exit status:\n"
          "  0  success\n"
          "  1  server or connection error: no answer (refused, unknown host, --timeout),\n"
          "     an HTTP error status such as 401 or 503, a failed job, or an answer that\n"
          "     could not be saved\n"
          "  2  usage error: unknown command or option, bad value, missing or unreadable\n"
          "     image\n"
          "\n"
          "Examples:\n"
          "  advjpg classify cat.jpg dog.png\n"
          "  advjpg attack cat.jpg --eps 1,5,10 --out adv/\n"
          "  advjpg recompress cat.png -q 75 -o cat-q75.jpg\n"
          "  advjpg evaluate photos/*.jpg --labels labels.txt --wait\n"
          "  ADVJPG_SERVER=http://gpu-box:8080 advjpg evaluate --dataset imagenet/val --wait\n",
          f);
}

static const cli_command *find_command(const char *name)
{
    for (int i = 0; cli_commands[i]; i++)
        if (!strcmp(cli_commands[i]->name, name))
            return cli_commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_GLOBAL_OPTIONS,
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cli_ctx ctx;
    int c, rc = -1;
    cli_ctx_init(&ctx);
    opterr = 0;
    /* "+": stop at the command's name, whose options are its own */
    while (rc < 0 && (c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
        if (c == 'h') {
            program_help(stdout);
            rc = CLI_EXIT_OK;
        } else if (c == 'V') {
            printf("advjpg %s (libcurl %s, jansson %s)\n", ADVJPG_VERSION,
                   curl_version_info(CURLVERSION_NOW)->version, JANSSON_VERSION);
            rc = CLI_EXIT_OK;
        } else {
            rc = cli_common_option(&ctx, c, argv);
        }
    }
    if (rc < 0) {
        if (optind >= argc) {
            fputs("usage: advjpg [--server URL] [--token T] [--timeout S] COMMAND [ARGS...]\n"
                  "commands:", stderr);
            for (int i = 0; cli_commands[i]; i++)
                fprintf(stderr, " %s", cli_commands[i]->name);
            fputs("\nSee 'advjpg --help' and 'advjpg COMMAND --help'.\n", stderr);
            rc = CLI_EXIT_USAGE;
        } else if (!strcmp(argv[optind], "help")) {
            const cli_command *cmd = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
            if (optind + 1 < argc && !cmd) {
                rc = cli_usage(&ctx, "no command '%s'", argv[optind + 1]);
            } else {
                if (cmd)
                    cli_print_help(cmd, stdout);
                else
                    program_help(stdout);
                rc = CLI_EXIT_OK;
            }
        } else if (!(ctx.cmd = find_command(argv[optind]))) {
            rc = cli_usage(&ctx, "no command '%s'", argv[optind]);
        } else {
            int first = optind;
            optind = 0; /* GNU getopt: start afresh on the command's arguments */
            rc = ctx.cmd->run(&ctx, argc - first, argv + first);
        }
    }
    cli_ctx_free(&ctx);
    return rc;
}
