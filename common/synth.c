/*
 * synth.c - the procedural image set (see synth.h).
 *
 * An image is a "scene" drawn per pixel in one pass:
 *
 *   background  linear or radial gradient between two colours
 *               + three octaves of value noise (a 1/f-like spectrum)
 *   object      a signed distance function (SDF) in pixels, in the object's
 *               rotated frame; coverage = clamp(0.5 - d / edge, 0, 1) gives
 *               antialiased edges whose width `edge` (0.7..1.6 px) mimics
 *               slight defocus. Its colour has a linear shading and two
 *               octaves of its own value noise. Texture classes draw a
 *               pattern (also an SDF, at its own angle) inside a patch
 *               (disc, rotated square or ellipse) whose second colour is
 *               either opaque or the background itself.
 *   specks      0..2 small dots or short strokes anywhere
 *   grain       per-pixel noise, mostly luminance
 *
 * All lengths are drawn as fractions of the image's shorter side s, so that
 * an image looks the same at every size once scaled to the model's input
 * (shorter side 48, centred 40 x 40 crop: the central s * 40/48 square).
 */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ut_file.h"
#include "ut_path.h"

/* ---- classes ------------------------------------------------------------ */

enum {
    C_DISC,
    C_ELLIPSE,
    C_RING,
    C_SQUARE,
    C_TRIANGLE,
    C_PLUS,
    C_STAR,
    C_CRESCENT,
    C_HEART,
    C_STRIPES,
    C_CHECKER,
    C_DOTS,
    C_GRID,
    C_BULLSEYE,
    N_CLASSES
};

static const char *const class_names[N_CLASSES] = {
    "disc",   "ellipse",  "ring",  "square",       "triangle",   "plus", "star",
    "crescent", "heart",  "stripes", "checkerboard", "polka dots", "grid", "bullseye",
};

int synth_n_classes(void)
{
    return N_CLASSES;
}

const char *synth_class_name(int c)
{
    return c >= 0 && c < N_CLASSES ? class_names[c] : NULL;
}

