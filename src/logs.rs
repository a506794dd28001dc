//! Logs: ringgate writes structured logs to stderr (human-readable) and, as JSON lines, to a
//! daily-rotated file in `<state dir>/logs/` (written by a background thread, so shards never
//! block on it). `logs.tail` pages through the newest file with byte cursors like the original
//! (`src/logging/log-tail.ts`): a cursor past the end or a gap larger than `maxBytes` resets to
//! the newest `maxBytes`, and only whole lines are returned.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use serde_json::{json, Value};

/// File name prefix of the daily log files (`ringgate.log.YYYY-MM-DD`).
pub const FILE_PREFIX: &str = "ringgate.log";
pub const DEFAULT_LIMIT: u64 = 500;
pub const DEFAULT_MAX_BYTES: u64 = 250_000;
pub const MAX_LIMIT: u64 = 5000;
pub const MAX_BYTES: u64 = 1_000_000;
/// Daily files kept.
pub const KEEP_FILES: usize = 7;

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("logs")
}

/// Sets up logging to stderr and the rotating file; keep the guard alive until exit (it flushes
/// the file writer). Without a usable log dir, logs go to stderr only (said on stderr).
pub fn init(state_dir: &Path) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};
    let filter = || EnvFilter::try_from_env("RINGGATE_LOG").unwrap_or_else(|_| "info".into());
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let appender = std::fs::create_dir_all(dir(state_dir))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(FILE_PREFIX)
                .max_log_files(KEEP_FILES)
                .build(dir(state_dir))
                .map_err(|e| e.to_string())
        });
    match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(writer)
                .with_ansi(false);
            tracing_subscriber::registry()
                .with(filter())
                .with(stderr)
                .with(file)
                .init();
            Some(guard)
        }
        Err(e) => {
            tracing_subscriber::registry()
                .with(filter())
                .with(stderr)
                .init();
            tracing::warn!(error = %e, dir = %dir(state_dir).display(), "log file disabled");
            None
        }
    }
}

/// The newest log file in `dir`, if any.
pub fn newest(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(FILE_PREFIX))
        .map(|e| e.path())
        .collect();
    // Daily names sort by date.
    files.sort();
    files.pop()
}

/// `logs.tail` over the newest file in `dir`.
pub fn tail(dir: &Path, cursor: Option<u64>, limit: u64, max_bytes: u64) -> Result<Value, String> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let max_bytes = max_bytes.clamp(1, MAX_BYTES);
    let Some(file) = newest(dir) else {
        let shown = dir.join(FILE_PREFIX);
        return Ok(
            json!({"file": shown.display().to_string(), "cursor": 0, "size": 0,
                          "lines": [], "truncated": false, "reset": cursor.is_some_and(|c| c > 0)}),
        );
    };
    let mut f = std::fs::File::open(&file).map_err(|e| format!("log read failed: {e}"))?;
    let size = f
        .metadata()
        .map_err(|e| format!("log read failed: {e}"))?
        .len();
    let (mut reset, mut truncated, mut skipped) = (false, false, None);
    let start = match cursor {
        Some(c) if c > size => {
            reset = true;
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
        Some(c) if size - c > max_bytes => {
            reset = true;
            truncated = true;
            let s = size - max_bytes;
            skipped = Some(s - c);
            s
        }
        Some(c) => c,
        None => {
            let s = size.saturating_sub(max_bytes);
            truncated = s > 0;
            s
        }
    };
    let mut out = json!({"file": file.display().to_string(), "cursor": size, "size": size,
                         "lines": [], "truncated": truncated, "reset": reset});
    if let Some(s) = skipped {
        out["skippedBytes"] = json!(s);
    }
    if size <= start {
        return Ok(out);
    }
    // One byte before the window tells whether it starts on a line boundary.
    let read_from = start.saturating_sub(1);
    f.seek(SeekFrom::Start(read_from))
        .map_err(|e| format!("log read failed: {e}"))?;
    let mut buf = Vec::with_capacity((size - read_from) as usize);
    f.take(size - read_from)
        .read_to_end(&mut buf)
        .map_err(|e| format!("log read failed: {e}"))?;
    let (prefix_newline, window) = if start > 0 {
        (buf.first() == Some(&b'\n'), &buf[1..])
    } else {
        (true, &buf[..])
    };
    // Only whole lines: up to the last newline; a partial first line is dropped.
    let Some(last_nl) = window.iter().rposition(|&b| b == b'\n') else {
        out["cursor"] = json!(start);
        return Ok(out);
    };
    let whole = &window[..=last_nl];
    let mut lines: Vec<String> = whole[..whole.len() - 1]
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    if !prefix_newline && !lines.is_empty() {
        lines.remove(0);
    }
    if lines.len() as u64 > limit {
        truncated = true;
        lines.drain(..lines.len() - limit as usize);
    }
    out["cursor"] = json!(start + last_nl as u64 + 1);
    out["lines"] = json!(lines);
    out["truncated"] = json!(truncated);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_pages_whole_lines_with_cursors() {
        let dir = std::env::temp_dir().join(format!("ringgate-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{FILE_PREFIX}.2026-12-01"));
        std::fs::write(&file, "one\ntwo\nthree\npartial").unwrap();
        let t = tail(&dir, None, 10, 1000).unwrap();
        assert_eq!(t["lines"], json!(["one", "two", "three"]));
        assert_eq!(t["cursor"], 14);
        assert_eq!(t["size"], 21);
        // Limit keeps the newest lines.
        let t = tail(&dir, None, 2, 1000).unwrap();
        assert_eq!(t["lines"], json!(["two", "three"]));
        assert_eq!(t["truncated"], true);
        // From a cursor: nothing new until the partial line completes.
        let t = tail(&dir, Some(14), 10, 1000).unwrap();
        assert_eq!(t["lines"], json!([]));
        std::fs::write(&file, "one\ntwo\nthree\npartial line\n").unwrap();
        let t = tail(&dir, Some(14), 10, 1000).unwrap();
        assert_eq!(t["lines"], json!(["partial line"]));
        // A window starting mid-line drops that line.
        let t = tail(&dir, None, 10, 10).unwrap();
        assert_eq!(t["lines"], json!([]), "{t}");
        let t = tail(&dir, None, 10, 14).unwrap();
        assert_eq!(t["lines"], json!(["partial line"]), "{t}");
        // A cursor past the end resets.
        let t = tail(&dir, Some(10_000), 10, 1000).unwrap();
        assert_eq!(t["reset"], true);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
