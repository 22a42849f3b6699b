//! The in-process [`PubSubTransport`]: channels that exist while they have
//! subscribers, delivering into each subscriber's inbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use herald_core::selector::Selector;

use super::{FanOut, Membership, PubSubTransport, Subscriber, TransportError};
use crate::DeliveredMessage;

/// Delivers runs to subscriptions in the same process.
///
/// Publishing evaluates each subscription's selector and hands the run to
/// the inboxes of those that match (see [`Inbox`](crate::Inbox): bounded in
/// messages and bytes, oldest dropped and reported as lag). So a slow
/// subscriber never slows the publisher or anyone else, and the counters
/// know exactly how many subscriptions each run reached.
///
/// # Implementation
///
/// A map from channel name to channel, holding only channels with
/// subscribers: publishing to an unknown channel looks it up and returns 0,
/// keeping nothing; a channel is removed with its last subscription. A
/// channel's subscriptions are spread over [`SHARDS`](Self::SHARDS)
/// read-write locks: a publisher takes one shard's read lock at a time, so
/// no lock is held for more than a shard's selector evaluations (each
/// linear in the headers' size), and subscribing or unsubscribing (a write
/// lock on one shard, O(1)) waits for at most that. A run is one
/// reference-counted [`DeliveredMessage`], so fan-out copies no bodies; a
/// shard's members get it through one [`FanOut`], so consecutive members
/// of one inbox (a subscription group) share one lock of it and one
/// wake-up of its consumer, and the inbox queues the run once for all of
/// them.
#[derive(Clone, Debug, Default)]
pub struct InProcessTransport {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    channels: RwLock<HashMap<String, Arc<Channel>>>,
    next_key: AtomicU64,
    /// Live subscriptions, all channels.
    members: AtomicUsize,
}

/// A shard's subscriptions: a slab (slots reused through a free list), so
/// removal is O(1) and a publisher iterates a dense vector.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Member>>,
    free: Vec<usize>,
}

#[derive(Debug)]
struct Channel {
    name: String,
    shards: [Shard; InProcessTransport::SHARDS],
    /// Serializes subscribe, unsubscribe and delete for this channel.
    membership: Mutex<MembershipState>,
}

/// A sixteenth of a channel's subscriptions, and how many (so a publisher
/// skips empty shards without taking their locks).
#[derive(Debug, Default)]
struct Shard {
    members: RwLock<Slots>,
    len: AtomicUsize,
}

#[derive(Debug, Default)]
struct MembershipState {
    count: usize,
    /// Removed from the map: subscribers must look the channel up again.
    dead: bool,
}

#[derive(Debug)]
struct Member {
    /// Boxed: the slots stay small for the many subscriptions without one.
    selector: Option<Box<Selector>>,
    subscriber: Subscriber,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InProcessTransport {
    /// How many locks a channel's subscriptions are spread over.
    pub const SHARDS: usize = 16;

    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many live subscriptions `channel` has.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        let ch = read(&self.inner.channels).get(channel).cloned();
        ch.map_or(0, |c| lock(&c.membership).count)
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = read(&self.inner.channels).get(name) {
            return c.clone();
        }
        write(&self.inner.channels)
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Channel {
                    name: name.to_owned(),
                    shards: std::array::from_fn(|_| Shard::default()),
                    membership: Mutex::default(),
                })
            })
            .clone()
    }
}

impl Shard {
    /// Stores `member`; its slot.
    fn insert(&self, member: Member) -> usize {
        let mut s = write(&self.members);
        let slot = match s.free.pop() {
            Some(i) => {
                s.slots[i] = Some(member);
                i
            }
            None => {
                s.slots.push(Some(member));
                s.slots.len() - 1
            }
        };
        self.len.fetch_add(1, Ordering::Release);
        slot
    }

    fn remove(&self, slot: usize) -> Option<Member> {
        let mut s = write(&self.members);
        let m = s.slots.get_mut(slot)?.take()?;
        s.free.push(slot);
        self.len.fetch_sub(1, Ordering::Release);
        Some(m)
    }