/* ---- random numbers: splitmix64 ----------------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_u64(rng_t *r)
{
    return mix64(r->s += 0x9e3779b97f4a7c15ULL);
}

/** Uniform in [0, 1), 24 bits. */
static float rng_f(rng_t *r)
{
    return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

static float rng_range(rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * rng_f(r);
}

/** Uniform integer in [lo, hi] (hi - lo small: the modulo bias is negligible). */
static int rng_int(rng_t *r, int lo, int hi)
{
    return lo + (int)(rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* ---- small maths -------------------------------------------------------- */

#define PI_F 3.14159265358979f

static float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static float fractf(float x)
{
    return x - floorf(x);
}

static float len2(float x, float y)
{
    return sqrtf(x * x + y * y);
}

static float luma(const float c[3])
{
    return 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
}

/** HSV (h in turns, s and v in 0..1) to RGB 0..255. */
static void hsv_rgb(float h, float s, float v, float out[3])
{
    float hh = fractf(h) * 6.0f;
    int i = (int)hh;
    float f = hh - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r, g, b;
    switch (i) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    out[0] = 255.0f * r;
    out[1] = 255.0f * g;
    out[2] = 255.0f * b;
}

/* ---- value noise -------------------------------------------------------- */

#define NOISE_MAX 40 /* lattice cells per side at most */

typedef struct {
    int gw;          /* lattice points per row */
    float inv_cell;  /* 1 / cell size in pixels */
    float v[(NOISE_MAX + 2) * (NOISE_MAX + 2)];
} vnoise;

/** A lattice of random values in [-1, 1] with the given cell size (pixels). */
static void vnoise_init(vnoise *n, rng_t *r, int w, int h, float cell)
{
    int side = w > h ? w : h;
    if ((float)side / cell > (float)(NOISE_MAX - 1))
        cell = (float)side / (float)(NOISE_MAX - 1);
    n->inv_cell = 1.0f / cell;
    n->gw = (int)((float)w * n->inv_cell) + 2;
    int gh = (int)((float)h * n->inv_cell) + 2;
    for (int i = 0; i < n->gw * gh; i++)
        n->v[i] = rng_range(r, -1.0f, 1.0f);
}

/** Smoothly interpolated noise at pixel (x, y), 0 <= x < w, 0 <= y < h. */
static float vnoise_at(const vnoise *n, float x, float y)
{
    float fx = x * n->inv_cell, fy = y * n->inv_cell;
    int ix = (int)fx, iy = (int)fy;
    float tx = fx - (float)ix, ty = fy - (float)iy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const float *a = n->v + iy * n->gw + ix, *b = a + n->gw;
    float top = a[0] + (a[1] - a[0]) * tx, bot = b[0] + (b[1] - b[0]) * tx;
    return top + (bot - top) * ty;
}

/* ---- signed distance functions (pixels; negative inside) ----------------- */

/** Closed polygon of nv vertices (x0, y0, x1, y1, ...): after Inigo Quilez. */
static float sd_polygon(const float *v, int nv, float px, float py)
{
    float d = (px - v[0]) * (px - v[0]) + (py - v[1]) * (py - v[1]);
    float s = 1.0f;
    for (int i = 0, j = nv - 1; i < nv; j = i, i++) {
        float ex = v[2 * j] - v[2 * i], ey = v[2 * j + 1] - v[2 * i + 1];
        float wx = px - v[2 * i], wy = py - v[2 * i + 1];
        float t = clampf((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0f, 1.0f);
        float bx = wx - ex * t, by = wy - ey * t;
        float dd = bx * bx + by * by;
        if (dd < d)
            d = dd;
        int c1 = py >= v[2 * i + 1], c2 = py < v[2 * j + 1], c3 = ex * wy > ey * wx;
        if ((c1 && c2 && c3) || (!c1 && !c2 && !c3))
            s = -s;
    }
    return s * sqrtf(d);
}

/** Ellipse with semi-axes a (x) and b (y): a first-order approximation. */
static float sd_ellipse(float px, float py, float a, float b)
{
    float k0 = len2(px / a, py / b), k1 = len2(px / (a * a), py / (b * b));
    return k1 > 1e-6f ? k0 * (k0 - 1.0f) / k1 : -(a < b ? a : b);
}

/** Axis-aligned box of half sizes hx, hy. */
static float sd_box(float px, float py, float hx, float hy)
{
    float qx = fabsf(px) - hx, qy = fabsf(py) - hy;
    float ox = qx > 0 ? qx : 0, oy = qy > 0 ? qy : 0;
    float in = qx > qy ? qx : qy;
    return len2(ox, oy) + (in < 0 ? in : 0);
}

/** Heart of unit size, tip at the origin pointing down (-y), top near y = 1.1. */
static float sd_heart(float px, float py)
{
    px = fabsf(px);
    if (py + px > 1.0f)
        return len2(px - 0.25f, py - 0.75f) - 0.35355339f;
    float m = 0.5f * (px + py > 0 ? px + py : 0);
    float d1 = px * px + (py - 1) * (py - 1), d2 = (px - m) * (px - m) + (py - m) * (py - m);
    return sqrtf(d1 < d2 ? d1 : d2) * (px > py ? 1.0f : -1.0f);
}

/** Signed distance to the boundary of a square wave of period 1 and duty (fraction
 *  "on"), on-intervals centred on the integers, in units of the period. */
static float sd_stripe(float t, float duty)
{
    return fabsf(t - floorf(t + 0.5f)) - 0.5f * duty;
}

static float coverage(float d, float inv_edge)
{
    return clampf(0.5f - d * inv_edge, 0.0f, 1.0f);
}

/* ---- the scene ---------------------------------------------------------- */

enum { PATCH_DISC, PATCH_SQUARE, PATCH_ELLIPSE };

typedef struct {
    float x, y, dx, dy; /* centre and half-segment (0 for a dot) */
    float r;           /* radius */
    float col[3];
} speck;

typedef struct {
    int w, h, cls;
    float s; /* shorter side */

    /* background */
    float bg0[3], bg1[3];
    int radial;
    float gx, gy, ga, gb; /* linear: t = ga*x + gb*y + gx; radial: centre gx, gy, t = |p-c| * ga */
    vnoise bgn[3];
    float bgn_amp[3], bgn_w[3];

    /* object, in its own frame: u = c*dx + s*dy, v = -s*dx + c*dy */
    float ox, oy, R, cs, sn, inv_edge;
    int bx0, by0, bx1, by1; /* bounding box of non-zero coverage */
    float poly[2 * 12];
    int npoly;
    float p0, p1, p2; /* shape parameters */
    float fg[3], shade_x, shade_y;
    vnoise fgn[2];
    float fgn_amp;

    /* texture classes */
    int patch;
    float patch_b;         /* ellipse minor semi-axis / square half side */
    float tcs, tsn;        /* pattern rotation */
    float period, duty, ph_u, ph_v;
    int fg2_clear;         /* second colour is the background itself */
    float fg2[3];

    int nspeck;
    speck sp[2];
    float grain, chroma_grain;
} scene;

/** A colour whose luminance differs by at least `margin` from every value
 *  in [lo, hi]; random hue, saturation and value, falling back to grey. */
static void pick_contrast(rng_t *r, float lo, float hi, float margin, float sat_max, float out[3])
{
    for (int tries = 0; tries < 64; tries++) {
        hsv_rgb(rng_f(r), rng_range(r, 0.0f, sat_max), rng_range(r, 0.04f, 1.0f), out);
        float l = luma(out);
        if (l <= lo - margin || l >= hi + margin)
            return;
    }
    float l = lo - margin >= 0.0f ? rng_range(r, 0.0f, lo - margin)
                                  : rng_range(r, fminf(hi + margin, 255.0f), 255.0f);
    out[0] = out[1] = out[2] = l;
}

static void setup_background(scene *sc, rng_t *r)
{
    float h = rng_f(r);
    float sat = powf(rng_f(r), 1.5f) * 0.8f;
    hsv_rgb(h, sat, rng_range(r, 0.12f, 0.95f), sc->bg0);
    if (rng_f(r) < 0.6f) { /* a shade of the same colour */
        for (int c = 0; c < 3; c++)
            sc->bg1[c] = sc->bg0[c] + rng_range(r, -50.0f, 50.0f);
    } else { /* a second colour of not too different luminance */
        float t[3];
        hsv_rgb(h + rng_range(r, -0.25f, 0.25f), powf(rng_f(r), 1.5f) * 0.8f,
                rng_range(r, 0.12f, 0.95f), t);
        float k = rng_range(r, 0.3f, 0.8f);
        for (int c = 0; c < 3; c++)
            sc->bg1[c] = sc->bg0[c] + k * (t[c] - sc->bg0[c]);
    }
    for (int c = 0; c < 3; c++)
        sc->bg1[c] = clampf(sc->bg1[c], 0.0f, 255.0f);
    /* keep the luminance span small enough to leave room for contrast */
    float l0 = luma(sc->bg0), l1 = luma(sc->bg1);
    if (fabsf(l1 - l0) > 70.0f) {
        float k = 70.0f / fabsf(l1 - l0);
        for (int c = 0; c < 3; c++)
            sc->bg1[c] = sc->bg0[c] + k * (sc->bg1[c] - sc->bg0[c]);
    }

    float w = (float)sc->w, hgt = (float)sc->h;
    sc->radial = rng_f(r) < 0.35f;
    if (sc->radial) {
        sc->gx = rng_range(r, -0.2f, 1.2f) * w;
        sc->gy = rng_range(r, -0.2f, 1.2f) * hgt;
        sc->ga = 1.0f / (rng_range(r, 0.6f, 1.4f) * len2(w, hgt));
    } else {
        float a = rng_range(r, 0.0f, 2 * PI_F), span = rng_range(r, 0.7f, 1.6f) * len2(w, hgt);
        sc->ga = cosf(a) / span;
        sc->gb = sinf(a) / span;
        sc->gx = 0.5f - sc->ga * 0.5f * w - sc->gb * 0.5f * hgt; /* t = 0.5 at the centre */
    }

    /* three octaves of value noise, amplitudes falling with frequency */
    float amp = rng_range(r, 5.0f, 20.0f);
    float cell = rng_range(r, 0.3f, 0.6f) * sc->s;
    for (int o = 0; o < 3; o++) {
        vnoise_init(&sc->bgn[o], r, sc->w, sc->h, cell);
        sc->bgn_w[o] = amp;
        amp *= rng_range(r, 0.35f, 0.6f);
        cell *= rng_range(r, 0.3f, 0.45f);
    }
    float tint = rng_range(r, 0.0f, 0.5f);
    for (int c = 0; c < 3; c++)
        sc->bgn_amp[c] = 1.0f + tint * rng_range(r, -1.0f, 1.0f);
}

static void setup_object(scene *sc, rng_t *r)
{
    float s = sc->s;
    int texture = sc->cls >= C_STRIPES;
    if (sc->cls == C_BULLSEYE)
        sc->R = rng_range(r, 0.30f, 0.40f) * s;
    else if (texture)
        sc->R = rng_range(r, 0.28f, 0.40f) * s;
    else
        sc->R = rng_range(r, 0.175f, 0.36f) * s;
    float R = sc->R;

    /* near the centre, so that it stays in the model's central crop (half
     * side s * 20/48); 1.2 R bounds every shape but the largest corners */
    float m = (s * (20.0f / 48.0f) - 1.2f * R) * 0.8f;
    if (m < 0.03f * s)
        m = 0.03f * s;
    sc->ox = 0.5f * (float)sc->w + rng_range(r, -m, m);
    sc->oy = 0.5f * (float)sc->h + rng_range(r, -m, m);
    float angle = sc->cls == C_HEART ? rng_range(r, -0.6f, 0.6f) : rng_range(r, 0.0f, 2 * PI_F);
    sc->cs = cosf(angle);
    sc->sn = sinf(angle);
    sc->inv_edge = 1.0f / rng_range(r, 0.7f, 1.6f);

    float ext = 1.6f * R + 3.0f; /* generous: every shape lies within 1.5 R */
    sc->bx0 = (int)floorf(sc->ox - ext);
    sc->by0 = (int)floorf(sc->oy - ext);
    sc->bx1 = (int)ceilf(sc->ox + ext);
    sc->by1 = (int)ceilf(sc->oy + ext);
    if (sc->bx0 < 0) sc->bx0 = 0;
    if (sc->by0 < 0) sc->by0 = 0;
    if (sc->bx1 > sc->w) sc->bx1 = sc->w;
    if (sc->by1 > sc->h) sc->by1 = sc->h;

    switch (sc->cls) {
    case C_ELLIPSE:
        sc->p0 = R * 1.1f;
        sc->p1 = sc->p0 * rng_range(r, 0.38f, 0.6f);
        break;
    case C_RING:
        sc->p0 = R * rng_range(r, 0.45f, 0.68f); /* inner radius */
        break;
    case C_SQUARE: {
        float hs = 0.82f * R;
        float v[8] = {-hs, -hs, hs, -hs, hs, hs, -hs, hs};
        memcpy(sc->poly, v, sizeof v);
        sc->npoly = 4;
        break;
    }
    case C_TRIANGLE:
        sc->npoly = 3;
        for (int i = 0; i < 3; i++) {
            float a = -0.5f * PI_F + (float)i * (2.0f * PI_F / 3.0f);
            sc->poly[2 * i] = 1.2f * R * cosf(a);
            sc->poly[2 * i + 1] = 1.2f * R * sinf(a);
        }
        break;
    case C_PLUS: {
        float L = 1.05f * R, t = L * rng_range(r, 0.22f, 0.32f);
        float v[24] = {-t, -L, t, -L, t, -t, L, -t, L, t, t, t,
                       t, L, -t, L, -t, t, -L, t, -L, -t, -t, -t};
        memcpy(sc->poly, v, sizeof v);
        sc->npoly = 12;
        break;
    }
    case C_STAR: {
        float ro = 1.15f * R, ri = ro * rng_range(r, 0.38f, 0.5f);
        sc->npoly = 10;
        for (int i = 0; i < 10; i++) {
            float a = -0.5f * PI_F + (float)i * (PI_F / 5.0f), rr = i % 2 ? ri : ro;
            sc->poly[2 * i] = rr * cosf(a);
            sc->poly[2 * i + 1] = rr * sinf(a);
        }
        break;
    }
    case C_CRESCENT:
        sc->p0 = R * rng_range(r, 0.32f, 0.5f);   /* offset of the bite */
        sc->p1 = R * rng_range(r, 0.8f, 0.95f);   /* radius of the bite */
        sc->p2 = 0.3f * R;                        /* recentring */
        break;
    case C_HEART:
        sc->p0 = 1.55f * R;
        break;
    case C_BULLSEYE: {
        int rings = rng_int(r, 2, 3);
        sc->period = R / ((float)rings + 0.25f);
        break;
    }
    default:
        break;
    }

    if (texture) {
        sc->patch = sc->cls == C_BULLSEYE ? PATCH_DISC : rng_int(r, 0, 2);
        sc->patch_b = sc->patch == PATCH_SQUARE ? 0.85f * R : R * rng_range(r, 0.7f, 1.0f);
        float a = rng_range(r, 0.0f, 2 * PI_F);
        sc->tcs = cosf(a);
        sc->tsn = sinf(a);
        sc->ph_u = rng_f(r);
        sc->ph_v = rng_f(r);
        switch (sc->cls) {
        case C_STRIPES:
            sc->period = rng_range(r, 0.10f, 0.15f) * s;
            sc->duty = rng_range(r, 0.4f, 0.6f);
            break;
        case C_CHECKER:
            sc->period = 2.0f * rng_range(r, 0.075f, 0.11f) * s;
            sc->duty = 0.5f;
            break;
        case C_DOTS:
            sc->period = rng_range(r, 0.13f, 0.19f) * s;
            sc->duty = rng_range(r, 0.28f, 0.36f); /* dot radius / spacing */
            break;
        case C_GRID:
            sc->period = rng_range(r, 0.13f, 0.19f) * s;
            sc->duty = rng_range(r, 0.018f, 0.03f) * s; /* line half width, pixels */
            break;
        default:
            break;
        }
    }
}

static void setup_colours(scene *sc, rng_t *r)
{
    float l0 = luma(sc->bg0), l1 = luma(sc->bg1);
    pick_contrast(r, fminf(l0, l1), fmaxf(l0, l1), 45.0f, 1.0f, sc->fg);
    float sh = rng_range(r, 0.0f, 0.3f) / sc->R, a = rng_range(r, 0.0f, 2 * PI_F);
    sc->shade_x = sh * cosf(a);
    sc->shade_y = sh * sinf(a);
    vnoise_init(&sc->fgn[0], r, sc->w, sc->h, rng_range(r, 0.15f, 0.3f) * sc->s);
    vnoise_init(&sc->fgn[1], r, sc->w, sc->h, rng_range(r, 0.04f, 0.08f) * sc->s);
    sc->fgn_amp = rng_range(r, 2.0f, 12.0f);
    if (sc->cls >= C_STRIPES) {
        sc->fg2_clear = rng_f(r) < 0.5f;
        float lf = luma(sc->fg);
        pick_contrast(r, lf, lf, 50.0f, 0.9f, sc->fg2);
    }

    sc->nspeck = rng_int(r, 0, 2);
    for (int i = 0; i < sc->nspeck; i++) {
        speck *p = &sc->sp[i];
        p->x = rng_range(r, 0.0f, (float)sc->w);
        p->y = rng_range(r, 0.0f, (float)sc->h);
        if (rng_f(r) < 0.5f) {
            p->r = rng_range(r, 0.015f, 0.04f) * sc->s;
            p->dx = p->dy = 0;
        } else {
            float a = rng_range(r, 0.0f, 2 * PI_F), l = rng_range(r, 0.03f, 0.07f) * sc->s;
            p->r = rng_range(r, 0.008f, 0.016f) * sc->s;
            p->dx = l * cosf(a);
            p->dy = l * sinf(a);
        }
        hsv_rgb(rng_f(r), rng_f(r), rng_range(r, 0.05f, 1.0f), p->col);
    }
    sc->grain = rng_range(r, 0.5f, 4.0f);
    sc->chroma_grain = rng_range(r, 0.0f, 0.4f);
}

/** Coverage of the shape (non-texture classes) at local (u, v). */
static float shape_cov(const scene *sc, float u, float v)
{
    float d;
    switch (sc->cls) {
    case C_DISC: d = len2(u, v) - sc->R; break;
    case C_ELLIPSE: d = sd_ellipse(u, v, sc->p0, sc->p1); break;
    case C_RING: {
        float mid = 0.5f * (sc->R + sc->p0), half = 0.5f * (sc->R - sc->p0);
        d = fabsf(len2(u, v) - mid) - half;
        break;
    }
    case C_CRESCENT: {
        float uu = u - sc->p2;
        float a = len2(uu, v) - sc->R, b = len2(uu - sc->p0, v) - sc->p1;
        d = a > -b ? a : -b;
        break;
    }
    case C_HEART: {
        float k = sc->p0;
        d = k * sd_heart(u / k, -v / k + 0.55f);
        break;
    }
    default: d = sd_polygon(sc->poly, sc->npoly, u, v); break;
    }
    return coverage(d, sc->inv_edge);
}

/** Coverage of the texture pattern (1 = first colour) at local (u, v). */
static float pattern_cov(const scene *sc, float u, float v)
{
    float P = sc->period, d;
    if (sc->cls == C_BULLSEYE) {
        d = sd_stripe(len2(u, v) / P, 0.5f) * P;
        return coverage(d, sc->inv_edge);
    }
    float pu = (sc->tcs * u + sc->tsn * v) / P + sc->ph_u;
    float pv = (-sc->tsn * u + sc->tcs * v) / P + sc->ph_v;
    switch (sc->cls) {
    case C_STRIPES:
        return coverage(sd_stripe(pu, sc->duty) * P, sc->inv_edge);
    case C_CHECKER: {
        float a = coverage(sd_stripe(pu, 0.5f) * P, sc->inv_edge);
        float b = coverage(sd_stripe(pv, 0.5f) * P, sc->inv_edge);
        return a + b - 2 * a * b;
    }
    case C_DOTS: { /* hexagonal lattice: two rectangular sub-lattices 1 x sqrt(3) */
        const float k = 1.7320508f;
        float ax = pu - floorf(pu + 0.5f), ay = pv - k * floorf(pv / k + 0.5f);
        float bu = pu - 0.5f, bv = pv - 0.5f * k;
        float bx = bu - floorf(bu + 0.5f), by = bv - k * floorf(bv / k + 0.5f);
        float da = ax * ax + ay * ay, db = bx * bx + by * by;
        d = (sqrtf(da < db ? da : db) - sc->duty) * P;
        return coverage(d, sc->inv_edge);
    }
    case C_GRID: {
        float du = fabsf(pu - floorf(pu + 0.5f)), dv = fabsf(pv - floorf(pv + 0.5f));
        d = (du < dv ? du : dv) * P - sc->duty;
        return coverage(d, sc->inv_edge);
    }
    default:
        return 0.0f;
    }
}

/** Coverage of the patch that holds a texture. */
static float patch_cov(const scene *sc, float u, float v)
{
    float d;
    switch (sc->patch) {
    case PATCH_SQUARE: d = sd_box(u, v, sc->patch_b, sc->patch_b); break;
    case PATCH_ELLIPSE: d = sd_ellipse(u, v, sc->R, sc->patch_b); break;
    default: d = len2(u, v) - sc->R; break;
    }
    return coverage(d, sc->inv_edge);
}

static void draw(const scene *sc, uint64_t grain_seed, uint8_t *px)
{
    rng_t gr = {grain_seed};
    int texture = sc->cls >= C_STRIPES;
    float d0[3];
    for (int c = 0; c < 3; c++)
        d0[c] = sc->bg1[c] - sc->bg0[c];

    for (int y = 0; y < sc->h; y++) {
        float fy = (float)y + 0.5f;
        for (int x = 0; x < sc->w; x++) {
            float fx = (float)x + 0.5f;
            float col[3];

            /* background */
            float t;
            if (sc->radial)
                t = len2(fx - sc->gx, fy - sc->gy) * sc->ga;
            else
                t = sc->ga * fx + sc->gb * fy + sc->gx;
            t = clampf(t, 0.0f, 1.0f);
            float n = sc->bgn_w[0] * vnoise_at(&sc->bgn[0], fx, fy) +
                      sc->bgn_w[1] * vnoise_at(&sc->bgn[1], fx, fy) +
                      sc->bgn_w[2] * vnoise_at(&sc->bgn[2], fx, fy);
            for (int c = 0; c < 3; c++)
                col[c] = sc->bg0[c] + d0[c] * t + n * sc->bgn_amp[c];

            /* object */
            if (x >= sc->bx0 && x < sc->bx1 && y >= sc->by0 && y < sc->by1) {
                float dx = fx - sc->ox, dy = fy - sc->oy;
                float u = sc->cs * dx + sc->sn * dy, v = -sc->sn * dx + sc->cs * dy;
                float cov = texture ? patch_cov(sc, u, v) : shape_cov(sc, u, v);
                if (cov > 0.0f) {
                    float shade = 1.0f + sc->shade_x * dx + sc->shade_y * dy;
                    float fn = sc->fgn_amp * (0.7f * vnoise_at(&sc->fgn[0], fx, fy) +
                                              0.3f * vnoise_at(&sc->fgn[1], fx, fy));
                    float pc = texture ? pattern_cov(sc, u, v) : 1.0f;
                    for (int c = 0; c < 3; c++) {
                        float f = sc->fg[c] * shade + fn;
                        if (texture) {
                            float other = sc->fg2_clear ? col[c] : sc->fg2[c] * shade + fn;
                            f = other + (f - other) * pc;
                        }
                        col[c] += (f - col[c]) * cov;
                    }
                }
            }

            /* specks */
            for (int i = 0; i < sc->nspeck; i++) {
                const speck *p = &sc->sp[i];
                float wx = fx - p->x, wy = fy - p->y;
                if (fabsf(wx) > p->r + fabsf(p->dx) + 2 || fabsf(wy) > p->r + fabsf(p->dy) + 2)
                    continue;
                float h = 0.0f, ll = p->dx * p->dx + p->dy * p->dy;
                if (ll > 0)
                    h = clampf((wx * p->dx + wy * p->dy) / ll, -1.0f, 1.0f);
                float cov = coverage(len2(wx - h * p->dx, wy - h * p->dy) - p->r, 1.0f);
                for (int c = 0; c < 3; c++)
                    col[c] += (p->col[c] - col[c]) * cov;
            }

            /* grain: mostly luminance, a little chroma */
            uint64_t g = rng_u64(&gr);
            float gl = ((float)(g & 0xffff) + (float)((g >> 16) & 0xffff)) * (1.0f / 65536.0f) - 1.0f;
            for (int c = 0; c < 3; c++) {
                float gc = (float)((g >> (32 + 10 * c)) & 0x3ff) * (1.0f / 512.0f) - 1.0f;
                float vv = col[c] + sc->grain * (gl + sc->chroma_grain * gc) * 1.7f;
                px[3 * ((size_t)y * (size_t)sc->w + (size_t)x) + (size_t)c] =
                    (uint8_t)clampf(vv + 0.5f, 0.0f, 255.0f);
            }
        }
    }
}

int synth_render(int cls, uint64_t seed, img_rgb *out, char *err, size_t errsz)
{
    if (cls < 0 || cls >= N_CLASSES)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "synth: class %d out of range 0..%d", cls,
                        N_CLASSES - 1);
    if (!out)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "synth: no output image");

    scene *sc = calloc(1, sizeof *sc);
    if (!sc)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "synth: out of memory");
    rng_t r = {mix64(seed ^ mix64(0x5eedc1a55ULL + (uint64_t)cls))};

    /* size: log-uniform aspect ratio, then the longer side */
    float aspect = expf(rng_range(&r, logf((float)SYNTH_MIN_ASPECT), logf((float)SYNTH_MAX_ASPECT)));
    float ratio = aspect >= 1.0f ? aspect : 1.0f / aspect;
    int lmin = (int)ceilf((float)SYNTH_MIN_SIDE * ratio);
    if (lmin > SYNTH_MAX_SIDE)
        lmin = SYNTH_MAX_SIDE;
    int L = rng_int(&r, lmin, SYNTH_MAX_SIDE);
    int S = (int)lroundf((float)L / ratio);
    if (S < SYNTH_MIN_SIDE)
        S = SYNTH_MIN_SIDE;
    sc->w = aspect >= 1.0f ? L : S;
    sc->h = aspect >= 1.0f ? S : L;
    sc->s = (float)(S < L ? S : L);
    sc->cls = cls;

    setup_background(sc, &r);
    setup_object(sc, &r);
    setup_colours(sc, &r);

    img_rgb im;
    if (img_alloc(&im, sc->w, sc->h)) {
        int w = sc->w, h = sc->h;
        free(sc);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "synth: out of memory for a %dx%d image",
                        w, h);
    }
    draw(sc, rng_u64(&r), im.px);
    free(sc);
    *out = im;
    return ADJ_OK;
}

