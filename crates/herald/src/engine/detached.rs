//! `RunToCompletion`: a future that finishes its work even if its caller
//! stops waiting for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls the wrapped future like any other; if it is dropped before the
/// inner future completes (an HTTP client disconnects mid-publish, a
/// `select!` takes another branch), the inner future is spawned on the
/// current tokio runtime and runs to completion there. So a publish is
/// either not stored at all or fully scheduled (or delivered), never stored
/// and forgotten.
///
/// Costs one allocation; nothing is spawned when the caller waits.
pub(crate) struct RunToCompletion<T: Send + 'static> {
    inner: Option<Pin<Box<dyn Future<Output = T> + Send + 'static>>>,
}

impl<T: Send + 'static> RunToCompletion<T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            inner: Some(Box::pin(fut)),
        }
    }
}

impl<T: Send + 'static> Future for RunToCompletion<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Some(inner) = self.inner.as_mut() else {
            // Polled after completion: a caller bug; never ready again.
            return Poll::Pending;
        };
        match inner.as_mut().poll(cx) {
            Poll::Ready(v) => {
                self.inner = None;
                Poll::Ready(v)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Send + 'static> Drop for RunToCompletion<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = inner.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn finishes_after_the_caller_gives_up() {
        let done = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = done.clone();
        let fut = RunToCompletion::new(async move {
            let _ = rx.await;
            d.store(true, Ordering::SeqCst);
        });
        // The caller polls once, then walks away.
        tokio::select! {
            biased;
            () = fut => unreachable!("waits for the signal"),
            () = std::future::ready(()) => {}
        }
        assert!(!done.load(Ordering::SeqCst));
        tx.send(()).unwrap();
        for _ in 0..10 {
            if done.load(Ordering::SeqCst) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(done.load(Ordering::SeqCst), "the work finished in a task");
    }

    #[tokio::test]
    async fn a_waiting_caller_gets_the_value() {
        assert_eq!(RunToCompletion::new(async { 7 }).await, 7);
    }
}
