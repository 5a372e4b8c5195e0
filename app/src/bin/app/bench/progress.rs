//! Progress of a benchmark run on a terminal: one line on stderr, rewritten in place (workload,
//! pass, side), so that stdout keeps only the table or the JSON. Nothing is written when stderr
//! is not a terminal (a log file, CI).

use std::io::{IsTerminal, Write};

/// Shows `text` as the progress line, replacing the previous one; `false` when stderr is not
/// a terminal (then the caller logs the step instead).
pub(crate) fn show(text: &str) -> bool {
    let mut stderr = std::io::stderr().lock();
    if !stderr.is_terminal() {
        return false;
    }
    // Carriage return, then erase the line: the next text starts clean.
    let _ = write!(stderr, "\r\x1b[2K{text}");
    let _ = stderr.flush();
    true
}

/// Erases the progress line, before the results are printed.
pub(crate) fn clear() {
    let mut stderr = std::io::stderr().lock();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}