/* ---- sets --------------------------------------------------------------- */

int synth_plan(int n, uint64_t seed, synth_item *items)
{
    if (n < 1 || n > SYNTH_MAX_SET || !items)
        return ADJ_ERR_ARG;
    rng_t r = {mix64(seed ^ 0x7365747365656421ULL)};
    for (int i = 0; i < n; i++)
        items[i].cls = i % N_CLASSES;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(rng_u64(&r) % (uint64_t)(i + 1));
        int t = items[i].cls;
        items[i].cls = items[j].cls;
        items[j].cls = t;
    }
    for (int i = 0; i < n; i++) {
        items[i].seed = rng_u64(&r);
        items[i].quality = rng_int(&r, SYNTH_MIN_QUALITY, SYNTH_MAX_QUALITY);
    }
    return ADJ_OK;
}

static int write_file(const char *path, const void *data, size_t len, char *err, size_t errsz)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t wr = fwrite(data, 1, len, f);
    int e = errno;
    if (fclose(f) != 0 || wr != len)
        return adj_fail(err, errsz, ADJ_ERR_IO, "cannot write %s: %s", path,
                        strerror(wr != len ? e : errno));
    return ADJ_OK;
}

static int write_lists(const char *dir, const synth_item *items, int n, int digits, char *err,
                       size_t errsz)
{
    char path[4200];
    int rc = ut_path_join_buf(path, sizeof path, dir, "classes.txt", err, errsz);
    if (rc)
        return rc;
    size_t cap = 64 * (size_t)N_CLASSES + 64 * (size_t)n, len = 0;
    char *txt = malloc(cap);
    if (!txt)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for the labels");
    for (int c = 0; c < N_CLASSES; c++)
        len += (size_t)snprintf(txt + len, cap - len, "%s\n", class_names[c]);
    rc = write_file(path, txt, len, err, errsz);
    if (!rc)
        rc = ut_path_join_buf(path, sizeof path, dir, "labels.txt", err, errsz);
    if (!rc) {
        len = 0;
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(txt + len, cap - len, "img_%0*d.jpg\t%d\n", digits, i + 1,
                                    items[i].cls);
        rc = write_file(path, txt, len, err, errsz);
    }
    free(txt);
    return rc;
}

