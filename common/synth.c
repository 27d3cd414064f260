/*
 * synth.c - the procedural image set (see synth.h).
 *
 * An image is a scene (see synth.h) drawn per pixel in one pass:
 *
 *   background  gradient + value noise + an optional faint wallpaper
 *   objects     in order (background distractors, the labelled object, an
 *               optional occluder), each a signed distance function (SDF) in
 *               pixels in its rotated and foreshortened frame; coverage =
 *               clamp(0.5 - d / edge, 0, 1) gives antialiased edges. Its
 *               surface pattern is an SDF too, at its own angle and phase.
 *   specks      dots and short strokes
 *   light       illumination ramp and spot, colour cast, gamma
 *   grain       per-pixel noise, mostly luminance
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

/* A class is an object kind: an outline (SHAPE_*) and a surface (FILL_*), so
 * that classes share parts with each other: the "striped star" shares its
 * outline with four other stars and its surface with seven other striped
 * objects. Class index = shape * N_FILLS + fill. */
enum { SH_DISC, SH_ELLIPSE, SH_SQUARE, SH_TRIANGLE, SH_STAR, SH_PLUS, SH_HEART, SH_CRESCENT, N_SHAPES };
enum { FILL_PLAIN, FILL_STRIPES, FILL_CHECKER, FILL_DOTS, FILL_GRID, N_FILLS };
#define N_CLASSES (N_SHAPES * N_FILLS)

/* "plain disc", "striped disc", ..., "gridded crescent" */
static const char *const class_names[N_CLASSES] = {
#define ROW(s) "plain " s, "striped " s, "checked " s, "dotted " s, "gridded " s
    ROW("disc"), ROW("ellipse"), ROW("square"), ROW("triangle"),
    ROW("star"), ROW("plus"),    ROW("heart"),  ROW("crescent"),
#undef ROW
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

#define MAX_OBJ 6    /* the labelled object and up to 5 distractors */
#define MAX_SPECK 10

/* One object: an outline in its own frame (u, v) = R(angle) (p - centre),
 * with v stretched by 1 / squash (a tilted view), and a surface. */
typedef struct {
    int shape, fill;
    float ox, oy, R, cs, sn, inv_squash, inv_edge;
    int bx0, by0, bx1, by1; /* bounding box of non-zero coverage */
    float poly[2 * 12];
    int npoly;
    float p0, p1, p2;       /* shape parameters */
    float fg[3], shade_x, shade_y;
    float tcs, tsn, period, duty, ph_u, ph_v; /* surface pattern */
    int fg2_clear;          /* second colour of the pattern is what lies behind */
    float fg2[3];
} object;

typedef struct {
    float x, y, dx, dy, r; /* centre, half-segment (0 for a dot), radius */
    float col[3];
} speck;

typedef struct {
    int w, h;
    float s; /* shorter side */

    /* background: gradient + value noise + an optional faint wallpaper */
    float bg0[3], bg1[3];
    int radial;
    float gx, gy, ga, gb;
    vnoise bgn[3];
    float bgn_amp[3], bgn_w[3];
    int wall;             /* 0 none, else a FILL_* pattern */
    float wall_amp, wall_cs, wall_sn, wall_period;

    vnoise fgn;           /* surface noise shared by the objects */
    float fgn_amp;
    int nobj;             /* drawn in order: later objects occlude earlier ones */
    object ob[MAX_OBJ];
    int nspeck;
    speck sp[MAX_SPECK];

    /* lighting: gain = 1 + lx * x + ly * y + spot * exp(-|p - spot_c|^2 / spot_r^2),
     * then a colour cast (per-channel gain) and a gamma */
    float lx, ly, l0, spot, spot_x, spot_y, inv_spot_r2;
    float cast[3], gamma;
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
    hsv_rgb(h, powf(rng_f(r), 1.5f) * 0.8f, rng_range(r, 0.12f, 0.95f), sc->bg0);
    float t[3];
    hsv_rgb(h + rng_range(r, -0.3f, 0.3f), powf(rng_f(r), 1.5f) * 0.8f, rng_range(r, 0.12f, 0.95f), t);
    float k = rng_range(r, 0.2f, 0.8f);
    for (int c = 0; c < 3; c++)
        sc->bg1[c] = clampf(sc->bg0[c] + k * (t[c] - sc->bg0[c]), 0.0f, 255.0f);
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
        sc->gx = 0.5f - sc->ga * 0.5f * w - sc->gb * 0.5f * hgt;
    }
    float amp = rng_range(r, 8.0f, 30.0f), cell = rng_range(r, 0.2f, 0.5f) * sc->s;
    for (int o = 0; o < 3; o++) {
        vnoise_init(&sc->bgn[o], r, sc->w, sc->h, cell);
        sc->bgn_w[o] = amp;
        amp *= rng_range(r, 0.4f, 0.7f);
        cell *= rng_range(r, 0.3f, 0.45f);
    }
    float tint = rng_range(r, 0.0f, 0.6f);
    for (int c = 0; c < 3; c++)
        sc->bgn_amp[c] = 1.0f + tint * rng_range(r, -1.0f, 1.0f);
    sc->wall = rng_f(r) < 0.25f ? rng_int(r, FILL_STRIPES, N_FILLS - 1) : 0;
    float a = rng_range(r, 0.0f, 2 * PI_F);
    sc->wall_cs = cosf(a);
    sc->wall_sn = sinf(a);
    sc->wall_period = rng_range(r, 0.04f, 0.12f) * sc->s;
    sc->wall_amp = rng_range(r, 6.0f, 22.0f);
}

