/*
 * cli_cmd.h - what every advjpg command shares: the run context, option
 * parsing, value checks, requests that print their own failure, and the
 * exit statuses of the contract (README, "The client"):
 *
 *   0  success
 *   1  the server or the connection failed (no answer, time limit, an HTTP
 *      error status, an answer that is not what the contract says), or an
 *      answer could not be saved
 *   2  usage error: unknown option, bad value, missing or unreadable input
 *
 * A command is `int run(cli_ctx *, int argc, char **argv)` with argv[0] the
 * command's name; it returns the exit status and has printed whatever the
 * user needs to know (results on stdout, one line per problem on stderr).
 *
 * Each command parses its options with getopt_long, its own options plus
 * CLI_GLOBAL_OPTIONS, so global options may come before or after the
 * command name; anything getopt_long returns that the command does not
 * know goes to cli_common_option().
 */
#ifndef CLI_CMD_H
#define CLI_CMD_H

#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "cli_http.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_SERVER = 1, CLI_EXIT_USAGE = 2 };

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"
#define CLI_DEFAULT_TIMEOUT 300.0

/* getopt_long values of the global options (beyond any character) */
enum { OPT_SERVER = 1000, OPT_TOKEN, OPT_TOKEN_FILE, OPT_TIMEOUT, OPT_HELP, OPT_FIRST_LOCAL };

#define CLI_GLOBAL_OPTIONS                                   \
    {"server", required_argument, NULL, OPT_SERVER},         \
    {"token", required_argument, NULL, OPT_TOKEN},           \
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE}, \
    {"timeout", required_argument, NULL, OPT_TIMEOUT},       \
    {"help", no_argument, NULL, 'h'}

typedef struct cli_command cli_command;

typedef struct {
    const char *server;    /**< --server, $ADVJPG_SERVER or the default (borrowed) */
    char *token;           /**< --token, --token-file or $ADVJPG_TOKEN; owned, may be NULL */
    double timeout_s;      /**< --timeout; 0 = none */
    int out_tty;           /**< stdout is a terminal: indent JSON */
    int err_tty;           /**< stderr is a terminal: redraw progress in place */
    const cli_command *cmd;/**< the running command (for messages) */
    cli_http http;
    int http_ready;
} cli_ctx;

struct cli_command {
    const char *name;
    int (*run)(cli_ctx *ctx, int argc, char **argv);
    const char *summary;   /**< one line for the program's help */
    const char *help;      /**< the command's --help text */
};

/** The commands, NULL-terminated (advjpg.c). */
extern const cli_command *const cli_commands[];

/* commands, each in the module of its endpoints */
extern const cli_command cli_cmd_classify, cli_cmd_attack, cli_cmd_recompress;
extern const cli_command cli_cmd_evaluate, cli_cmd_jobs, cli_cmd_job, cli_cmd_result,
    cli_cmd_rows, cli_cmd_cancel, cli_cmd_delete, cli_cmd_compare;
extern const cli_command cli_cmd_health, cli_cmd_models, cli_cmd_metrics;
extern const cli_command cli_cmd_merge; /* cli_merge.c: files only, no server */

/** Sets the context's defaults from the environment and the terminal. */
void cli_ctx_init(cli_ctx *ctx);

/** Frees what the context owns. */
void cli_ctx_free(cli_ctx *ctx);

/**
 * Handles one getopt_long result c that the command itself did not: a
 * global option, -h/--help (prints the command's help), or an unknown
 * option or missing argument. Returns -1 to go on parsing, or the exit
 * status the command must return at once (0 after help, 2 after a usage
 * error, which it has printed).
 */
int cli_common_option(cli_ctx *ctx, int c, char **argv);

/** Prints the command's help to f. */
void cli_print_help(const cli_command *cmd, FILE *f);

/**
 * Prints "advjpg CMD: <message> (see 'advjpg CMD --help')" on stderr and
 * returns CLI_EXIT_USAGE.
 */