int synth_write_set(const char *dir, int n, uint64_t seed, int with_labels, char *err,
                    size_t errsz)
{
    if (!dir || !*dir)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "no output directory");
    if (n < 1 || n > SYNTH_MAX_SET)
        return adj_fail(err, errsz, ADJ_ERR_ARG, "image count %d out of range 1..%d", n,
                        SYNTH_MAX_SET);
    int rc = ut_mkdir_p(dir, 0777, err, errsz);
    if (rc)
        return rc;
    synth_item *items = malloc((size_t)n * sizeof *items);
    if (!items)
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "out of memory for %d items", n);
    synth_plan(n, seed, items);

    int digits = 6;
    for (int k = n / 1000000; k > 0; k /= 10)
        digits++;

    char path[4200], name[32];
    for (int i = 0; i < n && !rc; i++) {
        img_rgb im = {0};
        uint8_t *jpg = NULL;
        size_t jlen = 0;
        snprintf(name, sizeof name, "img_%0*d.jpg", digits, i + 1);
        rc = ut_path_join_buf(path, sizeof path, dir, name, err, errsz);
        if (!rc)
            rc = synth_render(items[i].cls, items[i].seed, &im, err, errsz);
        if (!rc)
            rc = img_encode_jpeg(&im, items[i].quality, &jpg, &jlen, err, errsz);
        if (!rc)
            rc = write_file(path, jpg, jlen, err, errsz);
        free(jpg);
        img_free(&im);
    }
    if (!rc && with_labels)
        rc = write_lists(dir, items, n, digits, err, errsz);
    free(items);
    return rc;
}