/** Outline parameters of o (o->R, o->shape set). */
static void setup_shape(object *o, rng_t *r)
{
    float R = o->R;
    switch (o->shape) {
    case SH_ELLIPSE:
        o->p0 = R * 1.1f;
        o->p1 = o->p0 * rng_range(r, 0.45f, 0.7f);
        break;
    case SH_SQUARE: {
        float hs = 0.82f * R;
        float v[8] = {-hs, -hs, hs, -hs, hs, hs, -hs, hs};
        memcpy(o->poly, v, sizeof v);
        o->npoly = 4;
        break;
    }
    case SH_TRIANGLE:
        o->npoly = 3;
        for (int i = 0; i < 3; i++) {
            float a = -0.5f * PI_F + (float)i * (2.0f * PI_F / 3.0f);
            o->poly[2 * i] = 1.2f * R * cosf(a);
            o->poly[2 * i + 1] = 1.2f * R * sinf(a);
        }
        break;
    case SH_PLUS: {
        float L = 1.05f * R, t = L * rng_range(r, 0.25f, 0.4f);
        float v[24] = {-t, -L, t, -L, t, -t, L, -t, L, t, t, t,
                       t, L, -t, L, -t, t, -L, t, -L, -t, -t, -t};
        memcpy(o->poly, v, sizeof v);
        o->npoly = 12;
        break;
    }
    case SH_STAR: {
        float ro = 1.15f * R, ri = ro * rng_range(r, 0.45f, 0.6f);
        o->npoly = 10;
        for (int i = 0; i < 10; i++) {
            float a = -0.5f * PI_F + (float)i * (PI_F / 5.0f), rr = i % 2 ? ri : ro;
            o->poly[2 * i] = rr * cosf(a);
            o->poly[2 * i + 1] = rr * sinf(a);
        }
        break;
    }
    case SH_CRESCENT:
        o->p0 = R * rng_range(r, 0.35f, 0.6f);
        o->p1 = R * rng_range(r, 0.75f, 0.95f);
        o->p2 = 0.3f * R;
        break;
    case SH_HEART:
        o->p0 = 1.55f * R;
        break;
    default:
        break;
    }
}

/** Surface pattern of o, its period a fraction of the object's size. */
static void setup_fill(object *o, rng_t *r)
{
    float a = rng_range(r, 0.0f, 2 * PI_F), R = o->R;
    o->tcs = cosf(a);
    o->tsn = sinf(a);
    o->ph_u = rng_f(r);
    o->ph_v = rng_f(r);
    switch (o->fill) {
    case FILL_STRIPES:
        o->period = rng_range(r, 0.3f, 0.5f) * R;
        o->duty = rng_range(r, 0.35f, 0.65f);
        break;
    case FILL_CHECKER:
        o->period = rng_range(r, 0.4f, 0.6f) * R;
        o->duty = 0.5f;
        break;
    case FILL_DOTS:
        o->period = rng_range(r, 0.35f, 0.55f) * R;
        o->duty = rng_range(r, 0.2f, 0.34f);
        break;
    case FILL_GRID:
        o->period = rng_range(r, 0.35f, 0.55f) * R;
        o->duty = rng_range(r, 0.06f, 0.12f) * o->period;
        break;
    default:
        break;
    }
}

