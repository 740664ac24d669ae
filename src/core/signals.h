/* Signals (SIGINT, SIGTERM, SIGHUP) in every phase of a command. Before a run has started (parsing,
 * data generation and loading) a signal ends the process at once: the handler removes the
 * temporary files registered below, says which signal on stderr and exits with status 3. Once a
 * run has started, the command defers signals (xb_signals_defer): the handler only sets a flag that
 * the training loop and the writers poll, so the run ends with a report whose status says
 * `interrupted`. Temporary files are registered while they exist so that no signal leaves one. */
#ifndef XB_SIGNALS_H
#define XB_SIGNALS_H

#include <signal.h>

/* Set (to the signal's number) by the handler when a signal arrived while deferred. */
extern volatile sig_atomic_t xb_stop;

/* Installs the handlers (idempotent). */
void xb_signals_install(void);
/* 1: signals set xb_stop and return (a run is under way); 0: they end the process (status 3). */
void xb_signals_defer(int on);
/* The name of the signal that stopped the command ("SIGTERM"), or NULL. */
const char *xb_stop_signal(void);

/* Registers a temporary file (or a directory of them, removed after its files) to remove if a
 * signal ends the process (the path is copied; at most XB_MAX_TEMPS at a time). Returns a slot for
 * xb_temp_forget, or -1 when every slot is taken. */
int xb_temp_register(const char *path);
/* Forgets slot (after the file was renamed into place or removed); -1 is ignored. */
void xb_temp_forget(int slot);

#define XB_MAX_TEMPS 16

#endif
