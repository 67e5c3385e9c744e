//! Per-request deadlines of the HTTP functions.
//!
//! A handler that calls a provider must answer, and finish what follows the call (storing a
//! connection, recording a failure, undoing a link it could not record), before the Lambda
//! is stopped. Each provider call on a request path therefore runs under the request's
//! [`Deadline`] and keeps back [`Deadline::reserve`] for those last steps: a call that would
//! eat into it is cut off as [`TimedOut`] (which every error type a call may return converts
//! from: a provider call's becomes `ProviderError::Timeout`), whatever the HTTP client's own
//! (longer) timeout.
//!
//! The deadline is the sooner of the configured budget (`request_budget_ms`, default
//! `config::DEFAULT_REQUEST_BUDGET`) counted from the request's arrival, and the Lambda's own
//! deadline (from the `lambda_runtime::Context` that lambda_http puts in the request's
//! extensions) less [`LAMBDA_MARGIN`] for writing the response.
//!
//! A leaf module: it knows no error type but its own, so anything may be bounded by it.

use std::future::Future;
use std::time::{Duration, SystemTime};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::time::Instant;

/// A call cut off by its [`Deadline`], or not started because nothing was left of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deadline passed before the call finished")]
pub struct TimedOut;
/// Kept from the Lambda's deadline for writing the response.
pub const LAMBDA_MARGIN: Duration = Duration::from_secs(1);
/// The most kept back from provider calls for the steps after them (a database write or
/// two, or one undo call); a quarter of the whole when that is less.
pub const MAX_RESERVE: Duration = Duration::from_secs(3);
/// The least an undo (the last provider call of a request, putting back what the request
/// could not record) is given, however little of the deadline is left: a link left public
/// costs more than a late answer.
pub const MIN_UNDO: Duration = Duration::from_secs(2);
/// Kept from the Lambda's own deadline by an undo that overruns the request's deadline: what
/// is left after it is for recording the undo's failure and writing the response.
pub const UNDO_LAMBDA_MARGIN: Duration = Duration::from_millis(500);

/// When a request must be done by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    reserve: Duration,
    /// The Lambda's own deadline (monotonic), when the request runs in one.
    lambda: Option<Instant>,
}

impl Deadline {
    /// The deadline of a request that arrived at `arrived`: `budget` after it, or the Lambda's
    /// deadline less [`LAMBDA_MARGIN`] when that is sooner.
    pub fn new(arrived: Instant, budget: Duration, lambda_deadline: Option<SystemTime>) -> Deadline {
        let mut at = arrived + budget;
        let mut lambda_at = None;
        if let Some(lambda) = lambda_deadline {
            // Wall clock to monotonic clock, once: what is left of the Lambda's time now.
            let left = lambda.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            let now = Instant::now();
            at = at.min(now + left.saturating_sub(LAMBDA_MARGIN));
            lambda_at = Some(now + left);
        }
        let total = at.saturating_duration_since(arrived);
        Deadline { at, reserve: MAX_RESERVE.min(total / 4), lambda: lambda_at }
    }

    /// A deadline at `at`, with no Lambda deadline and the usual reserve.
    pub fn at(at: Instant) -> Deadline {
        let now = Instant::now();
        Deadline::new(now, at.saturating_duration_since(now), None)
    }

    /// `budget` from now, with no Lambda deadline.
    pub fn after(budget: Duration) -> Deadline {
        Deadline::new(Instant::now(), budget, None)
    }

    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The Lambda's own deadline (monotonic), when the request runs in one: what a write that
    /// must not be lost (a refreshed token) may use after the answer's deadline has passed.
    pub fn lambda_instant(&self) -> Option<Instant> {
        self.lambda
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// What provider calls leave for the steps after them.
    pub fn reserve(&self) -> Duration {
        self.reserve
    }

    /// Runs a call, cutting it off as [`TimedOut`] where it would eat into
    /// [`Deadline::reserve`]; with nothing left, the call is not started.
    pub async fn call<T, E: From<TimedOut>>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        self.call_leaving(self.reserve, call).await
    }

    /// Like [`Deadline::call`], leaving `leave` instead of the reserve: the last provider
    /// call of a request (an undo) may use the reserve itself.
    pub async fn call_leaving<T, E: From<TimedOut>>(
        &self,
        leave: Duration,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let allowed = self.remaining().saturating_sub(leave);
        if allowed.is_zero() {
            return Err(TimedOut.into());
        }
        tokio::time::timeout(allowed, call).await.unwrap_or_else(|_| Err(TimedOut.into()))
    }

    /// Runs an undo: like [`Deadline::call_leaving`], but given at least [`MIN_UNDO`] even
    /// when less (or nothing) is left of the deadline, so that it is always attempted; never
    /// past the Lambda's own deadline less [`UNDO_LAMBDA_MARGIN`], where the undo is not
    /// started or is cut off as [`TimedOut`].
    pub async fn undo_call<T, E: From<TimedOut>>(
        &self,
        leave: Duration,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let mut allowed = self.remaining().saturating_sub(leave).max(MIN_UNDO);
        if let Some(lambda) = self.lambda {
            allowed = allowed.min(lambda.saturating_duration_since(Instant::now()).saturating_sub(UNDO_LAMBDA_MARGIN));
        }
        if allowed.is_zero() {
            return Err(TimedOut.into());
        }
        tokio::time::timeout(allowed, call).await.unwrap_or_else(|_| Err(TimedOut.into()))
    }
}

/// When the request arrived and the Lambda's deadline, if it runs in one; an extractor, so
/// that [`RequestClock::deadline`] can apply the configured budget once the handler has it.
#[derive(Debug, Clone, Copy)]
pub struct RequestClock {
    arrived: Instant,
    lambda_deadline: Option<SystemTime>,
}

