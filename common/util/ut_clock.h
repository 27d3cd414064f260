/*
 * ut_clock.h - clocks.
 *
 *     double t0 = ut_now();
 *     ... work ...
 *     printf("%.3f s\n", ut_now() - t0);
 *
 * ut_now is CLOCK_MONOTONIC: it never jumps with the wall clock, so it is
 * the one to measure durations and deadlines with (pthread_condattr_setclock
 * with CLOCK_MONOTONIC matches it). ut_wall_ms is the wall clock, for
 * timestamps that are stored or shown. Thread-safe, no state.
 */
#ifndef UT_CLOCK_H
#define UT_CLOCK_H

#include <stdint.h>

/** Seconds on CLOCK_MONOTONIC (an arbitrary origin, nanosecond resolution). */
double ut_now(void);

/** Milliseconds since the Unix epoch on CLOCK_REALTIME. */
int64_t ut_wall_ms(void);

#endif
