//! Endpoint records on their way to etcd, so that ADD does not wait for a
//! raft commit. The plugin's publish is answered once the record is on
//! local disk (`Leases::set_endpoint`, an atomic file beside the lease);
//! the record is queued here and a pusher task puts it in etcd right after.
//! A `kill -9` before the push loses nothing: the restarted daemon's first
//! resync publishes every recorded local endpoint that the store lacks
//! (`readopt`) and removes the ones no lease backs any more.
//!
//! The caller may still wait a little for the store ([`Outbox::landed`]):
//! while etcd answers in time, the other hosts learn of a new container
//! before its ADD returns, so a peer's first packet to it finds its
//! neighbour entry (a miss costs that peer a 1 s ARP retry). Only the
//! wait is bounded: durability comes from the local record.
//!
//! DEL must never leave a stale key: [`Outbox::withdraw`] takes back a put
//! still queued for the key and waits for one in flight, so the caller's
//! delete is the last word. One wish per key (the latest), one push in
//! flight at a time; a failed push stays queued and is retried. A put is
//! guarded by the address's block: if the host was cut off long enough for
//! the cluster to reclaim the block, the queued record is dropped instead
//! of overwriting the new owner's (the resync records the conflict).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::etcd::{Etcd, EtcdError};
use super::Cluster;
use crate::log;

/// A record queued longer than one etcd call's budget means the store is
/// not answering: new publishes are refused (code 11) rather than piled up.
const STALL: Duration = Duration::from_secs(4);

struct Wish {
    /// `Some`: put this value; `None`: delete the key.
    value: Option<Vec<u8>>,
    /// Put only while this key holds this value.
    guard: Option<(String, Vec<u8>)>,
    since: Instant,
    /// Told when the wish has landed in etcd (dropped unheard when a newer
    /// wish for the key replaces it or the outbox is cleared).
    landed: Vec<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Default)]
pub struct Outbox {
    wishes: Mutex<BTreeMap<String, Wish>>,
    wake: Arc<tokio::sync::Notify>,
    /// Held while one wish is being carried out.
    flight: tokio::sync::Mutex<()>,
    /// The last push (or lease renewal) failed: the store is out of reach.
    failing: AtomicBool,
}

