/*
 * cli_images.c - the commands that send an image: classify, attack, recompress.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_cmd.h"
#include "cli_io.h"
#include "exp_param.h"
#include "ut_base64.h"

/* Statuses that are about one image (bad, too large, wrong type), after
 * which classify goes on with the next image; any other error ends it. */
static int image_status(long status)
{
    return status == 400 || status == 413 || status == 415 || status == 422;
}

/* Reads an image for sending; a problem is a usage error (printed). */
static int load_image(cli_ctx *ctx, const char *path, char **data, size_t *len,
                      const char **type)
{
    char err[CLI_ERRLEN];
    if (cli_image_check(path, type, err, sizeof err) ||
        cli_read_file(path, data, len, err, sizeof err))
        return cli_usage(ctx, "%s", err);
    return 0;
}

/*
 * POSTs the image file to path (a checked query included). On an answer:
 * 0 and *out (new) = {"file": file, ...the server's JSON object} for a 2xx,
 * or {"file", "error", "status"} when the server refused this image (400,
 * 413, 415, 422: *refused is set and a line goes to stderr). Anything else
 * (no answer, another error status, an answer that is not a JSON object):
 * the exit status, printed.
 */
static int post_image(cli_ctx *ctx, const char *path, const char *file, json_t **out,
                      int *refused)
{
    char err[CLI_ERRLEN];
    const char *type;
    char *data;
    size_t len;
    cli_response r;
    int rc;
    if ((rc = cli_connect(ctx)) || (rc = load_image(ctx, file, &data, &len, &type)))
        return rc;
    cli_request q = {.method = "POST", .path = path, .body = data, .body_len = len,
                     .content_type = type};
    rc = cli_http_do(&ctx->http, &q, &r, err, sizeof err);
    free(data);
    if (rc) {
        cli_response_free(&r);
        return cli_fail("%s", err);
    }
    json_t *o = json_object(), *ans = NULL;
    json_object_set_new(o, "file", cli_json_path(file));
    if (r.status >= 200 && r.status < 300) {
        ans = json_loadb(r.body, r.len, 0, NULL);
        if (!json_is_object(ans)) {
            json_decref(ans);
            json_decref(o);
            cli_response_free(&r);
            return cli_fail("%s: server answered %ld with something that is not a JSON "
                            "object", file, r.status);
        }
        json_object_update(o, ans);
        json_decref(ans);
    } else if (image_status(r.status)) {
        /* this image's fault: report it in the output too, and go on */
        cli_http_status_message(&r, err, sizeof err);
        ans = json_loadb(r.body, r.len, 0, NULL);
        json_t *e = json_object_get(ans, "error");
        if (json_is_string(e))
            json_object_set(o, "error", e);
        else
            json_object_set_new(o, "error", json_string(err));
        json_object_set_new(o, "status", json_integer(r.status));
        json_decref(ans);
        fprintf(stderr, "advjpg: %s: %s\n", file, err);
        *refused = 1;
    } else {
        cli_http_status_message(&r, err, sizeof err);
        json_decref(o);
        cli_response_free(&r);
        return cli_fail("%s", err);
    }
    cli_response_free(&r);
    *out = o;
    return 0;
}

/* ---- classify ---------------------------------------------------------- */

static int run_classify(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"top-k", required_argument, NULL, 'k'},
        {"resize", required_argument, NULL, 'r'},
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    long top_k = -1;
    const char *resize = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":hk:", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if ((rc = cli_parse_long(ctx, "--top-k", optarg, 1, 100000, &top_k)))
                return rc;
            break;
        case 'r':
            if ((rc = cli_check_resize(ctx, optarg)))
                return rc;
            resize = optarg;
            break;
        default:
            if ((rc = cli_common_option(ctx, c, argv)) >= 0)
                return rc;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "which image? (advjpg classify IMG...)");
    /* every file is checked before the first request */
    char err[CLI_ERRLEN];
    for (int i = optind; i < argc; i++) {
        const char *type;
        if (cli_image_check(argv[i], &type, err, sizeof err))
            return cli_usage(ctx, "%s", err);
    }
    if ((rc = cli_connect(ctx)))
        return rc;

    char path[128] = "/classify";
    if ((top_k > 0 && cli_query_add(path, sizeof path, "top_k=%ld", top_k)) ||
        (resize && cli_query_add(path, sizeof path, "resize=%s", resize)))
        return cli_fail("the request's URL is too long");

    int failed = 0;
    for (int i = optind; i < argc; i++) {
        json_t *out = NULL;
        if ((rc = post_image(ctx, path, argv[i], &out, &failed)))
            return rc;
        rc = cli_output(ctx, out);
        json_decref(out);
        if (rc)
            return rc;
    }
    return failed ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

