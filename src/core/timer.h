/* Monotonic wall-clock time. */
#ifndef XB_TIMER_H
#define XB_TIMER_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double timer_now(void);

#endif