    fn drain(&self) -> Vec<Member> {
        let mut s = write(&self.members);
        self.len.store(0, Ordering::Release);
        s.free.clear();
        s.slots.drain(..).flatten().collect()
    }
}

/// Unsubscribes one member when dropped.
struct Guard {
    transport: Weak<Inner>,
    channel: Arc<Channel>,
    shard: usize,
    slot: usize,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let ch = &self.channel;
        let mut m = lock(&ch.membership);
        let Some(member) = ch.shards[self.shard].remove(self.slot) else {
            // The channel was deleted: the subscription already ended.
            return;
        };
        member.subscriber.unsubscribe();
        m.count -= 1;
        if let Some(t) = self.transport.upgrade() {
            t.members.fetch_sub(1, Ordering::Relaxed);
        }
        if m.count == 0 && !m.dead {
            m.dead = true;
            if let Some(t) = self.transport.upgrade() {
                let mut map = write(&t.channels);
                if map.get(&ch.name).is_some_and(|c| Arc::ptr_eq(c, ch)) {
                    map.remove(&ch.name);
                }
            }
        }
    }
}

impl PubSubTransport for InProcessTransport {
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError> {
        let Some(channel) = read(&self.inner.channels).get(message.channel()).cloned() else {
            return Ok(0);
        };
        let headers = message.headers();
        let mut delivered = 0;
        for shard in &channel.shards {
            if shard.len.load(Ordering::Acquire) == 0 {
                continue;
            }
            let members = read(&shard.members);
            // Consecutive members of one inbox (a subscription group)
            // share its lock and one wake-up of its consumer.
            let mut fan = FanOut::new(message);
            for m in members.slots.iter().flatten() {
                if m.selector.as_ref().is_none_or(|s| s.matches(headers))
                    && fan.deliver(&m.subscriber)
                {
                    delivered += 1;
                }
            }
            drop(fan);
        }
        Ok(delivered)
    }

    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
        subscriber: Subscriber,
    ) -> Result<Membership, TransportError> {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        let id = subscriber.id();
        let mut member = Some(Member {
            selector: selector.map(Box::new),
            subscriber,
        });
        let shard = (key as usize) % Self::SHARDS;
        loop {
            let ch = self.channel(channel);
            let mut m = lock(&ch.membership);
            if m.dead {
                // Removed between the lookup and the lock: look again.
                continue;
            }
            let Some(member) = member.take() else {
                unreachable!("inserted once: the loop returns right after");
            };
            let slot = ch.shards[shard].insert(member);
            m.count += 1;
            self.inner.members.fetch_add(1, Ordering::Relaxed);
            drop(m);
            let guard = Guard {
                transport: Arc::downgrade(&self.inner),
                channel: ch,
                shard,
                slot,
            };
            return Ok(Membership::new(id, channel, guard));
        }
    }

    fn delete_channel(&self, channel: &str) -> bool {
        let Some(ch) = write(&self.inner.channels).remove(channel) else {
            return false;
        };
        let mut m = lock(&ch.membership);
        m.dead = true;
        self.inner.members.fetch_sub(m.count, Ordering::Relaxed);
        m.count = 0;
        for shard in &ch.shards {
            for member in shard.drain() {
                member.subscriber.end();
            }
        }
        true
    }

    fn channels(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.inner.channels).keys().cloned().collect();
        names.sort_unstable();
        names
    }

    fn subscriptions(&self) -> usize {
        self.inner.members.load(Ordering::Relaxed)
    }

    fn lag_all(&self, missed: u64) -> u64 {
        let channels: Vec<Arc<Channel>> = read(&self.inner.channels).values().cloned().collect();
        let mut told = 0;
        for ch in channels {
            for shard in &ch.shards {
                for m in read(&shard.members).slots.iter().flatten() {
                    if m.subscriber.lagged(missed) {
                        told += 1;
                    }
                }
            }
        }
        told
    }
}