/* Places object o of class cls with radius R at (x, y); colours contrast
 * with the background's luminance range by at least `margin`. */
static void setup_object(scene *sc, object *o, rng_t *r, int cls, float R, float x, float y,
                         float margin)
{
    o->shape = cls / N_FILLS;
    o->fill = cls % N_FILLS;
    o->R = R;
    o->ox = x;
    o->oy = y;
    float angle = o->shape == SH_HEART ? rng_range(r, -0.7f, 0.7f) : rng_range(r, 0.0f, 2 * PI_F);
    o->cs = cosf(angle);
    o->sn = sinf(angle);
    o->inv_squash = 1.0f / rng_range(r, 0.75f, 1.0f);
    o->inv_edge = 1.0f / (rng_range(r, 0.6f, 2.0f) * sc->s / 110.0f);
    float ext = 1.6f * R + 4.0f;
    o->bx0 = (int)fmaxf(floorf(x - ext), 0.0f);
    o->by0 = (int)fmaxf(floorf(y - ext), 0.0f);
    o->bx1 = (int)fminf(ceilf(x + ext), (float)sc->w);
    o->by1 = (int)fminf(ceilf(y + ext), (float)sc->h);
    setup_shape(o, r);
    setup_fill(o, r);
    float l0 = luma(sc->bg0), l1 = luma(sc->bg1);
    pick_contrast(r, fminf(l0, l1), fmaxf(l0, l1), margin, 1.0f, o->fg);
    float lf = luma(o->fg);
    pick_contrast(r, lf, lf, rng_range(r, 40.0f, 80.0f), 1.0f, o->fg2);
    o->fg2_clear = rng_f(r) < 0.25f;
    float sh = rng_range(r, 0.0f, 0.4f) / R, a = rng_range(r, 0.0f, 2 * PI_F);
    o->shade_x = sh * cosf(a);
    o->shade_y = sh * sinf(a);
}

/* The labelled object near the centre (inside the model's crop), then
 * distractors of other classes, smaller, anywhere; at most one of them is
 * drawn in front of the labelled object, across its edge (an occluder). */
static void setup_objects(scene *sc, rng_t *r, int cls)
{
    float s = sc->s, R = rng_range(r, 0.20f, 0.32f) * s;
    float m = fmaxf((s * 0.44f - 1.2f * R) * 0.8f, 0.03f * s); /* crop half side ~0.44 s */
    float mx = 0.5f * (float)sc->w + rng_range(r, -m, m);
    float my = 0.5f * (float)sc->h + rng_range(r, -m, m);
    int nd = rng_int(r, 0, MAX_OBJ - 1), occluder = nd > 0 && rng_f(r) < 0.3f;
    sc->nobj = nd + 1;
    setup_object(sc, &sc->ob[nd - occluder], r, cls, R, mx, my, rng_range(r, 20.0f, 55.0f));
    for (int i = 0; i < nd; i++) {
        int c = rng_int(r, 0, N_CLASSES - 2);
        c += c >= cls; /* another class */
        float dr = R * rng_range(r, 0.3f, 0.65f);
        float x = rng_range(r, 0.0f, (float)sc->w), y = rng_range(r, 0.0f, (float)sc->h);
        int slot = i < nd - occluder ? i : nd;
        if (slot == nd) {
            float a = rng_range(r, 0.0f, 2 * PI_F), d = R + dr * rng_range(r, -0.2f, 0.6f);
            x = mx + d * cosf(a);
            y = my + d * sinf(a);
        }
        setup_object(sc, &sc->ob[slot], r, c, dr, x, y, 20.0f);
    }
}

