/*
 * Python's exceptions in gyre's log (pylog.c).
 */
#ifndef GYRE_PYLOG_H
#define GYRE_PYLOG_H

/*
 * Log the current Python exception and clear it: `first` as one of gyre's lines (NULL: none),
 * then the traceback as PyErr_Print shows it, on sys.stderr as PyErr_Print writes it, but in
 * one write. PyErr_Print writes a traceback in pieces ("RuntimeError", ": ", the message), and
 * another worker's line sharing the log could land inside one. SystemExit is left to
 * PyErr_Print, which ends the process as it always did.
 */
void pylog_exception(const char *first);

#endif