const cli_command cli_cmd_classify = {
    "classify", run_classify, "classify images (POST /classify)",
    "usage: advjpg classify [--top-k K] [--resize center|none] IMG...\n"
    "\n"
    "Classifies each image with the server's model, one request per image, in\n"
    "the order given. Images are JPEG, PNG or PPM/PGM files, sent as the raw\n"
    "request body with the Content-Type of their first bytes.\n"
    "\n"
    "Output: one JSON object per image (JSON Lines when standard output is not\n"
    "a terminal): the server's answer with the image's path added first as\n"
    "\"file\":\n"
    "  {\"file\": \"cat.jpg\", \"model\": ..., \"label\": 281, \"prob\": 0.71, \"top\": [...]}\n"
    "An image the server refuses (400, 413, 415) gives\n"
    "  {\"file\": \"bad.png\", \"error\": \"...\", \"status\": 400}\n"
    "and a line on standard error; the other images are still classified and\n"
    "the exit status is 1. Any other error (no answer, 401, 503, ...) stops at once.\n"
    "\n"
    "Options:\n"
    "  -k, --top-k K         how many classes in \"top\" (server default: 5)\n"
    "      --resize MODE     center (default): scale and centre-crop to the model's\n"
    "                        input; none: the image must already be that size\n"
    "\n"
    "Examples:\n"
    "  advjpg classify cat.jpg\n"
    "  advjpg classify photos/*.jpg | jq -r '[.file, .top[0].name] | @tsv'\n",
};

/* ---- attack ------------------------------------------------------------ */

/* Writes the answer's base64 PNGs ("images") into dir, named after their
 * transforms, and replaces "images" by "files": {transform: path}. */
static int save_images(json_t *ans, const char *dir)
{
    char err[CLI_ERRLEN];
    json_t *images = json_object_get(ans, "images");
    if (!json_is_object(images))
        return cli_fail("server answered without \"images\" although they were asked for");
    json_t *files = json_object(), *used = json_object();
    const char *key;
    json_t *val;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    json_object_foreach(images, key, val) {
        const char *b64 = json_string_value(val);
        unsigned char *png;
        size_t len;
        if (!b64 || ut_base64_decode(b64, json_string_length(val), &png, &len, NULL, 0)) {
            json_decref(files);
            json_decref(used);
            return cli_fail("server sent an image for '%s' that is not base64", key);
        }
        /* a safe name, distinct from the ones already written */
        char name[256], path[4096];
        cli_safe_name(key, ".png", name, sizeof name);
        for (int k = 2; json_object_get(used, name); k++) {
            char stem[200];
            cli_safe_name(key, NULL, stem, sizeof stem);
            snprintf(name, sizeof name, "%s-%d.png", stem, k);
        }
        json_object_set_new(used, name, json_true());
        int n = snprintf(path, sizeof path, "%.*s%s%s", (int)dl, dir,
                         dl && dir[dl - 1] == '/' ? "" : "/", name);
        if (n < 0 || (size_t)n >= sizeof path) {
            free(png);
            json_decref(files);
            json_decref(used);
            return cli_fail("the folder name %s is too long", dir);
        }
        int rc = cli_write_file(path, png, len, err, sizeof err);
        free(png);
        if (rc) {
            json_decref(files);
            json_decref(used);
            return cli_fail("%s", err);
        }
        json_object_set_new(files, key, cli_json_path(path));
    }
    json_decref(used);
    json_object_del(ans, "images");
    json_object_set_new(ans, "files", files);
    return 0;
}