static void setup_clutter_light(scene *sc, rng_t *r)
{
    sc->nspeck = rng_int(r, 2, MAX_SPECK);
    for (int i = 0; i < sc->nspeck; i++) {
        speck *p = &sc->sp[i];
        p->x = rng_range(r, 0.0f, (float)sc->w);
        p->y = rng_range(r, 0.0f, (float)sc->h);
        if (rng_f(r) < 0.4f) {
            p->r = rng_range(r, 0.01f, 0.035f) * sc->s;
            p->dx = p->dy = 0;
        } else { /* a stroke, like a twig or a scratch */
            float a = rng_range(r, 0.0f, 2 * PI_F), l = rng_range(r, 0.04f, 0.15f) * sc->s;
            p->r = rng_range(r, 0.005f, 0.015f) * sc->s;
            p->dx = l * cosf(a);
            p->dy = l * sinf(a);
        }
        hsv_rgb(rng_f(r), rng_f(r), rng_range(r, 0.05f, 1.0f), p->col);
    }
    vnoise_init(&sc->fgn, r, sc->w, sc->h, rng_range(r, 0.05f, 0.12f) * sc->s);
    sc->fgn_amp = rng_range(r, 2.0f, 14.0f);

    float a = rng_range(r, 0.0f, 2 * PI_F), k = rng_range(r, 0.0f, 0.6f) / len2((float)sc->w, (float)sc->h);
    sc->lx = k * cosf(a);
    sc->ly = k * sinf(a);
    sc->l0 = rng_range(r, 0.7f, 1.15f) - sc->lx * 0.5f * (float)sc->w - sc->ly * 0.5f * (float)sc->h;
    sc->spot = rng_f(r) < 0.4f ? rng_range(r, 0.15f, 0.5f) : 0.0f;
    sc->spot_x = rng_range(r, 0.0f, (float)sc->w);
    sc->spot_y = rng_range(r, 0.0f, (float)sc->h);
    float sr = rng_range(r, 0.2f, 0.6f) * sc->s;
    sc->inv_spot_r2 = 1.0f / (sr * sr);
    for (int c = 0; c < 3; c++) /* colour cast: a white balance error */
        sc->cast[c] = rng_range(r, 0.8f, 1.2f);
    sc->gamma = rng_range(r, 0.8f, 1.25f);
    sc->grain = rng_range(r, 0.5f, 5.0f);
    sc->chroma_grain = rng_range(r, 0.0f, 0.5f);
}

/** Coverage of object o's outline at local (u, v). */
static float shape_cov(const object *o, float u, float v)
{
    float d;
    switch (o->shape) {
    case SH_DISC: d = len2(u, v) - o->R; break;
    case SH_ELLIPSE: d = sd_ellipse(u, v, o->p0, o->p1); break;
    case SH_CRESCENT: {
        float uu = u - o->p2;
        float a = len2(uu, v) - o->R, b = len2(uu - o->p0, v) - o->p1;
        d = a > -b ? a : -b;
        break;
    }
    case SH_HEART: d = o->p0 * sd_heart(u / o->p0, -v / o->p0 + 0.55f); break;
    default: d = sd_polygon(o->poly, o->npoly, u, v); break;
    }
    return coverage(d, o->inv_edge);
}

/** Coverage (1 = first colour) of surface pattern `fill` of period P at
 *  pattern coordinates (pu, pv) in periods; duty as in setup_fill. */
static float pattern_cov(int fill, float P, float duty, float inv_edge, float pu, float pv)
{
    switch (fill) {
    case FILL_STRIPES:
        return coverage(sd_stripe(pu, duty) * P, inv_edge);
    case FILL_CHECKER: {
        float a = coverage(sd_stripe(pu, 0.5f) * P, inv_edge);
        float b = coverage(sd_stripe(pv, 0.5f) * P, inv_edge);
        return a + b - 2 * a * b;
    }
    case FILL_DOTS: { /* hexagonal lattice: two rectangular sub-lattices 1 x sqrt(3) */
        const float k = 1.7320508f;
        float ax = pu - floorf(pu + 0.5f), ay = pv - k * floorf(pv / k + 0.5f);
        float bu = pu - 0.5f, bv = pv - 0.5f * k;
        float bx = bu - floorf(bu + 0.5f), by = bv - k * floorf(bv / k + 0.5f);
        float da = ax * ax + ay * ay, db = bx * bx + by * by;
        return coverage((sqrtf(da < db ? da : db) - duty) * P, inv_edge);
    }
    case FILL_GRID: {
        float du = fabsf(pu - floorf(pu + 0.5f)), dv = fabsf(pv - floorf(pv + 0.5f));
        return coverage((du < dv ? du : dv) * P - duty, inv_edge);
    }
    default:
        return 1.0f;
    }
}