int cli_usage(cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Prints "advjpg: <message>" on stderr and returns CLI_EXIT_SERVER. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/**
 * Parses a decimal integer in [lo, hi] into *out. On failure prints a usage
 * error naming the option and returns CLI_EXIT_USAGE; 0 on success.
 */
int cli_parse_long(cli_ctx *ctx, const char *opt, const char *s, long lo, long hi, long *out);

/** A seed: a decimal integer in [0, max] (the server takes 64 bits). */
int cli_parse_seed(cli_ctx *ctx, const char *s, unsigned long long max, unsigned long long *out);

/** The same for a number of seconds, finite and >= 0. */
int cli_parse_seconds(cli_ctx *ctx, const char *opt, const char *s, double *out);

/**
 * Checks an eps list ("1,5,10": integers 1..255, blanks after commas
 * allowed, at most 64; the server has its own, lower, limit) and writes it
 * normalised ("1,5,10") into norm (size n, 512 is enough) and, if arr is
 * not NULL, as a new JSON array into *arr.
 */
int cli_parse_eps(cli_ctx *ctx, const char *s, char *norm, size_t n, json_t **arr);

/** The same for a --quality list ("75", or a grid "50,75,90": integers 1..100). */
int cli_parse_quality(cli_ctx *ctx, const char *s, char *norm, size_t n, json_t **arr);

/** The same for option opt: integers lo..hi (example shown in the message). */
int cli_parse_list(cli_ctx *ctx, const char *opt, const char *s, long lo, long hi,
                   const char *example, char *norm, size_t n, json_t **arr);
/* ---- the attack menu (api.md "Attacks"): the same options for attack and evaluate */

/* getopt_long values of the attack menu's options (beyond the local ones) */
enum { OPT_ATTACK = 1100, OPT_STEPS, OPT_STEP_SIZE, OPT_ADAPTIVE, OPT_EOT_QUALITIES, OPT_ATTACK_END };

#define CLI_ATTACK_OPTIONS                                          \
    {"attack", required_argument, NULL, OPT_ATTACK},               \
    {"steps", required_argument, NULL, OPT_STEPS},                 \
    {"step-size", required_argument, NULL, OPT_STEP_SIZE},         \
    {"adaptive", required_argument, NULL, OPT_ADAPTIVE},           \
    {"eot-qualities", required_argument, NULL, OPT_EOT_QUALITIES}

/** The attack menu's options as given (borrowed from argv; NULL: not given). */
typedef struct {
    const char *val[OPT_ATTACK_END - OPT_ATTACK];
} cli_attack;

/** The options' lines of a command's --help, the same for attack and evaluate; PAD
 *  ("" or blanks) moves the descriptions from column 24 to where the command has them. */
#define CLI_ATTACK_HELP(PAD)                                                                 \
    "      --attack A        " PAD "fgsm (the paper, default), bim, pgd (bim from a\n"         \
    "                        " PAD "seeded random start) or ll (iterative least-likely\n"     \
    "                        " PAD "class)\n"                                                 \
    "      --steps T         " PAD "iterations of bim, pgd, ll (default 10; T backward\n"     \
    "                        " PAD "passes)\n"                                                \
    "      --step-size S     " PAD "pixel levels per step of bim, pgd, ll (default 1)\n"      \
    "      --adaptive M      " PAD "the threat model: none (attack f, the paper), bpda\n"     \
    "                        " PAD "(attack f(JPG_q(.)) at --quality, JPEG the identity\n"    \
    "                        " PAD "backwards) or eot (bpda averaged over\n"                  \
    "                        " PAD "--eot-qualities); bpda and eot need bim, pgd or ll\n"     \
    "      --eot-qualities LIST\n"                                                            \
    "                        " PAD "JPEG qualities of --adaptive eot (default\n"              \
    "                        " PAD "50,60,70,75,80,90)\n"

/**
 * Takes getopt_long's c when it is an attack option: checks arg against the
 * parameter table (exp_param.h: the words, the range, the list) and stores
 * it. Returns -1 when c is not one (try cli_common_option), 0 when taken (go
 * on), or CLI_EXIT_USAGE (a message printed: return it). The combinations (steps with fgsm, ...) are the
 * server's to refuse, with a 400 naming the parameter.
 */
int cli_attack_option(cli_ctx *ctx, int c, const char *arg, cli_attack *a);

/** Appends the given attack options as query parameters to path (size n). 0, or -1 when too long. */
int cli_attack_query(const cli_attack *a, char *path, size_t n);

/** The given attack options as /evaluate's "attack" object (new), or NULL when none is given. */
json_t *cli_attack_json(const cli_attack *a);

/** Checks --resize: "center" or "none". */
int cli_check_resize(cli_ctx *ctx, const char *s);

/**
 * Appends one query parameter, formatted "key=value" by fmt, to path (size
 * n) after a '?' or '&' as fits. The values the commands pass are checked
 * numbers and words that need no escaping. 0, or -1 when path is too small.
 */
int cli_query_add(char *path, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Sets up the HTTP client once (the server URL is checked here). Exit status. */
int cli_connect(cli_ctx *ctx);

/**
 * Sends req and wants a 2xx answer in *resp (initialised here; the caller
 * frees it with cli_response_free() when 0 is returned). No answer or an
 * HTTP error status prints one line and returns CLI_EXIT_SERVER.
 */
int cli_call(cli_ctx *ctx, const cli_request *req, cli_response *resp);

/**
 * cli_call() for a JSON answer: *out gets the parsed JSON (new reference).
 * An answer that is not JSON prints one line and returns CLI_EXIT_SERVER.
 */
int cli_call_json(cli_ctx *ctx, const cli_request *req, json_t **out);

/** Prints JSON on stdout (indented on a terminal). 0, or 1 with a message. */
int cli_output(cli_ctx *ctx, const json_t *j);

/**
 * Percent-encodes s for one URL path segment or query value (all but
 * A-Z a-z 0-9 - . _ ~). New string (caller frees with free()), NULL when
 * memory ran out.
 */
char *cli_escape(const char *s);

#endif