static int run_attack(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"eps", required_argument, NULL, 'e'},
        {"quality", required_argument, NULL, 'q'},
        {"seed", required_argument, NULL, 's'},
        {"top-k", required_argument, NULL, 'k'},
        {"resize", required_argument, NULL, 'r'},
        {"out", required_argument, NULL, 'o'},
        CLI_ATTACK_OPTIONS,
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    char eps[512] = "", quality[256] = "", err[CLI_ERRLEN];
    cli_attack atk = {0};
    long top_k = -1;
    unsigned long long seed = 0;
    int have_seed = 0;
    const char *resize = NULL, *out = NULL;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":he:q:s:k:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if ((rc = cli_parse_eps(ctx, optarg, eps, sizeof eps, NULL)))
                return rc;
            break;
        case 'q':
            if ((rc = cli_parse_quality(ctx, optarg, quality, sizeof quality, NULL)))
                return rc;
            break;
        case 's':
            if ((rc = cli_parse_seed(ctx, optarg, ULLONG_MAX, &seed)))
                return rc;
            have_seed = 1;
            break;
        case 'k':
            if ((rc = cli_parse_long(ctx, "--top-k", optarg, 1, 100000, &top_k)))
                return rc;
            break;
        case 'r':
            if ((rc = cli_check_resize(ctx, optarg)))
                return rc;
            resize = optarg;
            break;
        case 'o':
            if (!*optarg)
                return cli_usage(ctx, "--out wants a folder");
            out = optarg;
            break;
        default:
            if ((rc = cli_attack_option(ctx, c, optarg, &atk)) > 0 ||
                (rc < 0 && (rc = cli_common_option(ctx, c, argv)) >= 0))
                return rc;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "which image? (advjpg attack IMG... --eps 1,5,10)");
    int several = argc - optind > 1;
    /* every file is checked before the first request; with several images
     * and --out, each gets its own folder DIR/<name>, and the names differ */
    json_t *dirs = json_object();
    for (int i = optind; i < argc; i++) {
        const char *type, *base = strrchr(argv[i], '/');
        char stem[256];
        base = base ? base + 1 : argv[i];
        const char *dot = strrchr(base, '.');
        size_t sl = dot && dot != base ? (size_t)(dot - base) : strlen(base);
        if (cli_image_check(argv[i], &type, err, sizeof err)) {
            json_decref(dirs);
            return cli_usage(ctx, "%s", err);
        }
        if (!(out && several))
            continue;
        snprintf(stem, sizeof stem, "%.*s", (int)sl, base);
        char name[256];
        cli_safe_name(stem, NULL, name, sizeof name);
        if (json_object_get(dirs, name)) {
            json_decref(dirs);
            return cli_usage(ctx, "two images would write to %s/%s; attack them in separate "
                                  "runs or rename one", out, name);
        }
        json_object_set_new(dirs, name, json_string(argv[i]));
    }

    char path[768] = "/attack";
    if (cli_query_add(path, sizeof path, "images=%d", out ? 1 : 0) ||
        (eps[0] && cli_query_add(path, sizeof path, "eps=%s", eps)) ||
        (quality[0] && cli_query_add(path, sizeof path, "quality=%s", quality)) ||
        (have_seed && cli_query_add(path, sizeof path, "seed=%llu", seed)) ||
        (top_k > 0 && cli_query_add(path, sizeof path, "top_k=%ld", top_k)) ||
        (resize && cli_query_add(path, sizeof path, "resize=%s", resize)) ||
        cli_attack_query(&atk, path, sizeof path)) {
        json_decref(dirs);
        return cli_fail("the request's URL is too long");
    }
    /* the folders exist before the (possibly long) requests */
    if (out && cli_mkdirs(out, err, sizeof err)) {
        json_decref(dirs);
        return cli_fail("%s", err);
    }
    int failed = 0;
    rc = 0;
    for (int i = optind; !rc && i < argc; i++) {
        json_t *ans = NULL;
        char sub[4096];
        if ((rc = post_image(ctx, path, argv[i], &ans, &failed)))
            break;
        if (out && !json_object_get(ans, "error")) {
            const char *dir = out;
            if (several) {
                const char *key;
                json_t *v;
                json_object_foreach(dirs, key, v) {
                    if (!strcmp(json_string_value(v), argv[i]))
                        break;
                }
                snprintf(sub, sizeof sub, "%s%s%s", out,
                         out[strlen(out) - 1] == '/' ? "" : "/", key);
                dir = sub;
                if (cli_mkdirs(dir, err, sizeof err))
                    rc = cli_fail("%s", err);
            }
            if (!rc)
                rc = save_images(ans, dir);
        }
        if (!rc)
            rc = cli_output(ctx, ans);
        json_decref(ans);
    }
    json_decref(dirs);
    return rc ? rc : failed ? CLI_EXIT_SERVER : CLI_EXIT_OK;
}