static void draw_object(const object *o, const scene *sc, float fx, float fy, float col[3])
{
    float dx = fx - o->ox, dy = fy - o->oy;
    float u = o->cs * dx + o->sn * dy, v = (-o->sn * dx + o->cs * dy) * o->inv_squash;
    float cov = shape_cov(o, u, v);
    if (cov <= 0.0f)
        return;
    float shade = 1.0f + o->shade_x * dx + o->shade_y * dy;
    float fn = sc->fgn_amp * vnoise_at(&sc->fgn, fx, fy);
    float pc = 1.0f;
    if (o->fill != FILL_PLAIN) {
        float pu = (o->tcs * u + o->tsn * v) / o->period + o->ph_u;
        float pv = (-o->tsn * u + o->tcs * v) / o->period + o->ph_v;
        pc = pattern_cov(o->fill, o->period, o->duty, o->inv_edge, pu, pv);
    }
    for (int c = 0; c < 3; c++) {
        float f = o->fg[c] * shade + fn;
        if (o->fill != FILL_PLAIN) {
            float other = o->fg2_clear ? col[c] : o->fg2[c] * shade + fn;
            f = other + (f - other) * pc;
        }
        col[c] += (f - col[c]) * cov;
    }
}

static void draw_background(const scene *sc, float fx, float fy, float col[3])
{
    float t = sc->radial ? len2(fx - sc->gx, fy - sc->gy) * sc->ga : sc->ga * fx + sc->gb * fy + sc->gx;
    t = clampf(t, 0.0f, 1.0f);
    float n = sc->bgn_w[0] * vnoise_at(&sc->bgn[0], fx, fy) +
              sc->bgn_w[1] * vnoise_at(&sc->bgn[1], fx, fy) +
              sc->bgn_w[2] * vnoise_at(&sc->bgn[2], fx, fy);
    if (sc->wall) {
        float pu = (sc->wall_cs * fx + sc->wall_sn * fy) / sc->wall_period;
        float pv = (-sc->wall_sn * fx + sc->wall_cs * fy) / sc->wall_period;
        n += sc->wall_amp * (pattern_cov(sc->wall, sc->wall_period, 0.5f * (sc->wall == FILL_DOTS ? 0.6f : 1.0f),
                                         1.0f, pu, pv) - 0.5f);
    }
    for (int c = 0; c < 3; c++)
        col[c] = sc->bg0[c] + (sc->bg1[c] - sc->bg0[c]) * t + n * sc->bgn_amp[c];
}

static void draw(const scene *sc, uint64_t grain_seed, uint8_t *px)
{
    rng_t gr = {grain_seed};
    const float inv_g = 1.0f / sc->gamma;
    for (int y = 0; y < sc->h; y++) {
        float fy = (float)y + 0.5f;
        for (int x = 0; x < sc->w; x++) {
            float fx = (float)x + 0.5f, col[3];
            draw_background(sc, fx, fy, col);
            for (int i = 0; i < sc->nobj; i++) {
                const object *o = &sc->ob[i];
                if (x >= o->bx0 && x < o->bx1 && y >= o->by0 && y < o->by1)
                    draw_object(o, sc, fx, fy, col);
            }
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
            float sx = fx - sc->spot_x, sy = fy - sc->spot_y;
            float light = sc->l0 + sc->lx * fx + sc->ly * fy +
                          (sc->spot > 0 ? sc->spot * expf(-(sx * sx + sy * sy) * sc->inv_spot_r2) : 0.0f);
            /* grain: mostly luminance, a little chroma */
            uint64_t g = rng_u64(&gr);
            float gl = ((float)(g & 0xffff) + (float)((g >> 16) & 0xffff)) * (1.0f / 65536.0f) - 1.0f;
            for (int c = 0; c < 3; c++) {
                float lin = clampf(col[c] * light * sc->cast[c] * (1.0f / 255.0f), 0.0f, 1.0f);
                float gc = (float)((g >> (32 + 10 * c)) & 0x3ff) * (1.0f / 512.0f) - 1.0f;
                float vv = 255.0f * powf(lin, inv_g) + sc->grain * (gl + sc->chroma_grain * gc) * 1.7f;
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

    setup_background(sc, &r);
    setup_objects(sc, &r, cls);
    setup_clutter_light(sc, &r);

    img_rgb im;
    if (img_alloc(&im, sc->w, sc->h)) {
        int w = sc->w, h = sc->h;
        free(sc);
        return adj_fail(err, errsz, ADJ_ERR_NOMEM, "synth: out of memory for a %dx%d image", w, h);
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
