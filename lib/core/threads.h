/* Threads: the library parallelises with OpenMP.
 *
 * The choice: every parallel region runs on the calling thread's OpenMP team. A long
 * operation brackets its work with c3_threads_enter/c3_threads_leave, which set the
 * calling thread's OpenMP thread count (an ICV local to that thread, so other
 * application threads are unaffected) to the context's count and restore it after.
 * oneDNN, built on OpenMP in Debian, follows the same setting. */
#ifndef C3_CORE_THREADS_H
#define C3_CORE_THREADS_H

/* Cores available to this process (at least 1). */
int c3_threads_available(void);

/* Sets the calling thread's OpenMP thread count to n (n >= 1); returns the
 * previous count, to be handed to c3_threads_leave. */
int c3_threads_enter(int n);
void c3_threads_leave(int previous);

#endif