const cli_command cli_cmd_attack = {
    "attack", run_attack, "adversarial images and their JPEG re-compressions (POST /attack)",
    "usage: advjpg attack IMG... [--eps 1,5,10] [--quality Q[,Q...]] [--seed S] [--top-k K]\n"
    "                            [--resize center|none] [--out DIR]\n"
    "                            [--attack fgsm|bim|pgd|ll] [--steps T] [--step-size S]\n"
    "                            [--adaptive none|bpda|eot] [--eot-qualities LIST]\n"
    "\n"
    "Runs the per-image experiment on each IMG, one request per image: classifies\n"
    "x and JPG(x), and for each eps the adversarial Adv_eps(x), JPG(Adv_eps(x))\n"
    "and JPGnoise(Adv_eps(x)). Prints the server's JSON per image (JSON Lines\n"
    "when standard output is not a terminal) with the image's path added first\n"
    "as \"file\": \"label\", \"results\" with one entry per transform (each with its\n"
    "\"attack\", \"adaptive\" and, for the adversarial ones, the perturbation's\n"
    "\"linf\", \"l2\" and \"psnr\"), and \"threat_model\" in words. An image the\n"
    "server refuses gives {\"file\", \"error\", \"status\"} and a line on standard\n"
    "error, the others are still attacked and the exit status is 1.\n"
    "\n"
    "Options (server defaults when left out):\n"
    "  -e, --eps LIST        eps values, integers 1..255: 1,5,10\n"
    "  -q, --quality Q       JPEG quality 1..100 of JPG(); a list (50,75,90) is the\n"
    "                        quality grid (names then carry it: JPG75(Adv5(x)))\n"
    "  -s, --seed S          seed of JPGnoise's random permutation of the JPEG change\n"
    "                        (and of PGD's random start)\n"
    "  -k, --top-k K         classes per \"top\" list\n"
    "      --resize MODE     center (default) or none (IMG is the input size)\n"
    "  -o, --out DIR         also fetch the images (images=1) and write each as\n"
    "                        DIR/<transform>.png, e.g. DIR/x.png, DIR/Adv1(x).png,\n"
    "                        DIR/JPG(Adv1(x)).png; DIR is created if missing.\n"
    "                        With several images, each goes to its own folder\n"
    "                        DIR/<file name without extension>/.\n"
    "                        The printed JSON then has \"files\": {transform: path}\n"
    "                        instead of the base64 \"images\".\n"
    CLI_ATTACK_HELP("")
    "\n"
    "File names keep the transform names, parentheses included: they are valid\n"
    "file names everywhere, but quote them in a shell: 'out/JPG(Adv1(x)).png'.\n"
    "Characters other than letters, digits and ( ) + , . _ - become '_', a\n"
    "leading '.' or '-' becomes '_', so a name from the server can never leave\n"
    "DIR, be hidden or look like an option; existing files are replaced.\n"
    "\n"
    "Examples:\n"
    "  advjpg attack cat.jpg --eps 1,5,10\n"
    "  advjpg attack cat.jpg --eps 1 --quality 75 --out adv/ && ls adv/\n"
    "  advjpg attack cat.jpg dog.png --eps 5 --out adv/ && ls adv/cat adv/dog\n"
    "  advjpg attack cat.jpg --eps 5 --attack pgd --steps 10 --adaptive bpda\n",
};

/* ---- recompress -------------------------------------------------------- */

/* Writes the JSON answer's base64 "jpeg" to path and replaces it by "file": path. */
static int save_jpeg(json_t *ans, const char *path)
{
    char err[CLI_ERRLEN];
    json_t *v = json_object_get(ans, "jpeg");
    unsigned char *jpeg = NULL;
    size_t len;
    if (!json_is_string(v))
        return cli_fail("server answered without the \"jpeg\" to write to %s", path);
    if (ut_base64_decode(json_string_value(v), json_string_length(v), &jpeg, &len, NULL, 0) ||
        len < 3 || jpeg[0] != 0xff || jpeg[1] != 0xd8) {
        free(jpeg);
        return cli_fail("server sent a \"jpeg\" that is not a base64 JPEG");
    }
    int rc = cli_write_file(path, jpeg, len, err, sizeof err);
    free(jpeg);
    if (rc)
        return cli_fail("%s", err);
    json_object_del(ans, "jpeg");
    json_object_set_new(ans, "file", cli_json_path(path));
    return 0;
}

