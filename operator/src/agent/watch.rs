//! inotify watches (through `notify`) on the directories the agent depends
//! on, and the debounce that turns bursts of events into one reconcile.
//!
//! The watcher's callback only classifies an event into "dirty" flags and
//! wakes the reconcile loop; flags are OR-ed into an atomic, so no event is
//! lost and nothing queues up without bound however many events arrive.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::dirty::Dirty;
use super::fsutil::is_temp_name;

/// Quiet period after a completed change (close after write, rename,
/// create, delete) before reconciling: coalesces a burst such as
/// write-temp + rename without adding noticeable latency.
pub const QUIET: Duration = Duration::from_millis(15);
/// Quiet period while a file is being written in place (data modified but
/// not yet closed): reading it now could see half a file.
pub const WRITING_QUIET: Duration = Duration::from_millis(100);
/// Upper bound of the debounce under a continuous stream of events.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// Wake-up signal from the watcher to the reconcile loop.
#[derive(Debug, Default)]
pub struct Signal {
    flags: AtomicU8,
    events: AtomicU64,
    writing: AtomicBool,
    wake: Notify,
}

impl Signal {
    /// Marks `flags` dirty and wakes the loop.
    pub fn raise(&self, flags: Dirty, writing: bool) {
        if flags.is_empty() {
            return;
        }
        self.flags.fetch_or(flags.bits(), Ordering::SeqCst);
        self.writing.store(writing, Ordering::SeqCst);
        self.events.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Takes (and clears) the dirty flags.
    pub fn take(&self) -> Dirty {
        Dirty::from_bits_truncate(self.flags.swap(0, Ordering::SeqCst))
    }

    /// Waits until something is marked dirty.
    pub async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Waits until no event arrived for a quiet period ([`QUIET`], or
    /// [`WRITING_QUIET`] while the last event was an unfinished write), but
    /// at most [`MAX_DELAY`] in total.
    pub async fn debounce(&self) {
        self.debounce_with(QUIET, WRITING_QUIET, MAX_DELAY).await;
    }

    /// [`Signal::debounce`] with explicit durations. Checks every `quiet`,
    /// so an unfinished write that completes soon ends the wait soon.
    pub async fn debounce_with(&self, quiet: Duration, writing_quiet: Duration, max: Duration) {
        let start = Instant::now();
        let mut seen = self.events.load(Ordering::SeqCst);
        let mut last_change = start;
        loop {
            let remaining = max.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(quiet.min(remaining)).await;
            let events = self.events.load(Ordering::SeqCst);
            if events != seen {
                seen = events;
                last_change = Instant::now();
                continue;
            }
            let needed = if self.writing.load(Ordering::SeqCst) {
                writing_quiet
            } else {
                quiet
            };
            if last_change.elapsed() >= needed {
                return;
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Target {
    dir: PathBuf,
    flags: Dirty,
    watched: bool,
}

/// Which flags an event raises, and whether it is an unfinished write.
fn classify(event: &Event, targets: &mut [Target]) -> (Dirty, bool) {
    if event.need_rescan() {
        return (Dirty::ALL, false);
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        // Opening or reading a file (our own reads included) changes nothing.
        EventKind::Access(_) => return (Dirty::NONE, false),
        _ => {}
    }
    let writing = matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
    );
    if event.paths.is_empty() {
        return (Dirty::ALL, writing);
    }
    let mut flags = Dirty::NONE;
    for path in &event.paths {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_temp_name)
        {
            continue;
        }
        for target in targets.iter_mut() {
            if path == &target.dir {
                // The watched directory itself went away or moved: its watch
                // is gone and must be re-established.
                flags |= target.flags;
                if matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                ) {
                    target.watched = false;
                }
            } else if path.parent() == Some(target.dir.as_path()) {
                flags |= target.flags;
            }
        }
    }
    (flags, writing)
}

/// Non-recursive watches on a set of directories.
pub struct DirWatcher {
    watcher: RecommendedWatcher,
    targets: Arc<Mutex<Vec<Target>>>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl DirWatcher {
    /// A watcher that raises flags on `signal`.
    pub fn new(signal: Arc<Signal>) -> Result<Self, notify::Error> {
        let targets: Arc<Mutex<Vec<Target>>> = Arc::default();
        let in_callback = Arc::clone(&targets);
        let watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
            let (flags, writing) = match result {
                Ok(event) => {
                    let mut targets = in_callback.lock().unwrap_or_else(PoisonError::into_inner);
                    classify(&event, &mut targets)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "file watch error; rescanning everything");
                    (Dirty::ALL, false)
                }
            };
            signal.raise(flags, writing);
        })?;
        Ok(Self { watcher, targets })
    }

    /// Watches `dir`, raising `flags` for changes of its entries. A missing
    /// directory is remembered and watched by [`DirWatcher::retry`] once it
    /// exists; `Ok(false)` then.
    pub fn add(&mut self, dir: &Path, flags: Dirty) -> Result<bool, notify::Error> {
        {
            let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = targets.iter_mut().find(|t| t.dir == dir) {
                t.flags |= flags;
                if t.watched {
                    return Ok(true);
                }
            } else {
                targets.push(Target {
                    dir: dir.to_path_buf(),
                    flags,
                    watched: false,
                });
            }
        }
        self.watch_one(dir)
    }

    fn watch_one(&mut self, dir: &Path) -> Result<bool, notify::Error> {
        if !dir.is_dir() {
            return Ok(false);
        }
        // Re-adding an existing inotify watch is harmless.
        self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = targets.iter_mut().find(|t| t.dir == dir) {
            t.watched = true;
        }
        Ok(true)
    }

    /// Tries again to watch every directory whose watch is missing (it did
    /// not exist yet, or was removed and recreated). Returns the flags of
    /// the directories newly watched (their contents may have changed
    /// unseen).
    pub fn retry(&mut self) -> Dirty {
        let missing: Vec<(PathBuf, Dirty)> = self
            .targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|t| !t.watched)
            .map(|t| (t.dir.clone(), t.flags))
            .collect();
        let mut flags = Dirty::NONE;
        for (dir, dir_flags) in missing {
            match self.watch_one(&dir) {
                Ok(true) => {
                    tracing::info!(dir = %dir.display(), "watching");
                    flags |= dir_flags;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "cannot watch");
                }
            }
        }
        flags
    }

    /// Whether some directory is not watched yet.
    pub fn has_missing(&self) -> bool {
        self.targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|t| !t.watched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

    fn targets() -> Vec<Target> {
        vec![
            Target {
                dir: PathBuf::from("/net.d"),
                flags: Dirty::CONF,
                watched: true,
            },
            Target {
                dir: PathBuf::from("/sa"),
                flags: Dirty::TOKEN,
                watched: true,
            },
        ]
    }

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn classifies_by_directory_and_ignores_reads_and_our_temp_files() {
        let mut t = targets();
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(
            classify(&event(create, "/net.d/10-a.conf"), &mut t),
            (Dirty::CONF, false)
        );
        assert_eq!(
            classify(&event(create, "/sa/..data_tmp"), &mut t),
            (Dirty::TOKEN, false)
        );
        assert_eq!(
            classify(&event(create, "/elsewhere/x"), &mut t).0,
            Dirty::NONE
        );
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(
            classify(&event(open, "/net.d/10-a.conf"), &mut t).0,
            Dirty::NONE
        );
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(
            classify(&event(closed, "/net.d/10-a.conf"), &mut t),
            (Dirty::CONF, false)
        );
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(
            classify(&event(data, "/net.d/10-a.conf"), &mut t),
            (Dirty::CONF, true)
        );
        let temp = "/net.d/.multus-agent.00-multus.conf.1-2.tmp";
        assert_eq!(classify(&event(create, temp), &mut t).0, Dirty::NONE);
        let rescan = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(classify(&rescan, &mut t).0, Dirty::ALL);
    }

    #[test]
    fn removal_of_a_watched_directory_drops_its_watch() {
        let mut t = targets();
        let removed = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(classify(&event(removed, "/sa"), &mut t).0, Dirty::TOKEN);
        assert!(!t[1].watched);
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        classify(&event(moved, "/net.d"), &mut t);
        assert!(!t[0].watched);
    }

    #[tokio::test]
    async fn debounce_waits_for_quiet_but_not_forever() {
        // Real time: only lower bounds are exact; upper bounds are generous
        // so a loaded machine cannot make this flaky.
        let slack = Duration::from_secs(2);
        let signal = Arc::new(Signal::default());
        signal.raise(Dirty::CONF, false);
        let start = Instant::now();
        signal.debounce().await;
        assert!(start.elapsed() >= QUIET && start.elapsed() < QUIET + slack);
        assert_eq!(signal.take(), Dirty::CONF);
        assert_eq!(signal.take(), Dirty::NONE);

        // an endless stream of events is cut off at MAX_DELAY
        let noisy = Arc::clone(&signal);
        let stream = tokio::spawn(async move {
            loop {
                noisy.raise(Dirty::CONF, false);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let (quiet, max) = (Duration::from_millis(250), Duration::from_millis(600));
        let start = Instant::now();
        signal.debounce_with(quiet, quiet, max).await;
        assert!(start.elapsed() >= max && start.elapsed() < max + slack);
        stream.abort();

        // an unfinished write waits longer
        signal.raise(Dirty::CONF, true);
        let start = Instant::now();
        signal.debounce().await;
        assert!(start.elapsed() >= WRITING_QUIET);
    }
}
