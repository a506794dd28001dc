//! Reads files for the HTTP routes on a thread of their own, so no shard ever blocks on disk:
//! a shard asks, awaits a one-shot, and writes what came back. One thread is plenty — the
//! Control UI's files come from the page cache, and browsers cache them for good.

use std::{path::PathBuf, sync::Arc};

use crossbeam::channel;

use crate::store::oneshot::Oneshot;

type Reply = Arc<Oneshot<std::io::Result<Arc<Vec<u8>>>>>;

/// Handle to the file-reading thread (cheap to clone, `Send`).
#[derive(Clone)]
pub struct Files {
    tx: channel::Sender<(PathBuf, u64, Reply)>,
}

impl Files {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Files> {
        let (tx, rx) = channel::unbounded::<(PathBuf, u64, Reply)>();
        std::thread::Builder::new()
            .name("ringgate-files".into())
            .spawn(move || {
                while let Ok((path, max, reply)) = rx.recv() {
                    reply.complete(read(&path, max));
                }
            })?;
        Ok(Files { tx })
    }

    /// The file's contents (at most `max` bytes, else an error).
    pub async fn read(&self, path: PathBuf, max: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let reply: Reply = Oneshot::new();
        if self.tx.send((path, max, reply.clone())).is_err() {
            return Err(std::io::Error::other("file reader stopped"));
        }
        reply.wait().await
    }
}

fn read(path: &PathBuf, max: u64) -> std::io::Result<Arc<Vec<u8>>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max {
        return Err(std::io::Error::other("file too large"));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other("file too large"));
    }
    Ok(Arc::new(buf))
}
