//! The publish path: validate once into a plan, store, then schedule or
//! deliver.
//!
//! Everything after validation runs to completion even if the caller
//! leaves (`RunToCompletion`). A store that answers the insert at once (the
//! in-memory store) is asked for the completion of a message due now at
//! once too, so nothing hops to the completer; a store that has to wait (a
//! durable one) gets its completions from the completer, in batches, off
//! the answer's path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use herald_core::Tick;
use tracing::{Instrument, debug};

use super::completer::Done;
use super::deliver::fan_out;
use super::detached::RunToCompletion;
use super::idempotent::{self, PublishExtras};
use super::inflight::Inflight;
use super::shared::Shared;
use super::stats::Counters;
use crate::store::{
    Completion, FencingToken, IdempotencyKey, Inserted, JobKey, Next, Start, StoreError,
    StoreFuture,
};
use crate::{
    Body, DeliveryCounts, DeliveryOptions, DeliveryPlan, Envelope, Error, MessageStatus,
    PublishOptions, PublishStatus, TemplateSend, limits,
};

/// Validates, then stores and schedules (or delivers) the message. The
/// part after validation runs to completion even if the caller drops the
/// returned future. With an idempotency key that holds, answers the first
/// publish's answer instead (see [`idempotent`](super::idempotent)).
///
/// Every publish carries this future's state (and its callers move it),
/// and a future is as large as what it holds across its largest await: so
/// the common path (the engine reloaded, no idempotency key) awaits only
/// the stored message, and the rare ones (waiting for the reload, looking
/// up a key) are boxed futures of their own. 416 bytes instead of 1,600
/// with `Engine::publish`'s layers (`store-bench`'s publishers spent 12 %
/// of their instructions copying it).
pub(super) async fn publish(
    sh: &Arc<Shared>,
    channel: &str,
    body: Body,
    options: PublishOptions,
    delivery: DeliveryOptions,
    extras: PublishExtras,
    template: Option<Arc<TemplateSend>>,
) -> Result<MessageStatus, Error> {
    let request = Request {
        channel,
        body,
        options,
        delivery,
        template,
    };
    // One call that takes every argument, then one await: nothing else is
    // held across it.
    start(sh, request, extras)?.await
}

/// A publish's arguments, as the steps below pass them on.
struct Request<'a> {
    channel: &'a str,
    body: Body,
    options: PublishOptions,
    delivery: DeliveryOptions,
    template: Option<Arc<TemplateSend>>,
}

/// What [`publish`] awaits.
enum Started<'a> {
    /// The message is valid: storing it, then scheduling or delivering.
    Run(RunToCompletion<Result<MessageStatus, Error>>),
    /// A rare path: waiting for the reload, or looking up a key first.
    Later(Pin<Box<dyn Future<Output = Result<MessageStatus, Error>> + Send + 'a>>),
}

impl Future for Started<'_> {
    type Output = Result<MessageStatus, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Run(run) => Pin::new(run).poll(cx),
            Self::Later(later) => later.as_mut().poll(cx),
        }
    }
}

/// [`publish`] up to its first wait.
fn start<'a>(
    sh: &'a Arc<Shared>,
    r: Request<'a>,
    extras: PublishExtras,
) -> Result<Started<'a>, Error> {
    if !sh.is_ready() {
        return Ok(Started::Later(Box::pin(after_reload(sh, r, extras))));
    }
    sh.admit_ready()?;
    limits::check_channel(r.channel)?;
    Ok(
        match idempotent::checked(extras, r.channel, &r.options, &r.delivery, &r.body)? {
            None => Started::Run(prepare(sh, r, None)?),
            Some(keyed) => Started::Later(Box::pin(with_key(sh, r, keyed))),
        },
    )
}

/// [`publish`] once the start-up reload is done (claims left by a crash
/// are released and back in the wheel by then).
async fn after_reload(
    sh: &Arc<Shared>,
    r: Request<'_>,
    extras: PublishExtras,
) -> Result<MessageStatus, Error> {
    sh.reloaded().await;
    start(sh, r, extras)?.await
}

/// [`publish`] with an idempotency key (checked) and the request's
/// fingerprint: a retry answers the first answer; else it is published
/// with the key.
async fn with_key(
    sh: &Arc<Shared>,
    r: Request<'_>,
    (key, fingerprint): (String, u128),
) -> Result<MessageStatus, Error> {
    if let Some(found) = idempotent::lookup(sh, &key, sh.clock.now()).await? {
        // A retry: nothing is validated or published again.
        return idempotent::answer(sh, found, fingerprint).await;
    }
    prepare(sh, r, Some((key, fingerprint)))?.await
}

