/* The paper's transforms on a small random network: FGSM, JPEG noise, the
 * iterative attacks, and the per-image pipeline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"
#include "experiment.h"
#include "synth.h"
#include "testutil.h"

static const char *SPEC =
    "{\"name\": \"tiny\", \"channels\": 3, \"input_size\": 24, \"scale_size\": 28,"
    " \"mean\": 118.380948, \"std\": 61.896913, \"classes\": 10,"
    " \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 8, \"kernel\": 5, \"stride\": 1, \"pad\": 2},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "  {\"type\": \"conv\", \"out\": 12, \"kernel\": 3, \"stride\": 1, \"pad\": 1},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"maxpool\", \"kernel\": 2, \"stride\": 2},"
    "  {\"type\": \"fc\", \"out\": 32},"
    "  {\"type\": \"relu\"},"
    "  {\"type\": \"fc\", \"out\": 10}]}";

enum { N = 8 };
static model *M;
static net_ctx *CTX;
static img_rgb XS[N];

/* A smooth image with edges and some noise, like a tiny photograph. */
static void make_image(img_rgb *im, int size, uint64_t seed)
{
    img_alloc(im, size, size);
    float a = tu_uniform(&seed, 0, 6.28f), f = tu_uniform(&seed, 0.1f, 0.5f);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = 128 + 90 * sinf(f * (x * cosf(a) + y * sinf(a)) + c) +
                          ((x > size / 2) ? 30 : -30) + tu_uniform(&seed, -12, 12);
                im->px[(y * size + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static double mean_loss(const img_rgb *ims, const int *labels)
{
    float *x = malloc((size_t)N * 3 * 24 * 24 * sizeof(float)), losses[N];
    for (int i = 0; i < N; i++)
        img_to_planar(&ims[i], x + (size_t)i * 3 * 24 * 24);
    net_forward(CTX, x, N, NULL);
    net_backward(CTX, labels, NULL, NULL, losses);
    free(x);
    double s = 0;
    for (int i = 0; i < N; i++)
        s += losses[i];
    return s / N;
}

static void test_fgsm(void)
{
    char err[ADJ_ERRLEN];
    const size_t per = 3 * 24 * 24;
    float *grad = malloc(per * N * sizeof(float));
    int labels[N];
    CHECK(atk_gradient(CTX, XS, N, labels, 1, grad, NULL, err, sizeof err) == 0, "%s", err);
    const double clean = mean_loss(XS, labels);
    const int eps_list[] = {1, 5, 10};
    for (int e = 0; e < 3; e++) {
        const int eps = eps_list[e];
        img_rgb adv[N];
        long bad_delta = 0, bad_sign = 0, nonzero = 0;
        for (int i = 0; i < N; i++) {
            img_alloc(&adv[i], 24, 24);
            atk_fgsm(XS[i].px, grad + per * i, per, eps, adv[i].px);
            for (size_t k = 0; k < per; k++) {
                int d = adv[i].px[k] - XS[i].px[k];
                int clipped = XS[i].px[k] + eps > 255 || XS[i].px[k] - eps < 0;
                float g = grad[per * i + k];
                if (!clipped && d != 0 && d != eps && d != -eps)
                    bad_delta++;
                if (clipped && abs(d) > eps)
                    bad_delta++;
                if (g != 0.0f && !clipped) {
                    nonzero++;
                    if ((g > 0) != (d > 0) || d == 0)
                        bad_sign++;
                }
                if (g == 0.0f && d != 0)
                    bad_sign++;
            }
        }
        CHECK(bad_delta == 0, "eps %d: %ld pixels changed by something other than 0 or +-eps", eps, bad_delta);
        CHECK(bad_sign == 0 && nonzero > 0, "eps %d: %ld pixels against the gradient's sign", eps, bad_sign);
        double l = mean_loss(adv, labels);
        CHECK(l > clean, "eps %d: mean loss %g does not rise above the clean %g", eps, l, clean);
        for (int i = 0; i < N; i++)
            img_free(&adv[i]);
    }
    free(grad);
}

static void test_jpeg_noise(void)
{
    char err[ADJ_ERRLEN];
    img_rgb y, jpg, a, b, c;
    make_image(&y, 24, 5);
    for (size_t k = 0; k < 3 * 24 * 24; k++) /* keep away from 0 and 255: no clipping */
        y.px[k] = (uint8_t)(40 + y.px[k] * 175 / 255);
    CHECK(img_jpeg_roundtrip(&y, 75, &jpg, err, sizeof err) == 0, "%s", err);
    CHECK(atk_jpeg_noise(&y, &jpg, 1, &a, err, sizeof err) == 0, "%s", err);
    CHECK(atk_jpeg_noise(&y, &jpg, 1, &b, err, sizeof err) == 0, "%s", err);
    CHECK(atk_jpeg_noise(&y, &jpg, 2, &c, err, sizeof err) == 0, "%s", err);
    const int n = 3 * 24 * 24;
    int hist_j[511] = {0}, hist_a[511] = {0}, moved = 0, changed = 0;
    for (int k = 0; k < n; k++) {
        hist_j[jpg.px[k] - y.px[k] + 255]++;
        hist_a[a.px[k] - y.px[k] + 255]++;
        moved += a.px[k] != jpg.px[k];
        changed += jpg.px[k] != y.px[k];
    }
    CHECK(memcmp(hist_j, hist_a, sizeof hist_j) == 0, "the multiset of JPEG changes is preserved");
    CHECK(changed > n / 4, "JPEG changed %d of %d values", changed, n);
    CHECK(moved > changed / 2, "the changes were moved (%d differ from JPG(y))", moved);
    CHECK(memcmp(a.px, b.px, n) == 0, "the same seed gives the same image");
    CHECK(memcmp(a.px, c.px, n) != 0, "another seed gives another image");
    img_free(&y);
    img_free(&jpg);
    img_free(&a);
    img_free(&b);
    img_free(&c);
}

static void test_iterative(void)
{
    char err[ADJ_ERRLEN];
    const size_t per = 3 * 24 * 24;
    float *grad = malloc(per * N * sizeof(float));
    int labels[N];
    atk_gradient(CTX, XS, N, labels, 1, grad, NULL, err, sizeof err);
    const int eps = 5;
    img_rgb fgsm[N];
    for (int i = 0; i < N; i++) {
        img_alloc(&fgsm[i], 24, 24);
        atk_fgsm(XS[i].px, grad + per * i, per, eps, fgsm[i].px);
    }
    const double l_fgsm = mean_loss(fgsm, labels);
    for (int pgd = 0; pgd < 2; pgd++) {
        double l_last = 0;
        for (int steps = 1; steps <= 6; steps++) { /* every iterate, one run per length */
            atk_iter_params p = {.eps = eps, .steps = steps, .step_size = 1, .random_start = pgd};
            img_rgb out[N];
            uint64_t seeds[N];
            for (int i = 0; i < N; i++)
                seeds[i] = 3 + i;
            CHECK(atk_iterative(CTX, XS, N, labels, seeds, &p, out, err, sizeof err) == 0, "%s", err);
            long outside = 0;
            for (int i = 0; i < N; i++)
                for (size_t k = 0; k < per; k++)
                    outside += abs(out[i].px[k] - XS[i].px[k]) > eps;
            if (pgd && steps == 2) { /* image 5 alone, with its seed: the same image */
                img_rgb one;
                CHECK(atk_iterative(CTX, XS + 5, 1, labels + 5, seeds + 5, &p, &one, err, sizeof err) == 0,
                      "%s", err);
                CHECK(memcmp(one.px, out[5].px, per) == 0, "PGD: an image's result depends on its seed only");
                img_free(&one);
            }
            CHECK(outside == 0, "%s step %d: %ld values outside the eps ball", pgd ? "PGD" : "BIM", steps, outside);
            l_last = mean_loss(out, labels);
            for (int i = 0; i < N; i++)
                img_free(&out[i]);
        }
        CHECK(l_last >= l_fgsm, "%s: loss after 6 steps %g below one FGSM step %g", pgd ? "PGD" : "BIM",
              l_last, l_fgsm);
    }
    const atk_iter_params bad[] = {
        {.eps = 5, .steps = 0, .step_size = 1},
        {.eps = 256, .steps = 1, .step_size = 1},
        {.eps = 5, .steps = 1, .step_size = 0},
        {.eps = 5, .steps = 1, .step_size = 1, .n_qualities = 1, .qualities = {0}},
        {.eps = 5, .steps = 1, .step_size = 1, .n_qualities = 17},
    };
    const char *why[] = {"steps 0", "eps 256", "step size 0", "quality 0", "17 qualities"};
    img_rgb out[N];
    for (int b = 0; b < 5; b++) {
        err[0] = 0;
        CHECK(atk_iterative(CTX, XS, N, labels, NULL, &bad[b], out, err, sizeof err) == ADJ_ERR_ARG &&
                  strstr(err, why[b]),
              "%s refused: '%s'", why[b], err);
    }
    atk_iter_params pgd = {.eps = 5, .steps = 1, .step_size = 1, .random_start = 1};
    CHECK(atk_iterative(CTX, XS, N, labels, NULL, &pgd, out, err, sizeof err) == ADJ_ERR_ARG,
          "a random start without seeds refused");
    for (int i = 0; i < N; i++)
        img_free(&fgsm[i]);
    free(grad);
}

static void test_pipeline(void)
{
    char err[ADJ_ERRLEN], name[64];
    exp_params p = {.n_eps = 3, .eps = {1, 5, 10}, .quality = 75};
    const char *names[] = {"x", "JPG(x)", "Adv1(x)", "JPG(Adv1(x))", "JPGnoise(Adv1(x))", "Adv5(x)",
                           "JPG(Adv5(x))", "JPGnoise(Adv5(x))", "Adv10(x)", "JPG(Adv10(x))",
                           "JPGnoise(Adv10(x))"};
    CHECK(exp_n_transforms(&p) == 11, "11 transforms");
    for (int t = 0; t < 11; t++)
        CHECK(!strcmp(exp_transform_name(&p, t, name, sizeof name), names[t]), "name %d: %s", t, name);
    uint64_t seeds[N];
    for (int i = 0; i < N; i++)
        seeds[i] = 100 + i;
    exp_result r[N], r1;
    CHECK(exp_run_batch(CTX, XS, N, &p, seeds, r, err, sizeof err) == 0, "%s", err);
    CHECK(exp_run_batch(CTX, XS + 3, 1, &p, seeds + 3, &r1, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(r1.probs, r[3].probs, 11 * 10 * sizeof(float)) == 0,
          "an image alone gives, bit for bit, what it gives in a batch");
    for (int t = 0; t < 11; t++)
        CHECK(memcmp(r1.images[t].px, r[3].images[t].px, 3 * 24 * 24) == 0, "same image %d", t);
    /* every reported probability is what the returned image classifies to */
    float x[3 * 24 * 24], pr[10];
    net_ctx *one;
    net_ctx_new(M, 1, &one, err, sizeof err);
    double worst = 0;
    int label_ok = 1;
    for (int i = 0; i < N; i++) {
        label_ok &= r[i].label_x == exp_label(&r[i], 0);
        for (int t = 0; t < 11; t++) {
            img_to_planar(&r[i].images[t], x);
            net_forward(one, x, 1, pr);
            for (int k = 0; k < 10; k++)
                worst = fmax(worst, fabs(pr[k] - r[i].probs[t * 10 + k]));
        }
        img_rgb j;
        img_jpeg_roundtrip(&XS[i], 75, &j, err, sizeof err);
        CHECK(memcmp(j.px, r[i].images[1].px, 3 * 24 * 24) == 0, "JPG(x) is the JPEG round trip");
        img_free(&j);
        CHECK(memcmp(r[i].images[0].px, XS[i].px, 3 * 24 * 24) == 0, "x is the clean image");
        CHECK(fabsf(exp_top_label_prob(&r[i], 0) - r[i].probs[r[i].label_x]) < 1e-9, "top-label prob of x");
    }
    CHECK(label_ok, "l_x is the arg-max of x");
    CHECK(worst == 0, "reported probabilities equal a fresh classification (%g)", worst);
    exp_params bad = {.n_eps = 1, .eps = {0}, .quality = 75};
    err[0] = 0;
    CHECK(exp_run_batch(CTX, XS, 1, &bad, seeds, &r1, err, sizeof err) == ADJ_ERR_ARG && strstr(err, "eps"),
          "eps 0 refused: %s", err);
    net_ctx_free(one);
    for (int i = 0; i < N; i++)
        exp_result_free(&r[i]);
    exp_result_free(&r1);
}

/* Attack settings the pipeline refuses, each with a message naming it. */
static void test_attack_params(void)
{
    const struct {
        exp_attack a;
        const char *why;
    } bad[] = {
        {{.kind = EXP_FGSM, .steps = 3}, "steps"},
        {{.kind = EXP_FGSM, .adaptive = EXP_ADAPT_BPDA}, "iterative"},
        {{.kind = EXP_BIM, .n_eot = 2, .eot_qualities = {50, 60}}, "only with adaptive=eot"},
        {{.kind = EXP_PGD, .steps = -1}, "steps"},
        {{.kind = EXP_PGD, .step_size = 300}, "step_size"},
        {{.kind = EXP_PGD, .adaptive = EXP_ADAPT_EOT, .n_eot = 1, .eot_qualities = {0}}, "eot_qualities"},
        {{.kind = (exp_attack_kind)9}, "unknown"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        exp_params p = {.n_eps = 1, .eps = {5}, .quality = 75, .attack = bad[b].a};
        char err[ADJ_ERRLEN] = "";
        CHECK(exp_params_check(&p, err, sizeof err) == ADJ_ERR_ARG && strstr(err, bad[b].why),
              "bad attack %zu refused: '%s'", b, err);
    }
}

/* The pipeline in chunks of 1, 3 and 8 images, by contexts of 1, 3 and 8
 * (which also classify the variants in batches of that size): every image's
 * label, probabilities and transformed images are the same bytes. */
static void test_pipeline_invariance(const exp_attack *attack)
{
    char err[ADJ_ERRLEN];
    exp_params p = {.n_eps = 3, .eps = {1, 5, 10}, .quality = 75, .attack = *attack};
    const int T = exp_n_transforms(&p);
    uint64_t seeds[N];
    for (int i = 0; i < N; i++)
        seeds[i] = exp_image_seed(1, (const char[]){(char)('a' + i), 0});
    exp_result ref[N], r[N];
    CHECK(exp_run_batch(CTX, XS, N, &p, seeds, ref, err, sizeof err) == 0, "%s", err);
    const int sizes[] = {1, 3, 8};
    for (int si = 0; si < 3; si++) {
        net_ctx *ctx;
        CHECK(net_ctx_new(M, sizes[si], &ctx, err, sizeof err) == 0, "%s", err);
        for (int b0 = 0; b0 < N; b0 += sizes[si]) {
            int n = N - b0 < sizes[si] ? N - b0 : sizes[si];
            CHECK(exp_run_batch(ctx, XS + b0, n, &p, seeds + b0, r + b0, err, sizeof err) == 0, "%s", err);
        }
        int dl = 0, dp = 0, di = 0, big = 0;
        for (int i = 0; i < N; i++) {
            for (int e = 0; e < 3; e++)
                big += r[i].norms[e].linf > p.eps[e] || r[i].norms[e].linf != ref[i].norms[e].linf ||
                       (r[i].norms[e].linf == 0) != isinf(r[i].norms[e].psnr);
            dl += r[i].label_x != ref[i].label_x;
            dp += memcmp(r[i].probs, ref[i].probs, (size_t)T * 10 * sizeof(float)) != 0;
            for (int t = 0; t < T; t++)
                di += memcmp(r[i].images[t].px, ref[i].images[t].px, 3 * 24 * 24) != 0;
            exp_result_free(&r[i]);
        }
        CHECK(dl == 0 && dp == 0 && di == 0 && big == 0,
              "attack %d/%d, chunks of %d: %d labels, %d images' probabilities, %d transformed images "
              "differ, %d perturbation sizes wrong",
              (int)attack->kind, (int)attack->adaptive, sizes[si], dl, dp, di, big);
        net_ctx_free(ctx);
    }
    for (int i = 0; i < N; i++)
        exp_result_free(&ref[i]);
}

/* The quality grid: names and descriptions by hand; a grid run equals the
 * single-quality runs transform for transform (bit for bit), and costs the
 * gradient work of one of them (backward passes counted). */
static void grid_vs_single(const exp_attack *attack)
{
    char err[ADJ_ERRLEN];
    const int qs[3] = {50, 75, 90};
    exp_params g = {.n_eps = 2, .eps = {1, 5}, .attack = *attack};
    exp_params_set_qualities(&g, qs, 3);
    uint64_t seeds[N];
    for (int i = 0; i < N; i++)
        seeds[i] = 7 + (uint64_t)i;
    exp_result rg[N], rs[N];
    uint64_t b0 = net_ctx_backward_images(CTX);
    CHECK(exp_run_batch(CTX, XS, N, &g, seeds, rg, err, sizeof err) == 0, "%s", err);
    const uint64_t grid_bwd = net_ctx_backward_images(CTX) - b0;
    for (int q = 0; q < 3; q++) {
        exp_params p1 = {.n_eps = 2, .eps = {1, 5}, .quality = qs[q], .attack = *attack};
        b0 = net_ctx_backward_images(CTX);
        CHECK(exp_run_batch(CTX, XS, N, &p1, seeds, rs, err, sizeof err) == 0, "%s", err);
        const uint64_t one_bwd = net_ctx_backward_images(CTX) - b0;
        CHECK(one_bwd == grid_bwd, "attack %d: the grid of 3 qualities took %llu backward images, "
              "one quality %llu", (int)attack->kind, (unsigned long long)grid_bwd,
              (unsigned long long)one_bwd);
        int dp = 0, di = 0;
        for (int t = 0; t < exp_n_transforms(&p1); t++) {
            const exp_transform d = exp_transform_at(&p1, t);
            const int tg = exp_transform_index(&g, d.kind, d.ei, q);
            for (int i = 0; i < N; i++) {
                dp += memcmp(rs[i].probs + t * 10, rg[i].probs + tg * 10, 10 * sizeof(float)) != 0;
                di += memcmp(rs[i].images[t].px, rg[i].images[tg].px, 3 * 24 * 24) != 0;
            }
        }
        CHECK(dp == 0 && di == 0, "attack %d, quality %d: %d probability vectors and %d images "
              "differ from the grid's", (int)attack->kind, qs[q], dp, di);
        for (int i = 0; i < N; i++)
            exp_result_free(&rs[i]);
    }
    if (attack->kind == EXP_FGSM)
        CHECK(grid_bwd == N, "FGSM: one backward pass per image (%llu for %d)",
              (unsigned long long)grid_bwd, N);
    for (int i = 0; i < N; i++)
        exp_result_free(&rg[i]);
}

static void test_grid(void)
{
    char err[ADJ_ERRLEN], name[64];
    const int qs[2] = {90, 50};
    exp_params g = {.n_eps = 2, .eps = {1, 5}};
    exp_params_set_qualities(&g, qs, 2);
    const struct {
        const char *name;
        exp_transform_kind kind;
        int eps, quality;
    } want[] = {{"x", EXP_T_X, 0, 0},
                {"JPG90(x)", EXP_T_JPG_X, 0, 90},
                {"JPG50(x)", EXP_T_JPG_X, 0, 50},
                {"Adv1(x)", EXP_T_ADV, 1, 0},
                {"JPG90(Adv1(x))", EXP_T_JPG_ADV, 1, 90},
                {"JPGnoise90(Adv1(x))", EXP_T_NOISE_ADV, 1, 90},
                {"JPG50(Adv1(x))", EXP_T_JPG_ADV, 1, 50},
                {"JPGnoise50(Adv1(x))", EXP_T_NOISE_ADV, 1, 50},
                {"Adv5(x)", EXP_T_ADV, 5, 0},
                {"JPG90(Adv5(x))", EXP_T_JPG_ADV, 5, 90},
                {"JPGnoise90(Adv5(x))", EXP_T_NOISE_ADV, 5, 90},
                {"JPG50(Adv5(x))", EXP_T_JPG_ADV, 5, 50},
                {"JPGnoise50(Adv5(x))", EXP_T_NOISE_ADV, 5, 50}};
    CHECK(exp_n_transforms(&g) == 13, "13 transforms, not %d", exp_n_transforms(&g));
    for (int t = 0; t < 13; t++) {
        const exp_transform d = exp_transform_at(&g, t);
        CHECK(!strcmp(exp_transform_name(&g, t, name, sizeof name), want[t].name) &&
                  d.kind == want[t].kind && d.eps == want[t].eps && d.quality == want[t].quality &&
                  exp_transform_index(&g, d.kind, d.ei, d.qi) == t,
              "grid transform %d: %s kind %d eps %d quality %d", t, name, (int)d.kind, d.eps,
              d.quality);
    }
    CHECK(!strcmp(exp_transform_kind_name(EXP_T_NOISE_ADV), "noise_adv"), "kind names");
    const int dup[2] = {75, 75};
    exp_params bad = {.n_eps = 1, .eps = {1}};
    exp_params_set_qualities(&bad, dup, 2);
    CHECK(exp_params_check(&bad, err, sizeof err) && strstr(err, "twice"), "duplicates: %s", err);
    exp_params bpda = g;
    bpda.attack = (exp_attack){.kind = EXP_BIM, .adaptive = EXP_ADAPT_BPDA};
    CHECK(exp_params_check(&bpda, err, sizeof err) && strstr(err, "bpda"), "BPDA grid: %s", err);
    bpda.n_quality = 1;
    CHECK(exp_params_check(&bpda, err, sizeof err) == 0, "BPDA at one quality: %s", err);
    const exp_attack fgsm = {0}, bim = {.kind = EXP_BIM, .steps = 2};
    grid_vs_single(&fgsm);
    grid_vs_single(&bim);
}

/* An adaptive attack's twin: its transforms (names by hand) are a separate
 * non-adaptive run's, bit for bit (probabilities, images, norms); the
 * attack's own Adv images are atk_iterative's with the adaptive parameters
 * (called here, not through the pipeline); the backward passes are the two
 * attacks' (T per eps for the twin, T per eps and quality for the attack). */
static void twin_vs_separate(const exp_attack *attack, int nq, const int *qs)
{
    char err[ADJ_ERRLEN], name[64], want[64];
    exp_params pa = {.n_eps = 2, .eps = {1, 5}, .attack = *attack};
    exp_params_set_qualities(&pa, qs, nq);
    exp_params pn = pa; /* the non-adaptive job, by hand */
    pn.attack = (exp_attack){.kind = attack->kind, .steps = attack->steps};
    uint64_t seeds[N];
    for (int i = 0; i < N; i++)
        seeds[i] = 11 + (uint64_t)i;
    exp_result ra[N], rn[N];
    uint64_t b0 = net_ctx_backward_images(CTX);
    CHECK(exp_run_batch(CTX, XS, N, &pn, seeds, rn, err, sizeof err) == 0, "%s", err);
    const uint64_t bn = net_ctx_backward_images(CTX) - b0;
    b0 = net_ctx_backward_images(CTX);
    CHECK(exp_run_batch(CTX, XS, N, &pa, seeds, ra, err, sizeof err) == 0, "%s", err);
    const uint64_t ba = net_ctx_backward_images(CTX) - b0;
    const int per = attack->adaptive == EXP_ADAPT_EOT ? attack->n_eot : 1;
    const uint64_t iter = (uint64_t)N * 2 * (uint64_t)attack->steps; /* one attack, both eps */
    CHECK(bn == N + iter && ba == bn + iter * (uint64_t)per,
          "backward images: non-adaptive %llu (want %llu), adaptive %llu (want %llu)",
          (unsigned long long)bn, (unsigned long long)(N + iter), (unsigned long long)ba,
          (unsigned long long)(bn + iter * (uint64_t)per));
    const int Tn = exp_n_transforms(&pn), Ta = exp_n_transforms(&pa);
    CHECK(exp_has_twin(&pa) && !exp_has_twin(&pn) && Ta == Tn + 2 * (1 + 2 * nq) &&
              exp_twin_first(&pa) == Tn && ra[0].n_adv == 4 && rn[0].n_adv == 2,
          "%d transforms beside %d", Ta, Tn);
    const char *label = attack->kind == EXP_PGD ? "PGD" : attack->kind == EXP_LL ? "LL" : "BIM";
    int dp = 0, di = 0, dn = 0, bad_names = 0;
    for (int t = 0; t < Tn; t++) {
        const exp_transform d = exp_transform_at(&pn, t);
        const int twin = d.kind != EXP_T_X && d.kind != EXP_T_JPG_X;
        const int ta = exp_transform_index_twin(&pa, twin, d.kind, d.ei, d.qi);
        const exp_transform da = exp_transform_at(&pa, ta);
        /* the twin's name: the non-adaptive job's, then " PGD-3" */
        exp_transform_name(&pn, t, want, sizeof want);
        if (twin)
            snprintf(want + strlen(want), sizeof want - strlen(want), " %s-%d", label,
                     attack->steps);
        bad_names += strcmp(exp_transform_name(&pa, ta, name, sizeof name), want) != 0 ||
                     da.twin != twin || da.kind != d.kind || da.eps != d.eps ||
                     da.quality != d.quality ||
                     exp_transform_params(&pa, ta).attack.adaptive !=
                         (twin ? EXP_ADAPT_NONE : attack->adaptive);
        for (int i = 0; i < N; i++) {
            dp += memcmp(rn[i].probs + t * 10, ra[i].probs + ta * 10, 10 * sizeof(float)) != 0;
            di += memcmp(rn[i].images[t].px, ra[i].images[ta].px, 3 * 24 * 24) != 0;
            if (d.kind == EXP_T_ADV) {
                const atk_norms *x = &rn[i].norms[d.ai], *y = &ra[i].norms[da.ai];
                dn += d.ai != d.ei || da.ai != d.ei + 2 || x->linf != y->linf ||
                      x->l2 != y->l2 || x->psnr != y->psnr;
            }
        }
    }
    CHECK(bad_names == 0 && dp == 0 && di == 0 && dn == 0,
          "adaptive %d: %d twin names or fields wrong; %d probability vectors, %d images, %d "
          "norms differ from the non-adaptive run's", (int)attack->adaptive, bad_names, dp, di, dn);
    /* the attack's own Adv: atk_iterative with the adaptive threat model, seeded as the job */
    int labels[N], da_ = 0;
    for (int i = 0; i < N; i++)
        labels[i] = ra[i].label_x;
    if (attack->kind == EXP_LL)
        for (int i = 0; i < N; i++) {
            int ll = 0;
            for (int k = 1; k < 10; k++)
                ll = ra[i].probs[k] < ra[i].probs[ll] ? k : ll;
            labels[i] = ll;
        }
    for (int e = 0; e < 2; e++) {
        atk_iter_params ip = {.eps = pa.eps[e], .steps = attack->steps, .step_size = 1,
                              .random_start = attack->kind == EXP_PGD,
                              .targeted = attack->kind == EXP_LL};
        if (attack->adaptive == EXP_ADAPT_BPDA) {
            ip.n_qualities = 1;
            ip.qualities[0] = qs[0];
        } else {
            ip.n_qualities = attack->n_eot;
            memcpy(ip.qualities, attack->eot_qualities, sizeof(int) * (size_t)attack->n_eot);
        }
        uint64_t s[N];
        img_rgb adv[N];
        char pgd[16];
        snprintf(pgd, sizeof pgd, "PGD%d", pa.eps[e]);
        for (int i = 0; i < N; i++)
            s[i] = exp_image_seed(seeds[i], pgd);
        CHECK(atk_iterative(CTX, XS, N, labels, s, &ip, adv, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < N; i++) {
            da_ += memcmp(adv[i].px, ra[i].images[exp_transform_index(&pa, EXP_T_ADV, e, 0)].px,
                          3 * 24 * 24) != 0;
            img_free(&adv[i]);
        }
    }
    CHECK(da_ == 0, "adaptive %d: %d of the attack's own Adv images differ from atk_iterative's",
          (int)attack->adaptive, da_);
    for (int i = 0; i < N; i++) {
        exp_result_free(&ra[i]);
        exp_result_free(&rn[i]);
    }
}

static void test_twin(void)
{
    const exp_attack bpda = {.kind = EXP_PGD, .steps = 3, .adaptive = EXP_ADAPT_BPDA},
                     eot = {.kind = EXP_LL, .steps = 2, .adaptive = EXP_ADAPT_EOT, .n_eot = 2,
                            .eot_qualities = {60, 90}};
    const int q75[1] = {75}, grid[2] = {50, 90};
    char label[32];
    exp_params p = {.n_eps = 1, .eps = {1}, .quality = 75, .attack = bpda};
    CHECK(!strcmp(exp_attack_label(&p, label, sizeof label), "BPDA-PGD-3"), "%s", label);
    p.attack = eot;
    CHECK(!strcmp(exp_attack_label(&p, label, sizeof label), "EOT-LL-2"), "%s", label);
    p.attack = (exp_attack){0};
    CHECK(!strcmp(exp_attack_label(&p, label, sizeof label), "FGSM") && !exp_has_twin(&p) &&
              exp_twin_first(&p) == exp_n_transforms(&p) &&
              exp_transform_index_twin(&p, 1, EXP_T_ADV, 0, 0) == -1,
          "FGSM: %s, no twin", label);
    p.attack = bpda; /* display names: the attack's own label beside the twin's */
    char own[64], twin[64], x[64];
    exp_transform_label(&p, exp_transform_index(&p, EXP_T_JPG_ADV, 0, 0), own, sizeof own);
    exp_transform_label(&p, exp_transform_index_twin(&p, 1, EXP_T_JPG_ADV, 0, 0), twin, sizeof twin);
    exp_transform_label(&p, 1, x, sizeof x);
    CHECK(!strcmp(own, "JPG(Adv1(x)) BPDA-PGD-3") && !strcmp(twin, "JPG(Adv1(x)) PGD-3") &&
              !strcmp(x, "JPG(x)"),
          "labels: %s, %s, %s", own, twin, x);
    twin_vs_separate(&bpda, 1, q75);
    twin_vs_separate(&eot, 2, grid); /* EOT is one attack over its set: a grid is fine */
}

/* ---- on the embedded model: what the attacks do to a real classifier */

static double top1(net_ctx *ctx, const img_rgb *ims, int n, const int *truth, int cls, float *pl,
                   const int *plabel)
{
    const int S = ims[0].w;
    float *x = malloc((size_t)3 * S * S * sizeof(float)), *p = malloc((size_t)cls * sizeof(float));
    int right = 0;
    for (int i = 0; i < n; i++) {
        img_to_planar(&ims[i], x);
        net_forward(ctx, x, 1, p);
        right += net_argmax(p, cls) == truth[i];
        if (pl)
            pl[i] = p[plabel[i]];
    }
    free(x);
    free(p);
    return (double)right / n;
}

static void jpg_all(const img_rgb *in, int n, int q, img_rgb *out)
{
    char err[ADJ_ERRLEN];
    for (int i = 0; i < n; i++)
        CHECK(img_jpeg_roundtrip(&in[i], q, &out[i], err, sizeof err) == 0, "%s", err);
}

static void free_all(img_rgb *ims, int n)
{
    for (int i = 0; i < n; i++)
        img_free(&ims[i]);
}

static void test_embedded_attacks(void)
{
    const char *dir = getenv("ADVJPG_CONFIG_DIR");
    if (!dir) {
        fprintf(stderr, "embedded-model attacks skipped: ADVJPG_CONFIG_DIR is not set\n");
        return;
    }
    char err[ADJ_ERRLEN], spec_path[4200], w_path[4200];
    snprintf(spec_path, sizeof spec_path, "%s/advjpg-shapes.json", dir);
    snprintf(w_path, sizeof w_path, "%s/advjpg-shapes.weights", dir);
    model_spec s;
    model *m;
    net_ctx *ctx;
    if (model_spec_load(spec_path, &s, err, sizeof err) || model_load(&s, w_path, &m, err, sizeof err) ||
        net_ctx_new(m, 16, &ctx, err, sizeof err)) {
        CHECK(0, "embedded model: %s", err);
        return;
    }
    enum { E = 32 }; /* a multiple of the batch of 16; 96x96 images make ASan builds slow */
    const int K = s.classes, S = s.input_size, per = 3 * S * S, eps = 5;
    img_rgb xs[E], adv[E], jadv[E], tmp[E];
    int truth[E], lx[E], ll[E];
    uint64_t seeds[E];
    float *grad = malloc((size_t)per * 16 * sizeof(float)), *probs = malloc((size_t)16 * K * sizeof(float));
    for (int i = 0; i < E; i++) {
        img_rgb im;
        truth[i] = i % K;
        CHECK(synth_render(truth[i], 900 + i, &im, err, sizeof err) == 0, "%s", err);
        CHECK(img_prepare(&im, s.scale_size, S, &xs[i], err, sizeof err) == 0, "%s", err);
        img_free(&im);
        seeds[i] = 40 + i;
    }
    /* FGSM at eps 5, and l_x / the least-likely class of each image */
    for (int b0 = 0; b0 < E; b0 += 16) {
        CHECK(atk_gradient(ctx, xs + b0, 16, lx + b0, 1, grad, probs, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < 16; i++) {
            img_alloc(&adv[b0 + i], S, S);
            atk_fgsm(xs[b0 + i].px, grad + (size_t)per * i, (size_t)per, eps, adv[b0 + i].px);
            ll[b0 + i] = 0;
            for (int k = 1; k < K; k++)
                if (probs[i * K + k] < probs[i * K + ll[b0 + i]])
                    ll[b0 + i] = k;
        }
    }
    const double clean = top1(ctx, xs, E, truth, K, NULL, NULL), t_fgsm = top1(ctx, adv, E, truth, K, NULL, NULL);
    jpg_all(adv, E, 75, jadv);
    const double t_jfgsm = top1(ctx, jadv, E, truth, K, NULL, NULL);
    free_all(jadv, E);

    /* BIM-10 at eps 5 is at least as strong as FGSM */
    atk_iter_params bim = {.eps = eps, .steps = 10, .step_size = 1};
    CHECK(atk_iterative(ctx, xs, E, lx, NULL, &bim, tmp, err, sizeof err) == 0, "%s", err);
    const double t_bim = top1(ctx, tmp, E, truth, K, NULL, NULL);
    jpg_all(tmp, E, 75, jadv);
    const double t_jbim = top1(ctx, jadv, E, truth, K, NULL, NULL);
    free_all(jadv, E);
    atk_norms nb = atk_perturbation(&xs[0], &tmp[0]);
    CHECK(nb.linf <= eps && nb.l2 > 0 && nb.psnr > 20 * log10(255.0 / eps) - 1e-9,
          "BIM's perturbation: L-inf %d, L2 %g, PSNR %g dB", nb.linf, nb.l2, nb.psnr);
    free_all(tmp, E);
    CHECK(t_bim <= t_fgsm, "BIM-10 top-1 %.3f is at most FGSM's %.3f", t_bim, t_fgsm);

    /* iterative least-likely class: the target's probability rises */
    float before[E], after[E];
    top1(ctx, xs, E, truth, K, before, ll);
    atk_iter_params llp = {.eps = eps, .steps = 10, .step_size = 1, .targeted = 1};
    CHECK(atk_iterative(ctx, xs, E, ll, NULL, &llp, tmp, err, sizeof err) == 0, "%s", err);
    top1(ctx, tmp, E, truth, K, after, ll);
    int rose = 0;
    for (int i = 0; i < E; i++)
        rose += after[i] > before[i];
    CHECK(rose >= E * 9 / 10, "LL: the target's probability rose on %d of %d images", rose, E);
    free_all(tmp, E);

    /* BPDA against f(JPG_75): the defended output's top-1 falls below what
     * the non-adaptive BIM leaves; EOT over {75} is BPDA at 75, bit for bit */
    atk_iter_params bpda = {.eps = eps, .steps = 10, .step_size = 1, .n_qualities = 1, .qualities = {75}};
    CHECK(atk_iterative(ctx, xs, E, lx, NULL, &bpda, tmp, err, sizeof err) == 0, "%s", err);
    jpg_all(tmp, E, 75, jadv);
    const double t_jbpda = top1(ctx, jadv, E, truth, K, NULL, NULL);
    free_all(jadv, E);
    CHECK(t_jbpda < t_jbim, "BPDA: top-1 of JPG(Adv) %.3f is below the non-adaptive %.3f", t_jbpda, t_jbim);
    free_all(adv, E); /* the FGSM images: adv takes EOT's next */
    atk_iter_params eot1 = bpda;
    eot1.n_qualities = 2;
    eot1.qualities[1] = 75; /* the mean of two equal gradients is that gradient */
    CHECK(atk_iterative(ctx, xs, E, lx, NULL, &eot1, adv + 0, err, sizeof err) == 0, "%s", err);
    int same = 0;
    for (int i = 0; i < E; i++)
        same += memcmp(adv[i].px, tmp[i].px, (size_t)per) == 0;
    CHECK(same == E, "EOT over {75, 75} equals BPDA at 75 on %d of %d images", same, E);
    free_all(adv, E);
    free_all(tmp, E);
    atk_iter_params eot = {.eps = eps, .steps = 5, .step_size = 1, .random_start = 1, .n_qualities = 3,
                           .qualities = {50, 75, 90}};
    img_rgb again[E];
    CHECK(atk_iterative(ctx, xs, E, lx, seeds, &eot, tmp, err, sizeof err) == 0 &&
              atk_iterative(ctx, xs, E, lx, seeds, &eot, again, err, sizeof err) == 0,
          "%s", err);
    same = 0;
    for (int i = 0; i < E; i++)
        same += memcmp(again[i].px, tmp[i].px, (size_t)per) == 0;
    CHECK(same == E, "EOT-PGD is reproducible for its seeds (%d of %d)", same, E);
    free_all(tmp, E);
    free_all(again, E);
    /* the same through the pipeline (the menu's exp_attack): JPG_75(Adv) under BPDA-BIM-10
     * against the non-adaptive BIM-10 above; EOT over {75} is BPDA at 75 (on one batch) */
    static const exp_attack menu[] = {{.kind = EXP_BIM, .adaptive = EXP_ADAPT_BPDA},
                                      {.kind = EXP_BIM, .adaptive = EXP_ADAPT_EOT, .n_eot = 1,
                                       .eot_qualities = {75}}};
    exp_result res[2][E];
    for (int k = 0; k < 2; k++) {
        exp_params p = {.n_eps = 1, .eps = {eps}, .quality = 75, .attack = menu[k]};
        CHECK(exp_run_batch(ctx, xs, k ? 16 : E, &p, seeds, res[k], err, sizeof err) == 0, "%s", err);
    }
    double jtop = 0;
    for (int i = 0; i < E; i++) /* transform 3: JPG(Adv5(x)) */
        jtop += (double)(exp_label(&res[0][i], 3) == truth[i]) / E;
    CHECK(jtop < t_jbim, "pipeline: BPDA leaves JPG(Adv) top-1 %.3f below the non-adaptive %.3f",
          jtop, t_jbim);
    same = 0;
    for (int i = 0; i < 16; i++)
        same += !memcmp(res[0][i].images[2].px, res[1][i].images[2].px, (size_t)per) &&
                !memcmp(res[0][i].probs, res[1][i].probs, (size_t)res[0][i].n_transforms * K * sizeof(float));
    CHECK(same == 16, "pipeline: EOT over {75} is BPDA at 75 bit for bit (%d of 16)", same);
    for (int i = 0; i < E; i++) {
        exp_result_free(&res[0][i]);
        if (i < 16)
            exp_result_free(&res[1][i]);
    }
    fprintf(stderr,
            "embedded model, %d images, eps %d: top-1 clean %.3f, FGSM %.3f (JPG %.3f), BIM-10 %.3f "
            "(JPG %.3f), BPDA-BIM-10 then JPG %.3f\n",
            E, eps, clean, t_fgsm, t_jfgsm, t_bim, t_jbim, t_jbpda);
    free_all(xs, E);
    free(grad);
    free(probs);
    net_ctx_free(ctx);
    model_free(m);
}

/* Scores only (exp_run_batch_keep): the same scores bit for bit, no images where not kept. */
static void test_scores_only(void)
{
    char err[ADJ_ERRLEN];
    exp_params p = {.n_eps = 2, .eps = {1, 10}, .quality = 75};
    uint64_t seeds[N];
    int keep[N];
    for (int i = 0; i < N; i++) {
        seeds[i] = 7 + i;
        keep[i] = i == 1;
    }
    exp_result all[N], some[N];
    CHECK(exp_run_batch(CTX, XS, N, &p, seeds, all, err, sizeof err) == 0, "%s", err);
    CHECK(exp_run_batch_keep(CTX, XS, N, &p, seeds, keep, some, err, sizeof err) == 0, "%s", err);
    int T = exp_n_transforms(&p);
    for (int i = 0; i < N; i++) {
        int same = some[i].label_x == all[i].label_x &&
                   !memcmp(some[i].probs, all[i].probs, (size_t)T * 10 * sizeof(float));
        for (int e = 0; e < p.n_eps; e++) /* field by field: the struct has padding */
            same &= some[i].norms[e].linf == all[i].norms[e].linf &&
                    some[i].norms[e].l2 == all[i].norms[e].l2 &&
                    some[i].norms[e].psnr == all[i].norms[e].psnr;
        CHECK(same, "image %d: the scores differ without images", i);
        CHECK(keep[i] ? some[i].images && !memcmp(some[i].images[T - 1].px,
                                                  all[i].images[T - 1].px, 3 * 24 * 24)
                      : !some[i].images, "image %d: images %s", i, keep[i] ? "lost" : "kept");
        exp_result_free(&all[i]);
        exp_result_free(&some[i]);
    }
}

int main(void)
{
    char err[ADJ_ERRLEN];
    model_spec s;
    if (model_spec_parse(SPEC, strlen(SPEC), &s, err, sizeof err) ||
        model_create(&s, tu_random_weights(&s, 9), model_spec_param_count(&s), 0, &M, err, sizeof err) ||
        net_ctx_new(M, N, &CTX, err, sizeof err)) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    for (int i = 0; i < N; i++)
        make_image(&XS[i], 24, 1000 + i);
    test_fgsm();
    test_jpeg_noise();
    test_iterative();
    test_pipeline();
    test_scores_only();
    const exp_attack fgsm = {0}, pgd = {.kind = EXP_PGD, .steps = 3, .adaptive = EXP_ADAPT_BPDA},
                     ll = {.kind = EXP_LL, .steps = 2, .adaptive = EXP_ADAPT_EOT, .n_eot = 2,
                           .eot_qualities = {60, 90}};
    test_pipeline_invariance(&fgsm);
    test_pipeline_invariance(&pgd);
    test_pipeline_invariance(&ll);
    test_attack_params();
    test_grid();
    test_twin();
    test_embedded_attacks();
    for (int i = 0; i < N; i++)
        img_free(&XS[i]);
    net_ctx_free(CTX);
    model_free(M);
    return tu_done();
}
