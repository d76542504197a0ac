//! The registration lifecycle (SPEC.md 5.7): one transition function,
//! [`next`], from a status and what happened to the status after it, or the
//! refusal the protocol names. The claim ceremony's writes take their
//! status from here. Expiry and revocation run as set-wide statements in the
//! store (thousands of rows at once); they select the statuses `next`
//! accepts (`Status::LIVE` for revocation, unclaimed and pending for
//! expiry), which a test below holds them to.
//!
//! ```text
//!                 claim requested            confirmed
//!   unclaimed ───────────────────▶ pending_claim ─────────▶ claimed
//!       ▲                              │   │
//!       └──── rejected (anonymous) ────┘   ├── rejected (verified email) ─▶ rejected
//!                                          └── 20 wrong codes ───────────▶ locked
//!   unclaimed, pending_claim ── TTL ──▶ expired
//!   active (ID-JAG), unclaimed, pending_claim, claimed ── revoked ──▶ revoked
//!   expired, rejected, locked, revoked: terminal
//! ```

use crate::error::Error;
use crate::model::{RegistrationKind, Status};

/// What happened to a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `POST /agent/auth/claim` opened (or kept) an attempt.
    ClaimRequested,
    /// The user confirmed with the right code.
    Confirmed,
    /// The user said "this wasn't me", twice.
    Rejected,
    /// The code was wrong too often (`claim_max_failures`).
    TooManyFailures,
    /// Unclaimed past its TTL. Expiry runs set-wide (`core::revoke::expire`)
    /// over the statuses this accepts, which a test below holds it to.
    #[cfg_attr(not(test), allow(dead_code))]
    Expired,
    /// By the provider or the operator.
    Revoked,
}

/// The status after `event`, or why it cannot happen from `from`.
pub fn next(kind: RegistrationKind, from: Status, event: Event) -> Result<Status, Error> {
    use Status::*;
    let terminal = matches!(from, Expired | Rejected | Locked | Revoked);
    match event {
        Event::ClaimRequested => match from {
            Unclaimed | PendingClaim => Ok(PendingClaim),
            Claimed => Err(Error::ClaimedOrInFlight("this registration was already claimed")),
            Active => Err(Error::ClaimedOrInFlight("agent-provider registrations are not claimed")),
            _ => Err(Error::ClaimExpired("this registration can no longer be claimed")),
        },
        Event::Confirmed => match from {
            Unclaimed | PendingClaim => Ok(Claimed),
            Claimed => Err(Error::PreviouslyClaimed),
            Active => Err(Error::InvalidClaimToken),
            _ => Err(Error::ClaimExpired("this registration can no longer be claimed")),
        },
        Event::Rejected | Event::TooManyFailures if terminal || from == Claimed || from == Active => {
            Err(Error::ClaimExpired("this registration can no longer be claimed"))
        }
        Event::Rejected => Ok(match kind {
            RegistrationKind::EmailVerification | RegistrationKind::ServiceAuth => Rejected,
            _ => Unclaimed,
        }),
        Event::TooManyFailures => Ok(Locked),
        Event::Expired => match from {
            Unclaimed | PendingClaim => Ok(Expired),
            _ => Err(Error::ClaimExpired("only an unclaimed registration expires")),
        },
        Event::Revoked if terminal => Err(Error::ClaimExpired("this registration is already over")),
        Event::Revoked => Ok(Revoked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegistrationKind::{Anonymous, EmailVerification};
    use Status::*;

    /// Every transition of the diagram, one line each.
    #[test]
    fn the_diagram() {
        let ok = [
            (Anonymous, Unclaimed, Event::ClaimRequested, PendingClaim),
            (Anonymous, PendingClaim, Event::ClaimRequested, PendingClaim),
            (Anonymous, PendingClaim, Event::Confirmed, Claimed),
            (EmailVerification, PendingClaim, Event::Confirmed, Claimed),
            (Anonymous, PendingClaim, Event::Rejected, Unclaimed),
            (EmailVerification, PendingClaim, Event::Rejected, Rejected),
            (Anonymous, PendingClaim, Event::TooManyFailures, Locked),
            (Anonymous, Unclaimed, Event::Expired, Expired),
            (EmailVerification, PendingClaim, Event::Expired, Expired),
            (RegistrationKind::AgentProvider, Active, Event::Revoked, Revoked),
            (Anonymous, Claimed, Event::Revoked, Revoked),
        ];
        for (kind, from, event, to) in ok {
            assert_eq!(next(kind, from, event).ok(), Some(to), "{kind:?} {from:?} {event:?}");
        }
    }

    #[test]
    fn refusals_carry_the_codes_the_endpoints_answer() {
        let code = |from, event| crate::proto::v0_1::wire(&next(Anonymous, from, event).unwrap_err()).1;
        assert_eq!(code(Claimed, Event::ClaimRequested), "claimed_or_in_flight");
        assert_eq!(code(Claimed, Event::Confirmed), "previously_claimed");
        assert_eq!(code(Active, Event::Confirmed), "invalid_claim_token");
        for terminal in [Expired, Rejected, Locked, Revoked] {
            for event in [Event::ClaimRequested, Event::Confirmed, Event::Rejected, Event::Revoked] {
                assert!(next(Anonymous, terminal, event).is_err(), "{terminal:?} is terminal");
            }
            assert_eq!(code(terminal, Event::Confirmed), "claim_expired");
        }
        assert!(
            next(Anonymous, Claimed, Event::Expired).is_err(),
            "a claimed registration does not expire"
        );
    }

    /// The store's set-wide revocation and expiry select what `next` allows.
    #[test]
    fn the_set_wide_statements_agree_with_the_diagram() {
        for status in Status::ALL {
            assert_eq!(
                next(Anonymous, status, Event::Revoked).is_ok(),
                status.is_live(),
                "{status:?}"
            );
            let expires = matches!(status, Unclaimed | PendingClaim);
            assert_eq!(next(Anonymous, status, Event::Expired).is_ok(), expires, "{status:?}");
        }
    }
}
