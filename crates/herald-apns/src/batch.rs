//! From one batch's verdicts to its [`Delivery`]: the rules that look at
//! the whole batch.
//!
//! * **Sandbox/production mismatch.** A batch of at least
//!   [`MISMATCH_MIN_BATCH`] notifications in which more than half the
//!   answers are `400 BadDeviceToken` means the tokens belong to the other
//!   APNs environment (a development build's tokens sent to production, or
//!   the reverse), not that they are all invalid: the delivery is
//!   [`Refusal::Misconfigured`], and those notifications get
//!   [`Outcome::Retry`], which the pipeline turns into failures naming the
//!   configuration problem. No token is removed. Below the threshold, a
//!   `BadDeviceToken` is [`Outcome::InvalidToken`] (`at: None`).
//! * **Refused credentials.** Any credential refusal (a 403 such as
//!   `InvalidProviderToken`) makes the delivery [`Refusal::Credentials`];
//!   the refused notifications, and those not attempted once it was seen,
//!   get [`Outcome::Retry`]. It wins over a mismatch when both occur.

use herald::{Delivery, Outcome, Refusal};

use crate::answer::Verdict;

/// The smallest batch the sandbox/production rule applies to.
pub const MISMATCH_MIN_BATCH: usize = 20;

/// One notification's fate before the batch rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// APNs answered.
    Answered(Verdict),
    /// Decided without a request (expired, a payload too large...): not
    /// counted by the batch rules.
    Decided(Outcome),
    /// Not sent: the batch was already refused when its turn came.
    NotAttempted,
}

/// The delivery for a batch whose notifications met `fates`, in order.
pub(crate) fn settle(fates: Vec<Fate>) -> Delivery {
    let n = fates.len();
    let bad_tokens = fates
        .iter()
        .filter(|f| matches!(f, Fate::Answered(Verdict::BadDeviceToken)))
        .count();
    let mismatch = n >= MISMATCH_MIN_BATCH && bad_tokens * 2 > n;
    let mut credentials = None;
    let outcomes = fates
        .into_iter()
        .map(|fate| match fate {
            Fate::NotAttempted => Outcome::Retry { after: None },
            Fate::Decided(outcome) => outcome,
            Fate::Answered(v) => match v {
                Verdict::Sent => Outcome::Sent,
                Verdict::Unregistered { at } => Outcome::InvalidToken { at },
                Verdict::BadDeviceToken if mismatch => Outcome::Retry { after: None },
                Verdict::BadDeviceToken => Outcome::InvalidToken { at: None },
                Verdict::Credentials(reason) => {
                    credentials.get_or_insert(reason);
                    Outcome::Retry { after: None }
                }
                Verdict::Retry(after) => Outcome::Retry { after },
                Verdict::ExpiredProviderToken => Outcome::Retry { after: None },
                Verdict::Failed(reason) => Outcome::Failed { reason },
            },
        })
        .collect();
    let refused = match credentials {
        Some(reason) => Some(Refusal::Credentials { reason }),
        None if mismatch => Some(Refusal::Misconfigured {
            reason: format!(
                "APNs answered BadDeviceToken for {bad_tokens} of {n} devices: the app's tokens \
                 belong to the other APNs environment (sandbox or production)"
            ),
        }),
        None => None,
    };
    Delivery { outcomes, refused }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_core::Tick;

    use super::*;

    fn answered(v: Verdict, n: usize) -> Vec<Fate> {
        vec![Fate::Answered(v); n]
    }

    #[test]
    fn few_bad_tokens_are_invalid_tokens() {
        let mut fates = answered(Verdict::BadDeviceToken, 19);
        let d = settle(fates.clone());
        assert_eq!(d.refused, None, "below 20 notifications");
        assert_eq!(d.outcomes, vec![Outcome::InvalidToken { at: None }; 19]);
        fates.extend(answered(Verdict::Sent, 21));
        let d = settle(fates);
        assert_eq!(d.refused, None, "19 of 40 is not most");
        assert_eq!(d.outcomes[0], Outcome::InvalidToken { at: None });
        assert_eq!(d.outcomes[39], Outcome::Sent);
    }

    #[test]
    fn mostly_bad_tokens_is_a_mismatch_and_removes_none() {
        let mut fates = answered(Verdict::BadDeviceToken, 11);
        fates.extend(answered(Verdict::Sent, 8));
        fates.push(Fate::Answered(Verdict::Unregistered {
            at: Some(Tick::from_millis(5)),
        }));
        let d = settle(fates);
        assert!(
            matches!(&d.refused, Some(Refusal::Misconfigured { reason }) if reason.contains("11 of 20"))
        );
        assert_eq!(
            d.outcomes[..11],
            vec![Outcome::Retry { after: None }; 11][..]
        );
        assert_eq!(d.outcomes[11], Outcome::Sent);
        assert_eq!(
            d.outcomes[19],
            Outcome::InvalidToken {
                at: Some(Tick::from_millis(5))
            }
        );
    }

    #[test]
    fn credentials_refuse_the_batch() {
        let fates = vec![
            Fate::Answered(Verdict::Sent),
            Fate::Answered(Verdict::Credentials("APNs 403 InvalidProviderToken".into())),
            Fate::NotAttempted,
            Fate::Answered(Verdict::Retry(Some(Duration::from_secs(3)))),
            Fate::Answered(Verdict::Failed("APNs 400 BadTopic".into())),
        ];
        let d = settle(fates);
        assert_eq!(
            d.refused,
            Some(Refusal::Credentials {
                reason: "APNs 403 InvalidProviderToken".into()
            })
        );
        assert_eq!(
            d.outcomes,
            vec![
                Outcome::Sent,
                Outcome::Retry { after: None },
                Outcome::Retry { after: None },
                Outcome::Retry {
                    after: Some(Duration::from_secs(3))
                },
                Outcome::Failed {
                    reason: "APNs 400 BadTopic".into()
                },
            ]
        );
        assert_eq!(settle(Vec::new()), Delivery::default());
    }
}