impl Outbox {
    fn wishes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Wish>> {
        self.wishes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a put of `key`, done only while `guard` holds its value; the
    /// receiver hears when it has landed.
    pub fn put(
        &self,
        key: String,
        value: Vec<u8>,
        guard: Option<(String, Vec<u8>)>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.want(key, Some(value), guard, Some(tx));
        rx
    }

    /// Wait until `landed` says so, for at most `within`: whether it did.
    pub async fn landed(landed: tokio::sync::oneshot::Receiver<()>, within: Duration) -> bool {
        matches!(tokio::time::timeout(within, landed).await, Ok(Ok(())))
    }

    /// Queue a delete of `key` (one that failed: retried until done).
    pub fn delete(&self, key: String) {
        self.want(key, None, None, None);
    }

    fn want(
        &self,
        key: String,
        value: Option<Vec<u8>>,
        guard: Option<(String, Vec<u8>)>,
        landed: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let since = Instant::now();
        self.wishes().insert(
            key,
            Wish {
                value,
                guard,
                since,
                landed: landed.into_iter().collect(),
            },
        );
        self.wake.notify_one();
    }

    /// Take back what is queued for `key` and wait until nothing of it is
    /// in flight; while the guard lives no push runs, so what the caller
    /// does to `key` meanwhile comes last.
    pub async fn withdraw(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let guard = self.flight.lock().await;
        self.wishes().remove(key);
        guard
    }

    /// Drop everything queued (the host leaves the cluster).
    pub async fn clear(&self) -> tokio::sync::MutexGuard<'_, ()> {
        let guard = self.flight.lock().await;
        self.wishes().clear();
        guard
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// Why the store counts as out of reach, if it does: the last push
    /// failed, or a record has waited longer than a call's budget.
    pub fn stalled(&self) -> Option<String> {
        if self.failing.load(Ordering::Relaxed) {
            return Some("the cluster store is out of reach (the last write failed)".into());
        }
        let oldest = self.wishes().values().map(|w| w.since).min()?;
        (oldest.elapsed() > STALL).then(|| {
            format!(
                "the cluster store is not answering (a write has waited {} ms)",
                oldest.elapsed().as_millis()
            )
        })
    }

    /// The store answers again: push what waits without the back-off.
    pub fn retry_now(&self) {
        self.wake.notify_one();
    }

    pub fn pending(&self) -> usize {
        self.wishes().len()
    }

    /// Carry out every queued wish, one at a time. A failed one is put
    /// back (unless a newer one replaced it) for the pusher's next round;
    /// the store out of reach stops the round, a refusal only skips it.
    pub async fn drain(&self, etcd: &Etcd) -> Result<(), EtcdError> {
        let mut skip = std::collections::BTreeSet::new();
        let mut failed = None;
        loop {
            // Held from taking the wish to putting it back on failure, so
            // a `withdraw` never misses it.
            let _flight = self.flight.lock().await;
            let next = {
                let mut w = self.wishes();
                let k = w.keys().find(|k| !skip.contains(*k)).cloned();
                k.and_then(|k| w.remove_entry(&k))
            };
            let Some((key, wish)) = next else { break };
            let done = match (&wish.value, &wish.guard) {
                (Some(v), Some((g, gv))) => match etcd.put_if(&key, v, g, gv).await {
                    Ok(false) => {
                        log::error(&format!("cluster: not publishing {key}: {g} is not ours"));
                        Ok(())
                    }
                    other => other.map(|_| ()),
                },
                (Some(v), None) => etcd.put(&key, v, None).await,
                (None, _) => etcd.delete(&key).await,
            };
            match done {
                Ok(()) => {
                    self.set_failing(false);
                    for tx in wish.landed {
                        let _ = tx.send(());
                    }
                }
                Err(e) => {
                    let unreachable = matches!(e, EtcdError::Unreachable(_));
                    if unreachable {
                        self.set_failing(true);
                    } else {
                        log::error(&format!("cluster: etcd refused {key}: {e} (retried)"));
                    }
                    self.wishes().entry(key.clone()).or_insert(wish);
                    skip.insert(key);
                    failed = Some(e);
                    if unreachable {
                        break;
                    }
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The pusher: drains the outbox whenever something is queued; after a
/// failure it retries with a growing pause (the store is out of reach).
pub(super) async fn pusher(c: Weak<Cluster>) {
    const FIRST_PAUSE: Duration = Duration::from_millis(100);
    let mut pause = FIRST_PAUSE;
    loop {
        let Some(cl) = c.upgrade() else { return };
        if cl.stopped.load(Ordering::Relaxed) {
            return;
        }
        let wake = cl.outbox.wake.clone();
        let done = cl.outbox.drain(&cl.etcd).await;
        drop(cl);
        match done {
            Ok(()) => {
                pause = FIRST_PAUSE;
                // Woken by the next wish; the timeout only notices a stop.
                let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            }
            Err(e) => {
                log::error(&format!("cluster: publishing endpoints: {e} (retrying)"));
                // The back-off ends early when the store answers again.
                let _ = tokio::time::timeout(pause, wake.notified()).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_withdrawn_put_is_gone_and_the_latest_wish_per_key_wins() {
        let o = Outbox::default();
        o.put("/k/a".into(), b"1".to_vec(), None);
        o.put("/k/b".into(), b"2".to_vec(), None);
        assert_eq!(o.pending(), 2);
        {
            let _g = o.withdraw("/k/a").await;
            assert_eq!(o.pending(), 1);
        }
        // A newer wish for a key replaces the queued one.
        o.delete("/k/b".into());
        assert_eq!(o.pending(), 1);
        assert!(o.wishes()["/k/b"].value.is_none());
        assert_eq!(o.stalled(), None);
        o.set_failing(true);
        assert!(o.stalled().is_some());
        let _g = o.clear().await;
        assert_eq!(o.pending(), 0);
    }
}