/// The validated message: planned, given an id, and its storing (then
/// scheduling or delivering) as a future that runs to completion.
fn prepare(
    sh: &Arc<Shared>,
    r: Request<'_>,
    keyed: Option<(String, u128)>,
) -> Result<RunToCompletion<Result<MessageStatus, Error>>, Error> {
    let plan = DeliveryPlan::shared(r.delivery)?;
    if plan.policy().includes_push() && !sh.pipeline.is_configured() {
        return Err(Error::PushNotConfigured);
    }
    let now = sh.clock.now();
    let first = plan.first_run(now)?;
    // The OS's generator does not fail on Linux; where it does, nothing
    // was stored and the caller hears why (5090).
    let id = sh
        .ids
        .next(now)
        .map_err(|e| Error::Store(StoreError::other(e.to_string())))?;
    let channel = r.channel;
    let envelope = Arc::new(Envelope {
        template: r.template,
        id,
        channel: channel.to_owned(),
        accepted_at: now,
        publish: r.options,
        plan,
        body: r.body,
    });
    let key = keyed.map(|(key, fingerprint)| IdempotencyKey {
        key,
        fingerprint,
        expires_at: now.saturating_add_millis(limits::IDEMPOTENCY_KEY_TTL_MS),
    });
    let span = tracing::debug_span!("publish", message_id = %id, channel = %channel.escape_debug());
    Ok(RunToCompletion::new(
        accept(sh.clone(), envelope, first, now, key).instrument(span),
    ))
}

async fn accept(
    sh: Arc<Shared>,
    envelope: Arc<Envelope>,
    first: Option<Tick>,
    now: Tick,
    key: Option<IdempotencyKey>,
) -> Result<MessageStatus, Error> {
    let start = match first {
        Some(due) => Start::At(due),
        None => Start::Claimed {
            due: now,
            lease_until: now.saturating_add_millis(sh.lease_ms),
        },
    };
    let (stored, inline) = match key {
        None => {
            let mut insert = sh.store.insert(envelope.clone(), start);
            // Whether the store answered at once (the in-memory store):
            // then it may record the completion at once too, with no hop
            // to the completer.
            match poll_once(&mut insert) {
                Poll::Ready(stored) => (stored, true),
                Poll::Pending => (insert.await, false),
            }
        }
        Some(key) => {
            let fingerprint = key.fingerprint;
            match sh
                .store
                .insert_idempotent(envelope.clone(), start, key)
                .await?
            {
                Inserted::New(token) => (Ok(token), false),
                // Another request with the key got there first.
                Inserted::Existing(found) => {
                    return idempotent::answer(&sh, found, fingerprint).await;
                }
            }
        }
    };
    match first {
        Some(due) => {
            stored?;
            Ok(scheduled(&sh, &envelope, due))
        }
        None => Ok(deliver_now(&sh, envelope, now, token_of(stored)?, inline)),
    }
}

fn poll_once<T>(f: &mut StoreFuture<'_, T>) -> Poll<Result<T, StoreError>> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

fn token_of(stored: Result<Option<FencingToken>, StoreError>) -> Result<FencingToken, Error> {
    Ok(stored?
        .ok_or_else(|| StoreError::other("the store issued no token for a claimed insert"))?)
}

/// A delayed or repeating message is stored: into the wheel.
fn scheduled(sh: &Shared, envelope: &Envelope, due: Tick) -> MessageStatus {
    sh.schedule(&mut sh.lock(), envelope.id, due);
    debug!(due = due.as_millis(), "scheduled");
    Counters::bump(&sh.counters.published, 1);
    Counters::bump(&sh.counters.scheduled, 1);
    MessageStatus {
        message_id: String::from(envelope.id),
        status: PublishStatus::Scheduled,
        error_message: None,
        deliveries: DeliveryCounts::default(),
    }
}

/// A one-off due now, stored as claimed by us: delivered, then answered;
/// a failed completion never turns it into an error. Nobody knows its id
/// before the answer, so no cancel or status read can meet it while it is
/// delivered; if its completion is still on its way when this returns, it
/// is registered in flight (a status read then reports what subscribers
/// got, a cancel is 5040).
fn deliver_now(
    sh: &Shared,
    envelope: Arc<Envelope>,
    now: Tick,
    token: FencingToken,
    inline: bool,
) -> MessageStatus {
    let id = envelope.id;
    let counts = fan_out(sh, &envelope, now);
    let completion = Completion {
        id,
        token,
        counts,
        next: Next::Done,
    };
    let push =
        (envelope.plan.policy().includes_push() && sh.pipeline.is_configured()).then_some(JobKey {
            message: id,
            run: now,
        });
    // A push run records its job with the completion: the completer does;
    // with a cluster bus, the completer records the run once the bus has
    // its frame (`BusLink::handed_over`).
    let recorded = inline && push.is_none() && sh.bus.is_none() && {
        // The store answered the insert at once: it may answer this too.
        let mut complete = sh.store.complete(vec![completion.clone()]);
        matches!(poll_once(&mut complete), Poll::Ready(Ok(_)))
    };
    if !recorded {
        let mut run = Inflight::delivering(token);
        run.finish(counts);
        sh.lock().inflight.insert(id, run);
        sh.completer.submit(Done {
            completion,
            next: None,
            push,
        });
    }
    debug!(pubsub = counts.pubsub, "published");
    Counters::bump(&sh.counters.published, 1);
    MessageStatus {
        message_id: String::from(id),
        status: PublishStatus::Published,
        error_message: None,
        deliveries: counts,
    }
}