impl RequestClock {
    pub fn new(lambda_deadline: Option<SystemTime>) -> RequestClock {
        RequestClock { arrived: Instant::now(), lambda_deadline }
    }

    pub fn deadline(&self, budget: Duration) -> Deadline {
        Deadline::new(self.arrived, budget, self.lambda_deadline)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestClock {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RequestClock, Self::Rejection> {
        // A default Context (no runtime, as in tests and the local run) has deadline 0.
        let lambda = parts.extensions.get::<lambda_http::Context>().filter(|c| c.deadline > 0).map(|c| c.deadline());
        Ok(RequestClock::new(lambda))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sooner_of_the_budget_and_the_lambda_deadline_less_the_margin_wins() {
        // Arrange
        let now = Instant::now();
        let lambda_soon = SystemTime::now() + Duration::from_secs(5);
        let lambda_late = SystemTime::now() + Duration::from_secs(600);

        // Act
        let by_lambda = Deadline::new(now, Duration::from_secs(25), Some(lambda_soon));
        let by_budget = Deadline::new(now, Duration::from_secs(25), Some(lambda_late));
        let no_lambda = Deadline::new(now, Duration::from_secs(25), None);
        let past = Deadline::new(now, Duration::from_secs(25), Some(SystemTime::now() - Duration::from_secs(1)));

        // Assert
        assert!(by_lambda.remaining() <= Duration::from_secs(4), "{by_lambda:?}");
        assert!(by_lambda.remaining() > Duration::from_secs(3), "{by_lambda:?}");
        assert_eq!(by_lambda.reserve(), by_lambda.instant().duration_since(now) / 4);
        assert_eq!(by_budget.instant(), now + Duration::from_secs(25));
        assert_eq!(by_budget.reserve(), MAX_RESERVE);
        assert_eq!(no_lambda.instant(), now + Duration::from_secs(25));
        assert_eq!(past.remaining(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_call_that_would_eat_into_the_reserve_is_a_timeout() {
        // Arrange
        let deadline = Deadline::after(Duration::from_millis(200));

        // Act
        let cut = deadline.call(std::future::pending::<Result<(), TimedOut>>()).await;
        let done = deadline.call_leaving(Duration::ZERO, async { Ok::<_, TimedOut>(7) }).await;

        // Assert
        assert_eq!(cut, Err(TimedOut));
        assert!(deadline.remaining() > Duration::ZERO, "the reserve is still there");
        assert!(deadline.remaining() <= deadline.reserve());
        assert_eq!(done, Ok(7), "the reserve is usable by a last call");
    }

    #[tokio::test]
    async fn with_nothing_left_the_call_is_not_started() {
        // Arrange
        let deadline = Deadline::after(Duration::ZERO);
        let mut started = false;

        // Act
        let outcome = deadline
            .call_leaving(Duration::ZERO, async {
                started = true;
                Ok::<_, TimedOut>(())
            })
            .await;

        // Assert
        assert_eq!(outcome, Err(TimedOut));
        assert!(!started);
    }

    #[tokio::test]
    async fn an_undo_is_attempted_with_its_minimum_when_the_deadline_is_spent() {
        // Arrange
        let spent = Deadline::after(Duration::ZERO);
        let mut started = false;

        // Act
        let outcome = spent
            .undo_call(spent.reserve() / 2, async {
                started = true;
                Ok::<_, TimedOut>(7)
            })
            .await;
        let cut = spent.undo_call(Duration::ZERO, std::future::pending::<Result<(), TimedOut>>());
        let cut = tokio::time::timeout(MIN_UNDO * 2, cut).await;

        // Assert
        assert_eq!(outcome, Ok(7));
        assert!(started, "the undo ran although nothing was left of the deadline");
        assert_eq!(cut.expect("cut off at its minimum"), Err(TimedOut));
    }

    #[tokio::test]
    async fn an_undo_never_runs_into_the_lambdas_own_deadline() {
        // Arrange
        let arrived = Instant::now();
        let lambda_now = Deadline::new(arrived, Duration::from_secs(25), Some(SystemTime::now()));
        let lambda_soon =
            Deadline::new(arrived, Duration::from_secs(25), Some(SystemTime::now() + Duration::from_secs(1)));
        let mut started = false;

        // Act
        let not_started = lambda_now
            .undo_call(Duration::ZERO, async {
                started = true;
                Ok::<_, TimedOut>(())
            })
            .await;
        let cut = lambda_soon.undo_call(Duration::ZERO, std::future::pending::<Result<(), TimedOut>>());
        let cut = tokio::time::timeout(MIN_UNDO, cut).await;

        // Assert
        assert_eq!(not_started, Err(TimedOut));
        assert!(!started, "nothing is left before the Lambda's deadline less the margin");
        assert_eq!(cut.expect("cut off before the Lambda's deadline"), Err(TimedOut));
    }

    #[tokio::test]
    async fn the_clock_reads_the_lambda_context_of_the_request() {
        // Arrange
        let mut with = axum::http::Request::new(()).into_parts().0;
        let mut context = lambda_http::Context::default();
        let at = SystemTime::now() + Duration::from_secs(3);
        context.deadline = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        with.extensions.insert(context);
        let mut default_context = axum::http::Request::new(()).into_parts().0;
        default_context.extensions.insert(lambda_http::Context::default());

        // Act
        let from_lambda = RequestClock::from_request_parts(&mut with, &()).await.unwrap();
        let from_default = RequestClock::from_request_parts(&mut default_context, &()).await.unwrap();

        // Assert
        assert!(from_lambda.deadline(Duration::from_secs(25)).remaining() <= Duration::from_secs(2));
        assert!(from_default.deadline(Duration::from_secs(25)).remaining() > Duration::from_secs(20));
    }
}
