/* The paper's transforms on a small random network: FGSM, JPEG noise, the
 * iterative attacks, and the per-image pipeline. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"
#include "experiment.h"
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
            atk_iter_params p = {.eps = eps, .steps = steps, .step_size = 1, .random_start = pgd, .seed = 3};
            img_rgb out[N];
            CHECK(atk_iterative(CTX, XS, N, labels, &p, out, err, sizeof err) == 0, "%s", err);
            long outside = 0;
            for (int i = 0; i < N; i++)
                for (size_t k = 0; k < per; k++)
                    outside += abs(out[i].px[k] - XS[i].px[k]) > eps;
            CHECK(outside == 0, "%s step %d: %ld values outside the eps ball", pgd ? "PGD" : "BIM", steps, outside);
            l_last = mean_loss(out, labels);
            for (int i = 0; i < N; i++)
                img_free(&out[i]);
        }
        CHECK(l_last >= l_fgsm, "%s: loss after 6 steps %g below one FGSM step %g", pgd ? "PGD" : "BIM",
              l_last, l_fgsm);
    }
    atk_iter_params bad = {.eps = 5, .steps = 0, .step_size = 1};
    img_rgb out[N];
    CHECK(atk_iterative(CTX, XS, N, labels, &bad, out, err, sizeof err) == ADJ_ERR_ARG, "steps 0 refused");
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

/* The pipeline in chunks of 1, 3 and 8 images, by contexts of 1, 3 and 8
 * (which also classify the variants in batches of that size): every image's
 * label, probabilities and transformed images are the same bytes. */
static void test_pipeline_invariance(void)
{
    char err[ADJ_ERRLEN];
    exp_params p = {.n_eps = 3, .eps = {1, 5, 10}, .quality = 75};
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
        int dl = 0, dp = 0, di = 0;
        for (int i = 0; i < N; i++) {
            dl += r[i].label_x != ref[i].label_x;
            dp += memcmp(r[i].probs, ref[i].probs, (size_t)T * 10 * sizeof(float)) != 0;
            for (int t = 0; t < T; t++)
                di += memcmp(r[i].images[t].px, ref[i].images[t].px, 3 * 24 * 24) != 0;
            exp_result_free(&r[i]);
        }
        CHECK(dl == 0 && dp == 0 && di == 0,
              "chunks of %d: %d labels, %d images' probabilities, %d transformed images differ", sizes[si],
              dl, dp, di);
        net_ctx_free(ctx);
    }
    for (int i = 0; i < N; i++)
        exp_result_free(&ref[i]);
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
    test_pipeline_invariance();
    for (int i = 0; i < N; i++)
        img_free(&XS[i]);
    net_ctx_free(CTX);
    model_free(M);
    return tu_done();
}