static int run_recompress(cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quality", required_argument, NULL, 'q'},
        {"output", required_argument, NULL, 'o'},
        {"resize", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        CLI_GLOBAL_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    long quality = -1;
    const char *out = NULL, *resize = NULL;
    int json = 0, c, rc;
    char err[CLI_ERRLEN];
    while ((c = getopt_long(argc, argv, ":hq:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            if ((rc = cli_parse_long(ctx, "--quality", optarg, EXP_QUALITY_MIN, EXP_QUALITY_MAX, &quality)))
                return rc;
            break;
        case 'o':
            if (!*optarg)
                return cli_usage(ctx, "-o wants a file name");
            out = optarg;
            break;
        case 'r':
            if ((rc = cli_check_resize(ctx, optarg)))
                return rc;
            resize = optarg;
            break;
        case 'j':
            json = 1;
            break;
        default:
            if ((rc = cli_common_option(ctx, c, argv)) >= 0)
                return rc;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "which image? (advjpg recompress IMG -q 75 -o OUT.jpg)");
    if (argc - optind > 1)
        return cli_usage(ctx, "one image at a time, not %d", argc - optind);
    if (!json && !out)
        return cli_usage(ctx, "where to? -o OUT.jpg (or -o - for standard output)");
    int to_stdout = out && !strcmp(out, "-");
    if (json && to_stdout)
        return cli_usage(ctx, "--json prints the JSON on standard output; -o - cannot go there too");
    if (to_stdout && ctx->out_tty)
        return cli_usage(ctx, "standard output is a terminal; not writing a JPEG there");

    char path[128] = "/recompress";
    if ((quality > 0 && cli_query_add(path, sizeof path, "quality=%ld", quality)) ||
        (resize && cli_query_add(path, sizeof path, "resize=%s", resize)))
        return cli_fail("the request's URL is too long");

    const char *type;
    char *data;
    size_t len;
    if ((rc = load_image(ctx, argv[optind], &data, &len, &type)))
        return rc;
    cli_request q = {.method = "POST", .path = path, .body = data, .body_len = len,
                     .content_type = type, .accept = json ? "application/json" : "image/jpeg"};
    if (json) {
        json_t *ans;
        rc = cli_call_json(ctx, &q, &ans);
        free(data);
        if (rc)
            return rc;
        if (out && (rc = save_jpeg(ans, out))) {
            json_decref(ans);
            return rc;
        }
        rc = cli_output(ctx, ans);
        json_decref(ans);
        return rc;
    }
    cli_response r;
    rc = cli_call(ctx, &q, &r);
    free(data);
    if (rc)
        return rc;
    if (r.len < 3 || (unsigned char)r.body[0] != 0xff || (unsigned char)r.body[1] != 0xd8) {
        rc = cli_fail("server answered %ld with %zu bytes of '%s', not a JPEG", r.status, r.len,
                      r.content_type);
        cli_response_free(&r);
        return rc;
    }
    if (to_stdout) {
        if (fwrite(r.body, 1, r.len, stdout) != r.len || fflush(stdout))
            rc = cli_fail("cannot write the JPEG to standard output: %s", strerror(errno));
    } else if (cli_write_file(out, r.body, r.len, err, sizeof err)) {
        rc = cli_fail("%s", err);
    }
    cli_response_free(&r);
    return rc;
}

const cli_command cli_cmd_recompress = {
    "recompress", run_recompress, "re-encode an image as JPEG (POST /recompress)",
    "usage: advjpg recompress IMG [-q Q] [--resize none|center] -o OUT.jpg\n"
    "       advjpg recompress IMG [-q Q] [--resize none|center] --json [-o OUT.jpg]\n"
    "\n"
    "Has the server encode IMG as a JPEG of quality Q, byte for byte what\n"
    "'cjpeg -quality Q' makes of the same pixels, and writes it to OUT.jpg\n"
    "(replaced atomically; '-o -' writes to standard output when that is not a\n"
    "terminal). Prints nothing on success.\n"
    "\n"
    "Options:\n"
    "  -q, --quality Q       JPEG quality 1..100 (server default: 75)\n"
    "  -o, --output OUT      where the JPEG goes\n"
    "      --resize MODE     none (default): the image as uploaded; center: the\n"
    "                        model's prepared crop\n"
    "      --json            print the server's JSON instead: the classification of\n"
    "                        the crop before and after (x, JPG(x)) and the JPEG in\n"
    "                        base64 (\"jpeg\"); with -o the JPEG is written to OUT and\n"
    "                        \"jpeg\" becomes \"file\": OUT\n"
    "\n"
    "Examples:\n"
    "  advjpg recompress photo.png -q 75 -o photo-q75.jpg\n"
    "  advjpg recompress photo.png -q 10 --json -o photo-q10.jpg\n",
};
